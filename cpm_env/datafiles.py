"""The data files a scenario names (traces, request logs, grid calendars): their CSV, timestamps and numbers.

- :func:`read_csv`: a CSV with the columns a workload or calendar needs, at least two rows, within
  the memory budget;
- :func:`timestamps_s` and :func:`numbers`: a column as seconds from its first row (seconds or ISO
  date-times in one time zone) and as floats;
- :func:`shared`: what is built from a file, once per file version and reading options, shared
  read-only by every env, generator and batch that reads it (a site family's draws re-read nothing).

Bad data is a one-line :class:`~cpm_env.config.ConfigError` naming the file and, where one is at
fault, its line (1-based, the header is line 1) and column. pandas is imported only when a file is read,
so ``import cpm_env`` stays light.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import numpy as np

from cpm_env.config import ConfigError, check_memory

if TYPE_CHECKING:
    import pandas as pd

# Memory of a CSV being read, checked against cpm_env.config.MEMORY_BUDGET_BYTES: pandas holds the
# parsed columns (and, for ISO timestamps, a Python string per row), a few times the file's size.
BYTES_PER_CSV_BYTE = 4
SHARED_MAX = 32  # files kept (the oldest is dropped first)

_SHARED: dict[tuple, Any] = {}
T = TypeVar("T")


def shared(path: str | Path, options: Hashable, build: Callable[[], T], key: str) -> T:
    """``build()``, once per version of the file at ``path`` (its resolved path, modification time and size) and
    ``options``; its numpy arrays (``build`` may return one, or a tuple holding some) are made read-only, since
    every caller shares them. A missing file is a one-line ConfigError naming ``key``, the field that names it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found: {key} must name an existing CSV file")
    st = path.stat()
    ident = (str(path.resolve()), st.st_mtime_ns, st.st_size, options)
    if ident not in _SHARED:
        value = build()
        for a in value if isinstance(value, tuple) else (value,):
            if isinstance(a, np.ndarray):
                a.flags.writeable = False
        if len(_SHARED) >= SHARED_MAX:
            _SHARED.pop(next(iter(_SHARED)))
        _SHARED[ident] = value
    return _SHARED[ident]


def read_csv(path: Path, columns: Sequence[str], what: str, fields: Mapping[str, str] | None = None,
             as_text: bool = False) -> pd.DataFrame:
    """``columns`` of the CSV at ``path`` (a ``what``: trace, calendar), with at least two data rows; cells as
    written where ``as_text`` (for the errors to show them), else parsed. One-line ConfigError for a file over
    the memory budget, a malformed CSV, a missing column (``fields``: the config field naming each column,
    shown beside it; the file's columns are listed) or fewer than two rows."""
    import pandas as pd

    size = path.stat().st_size
    check_memory(BYTES_PER_CSV_BYTE * size, f"{path}: reading this {size / 1e6:.3g} MB {what}")
    wanted = set(columns)
    text = {"dtype": str, "keep_default_na": False} if as_text else {}
    try:
        df = pd.read_csv(path, usecols=lambda c: c in wanted, **text)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: malformed CSV: {str(err).splitlines()[0]}") from None
    for col in columns:
        if col not in df.columns:
            field = f" ({fields[col]})" if fields and col in fields else ""
            header = pd.read_csv(path, nrows=0).columns
            raise ConfigError(f"{path}: column {col!r} missing{field}: columns are {list(header)}")
    if len(df) < 2:
        raise ConfigError(f"{path}: {len(df)} data rows: a {what} needs at least two")
    return df


def numbers(col: pd.Series) -> pd.Series:
    """``col`` as floats, NaN where a cell is not a number; a number too large for a float becomes inf."""
    import pandas as pd

    try:
        return pd.to_numeric(col, errors="coerce")
    except OverflowError:  # pandas overflows on an integer of hundreds of digits
        return pd.to_numeric(col.astype(str).map(_float_or_nan), errors="coerce")


def _float_or_nan(text: str) -> float:
    """``float(text)`` (inf when too large), or NaN when ``text`` is not a number."""
    try:
        return float(text)
    except ValueError:
        return float("nan")


def timestamps_s(col: pd.Series, path: Path, name: str) -> np.ndarray:
    """Timestamps as seconds from the first row: numbers (seconds) or ISO date-times, all in one time zone."""
    import pandas as pd

    numeric = numbers(col)
    if numeric.notna().sum() * 2 >= len(col):
        bad = numeric.isna().to_numpy()
        values = numeric.to_numpy(dtype=float)
    else:
        try:
            stamps = pd.to_datetime(col, errors="coerce", format="ISO8601")
        except (ValueError, TypeError):  # pandas refuses mixed UTC offsets, or naive with aware
            _raise_mixed_zones(col, path, name)
        bad = stamps.isna().to_numpy()
        values = (stamps - stamps.iloc[0]).dt.total_seconds().to_numpy(dtype=float)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ConfigError(
            f"{path}: line {i + 2}, column {name} = {col.iloc[i]!r}: must be seconds or an ISO date-time"
        )
    return values


def _raise_mixed_zones(col: pd.Series, path: Path, name: str) -> NoReturn:
    """Raise a one-line error naming the first timestamp whose UTC offset differs from the first row's."""
    import pandas as pd

    def offset(text):
        stamp = pd.to_datetime(text, errors="coerce", format="ISO8601")
        return None if pd.isna(stamp) else stamp.utcoffset()

    first = offset(col.iloc[0])
    for i, text in enumerate(col):
        if offset(text) != first:
            zone = "no time zone" if first is None else f"UTC offset {_hhmm(first.total_seconds())}"
            raise ConfigError(f"{path}: line {i + 2}, column {name} = {text!r}: must have the time zone of line 2 "
                              f"({zone}): a trace's timestamps must share one (e.g. all in UTC, with Z)")
    raise ConfigError(f"{path}: column {name}: timestamps could not be parsed as ISO date-times in one time zone")


def _hhmm(offset_s: float) -> str:
    """A UTC offset in seconds as ``+HH:MM``."""
    minutes = int(round(abs(offset_s) / 60.0))
    return f"{'-' if offset_s < 0 else '+'}{minutes // 60:02d}:{minutes % 60:02d}"
