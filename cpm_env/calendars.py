"""Grid calendars from CSV: the import limit and the energy price of each control step.

A calendar is a CSV with a timestamp column (seconds, or ISO date-times in one time zone, read
exactly as traces are: :func:`cpm_env.datafiles.timestamps_s`) and one value column. Each row's
value holds from its timestamp to the next row's (the last row's for the median interval between
rows, which closes the calendar's period); a control step takes the value at its start. It is
read and checked once, when the env (its :class:`~cpm_env.episode.EpisodeGenerator`) is built:
bad data is a one-line :class:`~cpm_env.config.ConfigError` naming the file, the line (1-based,
the header is line 1) and the column, never a silent clip.

- :class:`LimitCalendar` (``grid.limit_calendar``): the import limit of each episode, from a
  seeded offset (whole steps) into the calendar. Its demand-response windows are the maximal runs
  of steps below ``grid.limit_mw``, the contract's normal limit (which no row may exceed: it scales
  the observation).
- :func:`step_prices_usd_per_mwh` (``grid.price_calendar``): the one owner of "the price of each
  step" of a scenario with a price calendar, from the calendar's first row; the env
  (:attr:`EpisodeGenerator.price_usd_per_mwh <cpm_env.episode.EpisodeGenerator>`) and the
  economics (:mod:`agents.sizing.economics`) both call it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from cpm_env.config import ConfigError, LimitCalendarConfig, PriceCalendarConfig, ScenarioConfig, check_memory, shown
from cpm_env.datafiles import numbers, read_csv, shared, timestamps_s

# Memory of a calendar resampled to the control step: the step series and a few per-step
# intermediates (float64 and booleans) while its windows are counted.
CALENDAR_BYTES_PER_STEP = 48


class Calendar(NamedTuple):
    """A checked calendar: row times (s from the first row), their values, and its period (s)."""

    path: Path
    t_s: np.ndarray
    values: np.ndarray
    period_s: float

    def at_steps(self, dt_s: float) -> np.ndarray:
        """The value at the start of each step of ``dt_s`` over one period (at least one step)."""
        n = max(int(np.ceil(self.period_s / dt_s - 1e-9)), 1)
        check_memory(CALENDAR_BYTES_PER_STEP * n, f"{self.path}: a calendar spanning {self.period_s:.4g} s resampled "
                                                  f"to dt_s = {dt_s:g} s ({n:.4g} steps)")
        starts = np.arange(n) * dt_s
        row = np.searchsorted(self.t_s, starts + 1e-9 * dt_s, side="right") - 1
        return self.values[row]


def read_calendar(path: str | Path, timestamp_column: str, value_column: str, fill: str, max_gap_s: float,
                  key: str, value_key: str, *, allow_negative: bool) -> Calendar:
    """Read and check a calendar CSV, once per file version and options (:func:`cpm_env.datafiles.shared`);
    ``key`` (e.g. ``grid.limit_calendar``) names its section in errors, and ``value_key`` (e.g.
    ``limit_column``) the field naming ``value_column``.

    Refused (one line naming file, line and column): a missing file or column, fewer than two rows,
    unreadable, duplicate or decreasing timestamps, a non-finite (or, unless ``allow_negative``,
    negative) value and a gap above ``max_gap_s`` -- the last two held at the previous valid value
    instead with ``fill: hold`` (one warning counts them).
    """
    path = Path(path)
    options = (timestamp_column, value_column, fill, max_gap_s, key, value_key, allow_negative)
    return shared(path, options, lambda: _read_calendar(path, *options), f"{key}.path")


def _read_calendar(path: Path, timestamp_column: str, value_column: str, fill: str, max_gap_s: float,
                   key: str, value_key: str, allow_negative: bool) -> Calendar:
    """:func:`read_calendar`'s reading and checks, for a file that exists."""
    df = read_csv(path, (timestamp_column, value_column), "calendar", as_text=True,
                  fields={timestamp_column: f"{key}.timestamp_column", value_column: f"{key}.{value_key}"})
    stamps = df[timestamp_column]
    t_s = timestamps_s(stamps, path, timestamp_column)
    if not np.isfinite(t_s).all():
        i = int(np.argmax(~np.isfinite(t_s)))
        raise ConfigError(f"{path}: line {i + 2}, column {timestamp_column} = {shown(stamps.iloc[i])!r}: must be "
                          "finite seconds or an ISO date-time")
    t_s = t_s - t_s[0]
    steps = np.diff(t_s)
    if not np.all(steps > 0):
        i = int(np.flatnonzero(steps <= 0)[0]) + 1
        how = "repeats" if steps[i - 1] == 0 else "comes before"
        raise ConfigError(f"{path}: line {i + 2}, column {timestamp_column} = {shown(stamps.iloc[i])!r}: {how} line "
                          f"{i + 1}'s {shown(stamps.iloc[i - 1])!r}: timestamps must increase")
    values = numbers(df[value_column]).to_numpy(dtype=float)
    bad = ~np.isfinite(values) if allow_negative else ~np.isfinite(values) | (values < 0)
    gaps = steps > max_gap_s
    if fill == "error" and bad.any():
        i = int(np.flatnonzero(bad)[0])
        allowed = "a finite number" if allow_negative else "a finite number >= 0"
        raise ConfigError(f"{path}: line {i + 2}, column {value_column} = {shown(df[value_column].iloc[i])!r}: must be "
                          f"{allowed} (or set {key}.fill: hold)")
    if fill == "error" and gaps.any():
        i = int(np.flatnonzero(gaps)[0]) + 1
        raise ConfigError(f"{path}: line {i + 2}, column {timestamp_column} = {shown(stamps.iloc[i])!r}: "
                          f"{steps[i - 1]:g} s after line {i + 1}: a gap above {key}.max_gap_s = {max_gap_s:g} s "
                          f"(or set {key}.fill: hold)")
    if bad.any() or gaps.any():
        if bad[0]:
            raise ConfigError(f"{path}: line 2, column {value_column} = {shown(df[value_column].iloc[0])!r}: must be a "
                              f"finite number{'' if allow_negative else ' >= 0'} ({key}.fill: hold has no earlier "
                              "value to hold on the first row)")
        good = np.flatnonzero(~bad)
        values = values[good[np.searchsorted(good, np.arange(len(values)), side="right") - 1]]
        parts = []
        if bad.any():
            parts.append(f"{int(bad.sum())} bad value{'s' if bad.sum() != 1 else ''} in column {value_column} (first "
                         f"at line {int(np.argmax(bad)) + 2})")
        if gaps.any():
            parts.append(f"{int(gaps.sum())} gap{'s' if gaps.sum() != 1 else ''} above max_gap_s = {max_gap_s:g} s "
                         f"(first after line {int(np.argmax(gaps)) + 2})")
        warnings.warn(f"{path}: {' and '.join(parts)}: held at the previous valid value ({key}.fill: hold)",
                      stacklevel=2)
    return Calendar(path, t_s, values, float(t_s[-1] + np.median(steps)))


def read_limit_calendar(c: LimitCalendarConfig, limit_mw: float) -> Calendar:
    """The checked ``grid.limit_calendar``: values from 0 to ``limit_mw``, not all 0."""
    key = "grid.limit_calendar"
    cal = read_calendar(c.path, c.timestamp_column, c.limit_column, c.fill, c.max_gap_s, key, "limit_column",
                        allow_negative=False)
    over = cal.values > limit_mw
    if over.any():
        i = int(np.argmax(over))
        raise ConfigError(f"{cal.path}: line {i + 2}, column {c.limit_column} = {cal.values[i]:g}: above grid.limit_mw "
                          f"= {limit_mw:g}: the contract's normal limit is the highest (it scales the observation); "
                          "raise grid.limit_mw")
    if not (cal.values > 0).any():
        raise ConfigError(f"{cal.path}: column {c.limit_column}: every limit is 0: a limit calendar must allow "
                          "some import")
    return cal


def read_price_calendar(c: PriceCalendarConfig) -> Calendar:
    """The checked ``grid.price_calendar`` ($/MWh; negative prices allowed)."""
    return read_calendar(c.path, c.timestamp_column, c.price_column, c.fill, c.max_gap_s, "grid.price_calendar",
                         "price_column", allow_negative=True)


def _wrapped(series: np.ndarray, n_steps: int, what: str) -> np.ndarray:
    """``series`` (one period) repeated to at least ``n_steps``, with one warning when it must wrap."""
    if len(series) >= n_steps:
        return series
    warnings.warn(f"{what}: {len(series)} steps, shorter than the episode's {n_steps}: it wraps around",
                  stacklevel=3)
    return np.resize(series, n_steps)


def step_prices_usd_per_mwh(cfg: ScenarioConfig) -> np.ndarray | None:
    """The energy price ($/MWh) of each control step of an episode of ``cfg``, from ``grid.price_calendar``'s
    first row (wrapping, with one warning, when it is shorter than the episode); None without one."""
    c = cfg.grid.price_calendar
    if not c.path:
        return None
    cal = read_price_calendar(c)
    return _wrapped(cal.at_steps(cfg.dt_s), cfg.n_steps, f"{cal.path} (grid.price_calendar)")[: cfg.n_steps]


class LimitCalendar:
    """``grid.limit_calendar`` resampled to the control step, read and checked once per generator.

    Offsets: an episode starts at a seeded whole step of the calendar, one ``rng.integers`` draw per
    env (none with ``random_offset: false``: offset 0). A calendar at least as long as the episode
    offers the offsets at which the episode fits inside it (no wrap); a shorter one wraps, with one
    warning when it is read, and offers every step of its period.

    Windows: each episode's runs of steps below ``grid.limit_mw``, cut at the episode's ends. Every
    episode has :attr:`n_events` of them, the most any offset can see (so batches and seeds share
    one shape); an episode with fewer is padded with empty windows that start (and end) at
    ``n_steps + notice`` steps, past the end and its notice, so they are never active or pending.
    """

    def __init__(self, cfg: ScenarioConfig):
        c = cfg.grid.limit_calendar
        self.cfg, self.random_offset = cfg, c.random_offset
        self.normal_mw = cfg.grid.limit_mw
        cal = read_limit_calendar(c, self.normal_mw)
        self.path = cal.path
        n = cfg.n_steps
        period = cal.at_steps(cfg.dt_s)
        self.n_period = len(period)
        self.wraps = self.n_period < n
        if self.wraps:
            warnings.warn(f"{cal.path}: grid.limit_calendar spans {self.n_period} steps of {cfg.dt_s:g} s, shorter "
                          f"than the episode's {n}: it wraps around", stacklevel=3)
        self.n_offsets = (self.n_period if self.wraps else self.n_period - n + 1) if c.random_offset else 1
        self.steps_mw = np.resize(period, self.n_offsets + n - 1)  # every offset's episode is a slice of it
        self.notice_steps = int(round(cfg.grid.demand_response.notice_h / cfg.dt_h))
        self.n_events = self._most_windows(n)

    def _most_windows(self, n: int) -> int:
        """The most windows an episode of ``n`` steps sees, over the offsets."""
        below = self.steps_mw < self.normal_mw
        begins = np.concatenate([[0], np.cumsum(below[1:] & ~below[:-1])])  # windows begun after step 0, up to i
        o = np.arange(self.n_offsets)
        return int((below[o] + begins[o + n - 1] - begins[o]).max())

    def offsets(self, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """Each env's offset (steps), one draw from its generator (none without ``random_offset``)."""
        return np.array([int(rng.integers(0, self.n_offsets)) if self.random_offset else 0 for rng in rngs], dtype=int)

    def limit_mw(self, offsets: np.ndarray) -> np.ndarray:
        """The import limit of each step of each env's episode, (n_steps, n_envs)."""
        return self.steps_mw[offsets[None, :] + np.arange(self.cfg.n_steps)[:, None]]

    def windows(self, limit_mw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The demand-response windows (start and end steps, (n_envs, n_events) each, padded) of episodes whose
        limits are ``limit_mw`` (n_steps, n_envs)."""
        n, n_env = limit_mw.shape
        starts = np.full((n_env, self.n_events), n + self.notice_steps, dtype=int)
        ends = starts.copy()
        below = np.zeros((n + 2, n_env), dtype=np.int8)
        below[1:-1] = limit_mw < self.normal_mw
        edges = np.diff(below, axis=0)
        for i in range(n_env):
            s, e = np.flatnonzero(edges[:, i] == 1), np.flatnonzero(edges[:, i] == -1)
            starts[i, : len(s)], ends[i, : len(e)] = s, e
        return starts, ends
