"""Receding-horizon MPC: the site LP over the next steps, on what the observation says.

Each step, per site, it builds the horizon's series from the observation only: the current
step's per-class demand (exact), the facility-demand forecast entries (interpolated between
its horizons, split over classes in the current proportions), the current duty, and the
grid limit with any announced demand-response window. It solves :func:`agents.controllers.site_lp.plan`
with the stored energy valued at the horizon's end and applies the first step. With HiGHS (the
default) each site's LP re-solves warm from the last decision's basis
(:class:`~agents.controllers.lp.WarmStart`): the same LP, so the same decisions to solver
tolerance, in a few milliseconds instead of tens.
"""

from __future__ import annotations

import time

import numpy as np

from agents.controllers.base import ObsView
from agents.controllers.lp import WarmStart
from agents.controllers.oracle import actions_from_plan
from agents.controllers.rules import Greedy
from agents.controllers.site_lp import Series, plan
from cpm_env.scenario import Site
from cpm_env.site import State, class_levels, work_estimate, work_per_throughput


class MPC:
    """Receding-horizon LP controller on the observation's forecast entries (the scenario's forecast.kind)."""

    def __init__(self, site: Site, horizon_steps: int | None = None, backend: str = "highs", warm_start: bool = True):
        self.site, self.params, self.cfg = site, site.params, site.config
        self.backend, self.warm_start = backend, warm_start  # warm_start False: each LP built and solved cold
        self.view = ObsView(site)
        fc = self.cfg.forecast
        self.horizons = list(fc.horizons_steps) if fc.enabled else []
        self.horizon = horizon_steps or (max(self.horizons) if self.horizons else 30)
        self.horizon = min(self.horizon, 60)
        self.solve_seconds: list[float] = []
        self.fallbacks = 0  # steps where no plan was found and the greedy rule acted
        self.fallback = Greedy(site)
        self._warm: list[WarmStart] = []  # one per observation row (site) of a batch

    def _series(self, obs_row: np.ndarray) -> tuple[Series, State]:
        v, p, cfg, n = self.view, self.params, self.cfg, self.horizon
        row = obs_row[None, :]
        get = lambda name: float(v(row, name)[0])  # noqa: E731
        duty = get("duty")
        now = get("facility_demand")
        if self.horizons and now > 0:
            lead = np.arange(n)
            known = np.array([0] + self.horizons, dtype=float)
            values = np.array([now] + [get(f"forecast_{h}") for h in self.horizons])
            scale = np.interp(lead, known, values) / now
        else:
            scale = np.ones(n)
        high, low, work, wpt = [], [], [], []
        observed = v.class_duty(row)
        duties = [float(d[0]) for d in observed] if observed is not None else [duty] * len(self.site.class_names)
        for k, name in enumerate(self.site.class_names):
            peak = p.peak_mw[k]
            mean, swing, dk = get(f"demand_{name}"), get(f"swing_{name}"), duties[k]
            h0, l0 = class_levels(mean, swing, dk)
            hk = np.minimum(h0 * scale, peak)
            lk = np.minimum(l0 * scale, hk)
            wk = work_estimate(p, k, hk, dk)
            high.append(hk)
            low.append(lk)
            work.append(wk)
            wpt.append(work_per_throughput(p, k, hk, wk))
        limit = np.full(n, get("grid_limit"))
        dr_limit = get("dr_limit")
        if get("dr_pending") > 0.5:
            start = int(round(get("dr_starts_in") / p.dt_h))
            length = int(round(cfg.grid.demand_response.duration_h / p.dt_h))
            limit[start:start + length] = dr_limit
        elif get("dr_active") > 0.5:
            limit[int(round(get("dr_remaining") / p.dt_h)):] = cfg.grid.limit_mw
        caps = tuple(float(np.clip(obs_row[v.index[f"cap_{name}_prev"]], cm, 1.0))
                     for name, cm in zip(self.site.class_names, p.cap_min))
        floors = tuple(float(obs_row[v.index[f"floor_{self.site.class_names[k]}_prev"]]) if k in self.site.floor_idx
                       else 0.0 for k in range(len(caps)))
        energy = float(np.clip(get("soc") * p.capacity_mwh, p.energy_min_mwh, p.energy_max_mwh))  # float32 obs
        start = State(energy, get("grid_import_prev"), caps, floors)
        class_duty = np.repeat(np.array(duties)[:, None], n, axis=1) if observed is not None else None
        return Series(np.stack(high), np.stack(low), np.stack(work), np.stack(wpt), np.full(n, duty), limit,
                      class_duty), start

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        obs = np.atleast_2d(np.asarray(observation, dtype=np.float32))
        actions = []
        self._warm += [WarmStart() for _ in range(len(obs) - len(self._warm))]
        for row, warm in zip(obs, self._warm):
            t0 = time.perf_counter()
            series, start = self._series(row)
            warm.advance()
            try:
                sp = plan(self.params, series, start, backend=self.backend, warm=warm if self.warm_start else None)
            except RuntimeError:  # no optimal plan: act as the greedy rule does this step
                self.fallbacks += 1
                actions.append(self.fallback.predict(row)[0].astype(np.float64))
                continue
            finally:
                self.solve_seconds.append(time.perf_counter() - t0)
            first = sp._replace(battery_mw=sp.battery_mw[:1], caps=sp.caps[:, :1], floors=sp.floors[:, :1])
            actions.append(actions_from_plan(self.site, first)[0])
        out = np.stack(actions)
        return (out[0] if np.ndim(observation) == 1 else out), state
