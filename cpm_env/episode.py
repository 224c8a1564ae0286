"""Episode generator: one seeded draw of every exogenous series of an episode.

At reset the whole episode is drawn at once (demand of every class, the import limit with
its demand-response windows, the noisy forecast), so forecasts, the MPC and the oracle all
see the same trajectory. Random draws happen in a fixed order (classes in scenario order,
then demand response, then forecast noise), so a seed fixes the episode.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cpm_env import spaces
from cpm_env.config import ScenarioConfig
from cpm_env.physics import PhysicsParams, make_params
from cpm_env.workloads import make_generator


class Episode(NamedTuple):
    """Exogenous trajectory of one episode. Per-class arrays are (n_classes, n_steps)."""

    high_mw: np.ndarray
    low_mw: np.ndarray
    work: np.ndarray
    work_per_throughput: np.ndarray
    duty: np.ndarray  # (n_steps,) fraction of each step at the high level
    limit_mw: np.ndarray  # (n_steps,) grid import limit
    demand_mw: np.ndarray  # (n_steps,) uncapped facility mean demand
    dr_start_step: np.ndarray  # (n_events,) demand-response windows, in steps
    dr_end_step: np.ndarray
    exo_obs: np.ndarray  # (n_steps, n_exo) float32, the exogenous part of the observation


class EpisodeGenerator:
    """Draws :class:`Episode` s for a scenario from a ``numpy.random.Generator``."""

    def __init__(self, cfg: ScenarioConfig, params: PhysicsParams | None = None):
        self.cfg = cfg
        self.params = params or make_params(cfg)
        self.generators = [
            make_generator(gpu, peak, cfg) for gpu, peak in zip(cfg.site.gpu_classes, self.params.peak_mw)
        ]
        self.swinging = [gpu.workload.kind != "inference" for gpu in cfg.site.gpu_classes]

    def sample(self, rng: np.random.Generator) -> Episode:
        """Draw one episode."""
        cfg, p, n = self.cfg, self.params, self.cfg.n_steps
        traces = [g.sample(rng) for g in self.generators]
        high = np.stack([t.high_mw for t in traces])
        low = np.stack([t.low_mw for t in traces])
        work = np.stack([t.work for t in traces])
        duty = np.ones(n)
        for trace, swings in zip(traces, self.swinging):
            if swings:
                duty = trace.duty
        wpt = np.empty_like(work)
        for k, peak in enumerate(p.peak_mw):
            x_demand = np.maximum(high[k] / peak, p.curve_x[k][0])
            wpt[k] = work[k] / np.interp(x_demand, p.curve_x[k], p.curve_y[k])
        demand = p.pue * (duty * high + (1.0 - duty) * low).sum(axis=0)

        dr = cfg.grid.demand_response
        dt_h = cfg.dt_h
        starts = np.sort(np.round(rng.uniform(dr.earliest_start_h, dr.latest_start_h, dr.events_per_episode) / dt_h))
        starts = starts.astype(int)
        ends = starts + max(int(round(dr.duration_h / dt_h)), 1)
        steps = np.arange(n)
        active = ((steps[:, None] >= starts) & (steps[:, None] < ends)).any(axis=1)
        limit = cfg.grid.limit_mw * np.where(active, dr.limit_fraction, 1.0)

        forecast = None
        if cfg.forecast.enabled:
            h = np.asarray(cfg.forecast.horizons_steps)
            noise = rng.standard_normal((n, len(h)))
            truth = demand[np.minimum(steps[:, None] + h, n - 1)]
            sigma = cfg.forecast.noise_std_per_sqrt_h * np.sqrt(h * dt_h)
            forecast = np.maximum(truth * (1.0 + sigma * noise), 0.0)
        exo = spaces.exo_features(cfg, p, high, low, duty, limit, demand, starts, ends, forecast)
        return Episode(high, low, work, wpt, duty, limit, demand, starts, ends, exo)
