"""The site's physics and reward over a horizon as one linear program.

It is the env's :mod:`cpm_env.physics` step, stacked over time, with the same reward, so
its optimum is what a controller that knows the series could earn. Exact because:
the throughput curve is concave piecewise-linear (epigraph rows), battery losses are
convex (charge/discharge split per phase, never both at once at an optimum), the inner
loop's full smoothing pays for its own losses (checked by the scenario's validation), and
the battery set-point respects the same SoC limits the env clips to.

Which class swings in a step, how deep it can be capped and its throughput segments come
from the site model (:mod:`cpm_env.site`), decided from the series exactly as the
physics decides them. A class is flat in a step (one level: the cap moves all its power)
unless the step swings and its low level is below its high level.

Capping a two-level class below its low level flattens its waveform (the env draws the cap
all step): a switch no LP represents. Each solve fixes, per class and step, which side of
the low level the cap is on (two-level first); where the optimum sits on the low level and
the class could be capped deeper, :func:`plan` re-solves with those steps flat, as long as
the objective improves. Both sides agree at the low level, so every solve replays exactly;
the search is local (in the shipped scenarios the lowest cap is above training's low level
and it never runs). Where the cap slew limit can bind within a step, the LP may draw less
than its cap allows, which the env cannot.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from agents.controllers.lp import INF, LinearProgram, WarmStart, as_length
from cpm_env.ops import NUMPY
from cpm_env.physics import smoothing_limits
from cpm_env.site import SiteParams, State, class_swings, curve_segments, lowest_high_mw, swinging_steps

MAX_ROUNDS = 8  # re-solves that hold smoothing to the env's or move caps below a class's low level
SMOOTHING_LIMITS = ("swing", "power_discharge", "power_charge", "energy")  # what bounds the inner loop
_TOL_MW = 1e-6  # interior-point tolerance on powers


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
    duty: np.ndarray  # (H,) the meter waveform's (cpm_env.physics.site_duty)
    limit_mw: np.ndarray
    class_duty: np.ndarray | None = None  # (K, H) each class's own duty; None: every class's is ``duty``


class SitePlan(NamedTuple):
    """The LP's optimal set-points and its objective (the env's reward summed)."""

    battery_mw: np.ndarray  # (H,)
    caps: np.ndarray  # (K, H)
    floors: np.ndarray  # (K, H)
    objective: float
    energy_mwh: np.ndarray  # (H + 1,)
    compute: np.ndarray  # (K, H) compute delivered per class
    smoothing_mw: np.ndarray  # (H,) swing absorbed by the inner loop
    swing_mw: np.ndarray  # (H,) intra-step IT swing before the battery
    high_mw: np.ndarray  # (K, H) high-phase IT power drawn per class


def plan(p: SiteParams, x: Series, start: State, terminal_value: bool = True, backend: str = "clarabel",
         warm: WarmStart | None = None) -> SitePlan:
    """Solve the site LP over the series' horizon from state ``start``; ``terminal_value`` values the
    final SoC. ``backend`` is the LP solver (:data:`agents.controllers.lp.BACKENDS`); ``warm`` (HiGHS)
    re-solves from the last plan's basis (:class:`~agents.controllers.lp.WarmStart`).
    """
    flat = np.zeros(x.high_mw.shape, dtype=bool)  # two-level steps modelled flat (capped below low)
    force = np.zeros((len(SMOOTHING_LIMITS), x.high_mw.shape[1]), dtype=bool)
    best = _SiteLP(p, x, start, flat, force, terminal_value).solve(backend, warm)
    for _ in range(MAX_ROUNDS):
        short = _smoothing_shortfall(p, x, best) & ~force
        if short.any():  # the env's inner loop smooths as far as it can: hold the LP to that
            force |= short
            best = _SiteLP(p, x, start, flat, force, terminal_value).solve(backend, warm)
            continue
        lowest_cap_mw = (np.asarray(p.cap_min) * np.asarray(p.peak_mw))[:, None]
        deeper = class_swings(x.high_mw, x.low_mw, x.duty) & (lowest_cap_mw < x.low_mw - _TOL_MW)
        on_low = deeper & ~flat & (best.high_mw <= x.low_mw + _TOL_MW)
        if not on_low.any():
            break
        trial = _SiteLP(p, x, start, flat | on_low, force, terminal_value).solve(backend, warm)
        if trial.objective <= best.objective + 1e-9 * max(1.0, abs(best.objective)):
            break
        best, flat = trial, flat | on_low
    return best


def _smoothing_shortfall(p: SiteParams, x: Series, sp: SitePlan) -> np.ndarray:
    """Per limit of :data:`SMOOTHING_LIMITS`, the steps where the plan smooths less than the env's inner
    loop would (:func:`cpm_env.physics.smoothing_limits`) and that limit is the one the env reaches."""
    with np.errstate(divide="ignore", invalid="ignore"):
        limits = np.stack(np.broadcast_arrays(*smoothing_limits(p, sp.energy_mwh[:-1], sp.battery_mw, sp.swing_mw,
                                                                np.asarray(x.duty, float), NUMPY)))
    env_u = np.maximum(limits.min(axis=0), 0.0)
    short = env_u > sp.smoothing_mw + _TOL_MW
    return short[None, :] & (np.arange(len(limits))[:, None] == limits.argmin(axis=0)[None, :])


class _SiteLP:
    """The LP of one horizon, built in the order variables and rows are added."""

    def __init__(self, p: SiteParams, x: Series, start: State, flat: np.ndarray, force: np.ndarray,
                 terminal_value: bool):
        self.p, self.x, self.start, self.flat, self.force = p, x, start, flat, force
        self.lp = LinearProgram()
        self.h_len = x.high_mw.shape[1]
        self.d = np.asarray(x.duty, float)
        self.dl = 1.0 - self.d
        zero = np.zeros(self.h_len)
        self.it_mean_terms: list = []  # (var, coef): IT mean = sum + const_it
        self.swing_terms: list = []  # (var, coef): intra-step swing = sum + const_swing
        self.const_it, self.const_swing = zero.copy(), zero.copy()
        self.ys, self.comps, self.burn_terms = [], [], []
        self.lo_vars: dict[int, np.ndarray] = {}
        self.slews: dict[int, np.ndarray] = {}
        for k in range(len(p.peak_mw)):
            self._gpu_class(k)
        self._battery()
        self._grid()
        self._costs(terminal_value)

    # --- GPU classes: high level y (the cap), low level, compute
    def _gpu_class(self, k: int) -> None:
        p, x, lp, d, dl = self.p, self.x, self.lp, self.d, self.dl
        peak, h, lo_raw = p.peak_mw[k], x.high_mw[k], x.low_mw[k]
        swings = class_swings(h, lo_raw, d)
        two_level = swings & ~self.flat[k]  # else flat: the cap moves all of the class's power
        y_min = np.where(self.flat[k], np.minimum(h, p.cap_min[k] * peak), lowest_high_mw(p, k, h, lo_raw, d))
        y_max = np.where(self.flat[k], lo_raw, h)
        y = lp.var(self.h_len, y_min, y_max)
        self.ys.append(y)
        if p.cap_step[k] < 1.0 - p.cap_min[k]:  # slew can bind: model the cap itself
            # the cap only bounds y from above; the plan's caps are the lowest slew-feasible ones
            # above y / peak, so the env's y = min(h, cap * peak) draws y wherever the slew allows
            c = lp.var(self.h_len, p.cap_min[k], 1.0)
            self.slews[k] = c
            lp.rows([(y, 1.0), (c, -peak)], hi=0.0)
            lp.rows([(c[:1], 1.0)], lo=self.start.caps[k] - p.cap_step[k], hi=self.start.caps[k] + p.cap_step[k])
            if self.h_len > 1:
                lp.rows([(c[1:], 1.0), (c[:-1], -1.0)], lo=-p.cap_step[k], hi=p.cap_step[k])
        self.comps.append(self._compute(k, y, y_min, y_max))
        if x.class_duty is not None:  # the class's own duty sets its mean; the step's, the meter's waveform
            d = np.asarray(x.class_duty[k], float)
            dl = 1.0 - d
        a_y = np.where(two_level, d, 1.0)  # IT mean: d y + (1 - d) low where two-level, y where flat
        sw = np.where(two_level, 1.0, 0.0)  # swing: y - low where two-level
        if p.floor_max[k] > 0:
            lo_fixed = np.where(two_level, lo_raw, 0.0)  # flat steps have no separate low level
            lo = lp.var(self.h_len, lo_fixed, np.where(two_level, np.maximum(lo_raw, p.floor_max[k] * peak), 0.0))
            lp.rows([(lo, 1.0), (y, -1.0)], hi=0.0)  # the env's floor never lifts the low above the high
            self.lo_vars[k] = lo
            self.burn_terms.append((lo, dl * sw, lo_fixed))
            self.it_mean_terms += [(y, a_y), (lo, dl * sw)]
            self.swing_terms += [(y, sw), (lo, -sw)]
        else:
            self.it_mean_terms.append((y, a_y))
            self.swing_terms.append((y, sw))
            self.const_it += dl * sw * lo_raw
            self.const_swing -= sw * lo_raw

    def _compute(self, k: int, y: np.ndarray, y_min: np.ndarray, y_max: np.ndarray) -> np.ndarray:
        """Compute of class ``k``: the throughput curve's epigraph over ``y`` in ``[y_min, y_max]`` (the
        segments overlapping it), fixed to the demanded work where ``y`` cannot move."""
        p, x, lp = self.p, self.x, self.lp
        peak = p.peak_mw[k]
        can_cap = y_max > y_min + 1e-12
        work = x.work[k]
        comp = lp.var(self.h_len, np.where(can_cap, -INF, work), np.where(can_cap, INF, work), cost=1.0)
        for seg in curve_segments(p, k):
            # comp <= w * (intercept + slope * y / peak) where the segment overlaps y's range; a row every
            # step (free elsewhere), so horizons of one site have one shape (the MPC's warm start)
            rel = can_cap & (seg.x1 * peak > y_min) & (seg.x0 * peak < y_max)
            w = np.where(rel, x.work_per_throughput[k], 0.0)
            lp.rows([(comp, 1.0), (y, -w * seg.slope / peak)], hi=np.where(rel, w * seg.intercept, INF))
        return comp

    # --- battery: net set-point b, inner-loop smoothing u, phase powers, stored energy
    def _battery(self) -> None:
        p, lp, d, dl, n = self.p, self.lp, self.d, self.dl, self.h_len
        dt_h, pmax = p.dt_h, p.battery_power_mw
        self.fac_terms = [(i, p.pue * c) for i, c in self.it_mean_terms]  # facility mean = terms + fac_const
        self.fac_const = p.pue * self.const_it
        self.b = b = lp.var(n, -INF, INF)  # the phase-power rows below keep it within +-pmax
        self.u = u = lp.var(n, 0.0, np.where(swinging_steps(d), INF, 0.0))
        self.ph_p, ph_m, self.pl_p, pl_m = (lp.var(n) for _ in range(4))
        self.energy = energy = lp.var(n + 1, p.energy_min_mwh, p.energy_max_mwh)
        lp.rows([(energy[:1], 1.0)], lo=self.start.energy_mwh, hi=self.start.energy_mwh)
        lp.rows([(self.ph_p, 1.0), (ph_m, -1.0), (b, -1.0), (u, -dl)], lo=0.0, hi=0.0)
        lp.rows([(self.pl_p, 1.0), (pl_m, -1.0), (b, -1.0), (u, d)], lo=0.0, hi=0.0)
        lp.rows([(b, 1.0), (u, dl)], hi=pmax)
        lp.rows([(b, 1.0), (u, -d)], lo=-pmax)
        eta_c, eta_d = p.eta_charge, p.eta_discharge
        lp.rows([(energy[1:], 1.0), (energy[:-1], -1.0), (self.ph_p, dt_h * d / eta_d), (ph_m, -dt_h * d * eta_c),
                 (self.pl_p, dt_h * dl / eta_d), (pl_m, -dt_h * dl * eta_c)], lo=0.0, hi=0.0)
        # the env clips the set-point to what SoC allows before smoothing: stay inside
        lp.rows([(b, 1.0), (energy[:-1], -eta_d / dt_h)], hi=-p.energy_min_mwh * eta_d / dt_h)
        lp.rows([(b, 1.0), (energy[:-1], -1.0 / (eta_c * dt_h))], lo=-p.energy_max_mwh / (eta_c * dt_h))
        # smoothing cannot exceed the swing: u <= S
        lp.rows([(u, 1.0)] + [(i, -c) for i, c in self.swing_terms], hi=self.const_swing)
        if not p.allow_export:
            lp.rows([(b, 1.0)] + [(i, -c) for i, c in self.fac_terms], hi=self.fac_const)
        self._forced_smoothing()

    def _forced_smoothing(self) -> None:
        """Where :func:`plan` found the LP smoothing less than the env would, smoothing reaches the
        limit the env's inner loop reaches (the rows above keep it from exceeding any limit). A block
        of rows for each limit that binds somewhere, free at the other steps."""
        p, lp, d, dl = self.p, self.lp, self.d, self.dl
        b, u, e = self.b, self.u, self.energy[:-1]
        swing, power_dis, power_chg, energy = self.force
        if swing.any():
            lp.rows([(u, 1.0)] + [(i, -as_length(c, len(d))) for i, c in self.swing_terms],
                    lo=np.where(swing, self.const_swing, -INF))
        if power_dis.any():
            lp.rows([(b, 1.0), (u, dl)], lo=np.where(power_dis, p.battery_power_mw, -INF))
        if power_chg.any():
            lp.rows([(u, d), (b, -1.0)], lo=np.where(power_chg, p.battery_power_mw, -INF))
        if energy.any():
            loss_slope = d * dl * (1.0 / p.eta_discharge - p.eta_charge)
            lp.rows([(u, loss_slope), (b, d / p.eta_discharge + dl * p.eta_charge), (e, -1.0 / p.dt_h)],
                    lo=np.where(energy, -p.energy_min_mwh / p.dt_h, -INF))

    def _grid_terms(self, r_coef):
        """Terms and constant of ``G + r_coef * r`` with mean import G = F - b and residual r = S - u."""
        terms = [(i, c) for i, c in self.fac_terms] + [(self.b, -1.0)]
        terms += [(i, r_coef * c) for i, c in self.swing_terms] + [(self.u, -r_coef)]
        terms = [(i, as_length(c, self.h_len)) for i, c in terms]
        return terms, self.fac_const + r_coef * self.const_swing

    # --- grid: high/low-phase import over the limit, swing over the band, ramp of the mean import
    def _grid(self) -> None:
        p, lp, d, dl, n = self.p, self.lp, self.d, self.dl, self.h_len
        lim = self.x.limit_mw
        self.o_hi, self.o_lo = lp.var(n), lp.var(n)
        t_hi, c_hi = self._grid_terms(dl)
        lp.rows(t_hi + [(self.o_hi, -1.0)], hi=lim - c_hi)
        t_lo, c_lo = self._grid_terms(-d)
        lp.rows(t_lo + [(self.o_lo, -1.0)], hi=lim - c_lo)
        self.s_ex = lp.var(n)
        lp.rows([(self.s_ex, -1.0), (self.u, -1.0)] + [(i, c) for i, c in self.swing_terms],
                hi=p.swing_band_mw - self.const_swing)
        # |G_t - G_{t-1}| <= R + excess_t, G_{-1} = the import before the horizon
        self.r_ex = r_ex = lp.var(n)
        g_terms, g_const = self._grid_terms(0.0)
        for sign in (1.0, -1.0):
            first = [(i[:1], sign * c[:1]) for i, c in g_terms] + [(r_ex[:1], -1.0)]
            lp.rows(first, hi=p.ramp_step_mw - sign * (g_const[:1] - self.start.import_mw))
            if n > 1:
                later = [(i[1:], sign * c[1:]) for i, c in g_terms] + [(i[:-1], -sign * c[:-1]) for i, c in g_terms]
                lp.rows(later + [(r_ex[1:], -1.0)], hi=p.ramp_step_mw - sign * (g_const[1:] - g_const[:-1]))

    # --- objective beyond compute (the compute variables carry cost 1)
    def _costs(self, terminal_value: bool) -> None:
        p, lp, d, dl = self.p, self.lp, self.d, self.dl
        dt_h = p.dt_h
        resid_cost = p.w_residual * dt_h
        lp.add_cost(self.o_hi, -p.w_over_limit * dt_h * d)
        lp.add_cost(self.o_lo, -p.w_over_limit * dt_h * dl)
        lp.add_cost(self.s_ex, -p.w_swing * dt_h)
        lp.add_cost(self.u, resid_cost)  # residual r = S - u: -w r = -w S + w u
        for i, c in self.swing_terms:
            lp.add_cost(i, -resid_cost * c)
        self.const_obj = float(np.sum(-resid_cost * self.const_swing))
        lp.add_cost(self.r_ex, -p.w_ramp)
        lp.add_cost(self.ph_p, -p.w_degradation * dt_h * d)
        lp.add_cost(self.pl_p, -p.w_degradation * dt_h * dl)
        for lo, coef, lo_raw in self.burn_terms:
            lp.add_cost(lo, -p.w_burn * p.pue * dt_h * coef)
            self.const_obj += float(np.sum(p.w_burn * p.pue * dt_h * coef * lo_raw))
        if terminal_value:
            lp.add_cost(self.energy[-1:], p.w_energy)
            self.const_obj -= p.w_energy * self.start.energy_mwh

    def solve(self, backend: str, warm: WarmStart | None = None) -> SitePlan:
        """Solve and read the set-points the env needs to replay the optimum."""
        p, x = self.p, self.x
        sol, obj = self.lp.solve(backend, warm)
        n_cls = len(p.peak_mw)
        caps = np.ones((n_cls, self.h_len))
        floors = np.zeros((n_cls, self.h_len))
        high = np.stack([sol[y] for y in self.ys])
        swing = self.const_swing + sum(as_length(c, self.h_len) * sol[i] for i, c in self.swing_terms)
        for k in range(n_cls):
            yk = high[k]
            capped = yk < x.high_mw[k] - 1e-9
            caps[k] = np.where(capped, yk / p.peak_mw[k], 1.0)
            if k in self.slews:
                caps[k] = lowest_slewed_caps(np.maximum(yk / p.peak_mw[k], p.cap_min[k]), self.start.caps[k],
                                             p.cap_step[k])
            if k in self.lo_vars:
                lo = sol[self.lo_vars[k]]
                floors[k] = np.where(lo > x.low_mw[k] + 1e-9, lo / p.peak_mw[k], 0.0)
        return SitePlan(sol[self.b], caps, floors, obj + self.const_obj, sol[self.energy],
                        np.stack([sol[c] for c in self.comps]), sol[self.u], swing, high)
