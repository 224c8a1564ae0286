"""Pure site dynamics: GPU caps -> power and compute, battery with intra-step smoothing, grid.

Two time scales in closed form. Within a control step of ``dt_h`` hours the swinging GPU
class alternates between a high (compute) level for a fraction ``duty`` of the time and a
low (communication) level; flat classes (inference) sit at one level. The facility's
waveform is therefore a square wave around its mean (PUE scales the mean; cooling does
not follow sub-second swings, so the swing is the IT swing). The battery's inner loop
absorbs that swing as far as the power left after the supervisor's net set-point and the
stored energy allow, with the same gain in both phases, so the swing nets to zero energy
at the meter and costs only conversion losses. What it cannot absorb shows at the meter
as the residual swing.

Every function takes an ``ops`` namespace (:mod:`cpm_env.ops`) and works on floats or on
numpy arrays with a leading batch axis; per-class quantities are tuples over classes.
Units: power MW, energy MWh, time h, caps and floors as fractions of TDP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from cpm_env.site import PerClass, Scalar, SiteParams, State, swinging_steps

_TINY = 1e-12


class Action(NamedTuple):
    """Set-points in physical units (see :mod:`cpm_env.spaces` for the [-1, 1] mapping)."""

    battery_mw: Scalar  # + discharge into the site, - charge
    caps: PerClass  # cap targets, fraction of TDP
    floors: PerClass  # floor targets, fraction of TDP


def setpoint_columns(action: Action, floor_idx: Sequence[int]) -> list:
    """The set-points of an :class:`Action` in action-entry order (:mod:`cpm_env.spaces`): battery MW,
    the cap of each class, the floor of each class in ``floor_idx`` (floats, arrays or tensors)."""
    return [action.battery_mw, *action.caps, *(action.floors[k] for k in floor_idx)]


def action_from_setpoints(setpoints: Sequence, n_classes: int, floor_idx: Sequence[int]) -> Action:
    """Inverse of :func:`setpoint_columns`: the floors of classes not in ``floor_idx`` are 0."""
    floors = [0.0 * setpoints[0]] * n_classes
    for j, k in enumerate(floor_idx):
        floors[k] = setpoints[1 + n_classes + j]
    return Action(setpoints[0], tuple(setpoints[1:1 + n_classes]), tuple(floors))


class Exo(NamedTuple):
    """One step of the exogenous trajectory (uncapped demand and the import limit)."""

    high_mw: PerClass  # per class, compute-phase IT power
    low_mw: PerClass  # per class, low-phase IT power (= high for flat classes)
    work: PerClass  # per class, full-speed compute demanded this step (compute units)
    work_per_throughput: PerClass  # work / g(high / peak): compute per unit of curve value
    duty: Scalar  # fraction of the step at the high level
    limit_mw: Scalar


class Outputs(NamedTuple):
    """Per-step results; all are reported in ``info`` under these names."""

    reward: Scalar
    compute_delivered: Scalar  # compute units (MW of GPUs at full speed x h)
    compute_demanded: Scalar
    it_power_mw: Scalar  # step mean
    facility_power_mw: Scalar  # step mean
    facility_swing_mw: Scalar  # peak-to-peak intra-step swing before the battery (IT)
    battery_power_mw: Scalar  # step mean, + discharging into the site
    grid_import_mw: Scalar  # step mean = facility - battery
    grid_import_peak_mw: Scalar  # high-phase import
    grid_limit_mw: Scalar
    residual_swing_mw: Scalar  # peak-to-peak at the meter
    over_limit_mwh: Scalar
    peak_overshoot_mw: Scalar
    swing_excess_mw: Scalar
    ramp_excess_mw: Scalar
    battery_discharged_mwh: Scalar
    battery_charged_mwh: Scalar
    battery_loss_mwh: Scalar
    burn_mwh: Scalar
    soc: Scalar
    energy_mwh: Scalar


def _clip(x, lo, hi, ops):
    return ops.minimum(ops.maximum(x, lo), hi)


class _Levers(NamedTuple):
    """What the GPU levers did in one step (per-site sums over classes, and the new set-points)."""

    caps: tuple
    floors: tuple
    it_hi: Scalar  # IT power in the high phase
    it_lo: Scalar  # IT power in the low phase
    it_mean: Scalar
    burn_it: Scalar  # IT power burned by floors, step mean
    compute: Scalar
    demanded: Scalar


def _gpu_levers(p: SiteParams, s: State, a: Action, x: Exo, ops) -> _Levers:
    """Caps clip the high level, floors raise the low level (burning energy), both slew-limited."""
    d = x.duty
    d_lo = 1.0 - d
    caps, floors = [], []
    demanded: Scalar
    it_hi = it_lo = it_mean = burn_it = compute = demanded = 0.0
    for k, peak in enumerate(p.peak_mw):
        c = _clip(a.caps[k], p.cap_min[k], 1.0, ops)
        if p.cap_step[k] < 1.0 - p.cap_min[k]:  # the slew limit can bind within one step
            c = _clip(c, ops.maximum(p.cap_min[k], s.caps[k] - p.cap_step[k]),
                      ops.minimum(1.0, s.caps[k] + p.cap_step[k]), ops)
        h = x.high_mw[k]
        y = ops.minimum(h, c * peak)
        lo = ops.minimum(x.low_mw[k], y)
        f = s.floors[k]
        if p.floor_max[k] > 0.0:
            f = _clip(a.floors[k], ops.maximum(0.0, f - p.cap_step[k]),
                      ops.minimum(p.floor_max[k], f + p.cap_step[k]), ops)
            lo_raw = lo
            lo = ops.maximum(lo_raw, ops.minimum(f * peak, y))
            burn_it = burn_it + d_lo * (lo - lo_raw)
        it_hi = it_hi + y
        it_lo = it_lo + lo
        it_mean = it_mean + d * y + d_lo * lo
        g = ops.interp(y / peak, p.curve_x[k], p.curve_y[k])
        compute = compute + ops.where(y >= h, x.work[k], x.work_per_throughput[k] * g)
        demanded = demanded + x.work[k]
        caps.append(c)
        floors.append(f)
    return _Levers(tuple(caps), tuple(floors), it_hi, it_lo, it_mean, burn_it, compute, demanded)


def battery_setpoint(p: SiteParams, energy_mwh, setpoint_mw, facility_mw, ops):
    """The supervisor's net battery power (MW, + discharge) as realized: within the power rating, what
    the stored energy allows this step, and (without export) at most the facility's mean power."""
    e, pmax, dt_h = energy_mwh, p.battery_power_mw, p.dt_h
    b = _clip(setpoint_mw, -pmax, pmax, ops)
    b = _clip(b, -(p.energy_max_mwh - e) / (p.eta_charge * dt_h), (e - p.energy_min_mwh) * p.eta_discharge / dt_h, ops)
    if not p.allow_export:
        b = ops.minimum(b, facility_mw)
    return b


BATTERY_ACTIONS = ("power", "import_change")  # what a policy's first action sets (env option battery_action)


def battery_for_import(p: SiteParams, s: State, a: Action, x: Exo, import_mw, ops) -> Action:
    """``a`` with its battery set-point (MW, + discharge) replaced by the one that puts the step-mean
    grid import at ``import_mw`` (MW) with the caps and floors ``a`` gets this step (slew included):
    the facility's mean power minus ``import_mw``. :func:`step` still applies the battery's power,
    energy and export limits, so where they bind the import lands elsewhere."""
    gpu = _gpu_levers(p, s, a, x, ops)
    return Action(p.pue * gpu.it_mean - import_mw, a.caps, a.floors)


def smoothing_limits(p: SiteParams, energy_mwh, battery_mw, swing_mw, duty, ops) -> tuple:
    """What bounds the inner loop's smoothing (MW peak-to-peak absorbed) around net power ``battery_mw``:
    the swing itself, the power left in the high phase (discharging) and in the low phase
    (charging), and the stored energy above the floor that smoothing losses may use.
    The inner loop smooths ``max(min(...), 0)`` of these, the same gain in both phases."""
    d, d_lo = duty, 1.0 - duty
    pmax, eta_c, eta_d = p.battery_power_mw, p.eta_charge, p.eta_discharge
    u_discharge = (pmax - battery_mw) / ops.maximum(d_lo, _TINY)
    u_charge = (pmax + battery_mw) / ops.maximum(d, _TINY)
    loss_slope = d * d_lo * (1.0 / eta_d - eta_c)
    u_energy_raw = ((energy_mwh - p.energy_min_mwh) / p.dt_h - battery_mw * (d / eta_d + d_lo * eta_c)) / ops.maximum(
        loss_slope, _TINY
    )
    u_energy = ops.where(loss_slope > _TINY, u_energy_raw, ops.inf)
    return swing_mw, u_discharge, u_charge, u_energy


def step(p: SiteParams, s: State, a: Action, x: Exo, ops) -> tuple[State, Outputs]:
    """Advance one control step. Pure: returns the new state and the step's outputs."""
    dt_h, d = p.dt_h, x.duty
    d_lo = 1.0 - d
    gpu = _gpu_levers(p, s, a, x, ops)
    fac_mean = p.pue * gpu.it_mean
    # Cooling does not follow 0.2-3 Hz swings: PUE scales the mean, the swing is IT only.
    swing = ops.where(swinging_steps(d), gpu.it_hi - gpu.it_lo, 0.0)

    # Battery: the realized set-point, then the inner loop absorbs what swing it can.
    e, eta_c, eta_d = s.energy_mwh, p.eta_charge, p.eta_discharge
    b = battery_setpoint(p, e, a.battery_mw, fac_mean, ops)
    want, u_discharge, u_charge, u_energy = smoothing_limits(p, e, b, swing, d, ops)
    u = ops.maximum(ops.minimum(ops.minimum(want, ops.minimum(u_discharge, u_charge)), u_energy), 0.0)
    p_hi = b + d_lo * u
    p_lo = b - d * u
    dis = d * ops.maximum(p_hi, 0.0) + d_lo * ops.maximum(p_lo, 0.0)  # MW, step mean
    chg = d * ops.maximum(-p_hi, 0.0) + d_lo * ops.maximum(-p_lo, 0.0)
    energy_out = dt_h * (dis / eta_d - chg * eta_c)
    e_new = e - energy_out
    discharged, charged = dis * dt_h, chg * dt_h

    # Grid: mean import, what the battery did not smooth, and the contract's violations.
    g_mean = fac_mean - b
    resid = swing - u
    g_hi = g_mean + d_lo * resid
    g_lo = g_mean - d * resid
    lim = x.limit_mw
    over_hi = ops.maximum(g_hi - lim, 0.0)
    over_mwh = dt_h * (d * over_hi + d_lo * ops.maximum(g_lo - lim, 0.0))
    swing_excess = ops.maximum(resid - p.swing_band_mw, 0.0)
    ramp_excess = ops.maximum(ops.abs(g_mean - s.import_mw) - p.ramp_step_mw, 0.0)
    burn_mwh = p.pue * gpu.burn_it * dt_h

    reward = (
        gpu.compute
        - p.w_over_limit * over_mwh
        - p.w_swing * swing_excess * dt_h
        - p.w_residual * resid * dt_h
        - p.w_ramp * ramp_excess
        - p.w_degradation * discharged
        - p.w_burn * burn_mwh
        + p.w_energy * (e_new - e)
    )
    soc = e_new / p.capacity_mwh if p.capacity_mwh > 0 else 0.0 * e_new
    out = Outputs(
        reward=reward,
        compute_delivered=gpu.compute,
        compute_demanded=gpu.demanded,
        it_power_mw=gpu.it_mean,
        facility_power_mw=fac_mean,
        facility_swing_mw=swing,
        battery_power_mw=b,
        grid_import_mw=g_mean,
        grid_import_peak_mw=g_hi,
        grid_limit_mw=lim,
        residual_swing_mw=resid,
        over_limit_mwh=over_mwh,
        peak_overshoot_mw=over_hi,
        swing_excess_mw=swing_excess,
        ramp_excess_mw=ramp_excess,
        battery_discharged_mwh=discharged,
        battery_charged_mwh=charged,
        battery_loss_mwh=energy_out - (discharged - charged),
        burn_mwh=burn_mwh,
        soc=soc,
        energy_mwh=e_new,
    )
    return State(e_new, g_mean, gpu.caps, gpu.floors), out
