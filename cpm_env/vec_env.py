"""CpmVecEnv: N copies of one scenario stepped as one numpy batch (an SB3 ``VecEnv``).

Env ``i`` draws its episodes from its own generator seeded ``seed + i`` exactly as
``gym.make(...).reset(seed=seed + i)`` does, and the physics is the same function on
arrays, so its trajectories equal those of N independent ``CpmEnv`` (a test checks this).
All copies share the episode length, so they all end together and autoreset in the same
step; the last observation is in ``infos[i]["terminal_observation"]``.

On a site family (:mod:`cpm_env.family`) each env draws its own site per episode, and the physics
runs on the sites' parameters stacked into arrays over the batch (:func:`cpm_env.site.stack_params`).

Per-step KPIs are in ``vec_env.last_outputs`` (arrays over the batch); building N info
dicts a step would cost more than the physics, so infos carry them only if
``kpis_in_info=True``. Episode totals are always in ``infos[i]["episode"]`` at the end.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium.utils import seeding
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from cpm_env import physics, spaces
from cpm_env import shield as safety
from cpm_env.config import scenario_file
from cpm_env.episode import Episode
from cpm_env.ops import NUMPY
from cpm_env.physics import Exo
from cpm_env.scenario import ScenarioLike, Site, env_contract
from cpm_env.site import initial_state, stack_params

EPISODE_KPIS = ("compute_delivered", "compute_demanded", "over_limit_mwh", "ramp_excess_mw", "swing_excess_mw",
                "battery_discharged_mwh", "burn_mwh")


class CpmVecEnv(VecEnv):
    """N sites of one scenario in one numpy batch."""

    def __init__(self, scenario: ScenarioLike = None, n_envs: int = 1, base: str | Path | None = None,
                 kpis_in_info: bool = False, shield: bool = False, battery_action: str = "power",
                 site_features: bool | None = None):
        if not isinstance(n_envs, int) or n_envs < 1:
            raise ValueError(f"n_envs = {n_envs!r}: must be an integer >= 1")
        # the options as CpmEnv's; a site family: each env draws its site per episode
        c = env_contract(scenario, base, shield, battery_action, site_features)
        self.family, self.site, self.source = c.family, c.site, c.source
        self.shield, self.battery_action, self.site_features = c.shield, c.battery_action, c.site_features
        self.site.episodes.check_batch(n_envs)
        self.config, self.params = self.site.config, self.site.params
        self.sites = [self.site] * n_envs  # env i's site this episode
        self._inv_limit: float | np.ndarray = self.site.inv_limit
        self._site_entries = c.site_entries
        self.obs_names = [f.name for f in c.features]
        self.action_names = c.action_names
        self.render_mode = None
        self.kpis_in_info = kpis_in_info
        self._rngs: list[np.random.Generator | None] = [None] * n_envs
        self._actions: np.ndarray | None = None
        self.episode: Episode | None = None  # the batch's current episodes, drawn at reset
        self._empty_infos: list[dict] = [{} for _ in range(n_envs)]
        super().__init__(n_envs, spaces.observation_space(c.features), self.site.action_space)

    # ------------------------------------------------------------------ episodes
    def _new_episodes(self) -> None:
        for i, seed in enumerate(self._seeds):
            if seed is not None or self._rngs[i] is None:
                self._rngs[i], _ = seeding.np_random(seed)
        rngs = [rng for rng in self._rngs if rng is not None]  # every one is set just above
        ep = self.site.episodes.sample(rngs) if self.family is None else self._family_episodes(rngs)
        self._reset_seeds()
        self._high, self._low = ep.high_mw, ep.low_mw
        self._work, self._wpt = ep.work, ep.work_per_throughput
        self._duty, self._limit = ep.duty, ep.limit_mw
        self.episode, self._exo_obs = ep, ep.exo_obs
        n = self.num_envs
        self.state = initial_state(self.params, self._limit[0], ep.demand_mw[0])
        self._battery_mw = np.zeros(n)
        self._t = 0
        self._returns = np.zeros(n)
        self._kpi_sums = {name: np.zeros(n) for name in EPISODE_KPIS}
        self._shield_steps = np.zeros(n)  # steps the safety filter changed the action, this episode
        self._t_start = time.perf_counter()

    def _family_episodes(self, rngs: list[np.random.Generator]) -> Episode:
        """Each env's site drawn from its generator, then its episode from the same one (as ``CpmEnv.reset``),
        joined into one batch with the sites' parameters stacked (:func:`cpm_env.site.stack_params`)."""
        assert self.family is not None
        self.sites = [Site(self.family.draw(rng)) for rng in rngs]
        eps = [site.episodes.sample([rng]) for site, rng in zip(self.sites, rngs)]
        self.params = stack_params([site.params for site in self.sites])
        self._inv_limit = np.array([site.inv_limit for site in self.sites])
        if self.site_features:
            self._site_entries = np.stack([spaces.site_parameter_entries(site.config) for site in self.sites])
        n_steps, width = self.config.n_steps, max(ep.dr_start_step.shape[1] for ep in eps)

        def windows(a: np.ndarray) -> np.ndarray:  # fewer windows than another site: empty ones after the end
            return np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=n_steps)

        return Episode(*(np.concatenate([getattr(ep, name) if name not in ("dr_start_step", "dr_end_step")
                                         else windows(getattr(ep, name)) for ep in eps],
                                        axis=0 if name in ("dr_start_step", "dr_end_step") else -1)
                         for name in Episode._fields))

    def _observation(self) -> np.ndarray:
        site = self.site
        obs = np.empty((self.num_envs, len(self.obs_names)), dtype=np.float32)
        n_state = len(site.obs_names)
        obs[:, : site.n_exo] = self._exo_obs[min(self._t, self.config.n_steps - 1)].T
        state_cols = spaces.state_observation(self.params, self.state, self._battery_mw, site.floor_idx,
                                              self._inv_limit)
        obs[:, site.n_exo:n_state] = np.stack(state_cols, axis=1)
        if self.site_features:
            obs[:, n_state:] = self._site_entries
        return obs

    def seed(self, seed: int | Sequence[int] | None = None) -> Sequence[int | None]:
        """Seed env ``i`` with ``seed + i`` (SB3's convention) or with ``seed[i]`` for a list."""
        if isinstance(seed, Sequence):
            if len(seed) != self.num_envs:
                raise ValueError(f"{len(seed)} seeds for {self.num_envs} envs: need one per env")
            self._seeds = [int(s) for s in seed]
            return self._seeds
        return super().seed(seed)

    # ------------------------------------------------------------------ VecEnv API
    def reset(self):
        self._new_episodes()
        return self._observation()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self):
        if self.episode is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(self._actions, dtype=np.float64)
        if a.shape != (self.num_envs, len(self.action_names)):
            raise ValueError(f"actions have shape {a.shape}: expected ({self.num_envs}, {len(self.action_names)})")
        if not np.isfinite(a).all():
            spaces.check_finite_action(a)
        a = np.clip(a, -1.0, 1.0)
        p, t = self.params, self._t
        k = len(p.peak_mw)
        exo = Exo(tuple(self._high[j, t] for j in range(k)), tuple(self._low[j, t] for j in range(k)),
                  tuple(self._work[j, t] for j in range(k)), tuple(self._wpt[j, t] for j in range(k)),
                  self._duty[t], self._limit[t])
        cols = [a[:, j] for j in range(a.shape[1])]
        if self.battery_action == "power":
            phys = spaces.to_physical(cols, p, self.site.floor_idx, NUMPY)
        else:
            phys = spaces.to_physical_import(cols, p, self.site.floor_idx, self.state, exo, NUMPY)
        if self.shield:
            phys, report = safety.shield(p, self.state, exo, phys)
            self._shield_steps += report.intervened
        self.state, out = physics.step(p, self.state, phys, exo, NUMPY)
        self.last_outputs = out
        self._battery_mw = np.asarray(out.battery_power_mw)
        self._t = t + 1
        self._returns += out.reward
        for name, total in self._kpi_sums.items():
            total += getattr(out, name)
        rewards = np.asarray(out.reward, dtype=np.float32)
        if self.kpis_in_info:
            infos = self._kpi_infos(out)
        else:
            # Building N fresh dicts costs more than the physics: reuse empty ones while
            # nobody has written into them.
            if any(self._empty_infos):
                self._empty_infos = [{} for _ in range(self.num_envs)]
            infos = list(self._empty_infos)
        if self._t < self.config.n_steps:
            return self._observation(), rewards, np.zeros(self.num_envs, dtype=bool), infos
        terminal = self._observation()
        elapsed = time.perf_counter() - self._t_start
        infos = [dict(info) for info in infos]
        for i, info in enumerate(infos):
            info["terminal_observation"] = terminal[i]
            info["TimeLimit.truncated"] = True
            info["episode"] = {"r": float(self._returns[i]), "l": self._t, "t": elapsed,
                               **{name: float(v[i]) for name, v in self._kpi_sums.items()}}
            if self.shield:
                info["episode"]["shield_interventions"] = float(self._shield_steps[i])
        self._new_episodes()
        return self._observation(), rewards, np.ones(self.num_envs, dtype=bool), infos

    def _kpi_infos(self, out) -> list[dict[str, Any]]:
        names = list(out._fields)
        cols = [np.broadcast_to(np.asarray(v, dtype=float), (self.num_envs,)) for v in out]
        for cname, c, f in zip(self.site.class_names, self.state.caps, self.state.floors):
            names += [f"cap_{cname}", f"floor_{cname}"]
            cols += [np.asarray(c), np.asarray(f)]
        rows = np.stack(cols, axis=1).tolist()
        return [dict(zip(names, row), step=self._t - 1) for row in rows]

    def close(self) -> None:
        pass

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
