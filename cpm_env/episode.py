"""Episode generator: one seeded draw of every exogenous series of an episode.

At reset the whole episode is drawn at once (demand of every class, the import limit with
its demand-response windows, the noisy forecast), so forecasts, the MPC and the oracle all
see the same trajectory. Random draws happen in a fixed order (classes in scenario order,
then demand response, then forecast noise), so a seed fixes the episode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from cpm_env import spaces
from cpm_env.config import ScenarioConfig
from cpm_env.site import SiteParams, make_params, work_per_throughput
from cpm_env.workloads import make_generator


class Episode(NamedTuple):
    """Exogenous trajectories of a batch of episodes, one per env (the last axis).

    Per-class arrays are (n_classes, n_steps, n_envs); per-step ones (n_steps, n_envs).
    """

    high_mw: np.ndarray
    low_mw: np.ndarray
    work: np.ndarray
    work_per_throughput: np.ndarray
    duty: np.ndarray  # fraction of each step at the high level
    limit_mw: np.ndarray  # grid import limit
    demand_mw: np.ndarray  # uncapped facility mean demand
    dr_start_step: np.ndarray  # (n_envs, n_events) demand-response windows, in steps
    dr_end_step: np.ndarray
    exo_obs: np.ndarray  # (n_steps, n_exo, n_envs) float32, the exogenous part of the observation


class EpisodeGenerator:
    """Draws :class:`Episode` s for a scenario, one per ``numpy.random.Generator``."""

    def __init__(self, cfg: ScenarioConfig, params: SiteParams | None = None):
        self.cfg = cfg
        self.params = params or make_params(cfg)
        self.generators = [
            make_generator(gpu, peak, cfg) for gpu, peak in zip(cfg.site.gpu_classes, self.params.peak_mw)
        ]

    def sample(self, rngs: Sequence[np.random.Generator]) -> Episode:
        """Draw one episode per generator; env ``i`` uses only ``rngs[i]``."""
        cfg, p, n, n_env = self.cfg, self.params, self.cfg.n_steps, len(rngs)
        traces = [g.sample(rngs) for g in self.generators]
        high = np.stack([t.high_mw for t in traces])
        low = np.stack([t.low_mw for t in traces])
        work = np.stack([t.work for t in traces])
        # flat classes have duty 1 and at most one class swings (config): the step's duty is theirs
        duty = np.min([t.duty for t in traces], axis=0)
        wpt = np.stack([work_per_throughput(p, k, high[k], work[k]) for k in range(len(p.peak_mw))])
        demand = p.pue * (duty * high + (1.0 - duty) * low).sum(axis=0)

        dr = cfg.grid.demand_response
        dt_h = cfg.dt_h
        draws = [rng.uniform(dr.earliest_start_h, dr.latest_start_h, dr.events_per_episode) for rng in rngs]
        starts = np.sort(np.round(np.array(draws).reshape(n_env, -1) / dt_h), axis=1).astype(int)
        ends = starts + max(int(round(dr.duration_h / dt_h)), 1)
        steps = np.arange(n)[:, None, None]
        active = ((steps >= starts) & (steps < ends)).any(axis=2)
        limit = cfg.grid.limit_mw * np.where(active, dr.limit_fraction, 1.0)

        forecast = None
        if cfg.forecast.enabled:
            h = np.asarray(cfg.forecast.horizons_steps)
            noise = np.stack([rng.standard_normal((n, len(h))) for rng in rngs], axis=1)  # (n, n_env, H)
            ahead = np.minimum(np.arange(n)[:, None] + h, n - 1)  # (n, H)
            truth = demand[ahead].transpose(0, 2, 1)  # (n, n_env, H)
            sigma = cfg.forecast.noise_std_per_sqrt_h * np.sqrt(h * dt_h)
            forecast = np.maximum(truth * (1.0 + sigma * noise), 0.0)
        exo = spaces.exo_features(cfg, high, low, duty, limit, demand, starts, ends, forecast)
        return Episode(high, low, work, wpt, duty, limit, demand, starts, ends, exo)
