"""Demand generators: one per GPU class, chosen by ``workload.kind`` in the scenario.

Each generator turns a seeded ``numpy.random.Generator`` into a whole episode of uncapped
demand for its class, summarized per control step as a two-level waveform:

- ``high_mw``: IT power in the compute phase,
- ``low_mw``: IT power in the rest of the step (time-weighted, so the mean is exact),
- ``duty``: fraction of the step at the high level (1 for flat workloads),
- ``work``: full-speed compute demanded, in compute units (MW of GPUs x h at full speed).

Generators are built once per env (a trace is read and checked then) and sampled at reset.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from cpm_env.config import (
    ConfigError,
    GpuClassConfig,
    InferenceWorkload,
    MixedWorkload,
    ScenarioConfig,
    TraceWorkload,
    TrainingWorkload,
)


class ClassTrace(NamedTuple):
    """One class's uncapped demand over an episode; arrays of shape (n_steps,)."""

    high_mw: np.ndarray
    low_mw: np.ndarray
    duty: np.ndarray
    work: np.ndarray


class Timing(NamedTuple):
    """Episode timing shared by all generators."""

    n_steps: int
    dt_s: float
    start_hour: float


class WorkloadGenerator(Protocol):
    """Samples one episode of a class's demand."""

    def sample(self, rng: np.random.Generator) -> ClassTrace: ...


def _ramp_integral(t: np.ndarray, start: np.ndarray, duration: np.ndarray) -> np.ndarray:
    """Integral up to ``t`` (s) of a 0 -> 1 ramp that starts at ``start`` and lasts ``duration``."""
    z = (t - start) / duration
    return duration * np.where(z <= 0, 0.0, np.where(z < 1, 0.5 * z * z, z - 0.5))


class TrainingGenerator:
    """Synchronous training: compute/communication swing, checkpoint dips, failures, restarts.

    Failures arrive as a Poisson process (rate 1/mtbf). A share of them drops the job to
    idle within one second (a sudden load loss); the rest ramp down over ``ramp_down_s``.
    The job stays idle for a log-normal restart delay, then ramps back.
    """

    def __init__(self, cfg: TrainingWorkload, peak_mw: float, timing: Timing):
        self.cfg, self.peak_mw, self.timing = cfg, peak_mw, timing
        self._t_s = np.arange(timing.n_steps + 1) * timing.dt_s

    def _down_fraction(self, rng: np.random.Generator) -> np.ndarray:
        c, t, dt = self.cfg, self._t_s, self.timing.dt_s
        if c.mtbf_h <= 0:
            return np.zeros(self.timing.n_steps)
        horizon_s = t[-1]
        n = rng.poisson(horizon_s / (c.mtbf_h * 3600.0))
        start = rng.uniform(0.0, horizon_s, n)
        sudden = rng.random(n) < c.sudden_failure_fraction
        drop_s = np.where(sudden, 1.0, c.ramp_down_s)
        idle_s = c.restart_delay_median_min * 60.0 * np.exp(c.restart_delay_sigma * rng.standard_normal(n))
        back_s = np.full(n, c.restart_ramp_min * 60.0)
        tt = t[:, None]
        integral = _ramp_integral(tt, start, drop_s) - _ramp_integral(tt, start + drop_s + idle_s, back_s)
        return np.clip(np.diff(integral.sum(axis=1)) / dt, 0.0, 1.0)

    def _checkpoint_fraction(self, rng: np.random.Generator) -> np.ndarray:
        c, t = self.cfg, self._t_s
        if c.checkpoint_interval_min <= 0 or c.checkpoint_duration_s <= 0:
            return np.zeros(self.timing.n_steps)
        period = c.checkpoint_interval_min * 60.0
        tp = t + rng.uniform(0.0, period)
        cum = np.floor(tp / period) * c.checkpoint_duration_s + np.minimum(np.mod(tp, period), c.checkpoint_duration_s)
        return np.clip(np.diff(cum) / self.timing.dt_s, 0.0, 1.0)

    def sample(self, rng: np.random.Generator) -> ClassTrace:
        c, peak, n = self.cfg, self.peak_mw, self.timing.n_steps
        running = 1.0 - self._down_fraction(rng)
        ckpt = self._checkpoint_fraction(rng)
        duty = c.duty * running * (1.0 - ckpt)
        jitter = 1.0 + c.high_jitter * rng.standard_normal(n)
        high = peak * np.clip(c.high_fraction * jitter, c.low_fraction, 1.0)
        low = peak * (c.low_fraction * (running - duty) + c.idle_fraction * (1.0 - running)) / (1.0 - duty)
        high = np.where(duty > 0, high, low)
        work = duty * high * self.timing.dt_s / 3600.0
        return ClassTrace(high, low, duty, work)


class InferenceGenerator:
    """Inference serving: daily cycle + AR(1) noise + heavy-tailed (Pareto) bursts, flat in-step."""

    def __init__(self, cfg: InferenceWorkload, peak_mw: float, timing: Timing):
        self.cfg, self.peak_mw, self.timing = cfg, peak_mw, timing
        dt_h = timing.dt_s / 3600.0
        self._hours = timing.start_hour + (np.arange(timing.n_steps) + 0.5) * dt_h
        self._phi = float(np.exp(-timing.dt_s / (cfg.noise_corr_min * 60.0)))

    def utilization(self, rng: np.random.Generator) -> np.ndarray:
        """Sampled utilization (0-1) per step."""
        c, n, phi = self.cfg, self.timing.n_steps, self._phi
        util = c.base_utilization + c.diurnal_amplitude * np.cos(2 * np.pi * (self._hours - c.peak_hour) / 24.0)
        eps = c.noise_std * rng.standard_normal(n)
        eps[1:] *= np.sqrt(1.0 - phi * phi)
        util = util + lfilter([1.0], [1.0, -phi], eps)
        span_h = n * self.timing.dt_s / 3600.0
        n_bursts = rng.poisson(c.burst_rate_per_h * span_h)
        if n_bursts:
            start_h = self._hours[0] + rng.uniform(0.0, span_h, n_bursts)
            height = c.burst_min * (1.0 + rng.pareto(c.burst_pareto_alpha, n_bursts))
            lag_h = self._hours[:, None] - start_h
            decay = np.exp(-np.maximum(lag_h, 0.0) * 60.0 / c.burst_decay_min)
            util = util + (np.where(lag_h >= 0, decay, 0.0) * height).sum(axis=1)
        return np.clip(util, 0.0, 1.0)

    def sample(self, rng: np.random.Generator) -> ClassTrace:
        c, peak = self.cfg, self.peak_mw
        util = self.utilization(rng)
        power = peak * (c.idle_fraction + (1.0 - c.idle_fraction) * util)
        work = util * peak * self.timing.dt_s / 3600.0
        return ClassTrace(power, power.copy(), np.ones_like(power), work)


class MixedGenerator:
    """One GPU pool split between a training job and inference serving."""

    def __init__(self, cfg: MixedWorkload, peak_mw: float, timing: Timing):
        self.share = cfg.training_share
        self.training = TrainingGenerator(cfg.training, peak_mw, timing)
        self.inference = InferenceGenerator(cfg.inference, peak_mw, timing)

    def sample(self, rng: np.random.Generator) -> ClassTrace:
        s = self.share
        tr = self.training.sample(rng)
        inf = self.inference.sample(rng)
        return ClassTrace(
            s * tr.high_mw + (1 - s) * inf.high_mw,
            s * tr.low_mw + (1 - s) * inf.low_mw,
            tr.duty,
            s * tr.work + (1 - s) * inf.work,
        )


class TraceGenerator:
    """Replay of a CSV trace, resampled to the control step and scaled to the class peak.

    Several samples per step become the step's two-level summary (mean of the samples above
    the step mean, mean of those below, and the share above), which keeps the mean exact.
    A trace shorter than the episode wraps around.
    """

    def __init__(self, cfg: TraceWorkload, peak_mw: float, timing: Timing):
        self.cfg, self.timing = cfg, timing
        self._high, self._low, self._duty = self._load(cfg, peak_mw, timing)

    @staticmethod
    def _load(cfg: TraceWorkload, peak_mw: float, timing: Timing):
        path = Path(cfg.path)
        if not path.is_file():
            raise ConfigError(f"{path}: file not found: workload.path must name an existing CSV file")
        try:
            df = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: malformed CSV: {str(err).splitlines()[0]}") from None
        for col in (cfg.timestamp_column, cfg.value_column):
            if col not in df.columns:
                raise ConfigError(f"{path}: column {col!r} missing: columns are {list(df.columns)}")
        if len(df) < 2:
            raise ConfigError(f"{path}: {len(df)} data rows: a trace needs at least two")
        t_s = _timestamps_s(df[cfg.timestamp_column], path, cfg.timestamp_column)
        values = pd.to_numeric(df[cfg.value_column], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values < 0)
        if cfg.value_unit == "fraction":
            bad |= values > 1
        if bad.any():
            if cfg.fill == "error":
                i = int(np.flatnonzero(bad)[0])
                allowed = "in [0, 1]" if cfg.value_unit == "fraction" else ">= 0"
                raise ConfigError(
                    f"{path}: line {i + 2}, column {cfg.value_column} = {df[cfg.value_column].iloc[i]!r}: "
                    f"must be a finite number {allowed} (or set workload.fill: interpolate)"
                )
            good = ~bad
            if good.sum() < 2:
                raise ConfigError(f"{path}: column {cfg.value_column}: fewer than two valid values to interpolate")
            values = np.interp(t_s, t_s[good], values[good])
        if not np.all(np.diff(t_s) > 0):
            i = int(np.flatnonzero(np.diff(t_s) <= 0)[0]) + 1
            raise ConfigError(f"{path}: line {i + 2}, column {cfg.timestamp_column}: timestamps must increase")
        scale = peak_mw / values.max() if cfg.value_unit == "mw" else peak_mw
        if not np.isfinite(scale):
            raise ConfigError(f"{path}: column {cfg.value_column}: all values are 0: cannot scale to the site")
        values = values * scale
        t_s = t_s - t_s[0]
        dt = timing.dt_s
        n_steps = max(int(np.ceil((t_s[-1] + np.median(np.diff(t_s))) / dt)), 1)
        bins = np.minimum((t_s // dt).astype(int), n_steps - 1)
        counts = np.bincount(bins, minlength=n_steps)
        mid = (np.arange(n_steps) + 0.5) * dt
        mean = np.where(counts > 0, np.bincount(bins, values, n_steps) / np.maximum(counts, 1),
                        np.interp(mid, t_s, values))
        above = values > mean[bins]
        n_above = np.bincount(bins, above, n_steps)
        sum_above = np.bincount(bins, values * above, n_steps)
        duty = np.where(counts > 1, n_above / np.maximum(counts, 1), 1.0)
        high = np.where(n_above > 0, sum_above / np.maximum(n_above, 1), mean)
        duty = np.where(duty < 1.0, duty, 1.0)
        low = np.where(duty < 1.0, (mean - duty * high) / np.maximum(1.0 - duty, 1e-12), high)
        return high, np.maximum(low, 0.0), duty

    def sample(self, rng: np.random.Generator) -> ClassTrace:
        n_trace, n = len(self._high), self.timing.n_steps
        offset = int(rng.integers(0, n_trace)) if self.cfg.random_offset else 0
        idx = (offset + np.arange(n)) % n_trace
        high, low, duty = self._high[idx], self._low[idx], self._duty[idx]
        return ClassTrace(high, low, duty, duty * high * self.timing.dt_s / 3600.0)


def _timestamps_s(col: pd.Series, path: Path, name: str) -> np.ndarray:
    numeric = pd.to_numeric(col, errors="coerce")
    if numeric.notna().all():
        return numeric.to_numpy(dtype=float)
    stamps = pd.to_datetime(col, errors="coerce")
    if stamps.isna().any():
        i = int(np.flatnonzero(stamps.isna().to_numpy())[0])
        raise ConfigError(
            f"{path}: line {i + 2}, column {name} = {col.iloc[i]!r}: must be seconds or an ISO date-time"
        )
    return (stamps - stamps.iloc[0]).dt.total_seconds().to_numpy(dtype=float)


GENERATORS = {
    "training": TrainingGenerator,
    "inference": InferenceGenerator,
    "mixed": MixedGenerator,
    "trace": TraceGenerator,
}


def make_generator(gpu: GpuClassConfig, peak_mw: float, cfg: ScenarioConfig) -> WorkloadGenerator:
    """Build the generator named by ``gpu.workload.kind`` for a class of ``peak_mw`` IT peak."""
    timing = Timing(cfg.n_steps, cfg.dt_s, cfg.start_hour)
    return GENERATORS[gpu.workload.kind](gpu.workload, peak_mw, timing)
