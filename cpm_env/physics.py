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

Several swinging classes (any class may swing: training, mixed, traces, request logs) each keep
their own high level, low level and duty, so caps act on each class's real levels and each class's
mean is exact. At the meter their swings are taken to be in phase (their high phases start
together each period: the worst case for the meter's peak, and what jobs synchronized by one
scheduler do), so the site's peak-to-peak swing is the sum of the classes' swings. The meter's
waveform is then summarized as the two-level wave with the same mean, peak and trough, whose duty
(:func:`site_duty`) is the swing-weighted mean of the class duties. Of every waveform with that mean,
peak and trough the two-level one is the most spread (largest in convex order), so every convex
cost of the step -- energy above the limit, the battery's throughput and losses in smoothing -- is
overstated, never understated, while the peak, the swing and the smoothing the battery's rating
allows are exact (tests/test_swing_combination.py checks this against a brute-force 1-second
simulation). The site duty comes from the uncapped demand, so it is exogenous (the LP stays
linear); caps that cut one class's swing more than another's move the peak by
``sum_k (d_k - d) * swing_k``. With one swinging class nothing changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from cpm_env.site import PerClass, Scalar, SiteParams, State, any_true, class_swings, state_of_charge, swinging_steps

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
    duty: Scalar  # fraction of the step at the high level of the meter's two-level waveform (site_duty)
    limit_mw: Scalar
    class_duty: PerClass | None = None  # per class, its own duty; None: every class's is ``duty``


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


def site_duty(high_mw, low_mw, duty) -> tuple:
    """(the step's site duty, each class's duty) of the meter's shared two-level waveform (module doc).

    Arrays of shape (n_classes, n_steps, n_envs): each class's uncapped high and low levels (MW) and
    duty (fraction of the step at its high level). The site duty is the swing-weighted mean of the
    duties of the classes that swing (:func:`cpm_env.site.class_swings`): the one swinging class's
    where one swings, the smallest class duty where none does. A class that does not swing gets the site
    duty as its own (it has one level, so its duty is immaterial): where one class swings, every
    class's duty is the step's, exactly as in a one-swing site.
    """
    high, low, duty = (np.asarray(a, dtype=float) for a in (high_mw, low_mw, duty))
    swings = class_swings(high, low, duty)
    n_swinging = swings.sum(axis=0)
    site = duty.min(axis=0)
    if (n_swinging == 1).any():  # the one swinging class's duty, whatever the flat ones' (a failed job's is 0)
        site = np.where(n_swinging == 1, np.where(swings, duty, 1.0).min(axis=0), site)
    several = n_swinging >= 2
    if several.any():
        s = np.where(swings, high - low, 0.0)
        weighted = (np.where(swings, duty, 0.0) * s).sum(axis=0) / np.maximum(s.sum(axis=0), _TINY)
        site = np.where(several, weighted, site)
    return site, np.where(swings & several, duty, np.broadcast_to(site, duty.shape))


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


def realized_cap(p: SiteParams, k: int, cap_in_force, target, ops):
    """The cap (fraction of TDP) class ``k`` gets this step for set-point ``target``: within [cap_min, 1] and,
    where it can bind, the slew limit around the cap in force."""
    c = _clip(target, p.cap_min[k], 1.0, ops)
    if any_true(p.cap_step[k] < 1.0 - p.cap_min[k]):  # the slew limit can bind within one step
        c = _clip(c, ops.maximum(p.cap_min[k], cap_in_force - p.cap_step[k]),
                  ops.minimum(1.0, cap_in_force + p.cap_step[k]), ops)
    return c


def _it_levels(p: SiteParams, s: State, a: Action, x: Exo, ops) -> tuple:
    """What the caps and floors do to IT power this step: (caps, floors, per-class high-phase power y, then
    summed over classes the high-phase, low-phase and mean IT power and the IT power burned by floors)."""
    class_duty = x.class_duty
    d = x.duty
    d_lo = 1.0 - d
    caps, floors, highs = [], [], []
    it_hi = it_lo = it_mean = burn_it = 0.0
    for k, peak in enumerate(p.peak_mw):
        if class_duty is not None:
            d = class_duty[k]
            d_lo = 1.0 - d
        c = realized_cap(p, k, s.caps[k], a.caps[k], ops)
        y = ops.minimum(x.high_mw[k], c * peak)
        lo = ops.minimum(x.low_mw[k], y)
        f = s.floors[k]
        if any_true(p.floor_max[k] > 0.0):
            f = _clip(a.floors[k], ops.maximum(0.0, f - p.cap_step[k]),
                      ops.minimum(p.floor_max[k], f + p.cap_step[k]), ops)
            lo_raw = lo
            lo = ops.maximum(lo_raw, ops.minimum(f * peak, y))
            burn_it = burn_it + d_lo * (lo - lo_raw)
        it_hi = it_hi + y
        it_lo = it_lo + lo
        it_mean = it_mean + d * y + d_lo * lo
        caps.append(c)
        floors.append(f)
        highs.append(y)
    return tuple(caps), tuple(floors), highs, it_hi, it_lo, it_mean, burn_it


def _gpu_levers(p: SiteParams, s: State, a: Action, x: Exo, ops) -> _Levers:
    """Caps clip the high level, floors raise the low level (burning energy), both slew-limited."""
    caps, floors, highs, it_hi, it_lo, it_mean, burn_it = _it_levels(p, s, a, x, ops)
    demanded: Scalar
    compute = demanded = 0.0
    for k, peak in enumerate(p.peak_mw):
        y = highs[k]
        g = ops.interp(y / peak, p.curve_x[k], p.curve_y[k])
        compute = compute + ops.where(y >= x.high_mw[k], x.work[k], x.work_per_throughput[k] * g)
        demanded = demanded + x.work[k]
    return _Levers(caps, floors, it_hi, it_lo, it_mean, burn_it, compute, demanded)


def _facility(p: SiteParams, it_hi, it_lo, it_mean, duty, ops) -> tuple:
    """The facility's mean power and its intra-step swing (MW) from the IT power: PUE scales the mean; cooling
    does not follow 0.2-3 Hz swings, so the swing is IT only."""
    return p.pue * it_mean, ops.where(swinging_steps(duty), it_hi - it_lo, 0.0)


def facility_power(p: SiteParams, s: State, a: Action, x: Exo, ops) -> tuple:
    """(caps realized per class, facility mean MW, facility swing MW) of set-points ``a`` this step, as
    :func:`step` computes them (without the compute the caps deliver)."""
    caps, _, _, it_hi, it_lo, it_mean, _ = _it_levels(p, s, a, x, ops)
    return (caps, *_facility(p, it_hi, it_lo, it_mean, x.duty, ops))


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
    _, facility_mw, _ = facility_power(p, s, a, x, ops)
    return Action(facility_mw - import_mw, a.caps, a.floors)


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


def battery_at_meter(p: SiteParams, energy_mwh, setpoint_mw, facility_mw, swing_mw, duty, ops) -> tuple:
    """(net battery power MW as realized, swing MW the inner loop smooths) for set-point ``setpoint_mw`` at a
    facility mean ``facility_mw`` and swing ``swing_mw``: :func:`battery_setpoint`, then as much of the swing
    as :func:`smoothing_limits` allow."""
    b = battery_setpoint(p, energy_mwh, setpoint_mw, facility_mw, ops)
    want, u_discharge, u_charge, u_energy = smoothing_limits(p, energy_mwh, b, swing_mw, duty, ops)
    return b, ops.maximum(ops.minimum(ops.minimum(want, ops.minimum(u_discharge, u_charge)), u_energy), 0.0)


def grid_import(facility_mw, battery_mw, swing_mw, smoothed_mw, duty) -> tuple:
    """(step-mean, high-phase and low-phase grid import, residual swing at the meter), MW, for a facility mean
    and swing, the battery's net power and the swing it smooths."""
    g_mean = facility_mw - battery_mw
    resid = swing_mw - smoothed_mw
    return g_mean, g_mean + (1.0 - duty) * resid, g_mean - duty * resid, resid


def step(p: SiteParams, s: State, a: Action, x: Exo, ops) -> tuple[State, Outputs]:
    """Advance one control step. Pure: returns the new state and the step's outputs."""
    dt_h, d = p.dt_h, x.duty
    d_lo = 1.0 - d
    gpu = _gpu_levers(p, s, a, x, ops)
    fac_mean, swing = _facility(p, gpu.it_hi, gpu.it_lo, gpu.it_mean, d, ops)

    # Battery: the realized set-point, then the inner loop absorbs what swing it can.
    e, eta_c, eta_d = s.energy_mwh, p.eta_charge, p.eta_discharge
    b, u = battery_at_meter(p, e, a.battery_mw, fac_mean, swing, d, ops)
    p_hi = b + d_lo * u
    p_lo = b - d * u
    dis = d * ops.maximum(p_hi, 0.0) + d_lo * ops.maximum(p_lo, 0.0)  # MW, step mean
    chg = d * ops.maximum(-p_hi, 0.0) + d_lo * ops.maximum(-p_lo, 0.0)
    energy_out = dt_h * (dis / eta_d - chg * eta_c)
    e_new = e - energy_out
    discharged, charged = dis * dt_h, chg * dt_h

    # Grid: mean import, what the battery did not smooth, and the contract's violations.
    g_mean, g_hi, g_lo, resid = grid_import(fac_mean, b, swing, u, d)
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
    soc = state_of_charge(p, e_new)
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
