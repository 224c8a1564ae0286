"""Demand generators: one per GPU class, chosen by ``workload.kind`` in the scenario.

Each generator turns a seeded ``numpy.random.Generator`` into a whole episode of uncapped
demand for its class, summarized per control step as a two-level waveform:

- ``high_mw``: IT power in the compute phase,
- ``low_mw``: IT power in the rest of the step (time-weighted, so the mean is exact),
- ``duty``: fraction of the step at the high level (1 for flat workloads),
- ``work``: full-speed compute demanded, in compute units (MW of GPUs x h at full speed),
- ``scheduled_mw``: the class's mean IT demand as far as its schedule and the calendar foretell
  (known at reset, free of unscheduled events), for causal forecasters (:mod:`cpm_env.forecast`).

Each generator's docstring says which parts of its demand are scheduled (known ahead) and
which are not (a site sees them only when they happen).

Generators are built once per env (a trace is read and checked then) and sampled at reset,
for a batch of envs at once: random draws come from each env's own generator in a fixed
order, so env ``i`` of a batch gets exactly what a lone env with the same generator gets.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

from cpm_env.config import (
    ConfigError,
    GpuClassConfig,
    InferenceWorkload,
    MixedWorkload,
    RequestsWorkload,
    ScenarioConfig,
    TraceWorkload,
    TrainingWorkload,
    check_memory,
    shown,
)
from cpm_env.datafiles import numbers, read_csv, shared, timestamps_s


class ClassTrace(NamedTuple):
    """One class's uncapped demand over an episode; arrays of shape (n_steps, n_envs)."""

    high_mw: np.ndarray
    low_mw: np.ndarray
    duty: np.ndarray
    work: np.ndarray
    scheduled_mw: np.ndarray  # known-ahead mean IT demand (MW), meaningful up to a constant per env


class Timing(NamedTuple):
    """Episode timing shared by all generators."""

    n_steps: int
    dt_s: float
    start_hour: float


class WorkloadGenerator(Protocol):
    """Samples one episode per random generator (one per env), stacked on the last axis."""

    def sample(self, rngs: Sequence[np.random.Generator]) -> ClassTrace: ...


# Memory of a trace being resampled, checked against cpm_env.config.MEMORY_BUDGET_BYTES: about a
# dozen float64 arrays per trace step (reading it: cpm_env.datafiles.BYTES_PER_CSV_BYTE).
TRACE_BYTES_PER_STEP = 96


def _ramp_integral(t: np.ndarray, start: np.ndarray, duration: np.ndarray | float) -> np.ndarray:
    """Integral up to ``t`` (s) of a 0 -> 1 ramp that starts at ``start`` and lasts ``duration``."""
    z = (t - start) / duration
    return duration * np.where(z <= 0, 0.0, np.where(z < 1, 0.5 * z * z, z - 0.5))


def _per_env_normals(rngs: Sequence[np.random.Generator], n: int) -> np.ndarray:
    """``n`` standard normals from each generator, as columns of an (n, n_envs) array: each env's row filled
    in place, then one transpose (faster than stacking columns; the same numbers)."""
    normals = np.empty((len(rngs), n))
    for i, rng in enumerate(rngs):
        rng.standard_normal(n, out=normals[i])
    return np.ascontiguousarray(normals.T)


def _add_events(out: np.ndarray, env: np.ndarray, first_step: np.ndarray, values: np.ndarray) -> None:
    """Add each event's per-step values (E, W) into ``out`` (n_steps, n_envs) from ``first_step`` on.

    Events of one env are added in draw order, so an env's series does not depend on how
    many other envs share the batch.
    """
    n_steps, n_envs = out.shape
    steps = first_step[:, None] + np.arange(values.shape[1])
    keep = steps < n_steps
    # a flat index takes ufunc.at's one-dimensional fast path (~5x faster; the same additions in the same order)
    np.add.at(out.reshape(-1), (steps * n_envs + env[:, None])[keep], values[keep])


class TrainingGenerator:
    """Synchronous training: compute/communication swing, checkpoint dips, failures, restarts.

    Failures arrive as a Poisson process (rate 1/mtbf). A share of them drops the job to
    idle within one second (a sudden load loss); the rest ramp down over ``ramp_down_s``.
    The job stays idle for a log-normal restart delay, then ramps back.

    Scheduled (known ahead): the compute/communication duty and levels, and the checkpoints --
    their interval and phase (:meth:`checkpoint_phase_s`, drawn per env at reset) are part of the
    job's schedule. Not scheduled: failures, restart delays, ramps down and back, and the jitter
    of the high level.
    """

    def __init__(self, cfg: TrainingWorkload, peak_mw: float, timing: Timing):
        self.cfg, self.peak_mw, self.timing = cfg, peak_mw, timing
        self._t_s = np.arange(timing.n_steps + 1) * timing.dt_s

    def _down_fraction(self, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        c, n, dt = self.cfg, self.timing.n_steps, self.timing.dt_s
        down = np.zeros((n, len(rngs)))
        if c.mtbf_h <= 0:
            return down
        horizon_s = n * dt
        draws = []
        for i, rng in enumerate(rngs):
            k = rng.poisson(horizon_s / (c.mtbf_h * 3600.0))
            start = rng.uniform(0.0, horizon_s, k)
            sudden = rng.random(k) < c.sudden_failure_fraction
            idle = c.restart_delay_median_min * 60.0 * np.exp(c.restart_delay_sigma * rng.standard_normal(k))
            draws.append((np.full(k, i), start, np.where(sudden, 1.0, c.ramp_down_s), idle))
        env, start, drop, idle = (np.concatenate(x) for x in zip(*draws))
        if not len(env):
            return down
        back = c.restart_ramp_min * 60.0
        first = np.floor(start / dt).astype(int)
        width = int(np.ceil((drop + idle).max() / dt + back / dt)) + 2
        t = (first[:, None] + np.arange(width + 1)) * dt
        integral = _ramp_integral(t, start[:, None], drop[:, None]) - _ramp_integral(
            t, (start + drop + idle)[:, None], back
        )
        _add_events(down, env, first, np.diff(integral, axis=1) / dt)
        return np.clip(down, 0.0, 1.0)

    def _has_checkpoints(self) -> bool:
        return self.cfg.checkpoint_interval_min > 0 and self.cfg.checkpoint_duration_s > 0

    def checkpoint_phase_s(self, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """Each env's checkpoint phase (s, in [0, interval)), one uniform draw per env; none without checkpoints."""
        if not self._has_checkpoints():
            return np.zeros(len(rngs))
        period = self.cfg.checkpoint_interval_min * 60.0
        return np.array([rng.uniform(0.0, period) for rng in rngs])

    def checkpoint_fraction(self, phase_s: np.ndarray) -> np.ndarray:
        """Share of each step spent checkpointing (0-1), shape (n_steps, n_envs), for phases (n_envs,) in s."""
        c, t = self.cfg, self._t_s[:, None]
        if not self._has_checkpoints():
            return np.zeros((self.timing.n_steps, len(phase_s)))
        period = c.checkpoint_interval_min * 60.0
        tp = t + phase_s
        cum = np.floor(tp / period) * c.checkpoint_duration_s + np.minimum(np.mod(tp, period), c.checkpoint_duration_s)
        return np.clip(np.diff(cum, axis=0) / self.timing.dt_s, 0.0, 1.0)

    def scheduled_mw(self, ckpt: np.ndarray) -> np.ndarray:
        """Mean IT demand (MW) of a job that never fails, with the checkpoint shares ``ckpt`` (n_steps, n_envs)."""
        c = self.cfg
        duty = c.duty * (1.0 - ckpt)
        high = np.clip(c.high_fraction, c.low_fraction, 1.0)
        return self.peak_mw * (duty * high + (1.0 - duty) * c.low_fraction)

    def sample(self, rngs: Sequence[np.random.Generator]) -> ClassTrace:
        c, peak, n = self.cfg, self.peak_mw, self.timing.n_steps
        running = 1.0 - self._down_fraction(rngs)
        ckpt = self.checkpoint_fraction(self.checkpoint_phase_s(rngs))
        duty = c.duty * running * (1.0 - ckpt)
        duty = np.where(duty < 1e-9, 0.0, duty)  # round-off of whole-step failures is no swing
        jitter = 1.0 + c.high_jitter * _per_env_normals(rngs, n)
        high = peak * np.clip(c.high_fraction * jitter, c.low_fraction, 1.0)
        low = peak * (c.low_fraction * (running - duty) + c.idle_fraction * (1.0 - running)) / (1.0 - duty)
        high = np.where(duty > 0, high, low)
        work = duty * high * self.timing.dt_s / 3600.0
        return ClassTrace(high, low, duty, work, self.scheduled_mw(ckpt))


class InferenceGenerator:
    """Inference serving: daily cycle + AR(1) noise + heavy-tailed (Pareto) bursts, flat in-step.

    A burst decays exponentially; its tail is cut after ten decay times.

    Scheduled (known ahead): the calendar's daily profile ``base_utilization +
    diurnal_amplitude * cos(2 pi (hour - peak_hour) / 24)`` (:meth:`scheduled_mw`). Not
    scheduled: the AR(1) noise and the bursts.
    """

    def __init__(self, cfg: InferenceWorkload, peak_mw: float, timing: Timing):
        self.cfg, self.peak_mw, self.timing = cfg, peak_mw, timing
        dt_h = timing.dt_s / 3600.0
        hours = timing.start_hour + (np.arange(timing.n_steps) + 0.5) * dt_h
        self._daily = cfg.base_utilization + cfg.diurnal_amplitude * np.cos(2 * np.pi * (hours - cfg.peak_hour) / 24.0)
        self._phi = float(np.exp(-timing.dt_s / (cfg.noise_corr_min * 60.0)))
        self._burst_width = int(np.ceil(10.0 * cfg.burst_decay_min * 60.0 / timing.dt_s)) + 1

    def utilization(self, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """Sampled utilization (0-1), shape (n_steps, n_envs)."""
        c, n, phi, dt = self.cfg, self.timing.n_steps, self._phi, self.timing.dt_s
        span_s = n * dt
        bursts = []
        normals = np.empty((len(rngs), n))
        for i, rng in enumerate(rngs):
            rng.standard_normal(n, out=normals[i])
            k = rng.poisson(c.burst_rate_per_h * span_s / 3600.0)
            start_s = rng.uniform(0.0, span_s, k)
            height = c.burst_min * (1.0 + rng.pareto(c.burst_pareto_alpha, k))
            bursts.append((np.full(k, i), start_s, height))
        eps = c.noise_std * np.ascontiguousarray(normals.T)
        eps[1:] *= np.sqrt(1.0 - phi * phi)
        util = self._daily[:, None] + _ar1(eps, phi)
        env, start_s, height = (np.concatenate(x) for x in zip(*bursts))
        if len(env):
            first = np.ceil(start_s / dt - 0.5).astype(int)  # first step whose midpoint follows the start
            mid_s = (first[:, None] + np.arange(self._burst_width) + 0.5) * dt
            decay = np.exp(-(mid_s - start_s[:, None]) / (c.burst_decay_min * 60.0))
            _add_events(util, env, first, decay * height[:, None])
        return np.clip(util, 0.0, 1.0)

    def power_mw(self, util: np.ndarray) -> np.ndarray:
        """IT power (MW) at utilization ``util`` (0-1): idle power plus the rest in proportion."""
        c = self.cfg
        return self.peak_mw * (c.idle_fraction + (1.0 - c.idle_fraction) * util)

    def scheduled_mw(self, n_envs: int) -> np.ndarray:
        """IT power (MW) of the calendar's daily profile alone, shape (n_steps, n_envs)."""
        daily = self.power_mw(np.clip(self._daily, 0.0, 1.0))
        return np.repeat(daily[:, None], n_envs, axis=1)

    def sample(self, rngs: Sequence[np.random.Generator]) -> ClassTrace:
        peak = self.peak_mw
        util = self.utilization(rngs)
        power = self.power_mw(util)
        work = util * peak * self.timing.dt_s / 3600.0
        return ClassTrace(power, power.copy(), np.ones_like(power), work, self.scheduled_mw(len(rngs)))


class MixedGenerator:
    """One GPU pool split between a training job and inference serving.

    Scheduled (known ahead): each part's schedule (see :class:`TrainingGenerator` and
    :class:`InferenceGenerator`), in proportion to its share.
    """

    def __init__(self, cfg: MixedWorkload, peak_mw: float, timing: Timing):
        self.share = cfg.training_share
        self.training = TrainingGenerator(cfg.training, peak_mw, timing)
        self.inference = InferenceGenerator(cfg.inference, peak_mw, timing)

    def sample(self, rngs: Sequence[np.random.Generator]) -> ClassTrace:
        s = self.share
        tr = self.training.sample(rngs)
        inf = self.inference.sample(rngs)
        return ClassTrace(
            s * tr.high_mw + (1 - s) * inf.high_mw,
            s * tr.low_mw + (1 - s) * inf.low_mw,
            tr.duty,
            s * tr.work + (1 - s) * inf.work,
            s * tr.scheduled_mw + (1 - s) * inf.scheduled_mw,
        )


class TraceGenerator:
    """Replay of a CSV trace, resampled to the control step and scaled to the class peak.

    Several samples per step become the step's two-level summary (mean of the samples above
    the step mean, mean of those below, and the share above), which keeps the mean exact.
    A trace longer than the episode starts at a seeded offset (``random_offset``); one shorter
    wraps around, with one warning. A ``value_unit: mw`` trace is scaled by its
    ``scale_quantile`` sample and clipped above it, with a warning (see
    :class:`~cpm_env.config.TraceWorkload` for why). The resampled trace is read once per file and
    step length and shared, read-only, by every generator and env that replays it.

    Scheduled (known ahead): nothing -- a recorded trace stands for demand the site sees only
    as it happens, so its ``scheduled_mw`` is flat (0 MW: causal forecasters hold its current demand).
    """

    def __init__(self, cfg: TraceWorkload | RequestsWorkload, peak_mw: float, timing: Timing):
        self.cfg, self.timing, self.peak_mw = cfg, timing, peak_mw
        self._high, self._low, self._duty = _resampled(cfg, peak_mw, timing.dt_s)
        wrap = (cfg.path, timing.dt_s, timing.n_steps)
        if len(self._high) < timing.n_steps and wrap not in _WRAP_WARNED:
            _WRAP_WARNED.add(wrap)
            warnings.warn(f"{cfg.path}: spans {len(self._high)} steps of {timing.dt_s:g} s, fewer than an episode's "
                          f"{timing.n_steps}: episodes wrap around to its start", stacklevel=3)

    def _work(self, high: np.ndarray, low: np.ndarray, duty: np.ndarray) -> np.ndarray:
        """Full-speed compute demanded per step: the high phase's (a recorded GPU load works when high)."""
        return duty * high * self.timing.dt_s / 3600.0

    def sample(self, rngs: Sequence[np.random.Generator]) -> ClassTrace:
        n_trace, n = len(self._high), self.timing.n_steps
        starts = n_trace - n + 1 if n_trace >= n else n_trace  # a long trace: no episode runs past its end
        offsets = [int(rng.integers(0, starts)) if self.cfg.random_offset else 0 for rng in rngs]
        idx = (np.array(offsets) + np.arange(n)[:, None]) % n_trace
        high, low, duty = self._high[idx], self._low[idx], self._duty[idx]
        return ClassTrace(high, low, duty, self._work(high, low, duty), np.zeros_like(high))


class RequestsGenerator(TraceGenerator):
    """Inference serving replayed from a request log: prefill and decode phases turned into per-second power.

    See :class:`~cpm_env.config.RequestsWorkload` for the model and its sources. The class works in
    proportion to its mean power above idle (as :class:`InferenceGenerator`), so a cap that clips its
    prefill bursts costs compute through the class's throughput curve.

    Scheduled (known ahead): nothing (recorded traffic, as a trace).
    """

    cfg: RequestsWorkload

    def _work(self, high: np.ndarray, low: np.ndarray, duty: np.ndarray) -> np.ndarray:
        idle = self.cfg.idle_fraction
        mean = duty * high + (1 - duty) * low
        util = np.clip((mean / self.peak_mw - idle) / (1 - idle), 0.0, 1.0)
        return util * self.peak_mw * self.timing.dt_s / 3600.0


_WRAP_WARNED: set[tuple] = set()  # (path, dt_s, n_steps) of traces shorter than an episode, said once


def _resampled(cfg: TraceWorkload | RequestsWorkload, peak_mw: float, dt_s: float) -> tuple:
    """(high MW, low MW, duty) per step of ``cfg``'s file at ``dt_s``, read once per file version and shared."""
    path = Path(cfg.path)

    def build() -> tuple:
        t_s, values_mw = (_request_power(cfg, peak_mw, path) if isinstance(cfg, RequestsWorkload)
                          else _trace_power(cfg, peak_mw, path))
        return _two_level(t_s, values_mw, dt_s, path, cfg.timestamp_column)

    return shared(path, (cfg, float(peak_mw), float(dt_s)), build, "workload.path")


def _increasing(t_s: np.ndarray, path: Path, column: str, strictly: bool = True) -> None:
    """One-line ConfigError at the first timestamp that does not increase (strictly, or at least stay equal)."""
    steps = np.diff(t_s)
    bad = steps <= 0 if strictly else steps < 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0]) + 1
        what = "increase (no duplicates)" if strictly else "not decrease"
        raise ConfigError(f"{path}: line {i + 2}, column {column}: timestamps must {what}")


def _trace_power(cfg: TraceWorkload, peak_mw: float, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A power or utilization trace as (seconds from its first row, class IT power MW per row)."""
    df = read_csv(path, (cfg.timestamp_column, cfg.value_column), "trace")
    t_s = timestamps_s(df[cfg.timestamp_column], path, cfg.timestamp_column)
    values = numbers(df[cfg.value_column]).to_numpy(dtype=float)
    bad = ~np.isfinite(values) | (values < 0)
    if cfg.value_unit == "fraction":
        bad |= values > 1
    if bad.any():
        if cfg.fill == "error":
            i = int(np.flatnonzero(bad)[0])
            allowed = "in [0, 1]" if cfg.value_unit == "fraction" else ">= 0"
            raise ConfigError(
                f"{path}: line {i + 2}, column {cfg.value_column} = {shown(df[cfg.value_column].iloc[i])!r}: "
                f"must be a finite number {allowed} (or set workload.fill: interpolate)"
            )
        good = ~bad
        if good.sum() < 2:
            raise ConfigError(f"{path}: column {cfg.value_column}: fewer than two valid values to interpolate")
        warnings.warn(f"{path}: column {cfg.value_column}: {int(bad.sum())} bad values interpolated "
                      "(workload.fill: interpolate)", stacklevel=4)
        values = np.interp(t_s, t_s[good], values[good])
    _increasing(t_s, path, cfg.timestamp_column)
    gaps = np.diff(t_s) > cfg.max_gap_s
    if gaps.any():
        i = int(np.argmax(gaps)) + 1
        if cfg.fill == "error":
            raise ConfigError(f"{path}: line {i + 2}, column {cfg.timestamp_column}: {t_s[i] - t_s[i - 1]:.6g} s after "
                              f"the previous sample, more than workload.max_gap_s = {cfg.max_gap_s:g} (or set "
                              "workload.fill: interpolate)")
        warnings.warn(f"{path}: column {cfg.timestamp_column}: {int(gaps.sum())} gaps longer than workload.max_gap_s "
                      f"= {cfg.max_gap_s:g} interpolated (workload.fill: interpolate)", stacklevel=4)
    if not (values > 0).any():
        raise ConfigError(f"{path}: column {cfg.value_column}: every value is 0: a trace needs some load")
    return t_s, (_scaled(values, cfg, peak_mw, path) if cfg.value_unit == "mw" else values * peak_mw)


def _request_power(cfg: RequestsWorkload, peak_mw: float, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A request log as (seconds from the first arrival's second, class IT power MW each second)."""
    cols = (cfg.timestamp_column, cfg.prompt_tokens_column, cfg.generated_tokens_column)
    df = read_csv(path, cols, "trace")
    t_s = timestamps_s(df[cfg.timestamp_column], path, cfg.timestamp_column)
    _increasing(t_s, path, cfg.timestamp_column, strictly=False)  # requests may arrive in the same instant
    gaps = np.diff(t_s)
    if (gaps > cfg.max_gap_s).any():
        i = int(np.argmax(gaps > cfg.max_gap_s)) + 1
        raise ConfigError(f"{path}: line {i + 2}, column {cfg.timestamp_column}: {gaps[i - 1]:.6g} s after the "
                          f"previous request, more than workload.max_gap_s = {cfg.max_gap_s:g}: the log has a hole")
    tokens = []
    for col in cols[1:]:
        v = numbers(df[col]).to_numpy(dtype=float)
        bad = ~np.isfinite(v) | (v < 0) | (v != np.round(v))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ConfigError(f"{path}: line {i + 2}, column {col} = {shown(np.asarray(df[col].iloc[i]).item())!r}: "
                              "must be a whole number of tokens >= 0")
        tokens.append(v)
    prompt, generated = tokens
    if not (prompt + generated > 0).any():
        raise ConfigError(f"{path}: columns {cols[1]}, {cols[2]}: every request has 0 tokens: no load to replay")
    second = np.floor(t_s - np.floor(t_s[0])).astype(int)
    decode_s = generated / cfg.decode_tokens_per_s
    n_s = int(np.ceil((second + 1 + decode_s).max())) + 1
    # load in GPUs (before scaling to the class): prefill GPU-seconds per second, decode batch slots in use
    prefill = np.bincount(second, prompt / cfg.prefill_tokens_per_s_per_gpu, n_s)
    start, end = second + 1, second + 1 + decode_s
    slots = np.zeros(n_s + 1)
    np.add.at(slots, start, 1.0)
    whole = np.floor(end).astype(int)
    np.add.at(slots, whole, -(1.0 - (end - whole)))  # the last second is partly decoding
    np.add.at(slots, np.minimum(whole + 1, n_s), -(end - whole))
    decode = np.cumsum(slots)[:n_s] / cfg.decode_batch_per_gpu
    if cfg.replicas > 1:
        shifts = np.random.default_rng(cfg.replica_seed).integers(0, n_s, cfg.replicas)
        prefill, decode = (np.sum([np.roll(a, int(s)) for s in shifts], axis=0) for a in (prefill, decode))
    load = prefill + decode
    ref = float(np.quantile(load, cfg.scale_quantile, method="inverted_cdf"))
    gpus = ref / cfg.peak_load  # the class's GPUs, in the log's units
    over = load > gpus
    if over.any():
        warnings.warn(f"{path}: {int(over.sum())} of {n_s} seconds need more than the class's GPUs (above the "
                      f"{_percentile(cfg.scale_quantile)} percentile / peak_load): their load is clipped to them",
                      stacklevel=4)
    u_prefill = np.minimum(prefill / gpus, 1.0)
    u_decode = np.minimum(decode / gpus, 1.0 - u_prefill)
    idle = cfg.idle_fraction
    fraction = idle + (cfg.prefill_power_fraction - idle) * u_prefill + (cfg.decode_power_fraction - idle) * u_decode
    return np.arange(n_s, dtype=float), fraction * peak_mw


def _two_level(t_s: np.ndarray, values_mw: np.ndarray, dt_s: float, path: Path, column: str) -> tuple:
    """Samples at ``t_s`` (s, increasing) resampled to steps of ``dt_s``: (high MW, low MW, duty) per step,
    the two-level summary that keeps each step's mean; steps without a sample are interpolated."""
    t_s = t_s - t_s[0]
    n_steps = max(int(np.ceil((t_s[-1] + np.median(np.diff(t_s))) / dt_s)), 1)
    check_memory(TRACE_BYTES_PER_STEP * n_steps,
                 f"{path}: line {len(t_s) + 1}, column {column}: a trace spanning "
                 f"{t_s[-1]:.4g} s resampled to dt_s = {dt_s:g} s ({n_steps:.4g} steps)")
    bins = np.minimum((t_s // dt_s).astype(int), n_steps - 1)
    counts = np.bincount(bins, minlength=n_steps)
    mid = (np.arange(n_steps) + 0.5) * dt_s
    mean = np.where(counts > 0, np.bincount(bins, values_mw, n_steps) / np.maximum(counts, 1),
                    np.interp(mid, t_s, values_mw))
    above = values_mw > mean[bins]
    n_above = np.bincount(bins, above, n_steps)
    sum_above = np.bincount(bins, values_mw * above, n_steps)
    duty = np.where(counts > 1, n_above / np.maximum(counts, 1), 1.0)
    high = np.where(n_above > 0, sum_above / np.maximum(n_above, 1), mean)
    duty = np.where(duty < 1.0, duty, 1.0)
    low = np.where(duty < 1.0, (mean - duty * high) / np.maximum(1.0 - duty, 1e-12), high)
    return high, np.maximum(low, 0.0), duty


def _ar1(eps: np.ndarray, phi: float) -> np.ndarray:
    """AR(1) filter along axis 0: ``y[t] = eps[t] + phi * y[t-1]`` (scipy's lfilter, without importing scipy.signal)."""
    y = np.empty_like(eps)
    prev = np.zeros(eps.shape[1:])
    for t in range(len(eps)):
        prev = eps[t] + phi * prev
        y[t] = prev
    return y


def _scaled(values_mw: np.ndarray, cfg: TraceWorkload, peak_mw: float, path: Path) -> np.ndarray:
    """``values_mw`` scaled so their ``cfg.scale_quantile`` sample is ``peak_mw``; those above, clipped with a warning.

    See :class:`~cpm_env.config.TraceWorkload` for why a quantile.
    """
    ref = float(np.quantile(values_mw, cfg.scale_quantile, method="inverted_cdf"))
    if ref <= 0:
        raise ConfigError(f"{path}: column {cfg.value_column}: the {_percentile(cfg.scale_quantile)} percentile is 0 "
                          "(workload.scale_quantile): cannot scale to the site")
    above = values_mw > ref
    if above.any():
        top = int(np.argmax(values_mw))
        warnings.warn(f"{path}: column {cfg.value_column}: {int(above.sum())} of {len(values_mw)} samples above the "
                      f"{_percentile(cfg.scale_quantile)} percentile ({ref:.6g}, workload.scale_quantile) clipped "
                      f"to it, the highest {values_mw[top]:.6g} at line {top + 2}", stacklevel=2)
    return np.minimum(values_mw, ref) * (peak_mw / ref)


def _percentile(q: float) -> str:
    """``0.999`` -> ``'99.9th'``."""
    return f"{100 * q:g}th"


GENERATORS = {
    "training": TrainingGenerator,
    "inference": InferenceGenerator,
    "mixed": MixedGenerator,
    "trace": TraceGenerator,
    "requests": RequestsGenerator,
}


def make_generator(gpu: GpuClassConfig, peak_mw: float, cfg: ScenarioConfig) -> WorkloadGenerator:
    """Build the generator named by ``gpu.workload.kind`` for a class of ``peak_mw`` IT peak."""
    timing = Timing(cfg.n_steps, cfg.dt_s, cfg.start_hour)
    return GENERATORS[gpu.workload.kind](gpu.workload, peak_mw, timing)
