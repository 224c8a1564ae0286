"""Files written safely, shared by training, evaluation and sizing (standard library only):
atomic writes, content hashes of JSON data, and moving an old folder aside instead of deleting it."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def utc_stamp() -> str:
    """The current UTC time as ``YYYYmmddTHHMMSSZ`` (sortable, no separators)."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` through a temporary file in the same folder and
    :func:`os.replace`: readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def canonical_json(data: Any) -> bytes:
    """``data`` as canonical JSON bytes (sorted keys, no spaces, no NaN): the input of every content hash."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def sha256_json(data: Any) -> str:
    """SHA-256 of ``data`` as canonical JSON, 64 hex digits: a configuration's fingerprint."""
    return hashlib.sha256(canonical_json(data)).hexdigest()


def is_empty_dir(path: Path) -> bool:
    """True if ``path`` does not exist or is an empty folder."""
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


def move_aside(path: Path) -> Path | None:
    """Rename a non-empty ``path`` to ``<path>.old-<UTC time>`` (``_2``, ``_3``... if taken; never deletes);
    returns the new name, or None if there was nothing to move."""
    if is_empty_dir(path):
        return None
    old, n = path.with_name(f"{path.name}.old-{utc_stamp()}"), 1
    while old.exists():
        n += 1
        old = path.with_name(f"{path.name}.old-{utc_stamp()}_{n}")
    path.rename(old)
    return old


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes as 64 hex digits."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def scenario_sha256(scenario: Mapping[str, Any], base: Path | None = None) -> str:
    """SHA-256 of a scenario's plain dict (:func:`cpm_env.config.scenario_to_dict`) as canonical JSON.

    A data file the scenario reads (a trace's, request log's or calendar's non-empty ``path``; a relative
    one resolved against ``base``, the folder of the YAML it was read from) counts by its content's
    SHA-256, not its location: a checkout in another folder, or a shipped policy's ``scenario.yml`` that
    names the file relative to itself, is the same scenario. A path to no file counts as written.
    """
    return sha256_json(_data_files_by_content(scenario, base))


def _data_files_by_content(node: Any, base: Path | None) -> Any:
    """``node`` with each existing file named by a ``path`` key replaced by ``{"file_sha256": ...}``."""
    if isinstance(node, Mapping):
        return {k: _file_identity(v, base) if k == "path" and isinstance(v, str) and v
                else _data_files_by_content(v, base) for k, v in node.items()}
    if isinstance(node, list):
        return [_data_files_by_content(v, base) for v in node]
    return node


def _file_identity(path: str, base: Path | None) -> Any:
    p = Path(path)
    if not p.is_absolute() and base is not None:
        p = base / p
    return {"file_sha256": sha256_file(p)} if p.is_file() else path
