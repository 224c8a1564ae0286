"""The site model: a scenario's numeric parameters and every fact derived from them.

The physics, the env, the batched env, the LP (oracle and MPC) and the rules all read a site
through this module, so each fact has one owner:

- :class:`SiteParams`, the numbers (units in the names: MW, MWh, h, fractions of TDP),
- :class:`State`, the dynamic state, and :func:`initial_state`, the one an episode starts from,
- :func:`swinging_steps` and :func:`class_swings`, which steps and classes swing within the step,
  decided from the data (never from a workload's kind); :func:`cpm_env.physics.step` uses them,
- :func:`class_levels`, a class's high and low levels from its observed mean and swing,
- :func:`lowest_high_mw`, how deep a class can be capped without leaving its two-level shape,
- :func:`curve_segments`, :func:`throughput` and :func:`work_per_throughput`, the piecewise-linear
  throughput curve and compute per unit of it, and :func:`work_estimate`, the work a class demands,
- :func:`params_to_json` and :func:`params_from_json`, the parameters as JSON (an exported
  controller's ``policy.json`` carries them for its safety filter) and back, exactly.

Pure functions on floats or numpy arrays; no learning code, no gymnasium. Imports numpy alone (the
scenario config is only a type here), so a controller host runs the site model without PyYAML.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple, TypeAlias, get_args, get_origin, get_type_hints

import numpy as np

if TYPE_CHECKING:
    from cpm_env.config import ScenarioConfig

# Workload kinds whose work follows their power above idle all step (serving); the others work in the high phase.
SERVING_KINDS = ("inference", "requests")

# A per-site quantity: a float in the single env (ops.SCALAR), an array over the batch in the
# batched env (ops.NUMPY); per-class quantities are tuples of them, one entry per GPU class.
Scalar: TypeAlias = float | np.ndarray
PerClass: TypeAlias = tuple[Scalar, ...]


class State(NamedTuple):
    """The site's dynamic state, carried between steps."""

    energy_mwh: Scalar
    import_mw: Scalar  # previous step's mean grid import
    caps: PerClass  # caps in force, fraction of TDP
    floors: PerClass  # floors in force, fraction of TDP


class SiteParams(NamedTuple):
    """Numeric site parameters derived from a :class:`ScenarioConfig`; per-class tuples in class order."""

    dt_h: float
    pue: float
    peak_mw: tuple[float, ...]  # installed IT peak per class
    cap_min: tuple[float, ...]
    cap_step: tuple[float, ...]  # fastest cap change per step, fraction of TDP
    floor_max: tuple[float, ...]
    curve_x: tuple[tuple[float, ...], ...]  # per class: throughput curve points (power fraction,
    curve_y: tuple[tuple[float, ...], ...]  # relative throughput), concave piecewise-linear
    serving: tuple[bool, ...]  # work follows power all step (inference); else only in the high phase
    idle_fraction: tuple[float, ...]  # power of a serving class doing no work, fraction of peak (else 0)
    battery_power_mw: float
    energy_min_mwh: float
    energy_max_mwh: float
    energy_init_mwh: float
    capacity_mwh: float
    eta_charge: float
    eta_discharge: float
    allow_export: bool
    ramp_step_mw: float  # allowed change of mean import per step
    swing_band_mw: float
    w_over_limit: float
    w_swing: float
    w_residual: float
    w_ramp: float
    w_degradation: float
    w_burn: float
    w_energy: float  # value of stored energy, compute units per MWh


def make_params(cfg: ScenarioConfig) -> SiteParams:
    """Derive the numeric site parameters of a scenario."""
    site, bat, grid, rew = cfg.site, cfg.battery, cfg.grid, cfg.reward
    it_peak_mw = site.oversubscription * grid.limit_mw / site.pue
    has_battery = bat.capacity_mwh > 0 and bat.power_mw > 0
    eta = math.sqrt(bat.round_trip_efficiency)
    capacity = bat.capacity_mwh if has_battery else 0.0
    w_energy = rew.stored_energy_per_mwh if rew.stored_energy_per_mwh is not None else eta / site.pue
    return SiteParams(
        dt_h=cfg.dt_h,
        pue=site.pue,
        peak_mw=tuple(c.share * it_peak_mw for c in site.gpu_classes),
        cap_min=tuple(c.cap_min for c in site.gpu_classes),
        cap_step=tuple(c.cap_slew_per_s * cfg.dt_s for c in site.gpu_classes),
        floor_max=tuple(c.floor_max for c in site.gpu_classes),
        curve_x=tuple(tuple(x for x, _ in c.throughput_curve) for c in site.gpu_classes),
        curve_y=tuple(tuple(y for _, y in c.throughput_curve) for c in site.gpu_classes),
        serving=tuple(c.workload.kind in SERVING_KINDS for c in site.gpu_classes),
        idle_fraction=tuple(_idle_fraction(c.workload) for c in site.gpu_classes),
        battery_power_mw=bat.power_mw if has_battery else 0.0,
        energy_min_mwh=bat.soc_min * capacity,
        energy_max_mwh=bat.soc_max * capacity,
        energy_init_mwh=bat.soc_init * capacity,
        capacity_mwh=capacity,
        eta_charge=eta,
        eta_discharge=eta,
        allow_export=grid.allow_export,
        ramp_step_mw=grid.ramp_limit_mw_per_min * cfg.dt_s / 60.0,
        swing_band_mw=grid.swing_band_mw,
        w_over_limit=rew.over_limit_per_mwh,
        w_swing=rew.swing_excess_per_mwh,
        w_residual=rew.residual_swing_per_mwh,
        w_ramp=rew.ramp_excess_per_mw,
        w_degradation=rew.degradation_per_mwh,
        w_burn=rew.burn_per_mwh,
        w_energy=w_energy,
    )


def _idle_fraction(workload) -> float:
    """A serving class's power with no work, fraction of its TDP (0 for the other kinds)."""
    return workload.idle_fraction if workload.kind in SERVING_KINDS else 0.0


def _kind(hint) -> tuple[type, int]:
    """(float or bool, nesting depth) of a :class:`SiteParams` field's type: 0 for one value, 1 for one
    per GPU class, 2 for a list per GPU class (the curves)."""
    depth = 0
    while get_origin(hint) is tuple:
        hint, depth = get_args(hint)[0], depth + 1
    return hint, depth


PARAM_KINDS = {name: _kind(hint) for name, hint in get_type_hints(SiteParams).items()}
POSITIVE_PARAMS = ("dt_h", "peak_mw", "eta_charge", "eta_discharge")  # the physics divides by them


def params_to_json(p: SiteParams) -> dict:
    """``p`` as a JSON object: field name -> number, bool, or list per GPU class (a list of lists for
    the curves). JSON writes a float by its shortest repr, so :func:`params_from_json` rebuilds ``p`` exactly."""
    def plain(value, base: type, depth: int):
        return [plain(v, base, depth - 1) for v in value] if depth else base(value)

    return {name: plain(getattr(p, name), *PARAM_KINDS[name]) for name in SiteParams._fields}


def params_from_json(data, where: str = "site_params") -> SiteParams:
    """The :class:`SiteParams` that :func:`params_to_json` wrote (units as in the field names).

    Every field must be present, and no other: floats as finite numbers (> 0 for
    :data:`POSITIVE_PARAMS`), flags as true/false, per-class fields as lists of one entry per GPU
    class (as many as ``peak_mw``), each curve as at least two points with strictly increasing
    ``curve_x``. Anything else is a one-line ValueError starting with ``where.<field>``.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{where} = {data!r}: must be a JSON object of the SiteParams fields")
    for name in data:
        if name not in PARAM_KINDS:
            raise ValueError(f"{where}.{name}: unknown field: the fields are {', '.join(SiteParams._fields)}")
    for name in SiteParams._fields:
        if name not in data:
            raise ValueError(f"{where}.{name}: missing: the fields are {', '.join(SiteParams._fields)}")
    peak = data["peak_mw"]
    if not (isinstance(peak, list) and peak):
        raise ValueError(f"{where}.peak_mw = {peak!r}: must be a non-empty list, one entry per GPU class")
    values = {name: _param_value(data[name], *PARAM_KINDS[name], len(peak), f"{where}.{name}")
              for name in SiteParams._fields}
    for name in POSITIVE_PARAMS:
        if not all(v > 0 for v in np.atleast_1d(values[name])):
            raise ValueError(f"{where}.{name} = {data[name]!r}: must be > 0")
    for k, (xs, ys) in enumerate(zip(values["curve_x"], values["curve_y"])):
        if len(ys) != len(xs) or not all(a < b for a, b in zip(xs, xs[1:])):
            raise ValueError(f"{where}.curve_x[{k}] = {data['curve_x'][k]!r}, curve_y[{k}] = {data['curve_y'][k]!r}: "
                             "must be as many points each, curve_x strictly increasing")
    return SiteParams(**values)


def _param_value(value, base: type, depth: int, n_classes: int, field: str):
    """One field of :func:`params_from_json`, checked and as :class:`SiteParams` holds it (tuples, floats)."""
    def plain(v):
        if base is bool:
            return v if isinstance(v, bool) else None
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        return float(v) if ok else None

    what = "true or false" if base is bool else "a finite number"
    if depth == 0:
        got = plain(value)
        if got is None:
            raise ValueError(f"{field} = {value!r}: must be {what}")
        return got
    rule = (f"one per GPU class ({n_classes}, as peak_mw), each {what}" if depth == 1 else
            f"one per GPU class ({n_classes}, as peak_mw), each a list of at least 2 points, each {what}")
    if not (isinstance(value, list) and len(value) == n_classes):
        raise ValueError(f"{field} = {value!r}: must be a list of {rule}")
    if depth == 1:
        items = [plain(v) for v in value]
        if None in items:
            raise ValueError(f"{field} = {value!r}: must be a list of {rule}")
        return tuple(items)
    curves = []
    for curve in value:
        points = [plain(v) for v in curve] if isinstance(curve, list) and len(curve) >= 2 else [None]
        if None in points:
            raise ValueError(f"{field} = {value!r}: must be a list of {rule}")
        curves.append(tuple(points))
    return tuple(curves)


def stack_params(params: Sequence[SiteParams]) -> SiteParams:
    """One :class:`SiteParams` for a batch of sites (a site family's batched env, env ``i`` the ``i``-th):
    a number the same for every site stays a float, one that differs becomes an array over the batch
    (per class: each class's entry on its own). The flags and the throughput curves must be the same for
    every site (a family's layout, :func:`cpm_env.family.layout`); ValueError otherwise."""
    fields = {}
    for name in SiteParams._fields:
        values = [getattr(p, name) for p in params]
        base, depth = PARAM_KINDS[name]
        if base is bool or depth == 2:
            if any(v != values[0] for v in values):
                raise ValueError(f"stack_params: {name} differs between the sites: it must be the same for a batch")
            fields[name] = values[0]
        elif depth == 1:
            fields[name] = tuple(_stacked([v[k] for v in values]) for k in range(len(values[0])))
        else:
            fields[name] = _stacked(values)
    return SiteParams(**fields)


def _stacked(values: list[float]):
    return values[0] if all(v == values[0] for v in values) else np.array(values, dtype=float)


def any_true(condition) -> bool:
    """Whether a comparison of site parameters holds for any site: a bool for one site's floats, or an
    array over a batch of sites (:func:`stack_params`); costs nothing on the single env's floats."""
    return condition if condition is True or condition is False else bool(np.any(condition))


def state_of_charge(p: SiteParams, energy_mwh):
    """State of charge (fraction) of ``energy_mwh`` stored; 0 without a battery (floats or arrays)."""
    cap = p.capacity_mwh
    if isinstance(cap, float):
        return energy_mwh / cap if cap > 0 else 0.0 * energy_mwh
    return energy_mwh / np.maximum(cap, 1e-12)  # a battery-less site of the batch stores 0 MWh


def battery_less_soc(site_entries, site_names: Sequence[str]) -> np.ndarray:
    """The ``soc`` entry an observation that carries the site's parameters shows for a site without a battery:
    the middle of its SoC bounds (``site_soc_min``, ``site_soc_max``; in float64), NaN where the site has one
    (there ``soc`` is its state of charge). A policy that learned on batteries reads 0 as one run empty and cuts
    its caps; the battery entries already say there is none. ``site_entries`` (..., n_site) are
    :func:`cpm_env.spaces.site_parameter_entries` in ``site_names`` order."""
    e = np.asarray(site_entries, dtype=np.float64)
    i = {name: j for j, name in enumerate(site_names)}
    none = (e[..., i["site_battery_energy"]] <= 0.0) | (e[..., i["site_battery_power"]] <= 0.0)
    return np.where(none, 0.5 * (e[..., i["site_soc_min"]] + e[..., i["site_soc_max"]]), np.nan)


def initial_state(p: SiteParams, limit_mw, demand_mw) -> State:
    """The state an episode starts from: SoC at its initial value, caps at 1, floors at 0, and the
    previous import equal to the first step's uncapped facility demand (at most the limit).

    ``limit_mw`` and ``demand_mw`` are the first step's values: floats, or arrays over a batch.
    """
    n_cls = len(p.peak_mw)
    if np.ndim(limit_mw) == 0:
        return State(p.energy_init_mwh, min(float(limit_mw), float(demand_mw)), (1.0,) * n_cls, (0.0,) * n_cls)
    ones = np.ones(np.shape(limit_mw))
    return State(p.energy_init_mwh * ones, np.minimum(limit_mw, demand_mw), tuple(ones.copy() for _ in range(n_cls)),
                 tuple(np.zeros_like(ones) for _ in range(n_cls)))


def swinging_steps(duty):
    """Whether a step's waveform swings at all: its duty is strictly between 0 and 1 (floats or arrays)."""
    return (duty > 0.0) & (duty < 1.0)


def class_swings(high_mw, low_mw, duty):
    """Whether a class's uncapped demand has two levels in a step: a swinging step and low < high.

    Where it does not, the class is flat at its high level (the physics' low level is
    ``min(low, high-phase power)``), so a cap moves its whole power and it adds no swing.
    """
    return swinging_steps(duty) & (low_mw < high_mw)


def class_levels(mean_mw, swing_mw, duty):
    """A class's high and low levels (MW) from its observed step mean and swing (the inverse of
    :func:`cpm_env.spaces.exo_features`): ``high = mean + (1 - duty) * swing``, ``low = mean - duty * swing``."""
    return mean_mw + (1 - duty) * swing_mw, mean_mw - duty * swing_mw


def lowest_high_mw(p: SiteParams, k: int, high_mw, low_mw, duty):
    """Lowest high-phase power (MW) of class ``k`` that the LP models: ``min(high, cap_min x peak)``,
    but not below the low level where the class swings (capping below it would flatten the
    two-level waveform, which a linear model cannot represent; see the module doc of
    :mod:`agents.controllers.site_lp`)."""
    y_min = np.minimum(high_mw, p.cap_min[k] * p.peak_mw[k])
    return np.where(class_swings(high_mw, low_mw, duty), np.maximum(y_min, low_mw), y_min)


class Segment(NamedTuple):
    """One linear piece of a throughput curve: ``g(x) = intercept + slope * x`` on ``[x0, x1]``."""

    x0: float
    x1: float
    intercept: float
    slope: float


def curve_segments(p: SiteParams, k: int) -> list[Segment]:
    """The linear pieces of class ``k``'s concave throughput curve (x: power fraction of TDP)."""
    xs, ys = p.curve_x[k], p.curve_y[k]
    segs = []
    for x0, y0, x1, y1 in zip(xs, ys, xs[1:], ys[1:]):
        slope = (y1 - y0) / (x1 - x0)
        segs.append(Segment(x0, x1, y0 - slope * x0, slope))
    return segs


def throughput(p: SiteParams, k: int, x):
    """Relative throughput of class ``k`` at power fraction ``x`` (clamped to the curve's ends)."""
    return np.interp(x, p.curve_x[k], p.curve_y[k])


def work_estimate(p: SiteParams, k: int, high_mw, duty):
    """Full-speed compute (compute units per step) that class ``k`` demands at high level ``high_mw``
    and step duty ``duty``, as its workload generates it: a serving class works in proportion to
    its power above idle all step; the others work in the high phase only. Forecasters use it."""
    peak = p.peak_mw[k]
    if p.serving[k]:
        util = np.clip((np.asarray(high_mw) / peak - p.idle_fraction[k]) / (1 - p.idle_fraction[k]), 0, 1)
        return util * peak * p.dt_h
    return duty * np.asarray(high_mw) * p.dt_h


def work_per_throughput(p: SiteParams, k: int, high_mw, work):
    """Compute per unit of curve value: ``work / g(high / peak)``, so capping the high level to ``y``
    delivers ``work_per_throughput * g(y / peak)`` compute units."""
    x_demand = np.maximum(np.asarray(high_mw) / p.peak_mw[k], p.curve_x[k][0])
    return work / throughput(p, k, x_demand)
