"""Perfect-foresight oracle: the site LP over the whole episode, the upper bound.

It reads the episode's exogenous series from the env (the only controller allowed to),
solves once at reset, and replays the plan's set-points.
"""

from __future__ import annotations

import time

import numpy as np

from agents.controllers.site_lp import Series, SitePlan, plan
from cpm_env.episode import Episode
from cpm_env.scenario import Site
from cpm_env.site import State, initial_state
from cpm_env.spaces import from_physical


def episode_series(ep: Episode, i: int = 0) -> Series:
    """The exogenous series of env ``i`` of a batch of episodes."""
    return Series(ep.high_mw[:, :, i], ep.low_mw[:, :, i], ep.work[:, :, i], ep.work_per_throughput[:, :, i],
                  ep.duty[:, i], ep.limit_mw[:, i], ep.class_duty[:, :, i])


def episode_start(site: Site, ep: Episode, i: int = 0) -> State:
    """The env's initial state for env ``i`` (as ``CpmEnv.reset`` sets it)."""
    return initial_state(site.params, float(ep.limit_mw[0, i]), float(ep.demand_mw[0, i]))


def actions_from_plan(site: Site, sp: SitePlan) -> np.ndarray:
    """Plan set-points -> actions in [-1, 1], float64, shape (H, n_actions)."""
    return from_physical(sp.battery_mw, list(sp.caps), list(sp.floors), site.params, site.floor_idx)


class Oracle:
    """Solves the episode LP for each env of a batch at its first step, then replays it."""

    def __init__(self, site: Site):
        self.site = site
        self.solve_seconds: list[float] = []
        self._actions: np.ndarray | None = None
        self._t = 0
        self.objectives: list[float] = []

    def start_episode(self, episode: Episode) -> None:
        """Plan every env's episode (called by the evaluation loop after reset)."""
        plans = []
        self.objectives = []
        for i in range(episode.duty.shape[1]):
            t0 = time.perf_counter()
            sp = plan(self.site.params, episode_series(episode, i), episode_start(self.site, episode, i))
            self.solve_seconds.append(time.perf_counter() - t0)
            self.objectives.append(sp.objective)
            plans.append(actions_from_plan(self.site, sp))
        self._actions = np.stack(plans, axis=1)  # (T, N, n_actions)
        self._t = 0

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        if self._actions is None:
            raise RuntimeError("the oracle needs start_episode(episode) after each reset")
        a = self._actions[min(self._t, len(self._actions) - 1)]
        self._t += 1
        return (a[0] if np.ndim(observation) == 1 else a), state
