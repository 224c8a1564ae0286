"""Run directories of train.py: a unique default per run, and never two runs mixed in one folder."""

from __future__ import annotations

import re
from pathlib import Path

from agents.files import is_empty_dir, utc_stamp

RUNS_DIR = Path("runs")
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_name(name: str, what: str) -> str:
    """``name`` if it is safe as one path component (letters, digits, ``._-``, no ``..``); else one-line ValueError."""
    if not SAFE_NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"{what} {name!r}: not usable in a folder name (allowed: letters, digits, '.', '_', '-'; "
                         "no '/', no '..')")
    return name


def default_run_dir(scenario_id: str, seed: int, root: Path = RUNS_DIR) -> Path:
    """``root/<scenario id>_seed<seed>_<UTC time>``, with ``_2``, ``_3``, ... if that exists already."""
    base = f"{check_name(scenario_id.split('/')[-1], 'scenario id')}_seed{seed}_{utc_stamp()}"
    path, n = root / base, 1
    while path.exists():
        n += 1
        path = root / f"{base}_{n}"
    return path


def check_fresh_run_dir(path: Path, overwrite: bool) -> None:
    """One-line ValueError unless ``path`` may hold a new run: absent, empty, or ``overwrite`` (then
    :func:`move_aside` clears it). Creates nothing."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"--run-dir {path}: is a file, not a folder: pass another --run-dir")
    if not is_empty_dir(path) and not overwrite:
        raise ValueError(f"--run-dir {path}: not empty (another run's files): pass a new --run-dir, "
                         f"--resume {path} to continue that run, or --overwrite to move it aside to "
                         f"{path}.old-<UTC time> and start fresh")
