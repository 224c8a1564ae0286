"""A run's output folder: stamped with its configuration (``run.json``), its finished rows kept
as they come (``rows/``) so an interrupted run resumes, and its final files published as a set.

``run.json`` holds the command's configuration (a plain JSON object). Rerunning with the same
configuration resumes: rows already in ``rows/`` are not recomputed. Another configuration into
a non-empty folder is a one-line error unless ``overwrite``, which moves the old folder aside
(``<folder>.old-<time>``), never deleting it. Final files are written in a staging folder inside
the run's folder and renamed into place together, so a folder never mixes two runs' files.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from agents.evaluation.outpaths import check_writable_folder
from agents.files import move_aside, write_atomic

STAMP = "run.json"
ROWS = "rows"
STAGING_PREFIX = ".staging-"


class RunFolder:
    """An output folder checked against a run's configuration; see the module docstring."""

    def __init__(self, path: Path, stamp: dict[str, Any], flag: str, overwrite: bool, known: Collection[str]):
        """Check ``path`` for a run stamped ``stamp`` without writing anything; one-line ValueError naming
        ``flag`` if it is unusable. ``known`` names the command's own final files (a folder of only those,
        without a stamp, is an older run that ``overwrite`` may move aside)."""
        self.path, self.flag = path, flag
        self.stamp = json.loads(json.dumps(stamp, default=str))  # as it reads back from run.json
        self.move_aside = False
        check_writable_folder(path, flag)
        if not path.is_dir() or not any(path.iterdir()):
            return
        old = self.read_stamp()
        if old == self.stamp and not overwrite:
            return
        if old is None and not set(os.listdir(path)) <= {*known, STAMP, ROWS}:
            raise ValueError(f"{flag} = '{path}': not empty and not a run's output folder (no {STAMP}): "
                             "choose an empty or new folder")
        if not overwrite:
            what = "a run of another configuration" if old is not None else f"an older run without {STAMP}"
            raise ValueError(f"{flag} = '{path}': holds {what}: pass --overwrite to move it aside, "
                             "or choose another folder")
        self.move_aside = True

    def read_stamp(self) -> dict[str, Any] | None:
        """The folder's ``run.json`` (an unreadable one reads as ``{}``, another configuration); None if absent."""
        path = self.path / STAMP
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def claim(self) -> None:
        """Create the folder (moving an old run aside first if asked) and stamp it; one-line ValueError on failure."""
        try:
            if self.move_aside:
                print(f"moved the old {self.path} aside to {move_aside(self.path)}")
            self.path.mkdir(parents=True, exist_ok=True)
            for stale in self.path.glob(f"{STAGING_PREFIX}*"):  # a publish interrupted before its renames
                shutil.rmtree(stale)
            if self.read_stamp() != self.stamp:
                write_atomic(self.path / STAMP, json.dumps(self.stamp, indent=1) + "\n")
            (self.path / ROWS).mkdir(exist_ok=True)
        except OSError as err:
            raise ValueError(f"{self.flag} = '{self.path}': cannot write there: {err.strerror or err}") from None

    def has(self, key: int) -> bool:
        """True if the rows of part ``key`` are done (kept from an earlier, interrupted run or this one)."""
        return all((self.path / ROWS / f"{key}.{ext}").is_file() for ext in ("csv", "json"))

    def save(self, key: int, rows: pd.DataFrame, extra: dict[str, Any] | None = None) -> None:
        """Keep part ``key``'s rows (``rows/<key>.csv``) and ``extra`` (``rows/<key>.json``, written last:
        the part counts as done once it exists)."""
        write_atomic(self.path / ROWS / f"{key}.csv", rows.to_csv(index=False))
        write_atomic(self.path / ROWS / f"{key}.json", json.dumps(extra or {}) + "\n")

    def load(self, key: int) -> tuple[pd.DataFrame, dict[str, Any]]:
        """Part ``key``'s rows (floats exactly as saved) and its ``extra``."""
        rows = pd.read_csv(self.path / ROWS / f"{key}.csv", keep_default_na=False, na_values=[""])
        return rows, json.loads((self.path / ROWS / f"{key}.json").read_text())

    @contextmanager
    def publish(self) -> Iterator[Path]:
        """A staging folder for the final files; on success each is renamed into the run's folder."""
        staging = self.path / f"{STAGING_PREFIX}{os.getpid()}"
        staging.mkdir(exist_ok=True)
        try:
            yield staging
            for f in sorted(staging.iterdir()):
                os.replace(f, self.path / f.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
