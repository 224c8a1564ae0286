"""CpmVectorEnv: the batched env (:class:`cpm_env.batch.SiteBatch`) as a Gymnasium ``VectorEnv``.

Every registered scenario has it as its vector entry point::

    envs = gym.make_vec("cpm_env/DataCenter-v0", num_envs=64, vectorization_mode="vector_entry_point")

(also the default of ``gym.make_vec`` for these ids), with the same keyword options as ``gym.make``
(``scenario``, ``shield``, ``battery_action``, ``site_features``). All envs share the episode length,
so they end together. Autoreset (``metadata["autoreset_mode"]``) is Gymnasium's default,
``AutoresetMode.NEXT_STEP``: the step that ends the episodes returns their last observations
(``truncated`` True: episodes end at their length), and the next ``step`` call starts the new ones,
returning their first observations with reward 0 and ignoring its actions; every Gymnasium vector
wrapper supports it. ``autoreset_mode="SameStep"`` returns the new episodes' first observations at once,
the last ones in ``infos["final_obs"]`` and that step's info in ``infos["final_info"]`` (masks
``_final_obs``, ``_final_info``), as SB3's ``VecEnv`` does (Gymnasium's observation wrappers refuse it).

``info`` holds every KPI of ``gym.make``'s info as an array over the envs (mask ``_name``, all True);
``kpis_in_info=False`` leaves it empty for speed. At the episodes' end it also has ``episode_totals``: the
return ``r``, length ``l``, wall time ``t`` (s) and the KPI totals (``RecordEpisodeStatistics`` adds its own
``episode``).

Seeding as Gymnasium specifies: ``reset(seed=s)`` seeds env ``i`` with ``s + i`` (``reset(seed=[...])``
one per env), exactly as ``gym.make(id).reset(seed=s + i)``; ``reset()`` continues each env's generator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from cpm_env.batch import BatchStep, SiteBatch
from cpm_env.scenario import ScenarioLike


class CpmVectorEnv(SiteBatch, VectorEnv):
    """N sites of one scenario in one numpy batch, with Gymnasium's ``VectorEnv`` interface."""

    def __init__(self, num_envs: int = 1, scenario: ScenarioLike = None, base: str | Path | None = None,
                 shield: bool = False, battery_action: str = "power", site_features: bool | None = None,
                 kpis_in_info: bool = True, autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
                 max_episode_steps: int | None = None):
        modes = (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP)
        if autoreset_mode not in [*modes, *(m.value for m in modes)]:
            raise ValueError(f"autoreset_mode = {autoreset_mode!r}: must be one of {[m.value for m in modes]}")
        SiteBatch.__init__(self, scenario, num_envs, base, shield, battery_action, site_features)
        self.metadata = {"autoreset_mode": AutoresetMode(autoreset_mode), "render_modes": []}
        self._next_first: np.ndarray | None = None  # NEXT_STEP: the new episodes' first observations, held back
        if max_episode_steps is not None and max_episode_steps != self.config.n_steps:
            raise ValueError(f"max_episode_steps = {max_episode_steps!r}: the scenario's episodes last "
                             f"{self.config.n_steps} steps (duration_h / dt_s); set duration_h instead")
        self.kpis_in_info = kpis_in_info
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._every = np.ones(num_envs, dtype=bool)
        self._every.flags.writeable = False  # one mask for every key: read-only, so no wrapper changes it

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        """New episodes for every env; ``seed``: env ``i`` gets ``seed + i`` (or ``seed[i]``); None continues."""
        if options:
            raise ValueError(f"reset options {sorted(options)}: not supported: every env of the batch resets "
                             "together (pass scenario options to gym.make_vec)")
        if seed is not None:
            seeds = [seed + i for i in range(self.num_envs)] if isinstance(seed, int) else list(seed)
            if len(seeds) != self.num_envs or not all(isinstance(s, (int, np.integer)) for s in seeds):
                raise ValueError(f"seed = {seed!r}: must be an int or a list of {self.num_envs} ints")
            self._seeds = [int(s) for s in seeds]
        self._new_episodes()
        self._next_first = None
        return self._observation(), {}

    def step(self, actions):
        not_done = np.zeros(self.num_envs, dtype=bool)
        if self._next_first is not None:  # NEXT_STEP: this step starts the episodes drawn at the last one's end
            obs, self._next_first = self._next_first, None
            return obs, np.zeros(self.num_envs), not_done, not_done.copy(), {}
        step = self._step_batch(actions)
        infos: dict[str, Any] = self._infos(step) if self.kpis_in_info else {}
        rewards = np.broadcast_to(np.asarray(step.outputs.reward, dtype=np.float64), (self.num_envs,)).copy()
        truncated = np.full(self.num_envs, step.done)
        if not step.done:
            return step.obs, rewards, not_done, truncated, infos
        infos.update(episode_totals=step.episode, _episode_totals=self._every)
        if self.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP:
            self._next_first = step.obs
            return step.terminal_obs, rewards, not_done, truncated, infos
        assert step.terminal_obs is not None  # set where done
        terminal = np.empty(self.num_envs, dtype=object)
        terminal[:] = list(step.terminal_obs)
        infos = {"final_obs": terminal, "_final_obs": self._every, "final_info": infos, "_final_info": self._every}
        return step.obs, rewards, not_done, truncated, infos

    def _infos(self, step: BatchStep) -> dict[str, Any]:
        names, cols = self._step_kpis(step)
        infos: dict[str, Any] = dict(zip(names, cols))
        infos.update({f"_{name}": self._every for name in names})
        return infos

    def close_extras(self, **kwargs: Any) -> None:
        self._close_background()


def make_vector(num_envs: int = 1, **kwargs: Any) -> CpmVectorEnv:
    """Gymnasium's vector entry point of every registered scenario (``kwargs``: ``gym.make``'s options,
    ``base`` from the registry)."""
    return CpmVectorEnv(num_envs, **kwargs)
