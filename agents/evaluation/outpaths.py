"""Output paths: names derived from inputs as one safe folder name, and an output folder
checked (not a file, creatable, writable) before any work, with one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

SAFE_NAME_RULE = "must be a single folder name: not empty, no '/' or '\\', not '.' or '..', no leading '.'"


def is_safe_name(name: object) -> bool:
    """True if ``name`` can be used as one path component under a folder the user named."""
    return (isinstance(name, str) and bool(name) and "/" not in name and "\\" not in name and "\0" not in name
            and not name.startswith("."))


def safe_name(name: object, where: str) -> str:
    """``name`` if :func:`is_safe_name`; else a one-line ValueError ``<where> = <name>: <rule>``."""
    if not is_safe_name(name):
        raise ValueError(f"{where} = {name!r}: {SAFE_NAME_RULE}")
    return str(name)


def check_writable_folder(out: Path, flag: str) -> None:
    """Raise a one-line ValueError unless ``out`` is a writable folder or can be created as one.

    Nothing is created: the nearest existing ancestor must be a writable folder.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag} = '{out}': is a file: must be a folder")
    if out.is_dir():
        if not os.access(out, os.W_OK | os.X_OK):
            raise ValueError(f"{flag} = '{out}': folder is not writable")
        return
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"{flag} = '{out}': cannot create it: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} = '{out}': cannot create it: {parent} is not writable")
