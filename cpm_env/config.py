"""Scenario configuration: frozen dataclasses, YAML loading and one-line validation errors.

A scenario file is YAML whose keys mirror :class:`ScenarioConfig`. Every field carries its
unit in its name; the shipped scenario files cite the source of each default beside it.
Bad input raises :class:`ConfigError` with a single line naming the file, the field, the
value and what is allowed.

This module is the project's one config loader: :func:`read_yaml` reads every YAML file,
:func:`build_config` builds any validated config dataclass (other modules' configs use
:func:`require` and :func:`check_range` in their ``validate``), :func:`load_scenario` follows
``extends:`` chains, and :func:`resolve_scenario` turns an id, a path, a config or overrides
into a validated :class:`ScenarioConfig`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml


class ConfigError(ValueError):
    """A bad config value, as one line: ``<source>: <field> = <value>: <what is allowed>``."""


# Field metadata of a file path that a YAML file may state relative to its own folder.
FILE_PATH: Mapping[str, Any] = types.MappingProxyType({"relative_to_file": True})
# Field metadata of an optional section left out of :func:`scenario_to_dict` while it has its default,
# so that adding one keeps the plain dicts (and their hashes) of existing scenarios as they were.
OMITTED_AT_DEFAULT: Mapping[str, Any] = types.MappingProxyType({"omitted_at_default": True})
# The most memory one batch of episode arrays, or one trace being read, may need; a configuration
# that would need more is refused up front (see :func:`check_memory`). Read at call time, so it
# can be raised (or lowered, as the tests do) by assigning ``cpm_env.config.MEMORY_BUDGET_BYTES``.
MEMORY_BUDGET_BYTES = 2_000_000_000
# A scenario id becomes a folder name downstream (run and results dirs): letters, digits and
# ``-``, ``_``, ``.`` inside, starting with a letter or digit (so no ``..``, no hidden name).
SAFE_ID = re.compile(r"(?!.*\.\.)[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9_-])?")
SAFE_ID_MAX_CHARS = 100
SCENARIO_DIR = Path(__file__).parent / "scenarios"
DEFAULT_SCENARIO = SCENARIO_DIR / "datacenter.yml"


class FieldError(Exception):
    """A bad value inside a config object, raised by ``validate`` methods (through :func:`require`
    and :func:`check_range`); the loader adds the source and turns it into a :class:`ConfigError`."""

    def __init__(self, path: str, value: Any, allowed: str):
        super().__init__(path, value, allowed)
        self.path, self.value, self.allowed = path, value, allowed


def require(ok: bool, name: str, value: Any, allowed: str) -> None:
    """Raise :class:`FieldError` (``name = value: allowed``) unless ``ok``."""
    if not ok:
        raise FieldError(name, value, allowed)


def check_range(name: str, value: float, lo: float, hi: float, *, lo_open=False, hi_open=False) -> None:
    """Require ``lo <= value <= hi`` (strict at an open end) and a finite value."""
    lo_ok = value > lo if lo_open else value >= lo
    hi_ok = value < hi if hi_open else value <= hi
    lo_s = f"{'>' if lo_open else '>='} {lo:g}"
    hi_s = f"{'<' if hi_open else '<='} {hi:g}"
    finite = not isinstance(value, float) or math.isfinite(value)  # math.isfinite overflows on a huge int
    require(finite and lo_ok and hi_ok, name, value, f"must be {lo_s} and {hi_s}")


def check_memory(need_bytes: float, what: str) -> None:
    """Raise a one-line :class:`ConfigError` if ``what`` would need more than :data:`MEMORY_BUDGET_BYTES`."""
    if need_bytes > MEMORY_BUDGET_BYTES:
        raise ConfigError(f"{what} would need {need_bytes / 1e9:.3g} GB: over the {MEMORY_BUDGET_BYTES / 1e9:g} GB "
                          "memory budget (cpm_env.config.MEMORY_BUDGET_BYTES)")


def is_safe_id(name: Any) -> bool:
    """Whether ``name`` may become a folder name: see :data:`SAFE_ID`."""
    return isinstance(name, str) and len(name) <= SAFE_ID_MAX_CHARS and SAFE_ID.fullmatch(name) is not None


class _Shown:
    """A value shown in an error by a short text instead of its repr (e.g. a 400-digit integer)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def shown(value: Any) -> Any:
    """``value`` as an error message should show it: integers of more than 30 digits are abbreviated."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        digits = str(abs(value))
        return _Shown(f"{'-' if value < 0 else ''}{digits[:6]}...({len(digits)}-digit integer)")
    return value


# --------------------------------------------------------------------------- workloads


@dataclass(frozen=True)
class TrainingWorkload:
    """Synchronous training job: compute/communication swings, checkpoints, failures.

    Levels are fractions of the class's installed peak power (GPUs x TDP).
    """

    kind: Literal["training"] = "training"
    high_fraction: float = 1.0  # compute-phase power / peak
    high_jitter: float = 0.02  # relative std of the compute-phase level, step to step
    low_fraction: float = 0.25  # communication-phase power / peak
    duty: float = 0.7  # fraction of an iteration spent in the compute phase
    swing_period_s: float = 2.0  # iteration period (0.2-3 Hz swings)
    checkpoint_interval_min: float = 30.0  # 0 disables checkpoints
    checkpoint_duration_s: float = 120.0  # all-low while a checkpoint is written
    mtbf_h: float = 3.0  # mean time between job failures; 0 disables failures
    sudden_failure_fraction: float = 0.5  # share of failures dropping within one second
    ramp_down_s: float = 30.0  # how fast the other failures drop
    idle_fraction: float = 0.1  # power of an idle (failed) GPU / TDP
    restart_delay_median_min: float = 10.0  # idle time before the restart ramp
    restart_delay_sigma: float = 0.5  # log-normal sigma of the idle time
    restart_ramp_min: float = 3.0  # ramp back to full power after restart

    def validate(self) -> None:
        check_range("high_fraction", self.high_fraction, 0.0, 1.0, lo_open=True)
        check_range("high_jitter", self.high_jitter, 0.0, 0.2)
        check_range("low_fraction", self.low_fraction, 0.0, self.high_fraction)
        check_range("duty", self.duty, 0.0, 1.0, lo_open=True, hi_open=True)
        check_range("swing_period_s", self.swing_period_s, 0.0, 3600.0, lo_open=True)
        check_range("checkpoint_interval_min", self.checkpoint_interval_min, 0.0, 1e6)
        check_range("checkpoint_duration_s", self.checkpoint_duration_s, 0.0, 1e6)
        if self.checkpoint_interval_min > 0:
            require(
                self.checkpoint_duration_s < self.checkpoint_interval_min * 60.0,
                "checkpoint_duration_s",
                self.checkpoint_duration_s,
                "must be shorter than checkpoint_interval_min",
            )
        check_range("mtbf_h", self.mtbf_h, 0.0, 1e6)
        check_range("sudden_failure_fraction", self.sudden_failure_fraction, 0.0, 1.0)
        check_range("ramp_down_s", self.ramp_down_s, 1.0, 3600.0)
        check_range("idle_fraction", self.idle_fraction, 0.0, self.low_fraction)
        check_range("restart_delay_median_min", self.restart_delay_median_min, 0.0, 1440.0, lo_open=True)
        check_range("restart_delay_sigma", self.restart_delay_sigma, 0.0, 3.0)
        check_range("restart_ramp_min", self.restart_ramp_min, 1.0 / 60.0, 600.0)


@dataclass(frozen=True)
class InferenceWorkload:
    """Inference serving: diurnal utilization with heavy-tailed bursts, no intra-step swing."""

    kind: Literal["inference"] = "inference"
    base_utilization: float = 0.55  # daily mean utilization (0-1)
    diurnal_amplitude: float = 0.25  # peak-to-mean of the daily cycle
    peak_hour: float = 15.0  # local hour of the daily peak
    noise_std: float = 0.03  # std of the AR(1) utilization noise
    noise_corr_min: float = 10.0  # correlation time of that noise
    burst_rate_per_h: float = 1.0  # Poisson rate of traffic bursts
    burst_pareto_alpha: float = 1.5  # tail index of burst heights (heavy tail)
    burst_min: float = 0.05  # smallest burst height (utilization)
    burst_decay_min: float = 5.0  # exponential decay time of a burst
    idle_fraction: float = 0.1  # power at zero utilization / TDP

    def validate(self) -> None:
        check_range("base_utilization", self.base_utilization, 0.0, 1.0)
        check_range("diurnal_amplitude", self.diurnal_amplitude, 0.0, 1.0)
        check_range("peak_hour", self.peak_hour, 0.0, 24.0)
        check_range("noise_std", self.noise_std, 0.0, 1.0)
        check_range("noise_corr_min", self.noise_corr_min, 0.0, 1440.0, lo_open=True)
        check_range("burst_rate_per_h", self.burst_rate_per_h, 0.0, 3600.0)
        check_range("burst_pareto_alpha", self.burst_pareto_alpha, 0.1, 10.0)
        check_range("burst_min", self.burst_min, 0.0, 1.0)
        check_range("burst_decay_min", self.burst_decay_min, 0.0, 1440.0, lo_open=True)
        check_range("idle_fraction", self.idle_fraction, 0.0, 1.0, hi_open=True)


@dataclass(frozen=True)
class MixedWorkload:
    """One GPU pool shared by a training job and inference serving."""

    kind: Literal["mixed"] = "mixed"
    training_share: float = 0.5  # fraction of the pool's GPUs on the training job
    training: TrainingWorkload = field(default_factory=TrainingWorkload)
    inference: InferenceWorkload = field(default_factory=InferenceWorkload)

    def validate(self) -> None:
        check_range("training_share", self.training_share, 0.0, 1.0)


@dataclass(frozen=True)
class TraceWorkload:
    """Replay of a measured power or utilization trace from CSV.

    The CSV has a timestamp column (seconds from the start, or ISO dates in one time zone) and
    one value column. Samples finer than ``dt_s`` become the step's two-level (high, low, duty)
    summary with the exact mean; coarser ones are interpolated.

    Outliers: a ``value_unit: mw`` trace is scaled so that its ``scale_quantile`` sample (default
    the 99.9th percentile) equals the class peak, and the samples above it are clipped to the peak,
    with one warning giving their number and the highest one's line. Scaling by the maximum let one
    outlier row (a meter glitch, a unit mix-up) shrink every other sample to ~0 without a word; a
    quantile keeps the trace's shape, and clipping keeps the class within its installed peak, as
    every generator's demand is. Refusing outliers instead would need a rule for what counts as
    one, and would refuse real traces with genuine spikes. The quantile is the inverted-CDF one (a
    sample of the trace: the smallest with at least that share of samples at or below it), so a
    trace of fewer than 1 / (1 - scale_quantile) samples (1000 by default) is scaled by its maximum
    exactly as before. ``scale_quantile: 1.0`` always scales by the maximum.
    """

    kind: Literal["trace"] = "trace"
    path: str = field(default="", metadata=FILE_PATH)
    timestamp_column: str = "timestamp"
    value_column: str = "power_mw"
    value_unit: Literal["mw", "fraction"] = "mw"  # mw: scaled so the scale_quantile sample = class peak
    scale_quantile: float = 0.999  # mw: quantile scaled to the class peak; samples above it are clipped
    fill: Literal["error", "interpolate"] = "error"  # what to do with gaps and bad values
    max_gap_s: float = 3600.0  # a longer gap between samples: an error, or interpolated with fill: interpolate
    random_offset: bool = True  # start each episode at a random point of a longer trace

    def validate(self) -> None:
        require(bool(self.path), "path", self.path, "must name a CSV file")
        check_range("scale_quantile", self.scale_quantile, 0.5, 1.0)
        check_range("max_gap_s", self.max_gap_s, 0.0, 1e18, lo_open=True)


@dataclass(frozen=True)
class RequestsWorkload:
    """Inference serving replayed from a request log (CSV: arrival time, prompt tokens, generated tokens).

    Each request is prefilled in the second it arrives (compute-bound, near TDP) and then decodes
    its generated tokens at ``decode_tokens_per_s`` (memory-bound, well below TDP), one of up to
    ``decode_batch_per_gpu`` requests a GPU batches. Per second, the class's power (fraction of its TDP) is
    ``idle + (prefill - idle) * u_prefill + (decode - idle) * u_decode``, with ``u_prefill`` the share of
    GPUs prefilling and ``u_decode`` the batch slots in use over all slots. The log is scaled to the
    class: it serves ``replicas`` streams like the log (the log circularly shifted by fixed random offsets,
    summed: a fleet aggregates many services, which smooths one service's bursts), and the
    ``scale_quantile`` busiest second of that fills ``peak_load`` of the class's GPUs; seconds above
    that fill them (clipped, with a count in one warning). The per-second power then goes through the
    trace's resampling (two-level summary per step), and the class does work in proportion to its power
    above idle, as the synthetic inference class does; caps act through its throughput curve.

    Sources: the phases' compute- versus memory-bound character and the token phase's lower power are
    Splitwise's (Patel et al., ISCA 2024, whose Azure trace ships in ``data/``); the numbers below are
    assumptions of that order for a 70B-class model on H100s, marked as such in the scenario file.
    """

    kind: Literal["requests"] = "requests"
    path: str = field(default="", metadata=FILE_PATH)
    timestamp_column: str = "timestamp"
    prompt_tokens_column: str = "prompt_tokens"
    generated_tokens_column: str = "generated_tokens"
    prefill_tokens_per_s_per_gpu: float = 4000.0  # assumption: 70B-class model, H100, compute-bound prefill
    decode_tokens_per_s: float = 40.0  # per request (25 ms between tokens): assumption of Splitwise's order
    decode_batch_per_gpu: float = 8.0  # requests one GPU decodes at once: assumption
    prefill_power_fraction: float = 0.95  # of TDP: prefill is compute-bound, near TDP (Splitwise)
    decode_power_fraction: float = 0.65  # of TDP at a full batch: decode is memory-bound (Splitwise); assumption
    idle_fraction: float = 0.14  # of TDP with no request: ~100 W of an H100's 700 W (assumption)
    replicas: int = 1  # independent streams like the log the class serves: its circular shifts, summed
    replica_seed: int = 0  # seeds the shifts (fixed: the class's demand does not change between runs)
    scale_quantile: float = 0.999  # the log's second at this quantile of load fills peak_load of the GPUs
    peak_load: float = 0.9  # share of the class's GPUs that second keeps busy (serving headroom)
    max_gap_s: float = 3600.0  # a gap between consecutive arrivals above this is an error (a log cut short)
    random_offset: bool = True  # start each episode at a random second of a longer log

    def validate(self) -> None:
        require(bool(self.path), "path", self.path, "must name a CSV file")
        check_range("prefill_tokens_per_s_per_gpu", self.prefill_tokens_per_s_per_gpu, 0.0, 1e9, lo_open=True)
        check_range("decode_tokens_per_s", self.decode_tokens_per_s, 0.0, 1e6, lo_open=True)
        check_range("decode_batch_per_gpu", self.decode_batch_per_gpu, 0.0, 1e6, lo_open=True)
        check_range("idle_fraction", self.idle_fraction, 0.0, 1.0, hi_open=True)
        check_range("decode_power_fraction", self.decode_power_fraction, self.idle_fraction, 1.0)
        check_range("prefill_power_fraction", self.prefill_power_fraction, self.idle_fraction, 1.0)
        check_range("replicas", self.replicas, 1, 10_000)
        check_range("replica_seed", self.replica_seed, 0, 2**32 - 1)
        check_range("scale_quantile", self.scale_quantile, 0.5, 1.0)
        check_range("peak_load", self.peak_load, 0.0, 1.0, lo_open=True)
        check_range("max_gap_s", self.max_gap_s, 0.0, 1e9, lo_open=True)


WorkloadConfig = TrainingWorkload | InferenceWorkload | MixedWorkload | TraceWorkload | RequestsWorkload
WORKLOAD_KINDS: dict[str, type] = {
    "training": TrainingWorkload,
    "inference": InferenceWorkload,
    "mixed": MixedWorkload,
    "trace": TraceWorkload,
    "requests": RequestsWorkload,
}


# --------------------------------------------------------------------------- site parts

# Zeus-fitted throughput curve: 1 - exp(-5.5 (x - 0.27)), normalized to 1 at x = 1.
ZEUS_THROUGHPUT_CURVE: tuple[tuple[float, float], ...] = tuple(
    (x, round((1 - math.exp(-5.5 * (x - 0.27))) / (1 - math.exp(-5.5 * 0.73)), 4))
    for x in (0.2857, 0.35, 0.4, 0.5, 0.6, 0.67, 0.8, 0.9, 1.0)
)


@dataclass(frozen=True)
class GpuClassConfig:
    """One GPU class (e.g. the training cluster): its share of IT peak and its power levers."""

    name: str = "training"
    share: float = 1.0  # share of the site's installed IT peak power
    tdp_w: float = 700.0  # per-GPU TDP, for GPU-hour conversions
    cap_min: float = 200.0 / 700.0  # lowest power cap, fraction of TDP
    cap_slew_per_s: float = 0.5  # fastest cap change, fraction of TDP per second
    floor_max: float = 0.0  # highest power floor ("burn"), fraction of TDP; 0 disables
    throughput_curve: tuple[tuple[float, float], ...] = ZEUS_THROUGHPUT_CURVE
    workload: WorkloadConfig = field(default_factory=TrainingWorkload)

    def validate(self) -> None:
        require(self.name.isidentifier(), "name", self.name, "must be an identifier (letters, digits, _)")
        check_range("share", self.share, 0.0, 1.0, lo_open=True)
        check_range("tdp_w", self.tdp_w, 1.0, 1e5)
        check_range("cap_min", self.cap_min, 0.0, 1.0, lo_open=True)
        check_range("cap_slew_per_s", self.cap_slew_per_s, 0.0, 1e6, lo_open=True)
        check_range("floor_max", self.floor_max, 0.0, 1.0)
        pts = self.throughput_curve
        require(len(pts) >= 2, "throughput_curve", pts, "needs at least two [power_fraction, throughput] points")
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        require(
            all(b > a for a, b in zip(xs, xs[1:])), "throughput_curve", xs, "power fractions must increase strictly"
        )
        require(xs[0] <= self.cap_min + 1e-9 and abs(xs[-1] - 1.0) < 1e-9, "throughput_curve", xs,
                 f"must span cap_min ({self.cap_min:g}) to 1.0")
        require(abs(ys[-1] - 1.0) < 1e-9 and all(y >= 0 for y in ys), "throughput_curve", ys,
                 "throughputs must be >= 0 and end at 1.0")
        slopes = [(y1 - y0) / (x1 - x0) for (x0, y0), (x1, y1) in zip(pts, pts[1:])]
        require(all(s >= 0 for s in slopes) and all(b <= a + 1e-9 for a, b in zip(slopes, slopes[1:])),
                 "throughput_curve", pts, "must be non-decreasing and concave")
        if self.workload.kind == "training":
            require(self.workload.low_fraction <= self.cap_min, "workload.low_fraction",
                     self.workload.low_fraction, f"must be <= cap_min ({self.cap_min:g})")


@dataclass(frozen=True)
class SiteConfig:
    """The data center: installed GPU power relative to its grid limit, and its PUE."""

    oversubscription: float = 1.3  # installed IT peak x PUE / grid limit
    pue: float = 1.2  # facility power / IT power
    gpu_classes: tuple[GpuClassConfig, ...] = (GpuClassConfig(),)

    def validate(self) -> None:
        check_range("oversubscription", self.oversubscription, 0.0, 5.0, lo_open=True)
        check_range("pue", self.pue, 1.0, 3.0)
        require(len(self.gpu_classes) >= 1, "gpu_classes", [], "needs at least one GPU class")
        total = sum(c.share for c in self.gpu_classes)
        require(abs(total - 1.0) < 1e-6, "gpu_classes", f"shares sum to {total:g}", "shares must sum to 1")
        names = [c.name for c in self.gpu_classes]
        require(len(set(names)) == len(names), "gpu_classes", names, "names must be unique")


@dataclass(frozen=True)
class BatteryConfig:
    """Behind-the-meter battery. Capacity 0 or power 0 means no battery."""

    capacity_mwh: float = 50.0
    power_mw: float = 25.0
    soc_min: float = 0.1
    soc_max: float = 0.9
    soc_init: float = 0.5
    round_trip_efficiency: float = 0.85  # eta_charge = eta_discharge = sqrt(this)

    def validate(self) -> None:
        check_range("capacity_mwh", self.capacity_mwh, 0.0, 1e6)
        check_range("power_mw", self.power_mw, 0.0, 1e5)
        check_range("soc_min", self.soc_min, 0.0, 1.0)
        check_range("soc_max", self.soc_max, 0.0, 1.0)
        require(self.soc_min < self.soc_max, "soc_min", self.soc_min, f"must be < soc_max ({self.soc_max:g})")
        check_range("soc_init", self.soc_init, self.soc_min, self.soc_max)
        check_range("round_trip_efficiency", self.round_trip_efficiency, 0.0, 1.0, lo_open=True)


@dataclass(frozen=True)
class DemandResponseConfig:
    """Utility demand-response events: the import limit drops for a window, announced ahead."""

    events_per_episode: int = 0
    earliest_start_h: float = 12.0  # hours after the episode start
    latest_start_h: float = 20.0
    duration_h: float = 2.0
    limit_fraction: float = 0.7  # import limit during the event / normal limit
    notice_h: float = 1.0  # the event is announced this long before it starts

    def validate(self) -> None:
        check_range("events_per_episode", self.events_per_episode, 0, 100)
        check_range("earliest_start_h", self.earliest_start_h, 0.0, 1e4)
        check_range("latest_start_h", self.latest_start_h, self.earliest_start_h, 1e4)
        check_range("duration_h", self.duration_h, 0.0, 1e4, lo_open=True)
        check_range("limit_fraction", self.limit_fraction, 0.0, 1.0)
        check_range("notice_h", self.notice_h, 0.0, 1e4)

    def check_inside(self, episode_h: float) -> None:
        """Require every window (when there are events) to lie inside an episode of ``episode_h`` hours."""
        if self.events_per_episode == 0:
            return
        end_h = self.latest_start_h + self.duration_h
        require(end_h <= episode_h + 1e-9, "latest_start_h", self.latest_start_h,
                 f"a window starting then ends at {end_h:g} h (latest_start_h + duration_h): must end by the "
                 f"episode's end at duration_h = {episode_h:g} h")


@dataclass(frozen=True)
class LimitCalendarConfig:
    """The import limit from a CSV calendar (:mod:`cpm_env.calendars`); an empty ``path``: no calendar.

    Each row's ``limit_column`` (MW, 0 to ``grid.limit_mw``) holds from its timestamp (seconds, or
    ISO date-times in one time zone, as traces) to the next row's, the last row's for the median
    interval; each control step takes the value at its start. Demand-response windows are the runs
    of steps below ``grid.limit_mw``. ``fill: hold`` holds the previous valid value over bad cells and
    gaps above ``max_gap_s`` (one warning counts them); ``error`` refuses them.
    """

    path: str = field(default="", metadata=FILE_PATH)
    timestamp_column: str = "timestamp"
    limit_column: str = "limit_mw"
    fill: Literal["error", "hold"] = "error"
    max_gap_s: float = 3600.0  # a longer gap between consecutive rows is an error unless fill: hold
    random_offset: bool = True  # start each episode at a seeded whole step of the calendar

    def validate(self) -> None:
        check_range("max_gap_s", self.max_gap_s, 0.0, 1e9, lo_open=True)


@dataclass(frozen=True)
class PriceCalendarConfig:
    """The energy price ($/MWh) from a CSV calendar, read like :class:`LimitCalendarConfig` (negative
    prices allowed); episodes are priced from its first row. An empty ``path``: no calendar."""

    path: str = field(default="", metadata=FILE_PATH)
    timestamp_column: str = "timestamp"
    price_column: str = "usd_per_mwh"
    fill: Literal["error", "hold"] = "error"
    max_gap_s: float = 3600.0

    def validate(self) -> None:
        check_range("max_gap_s", self.max_gap_s, 0.0, 1e9, lo_open=True)


@dataclass(frozen=True)
class GridConfig:
    """The grid contract: import limit, ramp limit, allowed oscillation, demand response."""

    limit_mw: float = 100.0
    ramp_limit_mw_per_min: float = 10.0  # allowed change of the step-mean import, up and down
    swing_band_mw: float = 20.0  # allowed peak-to-peak intra-step oscillation at the meter
    allow_export: bool = False
    demand_response: DemandResponseConfig = field(default_factory=DemandResponseConfig)
    limit_calendar: LimitCalendarConfig = field(default_factory=LimitCalendarConfig, metadata=OMITTED_AT_DEFAULT)
    price_calendar: PriceCalendarConfig = field(default_factory=PriceCalendarConfig, metadata=OMITTED_AT_DEFAULT)

    def validate(self) -> None:
        check_range("limit_mw", self.limit_mw, 0.0, 1e5, lo_open=True)
        check_range("ramp_limit_mw_per_min", self.ramp_limit_mw_per_min, 0.0, 1e6)
        check_range("swing_band_mw", self.swing_band_mw, 0.0, 1e6)
        if self.limit_calendar.path:
            require(self.demand_response.events_per_episode == 0, "demand_response.events_per_episode",
                    self.demand_response.events_per_episode,
                    "must be 0 with a grid.limit_calendar (its windows are the calendar's runs below grid.limit_mw)")


@dataclass(frozen=True)
class ForecastConfig:
    """Forecast of the uncapped facility demand (MW), in the observation as ``forecast_<h>``.

    ``kind`` names the forecaster (:data:`cpm_env.forecast.FORECASTERS`): ``oracle_noisy`` (the
    true future x (1 + noise): it sees unscheduled failures and bursts; for studies of what
    foresight is worth), ``persistence`` (the current demand, flat) or ``schedule_persistence``
    (the current demand plus the scheduled checkpoint dips and daily profile, the default: causal,
    what a real site can know). ``noise_std_per_sqrt_h`` is used by ``oracle_noisy`` only.
    """

    enabled: bool = True
    horizons_steps: tuple[int, ...] = (1, 5, 15, 60)
    noise_std_per_sqrt_h: float = 0.05  # relative error std grows with sqrt(lead time)
    kind: Literal["oracle_noisy", "persistence", "schedule_persistence"] = "schedule_persistence"

    def validate(self) -> None:
        require(bool(self.horizons_steps) or not self.enabled, "horizons_steps", [],
                 "must list at least one step when the forecast is enabled (or set enabled: false)")
        require(all(1 <= h <= 10**6 for h in self.horizons_steps), "horizons_steps",
                 [shown(h) for h in self.horizons_steps], "must be whole steps >= 1 and <= 1e+06")
        check_range("noise_std_per_sqrt_h", self.noise_std_per_sqrt_h, 0.0, 1.0)


@dataclass(frozen=True)
class RewardConfig:
    """Reward weights, all in compute units (1 unit = 1 MW of GPUs at full speed for 1 h)."""

    over_limit_per_mwh: float = 20.0  # per MWh imported above the limit
    swing_excess_per_mwh: float = 10.0  # per MW of oscillation above the band, per hour
    residual_swing_per_mwh: float = 0.05  # per MW of any residual oscillation, per hour
    ramp_excess_per_mw: float = 1.0  # per MW of step-to-step import change above the ramp limit
    degradation_per_mwh: float = 0.014  # per MWh discharged from the battery
    burn_per_mwh: float = 0.02  # per MWh burned by power floors
    stored_energy_per_mwh: float | None = None  # value of stored energy; None: eta_d / PUE

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is not None:
                check_range(f.name, v, 0.0, 1e9)


@dataclass(frozen=True)
class ScenarioConfig:
    """A whole scenario: site, grid, battery, forecast, reward and the episode's timing."""

    id: str = "DataCenter-v0"
    description: str = ""
    dt_s: float = 60.0  # supervisory control step
    duration_h: float = 24.0  # episode length
    start_hour: float = 0.0  # local time of day at the episode start
    site: SiteConfig = field(default_factory=SiteConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    battery: BatteryConfig = field(default_factory=BatteryConfig)
    forecast: ForecastConfig = field(default_factory=ForecastConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)

    def validate(self) -> None:
        require(is_safe_id(self.id), "id", self.id,
                 f"must be a name like Name-v0 (up to {SAFE_ID_MAX_CHARS} letters, digits and - _ . inside; it "
                 "becomes a folder name, so no path separators, no '..', no leading dot)")
        check_range("dt_s", self.dt_s, 0.1, 3600.0)
        check_range("duration_h", self.duration_h, 0.0, 24.0 * 366, lo_open=True)
        require(self.n_steps >= 2, "duration_h", self.duration_h, f"must cover at least two steps of {self.dt_s:g} s")
        try:
            self.grid.demand_response.check_inside(self.duration_h)
        except FieldError as err:
            raise FieldError(f"grid.demand_response.{err.path}", err.value, err.allowed) from None
        check_range("start_hour", self.start_hour, 0.0, 24.0, hi_open=True)
        if self.battery.capacity_mwh > 0 and self.battery.power_mw > 0:
            # Full smoothing must pay for its own losses, or an optimizer would rather leave
            # oscillation at the meter than the inner loop does (then the oracle != the env).
            eta = math.sqrt(self.battery.round_trip_efficiency)
            w_e = self.reward.stored_energy_per_mwh
            w_e = eta / self.site.pue if w_e is None else w_e
            loss_cost = 0.25 * ((1 / eta - eta) * w_e + self.reward.degradation_per_mwh)
            require(self.reward.residual_swing_per_mwh > loss_cost, "reward.residual_swing_per_mwh",
                     self.reward.residual_swing_per_mwh,
                     f"must exceed the smoothing loss cost {loss_cost:.4g} at this efficiency and energy value")

    @property
    def n_steps(self) -> int:
        """Steps per episode."""
        return int(round(self.duration_h * 3600.0 / self.dt_s))

    @property
    def dt_h(self) -> float:
        """Control step in hours."""
        return self.dt_s / 3600.0


# --------------------------------------------------------------------------- building


_type_hints = functools.cache(typing.get_type_hints)  # a config class's field types, resolved once


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)).replace("typing.", "")


def _is_workload(tp: Any) -> bool:
    return tp is WorkloadConfig or (typing.get_origin(tp) is Union and TrainingWorkload in typing.get_args(tp))


def _convert(tp: Any, value: Any, path: str, source: str) -> Any:
    """Convert a YAML value to the annotated type, or raise FieldError."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if _is_workload(tp):
        require(isinstance(value, Mapping), path, value, "must be a mapping with a 'kind'")
        kind = value.get("kind", "training")
        require(isinstance(kind, str) and kind in WORKLOAD_KINDS, f"{path}.kind", kind,
                 f"must be one of {sorted(WORKLOAD_KINDS)}")
        return _build(WORKLOAD_KINDS[kind], value, path, source)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, path, source)
    if origin is Literal:
        require(value in args, path, value, f"must be one of {list(args)}")
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        require(isinstance(value, Mapping), path, value, f"must be a mapping of {_type_name(tp)} fields")
        return _build(tp, value, path, source)
    if origin is tuple:
        require(isinstance(value, (list, tuple)), path, value, "must be a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{path}[{i}]", source) for i, v in enumerate(value))
        require(len(value) == len(args), path, value, f"must have {len(args)} items")
        return tuple(_convert(a, v, f"{path}[{i}]", source) for i, (a, v) in enumerate(zip(args, value)))
    if tp is bool:
        require(isinstance(value, bool), path, value, "must be true or false")
        return value
    if tp is int:
        require(isinstance(value, int) and not isinstance(value, bool), path, value, "must be an integer")
        return value
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        require(ok and _finite_float(value), path, shown(value), "must be a finite number")
        return float(value)
    if tp is str:
        require(isinstance(value, str), path, value, "must be a string")
        return value
    raise TypeError(f"unsupported config type {tp!r} at {path}")  # a bug in this module, not bad input


def _finite_float(value: float) -> bool:
    """Whether a number converts to a finite float (a huge int overflows ``float``)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _build(cls: type, data: Mapping[str, Any], prefix: str, source: str) -> Any:
    hints = _type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        require(key in names, f"{prefix}.{key}".lstrip("."), "(unknown key)", f"allowed keys: {', '.join(names)}")
    kwargs = {k: _convert(hints[k], v, f"{prefix}.{k}".lstrip("."), source) for k, v in data.items()}
    obj = cls(**kwargs)
    try:
        obj.validate()
    except FieldError as err:
        raise FieldError(f"{prefix}.{err.path}".lstrip("."), err.value, err.allowed) from None
    return obj


def build_config(cls: type, data: Any, source: str = "<dict>", prefix: str = "") -> Any:
    """Build and validate the frozen dataclass ``cls`` (with ``validate()``) from a plain mapping.

    Bad input raises a one-line :class:`ConfigError`: ``<source>: <prefix.field> = <value>: <allowed>``.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {prefix or 'top level'} = {data!r}: must be a mapping of {cls.__name__} fields")
    try:
        return _build(cls, data, prefix, source)
    except FieldError as err:
        raise ConfigError(f"{source}: {err.path} = {shown(err.value)!r}: {err.allowed}") from None


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``overrides`` merged in, recursing into nested mappings (lists are replaced)."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve_file_paths(cls: type, data: Any, folder: Path) -> Any:
    """``data`` (raw fields of ``cls``) with each relative :data:`FILE_PATH` field joined to ``folder``.

    Recurses into nested configs; anything malformed is left as it is for the builder to report.
    """
    if not isinstance(data, Mapping):
        return data
    hints = _type_hints(cls)
    out = dict(data)
    for f in dataclasses.fields(cls):
        value = out.get(f.name)
        if value is None:
            continue
        if f.metadata.get("relative_to_file"):
            if isinstance(value, str) and value and not Path(value).is_absolute():
                out[f.name] = str(folder / value)
        else:
            out[f.name] = _resolve_nested_paths(hints[f.name], value, folder)
    return out


def _resolve_nested_paths(tp: Any, value: Any, folder: Path) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if _is_workload(tp):
        kind = value.get("kind", "training") if isinstance(value, Mapping) else None
        if isinstance(kind, str) and kind in WORKLOAD_KINDS:
            return resolve_file_paths(WORKLOAD_KINDS[kind], value, folder)
        return value
    if origin in (Union, types.UnionType):
        return _resolve_nested_paths(next(a for a in args if a is not type(None)), value, folder)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return resolve_file_paths(tp, value, folder)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis and isinstance(value, list):
        return [_resolve_nested_paths(args[0], v, folder) for v in value]
    return value


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading YAML 1.2 floats too: ``1e3``, ``1E-5``, ``.5e2``, ``2.5e3``.

    PyYAML follows YAML 1.1, whose floats need a dot and a signed exponent, so it reads
    ``capacity_mwh: 1e3`` as the string '1e3'.
    """


YamlLoader.add_implicit_resolver(  # copies SafeLoader's resolvers first, so SafeLoader is unchanged
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _decode_utf8(path: Path) -> str:
    """``path``'s text, or a one-line :class:`ConfigError` naming the first byte that is not UTF-8."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(f"{path}: byte {err.start} (line {line}) = {raw[err.start:err.start + 1]!r}: "
                          "not UTF-8: must be a UTF-8 text file") from None


def read_yaml(path: str | Path, fields: str = "scenario fields") -> dict[str, Any]:
    """Read a YAML mapping (of ``fields``), with one-line errors for a missing, non-UTF-8 or malformed file.

    Every YAML file the project reads goes through here, with :class:`YamlLoader`.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found: must be an existing YAML file")
    text = _decode_utf8(path)
    try:
        data = yaml.load(text, Loader=YamlLoader)  # noqa: S506 (YamlLoader is a SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(err, "problem", None) or "invalid syntax"
        raise ConfigError(f"{path}: malformed YAML at {where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level = {type(data).__name__}: must be a mapping of {fields}")
    return data


# --------------------------------------------------------------------------- scenarios


def scenario_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> ScenarioConfig:
    """Build and validate a :class:`ScenarioConfig` from a plain mapping (e.g. parsed YAML)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: top level = {type(data).__name__}: must be a mapping of scenario fields")
    return build_config(ScenarioConfig, data, source)


def scenario_ids(folder: Path = SCENARIO_DIR) -> dict[str, str]:
    """Registered id (``cpm_env/<id>``) -> scenario file, from each YAML's own ``id:`` in ``folder``."""
    ids: dict[str, str] = {}
    for path in sorted(folder.glob("*.yml")):
        sid = read_yaml(path).get("id")
        if not isinstance(sid, str) or not sid:
            raise ConfigError(f"{path}: id = {sid!r}: a shipped scenario file must state its own id")
        if f"cpm_env/{sid}" in ids:
            raise ConfigError(f"{path}: id = {sid!r}: already stated by {ids[f'cpm_env/{sid}']}")
        ids[f"cpm_env/{sid}"] = str(path)
    return ids


def _is_yaml_path(scenario: str | Path) -> bool:
    return isinstance(scenario, Path) or str(scenario).endswith((".yml", ".yaml"))


def _registered_file(scenario_id: str) -> Path | None:
    ids = scenario_ids()
    key = scenario_id if scenario_id.startswith("cpm_env/") else f"cpm_env/{scenario_id}"
    return Path(ids[key]) if key in ids else None


def scenario_file(scenario: str | Path) -> Path:
    """The YAML file of a registered id (``cpm_env/DataCenter-v0`` or ``DataCenter-v0``) or a YAML path."""
    if _is_yaml_path(scenario):
        return Path(scenario)
    path = _registered_file(str(scenario))
    if path is None:
        raise ConfigError(f"scenario = {str(scenario)!r}: unknown id; registered ids: {', '.join(scenario_ids())} "
                          "(or pass a scenario YAML path)")
    return path


def _extends_file(value: Any, path: Path) -> Path:
    """The file named by ``path``'s ``extends:`` (relative to ``path``'s folder, or a registered id)."""
    allowed = "must be a YAML path relative to this file or a registered id"
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path}: extends = {value!r}: {allowed}")
    base = path.parent / value if _is_yaml_path(value) else _registered_file(value)
    if base is None or not base.is_file():
        raise ConfigError(f"{path}: extends = {value!r}: no such file or registered id "
                          f"(registered: {', '.join(scenario_ids())})")
    return base


def read_scenario_file(path: str | Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A scenario file's fields merged onto those of its ``extends:`` chain, file paths resolved.

    Each file's relative paths (e.g. a trace's CSV) resolve against that file's own folder.
    A cycle or a missing base is a one-line :class:`ConfigError` naming the file.
    """
    path = Path(path)
    if path.resolve() in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, path.resolve()))
        raise ConfigError(f"{_chain[0]}: extends = cycle: {cycle}: a scenario may not extend itself")
    data = resolve_file_paths(ScenarioConfig, read_yaml(path), path.parent)
    if "extends" not in data:
        return data
    base = _extends_file(data.pop("extends"), path)
    return deep_merge(read_scenario_file(base, (*_chain, path.resolve())), data)


def _overrides_state(path: str, overrides: Mapping[str, Any]) -> bool:
    """Whether ``overrides`` states the field at dotted ``path`` (or a list above it, which it replaces)."""
    node: Any = overrides
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if isinstance(node, list):
            return True
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _build_overridden(data: Mapping[str, Any], overrides: Mapping[str, Any], source: str) -> ScenarioConfig:
    """Build ``data`` with ``overrides`` merged in; errors name the override when it is at fault."""
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"scenario overrides = {overrides!r}: must be a mapping of scenario fields")
    try:
        return _build(ScenarioConfig, deep_merge(data, overrides), "", source)
    except FieldError as err:
        bad = err
    if _overrides_state(bad.path, overrides):
        raise ConfigError(f"scenario override {bad.path} = {shown(bad.value)!r}: {bad.allowed} (base {source})")
    build_config(ScenarioConfig, data, source)  # a bad base is the base file's error
    raise ConfigError(f"{source} with scenario overrides: {bad.path} = {shown(bad.value)!r}: {bad.allowed}")


def load_scenario(path: str | Path, overrides: Mapping[str, Any] | None = None) -> ScenarioConfig:
    """Load a scenario YAML file (following ``extends:``), optionally with nested overrides, and validate it.

    A trace workload's relative ``path`` is resolved against the folder of the file that states it.
    """
    data = read_scenario_file(path)
    if "family" in data:
        raise ConfigError(f"{path}: family: a site family, not one site: gym.make, make_vec and train.py draw a site "
                          "from it per episode; benchmarks/generalization.py evaluates sites drawn from it, "
                          "cpm_env.family.SiteFamily(path).site(seed) gives one")
    if overrides:
        return _build_overridden(data, overrides, str(path))
    return scenario_from_dict(data, source=str(path))


def resolve_scenario(scenario: str | Path | ScenarioConfig | Mapping[str, Any] | None = None,
                     overrides: Mapping[str, Any] | None = None) -> ScenarioConfig:
    """The validated config of a scenario argument, with ``overrides`` merged in.

    ``scenario`` is a registered id (``cpm_env/DataCenter-v0`` or ``DataCenter-v0``), a YAML path,
    a :class:`ScenarioConfig`, a mapping of overrides onto the default scenario, or None (the default).
    """
    if isinstance(scenario, ScenarioConfig):
        return _build_overridden(scenario_to_dict(scenario), overrides, f"<{scenario.id}>") if overrides else scenario
    if isinstance(scenario, Mapping):
        overrides = deep_merge(scenario, overrides or {})
        scenario = None
    if scenario is None:
        scenario = DEFAULT_SCENARIO
    if not isinstance(scenario, (str, Path)):
        raise TypeError(f"scenario = {scenario!r}: must be a registered id, a YAML path, a ScenarioConfig, "
                        "a dict of overrides or None")
    return load_scenario(scenario_file(scenario), overrides)


def scenario_to_dict(cfg: ScenarioConfig) -> dict[str, Any]:
    """Plain-dict (YAML-ready) form of a scenario, e.g. for a run directory's copy."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v) if not _at_omitted_default(v, f)}
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        return v

    return plain(cfg)


def _at_omitted_default(obj: Any, f: dataclasses.Field) -> bool:
    """Whether field ``f`` of ``obj`` is an :data:`OMITTED_AT_DEFAULT` section at its default."""
    if not f.metadata.get("omitted_at_default"):
        return False
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return getattr(obj, f.name) == default
