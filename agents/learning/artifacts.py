"""Artifact sets (a final model, a checkpoint, ``best/``): files written atomically, sealed by a manifest.

A set is a folder whose ``manifest.json`` lists its files with their SHA-256 and size, the
env steps the policy was trained for and the scenario it was trained on (id and the SHA-256
of its canonical JSON)::

    {"format": "cpm-artifacts", "format_version": 1, "num_timesteps": 10002432,
     "scenario": {"id": "DataCenter-v0", "sha256": "..."}, "env_options": {"shield": false},
     "files": {"policy.npz": {"sha256": "...", "bytes": 123}, ...}, "written_utc": "..."}

Every file is written to a temporary name and moved into place (:func:`write_atomic`); the
manifest is written last and removed first (:func:`begin_set`), so a set interrupted while
being written has no manifest and :func:`check_artifacts` refuses it. A folder that is only a
set (``best/``, a checkpoint) is written beside and renamed into place
(:func:`write_set_folder`), so the complete set it replaces stays until the new one is
complete. Pure: no torch, no SB3.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from agents.files import scenario_sha256, sha256_file, write_atomic

MANIFEST = "manifest.json"
FORMAT, FORMAT_VERSION = "cpm-artifacts", 1
CONVERT_HINT = "python -m agents.learning.convert"
# the env's options a policy was trained with, at their defaults; ``shield``: every action passed
# through the safety filter (cpm_env.shield) before the physics, so the policy acts behind it;
# ``battery_action``: what its first action entry sets (cpm_env.physics.BATTERY_ACTIONS); ``site_features``:
# its observations end with the site's parameters (cpm_env.spaces.site_parameter_features)
ENV_OPTIONS: dict[str, Any] = {"shield": False, "battery_action": "power", "site_features": False}


def env_options(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The env options a sealed set was trained with (a manifest without them: the defaults)."""
    return {**ENV_OPTIONS, **(manifest.get("env_options") or {})}


def options_in(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The env options among ``settings`` (hyperparameters, train.py's arguments, an env's attributes as
    ``vars``), each missing one at its default: the keyword arguments of ``make_vec`` / ``CpmVecEnv``."""
    return {key: settings.get(key, default) for key, default in ENV_OPTIONS.items()}


def write_json_atomic(path: Path, data: Any) -> None:
    """``data`` as indented JSON (no NaN), written with :func:`write_atomic`."""
    write_atomic(path, (json.dumps(data, indent=2, allow_nan=False) + "\n").encode())


def begin_set(directory: Path) -> None:
    """Mark ``directory`` as being (re)written: create it and remove its manifest, so that until
    :func:`write_manifest` it is an incomplete set."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST).unlink(missing_ok=True)


def write_manifest(directory: Path, files: Iterable[str], num_timesteps: int, scenario: Mapping[str, Any],
                   env_options: Mapping[str, Any] | None = None) -> dict:
    """Seal the set: hash ``files`` (names in ``directory``) and write ``directory/manifest.json`` last.

    ``scenario`` is the plain dict of the scenario the policy was trained on, ``env_options`` the
    env's options in training (:data:`ENV_OPTIONS`; missing ones are their defaults). Returns the manifest.
    """
    entries = {}
    for name in sorted(set(files)):
        path = directory / name
        entries[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "num_timesteps": int(num_timesteps),
                "scenario": {"id": scenario.get("id"), "sha256": scenario_sha256(scenario, directory)},
                "env_options": {**ENV_OPTIONS, **(env_options or {})}, "files": entries,
                "written_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_json_atomic(directory / MANIFEST, manifest)
    return manifest


def write_set_folder(directory: Path, write: Callable[[Path], dict]) -> dict:
    """Write a whole set folder at once: ``write(tmp)`` fills a temporary sibling folder (and returns
    its manifest), which then replaces ``directory`` by renames; the set it replaces is deleted
    only once the new one is in place. Returns the manifest."""
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
    for leftover in (tmp, old):  # this process's own, from an interrupted earlier call
        if leftover.exists():
            shutil.rmtree(leftover)
    tmp.mkdir(parents=True)
    manifest = write(tmp)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    if old.exists():
        shutil.rmtree(old)
    return manifest


def _plain_name(name: object) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name


def check_artifacts(directory: str | Path, required: Iterable[str] = ()) -> dict:
    """The manifest of the complete set in ``directory``; one-line ValueError naming the file if the
    manifest is missing or malformed, a ``required`` file is not listed, or a listed file is missing,
    truncated or changed."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not directory.is_dir():
        raise ValueError(f"{directory}: not a folder: pass a run dir of train.py (or its best/ or a checkpoint)")
    if not path.is_file():
        raise ValueError(f"{path}: missing: not a complete artifact set (interrupted while saving, or saved before "
                         f"manifests: convert a run dir you trust with {CONVERT_HINT} {directory})")
    try:
        manifest = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({str(err).splitlines()[0]}): the set is incomplete") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version = {manifest.get('format_version')!r}: this code reads "
                         f"{FORMAT_VERSION}")
    files = manifest.get("files")
    scenario = manifest.get("scenario")
    if not isinstance(files, dict) or not isinstance(scenario, dict) or not isinstance(manifest.get("num_timesteps"),
                                                                                        int):
        raise ValueError(f"{path}: needs files (a mapping), scenario (id, sha256) and num_timesteps (an integer)")
    for name in required:
        if name not in files:
            raise ValueError(f"{path}: does not list {name}: the set is incomplete")
    for name, entry in files.items():
        if not _plain_name(name) or not isinstance(entry, dict):
            raise ValueError(f"{path}: file entry {name!r}: must be a plain file name with sha256 and bytes")
        file = directory / name
        if not file.is_file():
            raise ValueError(f"{file}: missing (listed in {MANIFEST}): the set is incomplete")
        actual = sha256_file(file)
        if actual != entry.get("sha256") or file.stat().st_size != entry.get("bytes"):
            raise ValueError(f"{file}: {file.stat().st_size} bytes, sha256 {actual[:16]}... do not match {MANIFEST} "
                             f"({entry.get('bytes')} bytes, sha256 {str(entry.get('sha256'))[:16]}...): the file was "
                             "changed or truncated")
    return manifest
