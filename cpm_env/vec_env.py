"""CpmVecEnv: the batched env (:class:`cpm_env.batch.SiteBatch`) as a Stable-Baselines3 ``VecEnv``.

Env ``i`` is seeded ``seed + i`` (SB3's convention) and its trajectories equal those of N independent
``CpmEnv`` (a test checks this). All copies share the episode length, so they all end together and
autoreset in the same step; the last observation is in ``infos[i]["terminal_observation"]``.

Per-step KPIs are in ``vec_env.last_outputs`` (arrays over the batch); building N info
dicts a step would cost more than the physics, so infos carry them only if
``kpis_in_info=True``. Episode totals are always in ``infos[i]["episode"]`` at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from cpm_env.batch import EPISODE_KPIS, SiteBatch
from cpm_env.config import scenario_file
from cpm_env.scenario import ScenarioLike

__all__ = ["EPISODE_KPIS", "CpmVecEnv", "make_vec"]


class CpmVecEnv(SiteBatch, VecEnv):
    """N sites of one scenario in one numpy batch, with SB3's ``VecEnv`` interface."""

    def __init__(self, scenario: ScenarioLike = None, n_envs: int = 1, base: str | Path | None = None,
                 kpis_in_info: bool = False, shield: bool = False, battery_action: str = "power",
                 site_features: bool | None = None):
        SiteBatch.__init__(self, scenario, n_envs, base, shield, battery_action, site_features)
        self.kpis_in_info = kpis_in_info
        self._actions: np.ndarray | None = None
        self._empty_infos: list[dict] = [{} for _ in range(n_envs)]
        VecEnv.__init__(self, n_envs, self.single_observation_space, self.single_action_space)

    def seed(self, seed: int | Sequence[int] | None = None) -> Sequence[int | None]:
        """Seed env ``i`` with ``seed + i`` (SB3's convention) or with ``seed[i]`` for a list."""
        if isinstance(seed, Sequence):
            if len(seed) != self.num_envs:
                raise ValueError(f"{len(seed)} seeds for {self.num_envs} envs: need one per env")
            self._seeds = [int(s) for s in seed]
            return self._seeds
        return super().seed(seed)

    def reset(self):
        self._new_episodes()
        return self._observation()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        step = self._step_batch(self._actions)
        if self.kpis_in_info:
            names, cols = self._step_kpis(step)
            infos = [dict(zip(names, row), step=self._t - 1 if not step.done else self.config.n_steps - 1)
                     for row in np.stack(cols, axis=1).tolist()]
        else:
            # Building N fresh dicts costs more than the physics: reuse empty ones while
            # nobody has written into them.
            if any(self._empty_infos):
                self._empty_infos = [{} for _ in range(self.num_envs)]
            infos = list(self._empty_infos)
        if not step.done:
            return step.obs, step.rewards, np.zeros(self.num_envs, dtype=bool), infos
        assert step.episode is not None and step.terminal_obs is not None  # both set where done
        infos = [dict(info) for info in infos]
        totals = {name: v.tolist() for name, v in step.episode.items()}
        for i, info in enumerate(infos):
            info["terminal_observation"] = step.terminal_obs[i]
            info["TimeLimit.truncated"] = True
            info["episode"] = {name: v[i] for name, v in totals.items()}
        return step.obs, step.rewards, np.ones(self.num_envs, dtype=bool), infos

    def close(self) -> None:
        self._close_background()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *args, indices=None, **kwargs) -> list[Any]:
        return [getattr(self, method_name)(*args, **kwargs) for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]


def make_vec(env_id: str = "cpm_env/DataCenter-v0", n_envs: int = 1, seed: int | None = None,
             scenario: ScenarioLike = None, kpis_in_info: bool = False, shield: bool = False,
             battery_action: str = "power", site_features: bool | None = None) -> CpmVecEnv:
    """Batched VecEnv of a registered id (or a scenario YAML path), seeded ``seed + i`` per env.

    ``scenario`` takes the same overrides as ``gym.make(env_id, scenario=...)``; ``shield`` passes
    every action through the safety filter before the physics (as ``gym.make(env_id, shield=True)``);
    ``battery_action`` chooses what the first action entry sets (as ``gym.make``'s, :mod:`cpm_env.spaces`);
    ``site_features`` appends the site's static parameters to every observation
    (:func:`cpm_env.spaces.site_parameter_features`; default: on for a site family, off for one site).
    A site family (``cpm_env/SiteFamily-v0``, a family file: :mod:`cpm_env.family`) draws a site per env
    and episode from that env's generator, before its episode; ``vec_env.sites`` holds them.
    """
    base = scenario_file(env_id)
    venv = CpmVecEnv(scenario, n_envs, base=base, kpis_in_info=kpis_in_info, shield=shield,
                     battery_action=battery_action, site_features=site_features)
    venv.seed(seed)
    return venv
