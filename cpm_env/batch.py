"""SiteBatch: N sites of one scenario stepped as one numpy batch, the core of both vector APIs.

Env ``i`` draws its episodes from its own generator seeded ``seed + i`` exactly as
``gym.make(...).reset(seed=seed + i)`` does, and the physics is the same function on
arrays, so its trajectories equal those of N independent ``CpmEnv`` (a test checks this).
All copies share the episode length, so they all end together and autoreset in the same
step. In a batch of 512 envs or more, the next episodes are drawn in a background thread while
the current ones are stepped (the same draws from the same generators, so the same episodes).

On a site family (:mod:`cpm_env.family`) each env draws its own site per episode, and the physics
runs on the sites' parameters stacked into arrays over the batch (:func:`cpm_env.site.stack_params`).

Two thin adapters expose it: :class:`cpm_env.vec_env.CpmVecEnv` (Stable-Baselines3's ``VecEnv``,
``cpm_env.make_vec``) and :class:`cpm_env.vector.CpmVectorEnv` (Gymnasium's ``VectorEnv``,
``gym.make_vec(..., vectorization_mode="vector_entry_point")``).
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding

from cpm_env import physics, spaces
from cpm_env import shield as safety
from cpm_env.episode import Episode
from cpm_env.ops import NUMPY
from cpm_env.physics import Exo, Outputs
from cpm_env.scenario import ScenarioLike, Site, env_contract
from cpm_env.site import State, battery_less_soc, initial_state, stack_params

EPISODE_KPIS = ("compute_delivered", "compute_demanded", "over_limit_mwh", "ramp_excess_mw", "swing_excess_mw",
                "battery_discharged_mwh", "burn_mwh")


class BatchStep(NamedTuple):
    """One step of the batch: arrays over the envs."""

    obs: np.ndarray  # (N, n_obs) float32: the next episodes' first observation where ``done``
    rewards: np.ndarray  # (N,) float32
    done: bool  # the episodes ended (all together, truncated at their length); the batch has reset
    terminal_obs: np.ndarray | None  # (N, n_obs) the episodes' last observation where ``done``
    outputs: Outputs  # the step's KPIs (arrays over the batch, or scalars the same for all)
    state: State  # the state the step left (before the reset where ``done``)
    episode: dict[str, np.ndarray] | None  # where ``done``: return r, length l, wall time t (s), KPI totals


class SiteBatch:
    """N sites of one scenario in one numpy batch: episodes, observations and the physics step, for the
    adapters to an RL library's vector API (:class:`cpm_env.vec_env.CpmVecEnv`, Stable-Baselines3's;
    :class:`cpm_env.vector.CpmVectorEnv`, Gymnasium's)."""

    # Batches this large draw their next episodes in the background. Smaller ones draw at the reset: there
    # the draw's per-env Python holds the GIL against the step's (one-day episodes, 2 cores, env-steps/s
    # with resets, background against at the reset: N = 64 0.27-0.37 M against 0.48-0.49 M, N = 256
    # 1.03-1.10 M against 1.18-1.31 M, N = 512 1.94-1.98 M against 1.36-1.68 M, N = 1024 2.2-2.9 M against
    # 1.68-1.83 M).
    prefetch_min_envs = 512

    def __init__(self, scenario: ScenarioLike = None, n_envs: int = 1, base: str | Path | None = None,
                 shield: bool = False, battery_action: str = "power", site_features: bool | None = None):
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
        self._soc_idx = self.obs_names.index("soc")
        self._soc_shown: tuple[np.ndarray, np.ndarray] | None = None
        self.action_names = c.action_names
        self.render_mode: str | None = None
        self._rngs: list[np.random.Generator | None] = [None] * n_envs
        self.episode: Episode | None = None  # the batch's current episodes, drawn at reset
        # the next episodes are drawn in a background thread while these are stepped (numpy releases the GIL
        # in the draw's large array operations) in a large batch, where two batches fit the memory budget
        self._prefetch = n_envs >= self.prefetch_min_envs and self.site.episodes.fits(2 * n_envs)
        self._executor: ThreadPoolExecutor | None = None
        self._ahead: Future | None = None
        self.num_envs = n_envs
        self._seeds: list[int | None] = [None] * n_envs  # per env, applied at the next reset
        self.single_observation_space: gym.Space = spaces.observation_space(c.features)
        self.single_action_space: gym.Space = self.site.action_space

    # ------------------------------------------------------------------ episodes
    def _new_episodes(self) -> None:
        reseeded = any(seed is not None for seed in self._seeds)
        for i, seed in enumerate(self._seeds):
            if seed is not None or self._rngs[i] is None:
                self._rngs[i], _ = seeding.np_random(seed)
        rngs = [rng for rng in self._rngs if rng is not None]  # every one is set just above
        # the next episodes were drawn in the background from these generators, as drawing them now would
        ahead, self._ahead = self._ahead, None
        draw = ahead.result() if ahead is not None and not reseeded else self._draw(rngs)
        self._seeds = [None] * self.num_envs
        self.sites, self.params, self._inv_limit, site_entries, ep = draw
        if site_entries is not None:
            self._site_entries = site_entries
        self._soc_shown = self._battery_less_soc()
        self._high, self._low = ep.high_mw, ep.low_mw
        self._work, self._wpt = ep.work, ep.work_per_throughput
        self._duty, self._limit, self._class_duty = ep.duty, ep.limit_mw, ep.class_duty
        self._per_class_duty = spaces.class_duties(self.config)  # else every class's duty is the step's
        self.episode, self._exo_obs = ep, ep.exo_obs
        n = self.num_envs
        self.state = initial_state(self.params, self._limit[0], ep.demand_mw[0])
        self._battery_mw = np.zeros(n)
        self._t = 0
        self._returns = np.zeros(n)
        self._kpi_sums = {name: np.zeros(n) for name in EPISODE_KPIS}
        self._shield_steps = np.zeros(n)  # steps the safety filter changed the action, this episode
        if self._prefetch:
            self._ahead = self._background().submit(self._draw, rngs)
        self._t_start = time.perf_counter()

    def wait_for_next_episodes(self) -> None:
        """Return once the episodes being drawn in the background (if any) are drawn (a benchmark's timing)."""
        if self._ahead is not None:
            self._ahead.result()

    def _background(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cpm-episodes")
        return self._executor

    def _draw(self, rngs: list[np.random.Generator]) -> tuple:
        """The next episodes from ``rngs`` (one per env): (sites, their stacked parameters, 1 / limit, the
        site-parameter entries or None, the batch's :class:`Episode`); reads nothing it may not share."""
        if self.family is None:
            return self.sites, self.params, self._inv_limit, None, self.site.episodes.sample(rngs)
        return self._family_episodes(rngs)

    def _family_episodes(self, rngs: list[np.random.Generator]) -> tuple:
        """Each env's site drawn from its generator, then its episode from the same one (as ``CpmEnv.reset``),
        joined into one batch with the sites' parameters stacked (:func:`cpm_env.site.stack_params`)."""
        assert self.family is not None
        sites = [Site(self.family.draw(rng)) for rng in rngs]
        eps = [site.episodes.sample([rng]) for site, rng in zip(sites, rngs)]
        params = stack_params([site.params for site in sites])
        inv_limit = np.array([site.inv_limit for site in sites])
        entries = np.stack([spaces.site_parameter_entries(site.config) for site in sites]) if self.site_features \
            else None
        n_steps, width = self.config.n_steps, max(ep.dr_start_step.shape[1] for ep in eps)

        def windows(a: np.ndarray) -> np.ndarray:  # fewer windows than another site: empty ones after the end
            return np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=n_steps)

        episode = Episode(*(np.concatenate([getattr(ep, name) if name not in ("dr_start_step", "dr_end_step")
                                            else windows(getattr(ep, name)) for ep in eps],
                                           axis=0 if name in ("dr_start_step", "dr_end_step") else -1)
                            for name in Episode._fields))
        return sites, params, inv_limit, entries, episode

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
            if self._soc_shown is not None:
                where, soc = self._soc_shown
                obs[where, self._soc_idx] = soc
        return obs

    def _battery_less_soc(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(the envs whose site has no battery, the ``soc`` entry they show with their parameters), or None
        where none does or the observation carries no site parameters (:func:`cpm_env.site.battery_less_soc`)."""
        if not self.site_features:
            return None
        n_state = len(self.site.obs_names)
        soc = np.broadcast_to(battery_less_soc(self._site_entries, self.obs_names[n_state:]), (self.num_envs,))
        where = ~np.isnan(soc)
        return (where, soc[where]) if where.any() else None

    # ------------------------------------------------------------------ stepping
    def _check_actions(self, actions) -> np.ndarray:
        if self.episode is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(actions, dtype=np.float64)
        if a.shape != (self.num_envs, len(self.action_names)):
            raise ValueError(f"actions have shape {a.shape}: expected ({self.num_envs}, {len(self.action_names)})")
        if not np.isfinite(a).all():
            spaces.check_finite_action(a)
        return np.clip(a, -1.0, 1.0)

    def _step_batch(self, actions) -> BatchStep:
        """Step every env with ``actions`` (N, n_actions) in [-1, 1]; at the episodes' end, reset them all."""
        a = self._check_actions(actions)
        p, t = self.params, self._t
        k = len(p.peak_mw)
        exo = Exo(tuple(self._high[j, t] for j in range(k)), tuple(self._low[j, t] for j in range(k)),
                  tuple(self._work[j, t] for j in range(k)), tuple(self._wpt[j, t] for j in range(k)),
                  self._duty[t], self._limit[t],
                  tuple(self._class_duty[j, t] for j in range(k)) if self._per_class_duty else None)
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
        if self._t < self.config.n_steps:
            return BatchStep(self._observation(), rewards, False, None, out, self.state, None)
        terminal = self._observation()
        episode = {"r": self._returns.copy(), "l": np.full(self.num_envs, self._t),
                   "t": np.full(self.num_envs, time.perf_counter() - self._t_start),
                   **{name: total.copy() for name, total in self._kpi_sums.items()}}
        if self.shield:
            episode["shield_interventions"] = self._shield_steps.copy()
        state = self.state
        self._new_episodes()
        return BatchStep(self._observation(), rewards, True, terminal, out, state, episode)

    def _step_kpis(self, step: BatchStep) -> tuple[list[str], list[np.ndarray]]:
        """The names and (N,) arrays of a step's KPIs as ``gym.make``'s ``info`` has them (caps, floors too)."""
        names = list(step.outputs._fields)
        cols = [np.broadcast_to(np.asarray(v, dtype=float), (self.num_envs,)) for v in step.outputs]
        for cname, c, f in zip(self.site.class_names, step.state.caps, step.state.floors):
            names += [f"cap_{cname}", f"floor_{cname}"]
            cols += [np.broadcast_to(np.asarray(c, dtype=float), (self.num_envs,)),
                     np.broadcast_to(np.asarray(f, dtype=float), (self.num_envs,))]
        return names, cols

    def _close_background(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor, self._ahead = None, None
