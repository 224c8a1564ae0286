"""The site's physics and reward over a horizon as one linear program.

It is the env's :mod:`cpm_env.physics` step, stacked over time, with the same reward, so
its optimum is what a controller that knows the series could earn. Exact because:
the throughput curve is concave piecewise-linear (epigraph rows), battery losses are
convex (charge/discharge split per phase, never both at once at an optimum), the inner
loop's full smoothing pays for its own losses (checked by the scenario's validation), and
the battery set-point respects the same SoC limits the env clips to.

Which class swings in a step, how deep it can be capped and its throughput segments come
from the site model (:mod:`cpm_env.site_model`), decided from the series exactly as the
physics decides them. A class is flat in a step (one level: the cap moves all its power)
unless the step swings and its low level is below its high level.

Limits: a two-level class is not capped below its low level here (that would flatten its
waveform, a non-convex switch); the env could, which only matters where the lowest cap is
below the low level (mixed pools). Where the cap slew limit can bind within a step, the LP
may draw less than its cap allows, which the env cannot.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from agents.controllers.lp import INF, LinearProgram
from cpm_env.physics import State
from cpm_env.site_model import SiteParams, class_swings, curve_segments, lowest_high_mw, swinging_steps


def _compute(lp: LinearProgram, p: SiteParams, k: int, x: Series, y: np.ndarray, y_min: np.ndarray) -> np.ndarray:
    """Compute variables of class ``k``: the concave throughput curve's epigraph over the high level
    ``y`` in ``[y_min, high]`` (only the segments overlapping that range), fixed to the demanded
    work where ``y`` cannot move."""
    peak, h = p.peak_mw[k], x.high_mw[k]
    can_cap = h > y_min + 1e-12
    comp = lp.var(len(h), np.where(can_cap, -INF, x.work[k]), np.where(can_cap, INF, x.work[k]), cost=1.0)
    for seg in curve_segments(p, k):
        # comp <= w * (intercept + slope * y / peak)
        rel = can_cap & (seg.x1 * peak > y_min) & (seg.x0 * peak < h)
        w = x.work_per_throughput[k][rel]
        lp.rows([(comp[rel], 1.0), (y[rel], -w * seg.slope / peak)], hi=w * seg.intercept)
    return comp


def lowest_slewed_caps(cap_lower: np.ndarray, cap_start: float, cap_step: float) -> np.ndarray:
    """The lowest cap sequence (fractions of TDP) with ``cap >= cap_lower`` that moves at most
    ``cap_step`` per step from ``cap_start``: ``max_s(lower_s - step |t - s|)``, by two passes."""
    caps = np.array(cap_lower, dtype=float)
    caps[0] = max(caps[0], cap_start - cap_step)
    for t in range(1, len(caps)):
        caps[t] = max(caps[t], caps[t - 1] - cap_step)
    for t in range(len(caps) - 2, -1, -1):
        caps[t] = max(caps[t], caps[t + 1] - cap_step)
    return caps


class Series(NamedTuple):
    """Exogenous inputs over the horizon: per class (K, H), per step (H,)."""

    high_mw: np.ndarray
    low_mw: np.ndarray
    work: np.ndarray
    work_per_throughput: np.ndarray
    duty: np.ndarray
    limit_mw: np.ndarray


class SitePlan(NamedTuple):
    """The LP's optimal set-points and its objective (the env's reward summed)."""

    battery_mw: np.ndarray  # (H,)
    caps: np.ndarray  # (K, H)
    floors: np.ndarray  # (K, H)
    objective: float
    energy_mwh: np.ndarray  # (H + 1,)
    compute: np.ndarray  # (K, H) compute delivered per class
    smoothing_mw: np.ndarray  # (H,) swing absorbed by the inner loop


def plan(p: SiteParams, x: Series, start: State, terminal_value: bool = True, backend: str = "clarabel") -> SitePlan:
    """Solve the site LP over the series' horizon from state ``start``; ``terminal_value`` values the
    final SoC. ``backend`` is the LP solver (:data:`agents.controllers.lp.BACKENDS`).
    """
    lp = LinearProgram()
    n_cls, h_len = x.high_mw.shape
    dt_h, pue = p.dt_h, p.pue
    d = np.asarray(x.duty, float)
    dl = 1.0 - d
    swinging = swinging_steps(d)
    zero = np.zeros(h_len)

    # --- GPU classes: high level y (the cap), low level, compute
    it_mean_terms, swing_terms, ys, burn_terms = [], [], [], []
    lo_vars: dict[int, np.ndarray] = {}
    slews: dict[int, np.ndarray] = {}
    comps = []
    const_it, const_swing = zero.copy(), zero.copy()
    for k in range(n_cls):
        peak, h, lo_raw = p.peak_mw[k], x.high_mw[k], x.low_mw[k]
        two_level = class_swings(h, lo_raw, d)  # else flat: the cap moves all of the class's power
        y_min = lowest_high_mw(p, k, h, lo_raw, d)
        y = lp.var(h_len, y_min, h)
        ys.append(y)
        if p.cap_step[k] < 1.0 - p.cap_min[k]:  # slew can bind: model the cap itself
            # the cap only bounds y from above; the plan's caps are the lowest slew-feasible ones
            # above y / peak, so the env's y = min(h, cap * peak) draws y wherever the slew allows
            c = lp.var(h_len, p.cap_min[k], 1.0)
            slews[k] = c
            lp.rows([(y, 1.0), (c, -peak)], hi=0.0)
            lp.rows([(c[:1], 1.0)], lo=start.caps[k] - p.cap_step[k], hi=start.caps[k] + p.cap_step[k])
            if h_len > 1:
                lp.rows([(c[1:], 1.0), (c[:-1], -1.0)], lo=-p.cap_step[k], hi=p.cap_step[k])
        comps.append(_compute(lp, p, k, x, y, y_min))
        a_y = np.where(two_level, d, 1.0)  # IT mean: d y + (1 - d) low where two-level, y where flat
        sw = np.where(two_level, 1.0, 0.0)  # swing: y - low where two-level
        if p.floor_max[k] > 0:
            lo_fixed = np.where(two_level, lo_raw, 0.0)  # flat steps have no separate low level
            lo = lp.var(h_len, lo_fixed, np.where(two_level, np.maximum(lo_raw, p.floor_max[k] * peak), 0.0))
            lp.rows([(lo, 1.0), (y, -1.0)], hi=0.0)  # the env's floor never lifts the low above the high
            lo_vars[k] = lo
            burn_terms.append((lo, dl * sw, lo_fixed))
            it_mean_terms += [(y, a_y), (lo, dl * sw)]
            swing_terms += [(y, sw), (lo, -sw)]
        else:
            it_mean_terms.append((y, a_y))
            swing_terms.append((y, sw))
            const_it += dl * sw * lo_raw
            const_swing -= sw * lo_raw

    # facility mean F = pue * (sum terms + const_it); swing S = swing terms + const_swing
    fac_terms = [(i, pue * c) for i, c in it_mean_terms]
    fac_const = pue * const_it

    # --- battery
    pmax = p.battery_power_mw
    b = lp.var(h_len, -INF, INF)  # the phase-power rows below keep it within +-pmax
    u = lp.var(h_len, 0.0, np.where(swinging, INF, 0.0))
    ph_p, ph_m, pl_p, pl_m = (lp.var(h_len) for _ in range(4))
    energy = lp.var(h_len + 1, p.energy_min_mwh, p.energy_max_mwh)
    lp.rows([(energy[:1], 1.0)], lo=start.energy_mwh, hi=start.energy_mwh)
    lp.rows([(ph_p, 1.0), (ph_m, -1.0), (b, -1.0), (u, -dl)], lo=0.0, hi=0.0)
    lp.rows([(pl_p, 1.0), (pl_m, -1.0), (b, -1.0), (u, d)], lo=0.0, hi=0.0)
    lp.rows([(b, 1.0), (u, dl)], hi=pmax)
    lp.rows([(b, 1.0), (u, -d)], lo=-pmax)
    eta_c, eta_d = p.eta_charge, p.eta_discharge
    lp.rows([(energy[1:], 1.0), (energy[:-1], -1.0), (ph_p, dt_h * d / eta_d), (ph_m, -dt_h * d * eta_c),
             (pl_p, dt_h * dl / eta_d), (pl_m, -dt_h * dl * eta_c)], lo=0.0, hi=0.0)
    # the env clips the set-point to what SoC allows before smoothing: stay inside
    lp.rows([(b, 1.0), (energy[:-1], -eta_d / dt_h)], hi=-p.energy_min_mwh * eta_d / dt_h)
    lp.rows([(b, 1.0), (energy[:-1], -1.0 / (eta_c * dt_h))], lo=-p.energy_max_mwh / (eta_c * dt_h))
    # smoothing cannot exceed the swing: u <= S
    lp.rows([(u, 1.0)] + [(i, -c) for i, c in swing_terms], hi=const_swing)
    if not p.allow_export:
        lp.rows([(b, 1.0)] + [(i, -c) for i, c in fac_terms], hi=fac_const)

    # --- grid: G = F - b; r = S - u; G_hi = G + (1-d) r; G_lo = G - d r
    def grid_terms(r_coef):
        terms = [(i, c) for i, c in fac_terms] + [(b, -1.0)]
        terms += [(i, r_coef * c) for i, c in swing_terms] + [(u, -r_coef)]
        terms = [(i, np.broadcast_to(np.asarray(c, float), (h_len,))) for i, c in terms]
        return terms, fac_const + r_coef * const_swing

    lim = x.limit_mw
    o_hi, o_lo = lp.var(h_len), lp.var(h_len)
    t_hi, c_hi = grid_terms(dl)
    lp.rows(t_hi + [(o_hi, -1.0)], hi=lim - c_hi)
    t_lo, c_lo = grid_terms(-d)
    lp.rows(t_lo + [(o_lo, -1.0)], hi=lim - c_lo)
    s_ex = lp.var(h_len)
    lp.rows([(s_ex, -1.0), (u, -1.0)] + [(i, c) for i, c in swing_terms], hi=p.swing_band_mw - const_swing)
    # ramp on the mean import: |G_t - G_{t-1}| <= R + excess_t, G_{-1} = the import before the horizon
    r_ex = lp.var(h_len)
    g_terms, g_const = grid_terms(0.0)
    for sign in (1.0, -1.0):
        first = [(i[:1], sign * c[:1]) for i, c in g_terms] + [(r_ex[:1], -1.0)]
        lp.rows(first, hi=p.ramp_step_mw - sign * (g_const[:1] - start.import_mw))
        if h_len > 1:
            later = [(i[1:], sign * c[1:]) for i, c in g_terms] + [(i[:-1], -sign * c[:-1]) for i, c in g_terms]
            lp.rows(later + [(r_ex[1:], -1.0)], hi=p.ramp_step_mw - sign * (g_const[1:] - g_const[:-1]))

    # --- objective beyond compute
    resid_cost = p.w_residual * dt_h
    lp.add_cost(o_hi, -p.w_over_limit * dt_h * d)
    lp.add_cost(o_lo, -p.w_over_limit * dt_h * dl)
    lp.add_cost(s_ex, -p.w_swing * dt_h)
    lp.add_cost(u, resid_cost)  # residual r = S - u: -w r = -w S + w u
    for i, c in swing_terms:
        lp.add_cost(i, -resid_cost * c)
    const_obj = float(np.sum(-resid_cost * const_swing))
    lp.add_cost(r_ex, -p.w_ramp)
    lp.add_cost(ph_p, -p.w_degradation * dt_h * d)
    lp.add_cost(pl_p, -p.w_degradation * dt_h * dl)
    for lo, coef, lo_raw in burn_terms:
        lp.add_cost(lo, -p.w_burn * pue * dt_h * coef)
        const_obj += float(np.sum(p.w_burn * pue * dt_h * coef * lo_raw))
    if terminal_value:
        lp.add_cost(energy[-1:], p.w_energy)
        const_obj -= p.w_energy * start.energy_mwh

    sol, obj = lp.solve(backend)
    caps = np.ones((n_cls, h_len))
    floors = np.zeros((n_cls, h_len))
    for k in range(n_cls):
        yk = sol[ys[k]]
        capped = yk < x.high_mw[k] - 1e-9
        caps[k] = np.where(capped, yk / p.peak_mw[k], 1.0)
        if k in slews:
            caps[k] = lowest_slewed_caps(np.maximum(yk / p.peak_mw[k], p.cap_min[k]), start.caps[k], p.cap_step[k])
        if k in lo_vars:
            lo = sol[lo_vars[k]]
            floors[k] = np.where(lo > x.low_mw[k] + 1e-9, lo / p.peak_mw[k], 0.0)
    return SitePlan(sol[b], caps, floors, obj + const_obj, sol[energy], np.stack([sol[c] for c in comps]),
                    sol[u])
