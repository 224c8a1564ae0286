"""Energy prices over a day: a synthetic cosine or an average day read from a CSV; a scenario's own
``grid.price_calendar`` takes their place (:func:`scenario_step_prices_usd_per_mwh`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from agents.sizing.economics_config import PriceConfig
from agents.sizing.units import HOURS_PER_DAY
from cpm_env.calendars import step_prices_usd_per_mwh as calendar_step_prices_usd_per_mwh
from cpm_env.config import ConfigError, ScenarioConfig


def synthetic_price_usd_per_mwh(hour_of_day: np.ndarray, price: PriceConfig) -> np.ndarray:
    """Diurnal price: ``mean + amplitude * cos(2 pi (h - peak_hour) / 24)``."""
    phase = 2.0 * np.pi * (np.asarray(hour_of_day, float) - price.peak_hour) / HOURS_PER_DAY
    return price.mean_usd_per_mwh + price.amplitude_usd_per_mwh * np.cos(phase)


def _hours_column(frame: pd.DataFrame) -> tuple[str, pd.Series]:
    """The CSV's time column and its values as hours of the day (nan where unreadable)."""
    if "hour" in frame.columns:
        return "hour", pd.to_numeric(frame.hour, errors="coerce")
    stamps = pd.to_datetime(frame.timestamp, errors="coerce")
    return "timestamp", stamps.dt.hour + stamps.dt.minute / 60.0 + stamps.dt.second / 3600.0


def read_price_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A price CSV as an average day: (hour of day, $/MWh), sorted by hour.

    Columns: ``hour`` (0-24) or ``timestamp`` (ISO date-times), and ``usd_per_mwh``. Several
    days are averaged by hour of day (which understates the day-to-day spread arbitrage
    could use). Bad input is a one-line ConfigError naming the file, row and column.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found: the price CSV needs hour or timestamp, usd_per_mwh")
    frame = pd.read_csv(path)
    if "usd_per_mwh" not in frame.columns or not ({"hour", "timestamp"} & set(frame.columns)):
        raise ConfigError(f"{path}: columns = {list(frame.columns)}: need hour or timestamp, and usd_per_mwh")
    price = pd.to_numeric(frame.usd_per_mwh, errors="coerce")
    column, hours = _hours_column(frame)
    for name, values in ((column, hours), ("usd_per_mwh", price)):
        bad = ~np.isfinite(values.to_numpy(float))
        if bad.any():
            row = int(np.argmax(bad)) + 2  # 1-based, after the header
            raise ConfigError(f"{path}: row {row}, column {name} = {frame[name].iat[row - 2]!r}: must be a number"
                              + (" (hour 0-24) or ISO time" if name == column else ""))
    if ((hours < 0) | (hours > HOURS_PER_DAY)).any():
        raise ConfigError(f"{path}: column {column}: hours must lie in [0, 24]")
    day = pd.DataFrame({"hour": hours % HOURS_PER_DAY, "usd_per_mwh": price}).groupby("hour").usd_per_mwh.mean()
    return day.index.to_numpy(float), day.to_numpy(float)


def step_prices_usd_per_mwh(price: PriceConfig, start_hour: float, dt_h: float, n_steps: int) -> np.ndarray:
    """The price of each control step of an episode (periodic over the day)."""
    hours = (start_hour + dt_h * np.arange(n_steps)) % HOURS_PER_DAY
    if price.kind == "synthetic":
        return synthetic_price_usd_per_mwh(hours, price)
    day_h, day_usd = read_price_csv(price.path)
    return np.interp(hours, day_h, day_usd, period=HOURS_PER_DAY)


def scenario_step_prices_usd_per_mwh(price: PriceConfig, cfg: ScenarioConfig) -> np.ndarray:
    """The price of each control step of ``cfg``'s episodes: its ``grid.price_calendar`` when it has one
    (:func:`cpm_env.calendars.step_prices_usd_per_mwh`, the env's own, from the calendar's first row), else
    ``price`` (the economics' :class:`~agents.sizing.economics_config.PriceConfig`, periodic over the day)."""
    calendar = calendar_step_prices_usd_per_mwh(cfg)
    return calendar if calendar is not None else step_prices_usd_per_mwh(price, cfg.start_hour, cfg.dt_h, cfg.n_steps)
