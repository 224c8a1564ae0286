"""CpmEnv: one data-center site behind a grid limit, as a Gymnasium environment."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import numpy as np

from cpm_env import physics, spaces
from cpm_env import shield as safety
from cpm_env.episode import Episode
from cpm_env.ops import SCALAR
from cpm_env.physics import Exo
from cpm_env.scenario import ScenarioLike, Site, env_contract
from cpm_env.site import Scalar, battery_less_soc, initial_state


class CpmEnv(gym.Env):
    """Compute per Megawatt: run as much GPU compute as a fixed grid connection allows.

    ## Description
    An AI data center's GPUs swing their power in bursts (training compute/communication
    phases, checkpoints, failures, inference traffic). A behind-the-meter battery absorbs
    the swings, and GPU power caps trade a little throughput for a lot of power. Every
    ``dt_s`` seconds the controller sets the battery's net power and the cap (and, where
    enabled, the power floor) of each GPU class. Within the step the battery's inner loop
    also smooths the intra-step swing as far as its remaining power allows, in closed form
    (:mod:`cpm_env.physics`). The whole episode's demand is drawn at reset from the seeded
    generators named in the scenario (:mod:`cpm_env.workloads`).

    ## Action Space
    ``Box(-1, 1, (n_actions,), float32)``, mapped affinely (see :mod:`cpm_env.spaces`):

    | index | name | physical set-point | at -1 | at +1 |
    |---|---|---|---|---|
    | 0 | battery | net battery power, MW (+ discharge) | -power_mw | +power_mw |
    | 1..K | cap_<class> | power cap, fraction of TDP | cap_min | 1.0 |
    | K+1.. | floor_<class> | power floor, fraction of TDP (only if floor_max > 0) | 0 | floor_max |

    Out-of-range actions are clipped to [-1, 1]; NaN or inf raises ``ValueError``. Caps and
    floors move at most ``cap_slew_per_s * dt_s`` per step; the battery respects its power
    rating, SoC bounds and (by default) no export.

    ## Observation Space
    ``Box(low, high, (n_obs,), float32)``; ``env.obs_names`` and
    ``cpm_env.spaces.observation_features`` give each entry's name, unit, scale and bounds.
    Powers are in units of the grid limit. Entries: per class uncapped demand (mean, swing);
    duty; facility demand, headroom, grid limit, lagged demand; time of day (sin, cos);
    episode progress; demand forecasts by forecast.kind (if enabled); demand-response state (active,
    pending, starts in h, remaining h, limit); last grid import, SoC, last battery power,
    caps (and floors) in force; with ``site_features=True`` (a site family's default) then the site's
    static parameters (``cpm_env.spaces.site_parameter_features``).

    ## Rewards
    Per step, in compute units (1 unit = 1 MW of GPUs at full speed for 1 h)::

        r = compute_delivered - w_limit * over_limit_mwh - w_swing * swing_excess_mw * dt_h
            - w_residual * residual_swing_mw * dt_h - w_ramp * ramp_excess_mw
            - w_deg * battery_discharged_mwh - w_burn * burn_mwh
            + w_energy * (energy_mwh[t+1] - energy_mwh[t])

    The last term values stored energy, so an episode's return counts the battery's
    end-of-episode energy at ``w_energy`` per MWh and no controller gains by emptying it.

    ## Starting State
    SoC at ``battery.soc_init``, caps at 1.0, floors at 0, last import = the uncapped demand
    of the first step (at most the limit).

    ## Episode End
    No termination. Truncation after ``duration_h * 3600 / dt_s`` steps.

    ## Arguments
    ``gym.make("cpm_env/DataCenter-v0", scenario=...)`` where ``scenario`` is a dict of
    overrides (``{"battery": {"capacity_mwh": 0}}``), a YAML path, or a ``ScenarioConfig``.
    ``info`` of every step carries the :class:`cpm_env.physics.Outputs` KPIs in physical
    units plus ``cap_<class>`` and ``floor_<class>``. ``shield=True`` passes every action through
    the safety filter (:func:`cpm_env.shield.shield`, on the true state) before the physics, so an
    agent trains inside the safe set and the reward is that of what the site did; ``info`` then
    adds ``shield_intervened`` (bool) and ``shield_delta_mw`` (MW the filter moved).
    A site family (``gym.make("cpm_env/SiteFamily-v0")``, or a family file as ``scenario``:
    :mod:`cpm_env.family`) draws a new site at every reset from the env's generator, then its episode;
    ``env.config`` and ``env.params`` are that site's.
    ``battery_action="import_change"`` makes the first action entry the change of the step-mean
    grid import (``a * ramp_step_mw`` MW; 0 holds it) instead of the battery's power; the battery
    set-point is what that takes at the step's caps (see :mod:`cpm_env.spaces`).

    ## Version History
    * v0: initial release.
    """

    metadata = {"render_modes": []}

    def __init__(self, scenario: ScenarioLike = None, base: str | Path | None = None, render_mode=None,
                 shield: bool = False, battery_action: str = "power", site_features: bool | None = None):
        c = env_contract(scenario, base, shield, battery_action, site_features)
        self.family, self.site, self.source = c.family, c.site, c.source
        self.shield, self.battery_action, self.site_features = c.shield, c.battery_action, c.site_features
        self.config, self.params = self.site.config, self.site.params
        self._site_entries = c.site_entries
        self.obs_names = [f.name for f in c.features]
        self._soc_idx = self.obs_names.index("soc")
        self._soc_shown: float | None = None
        self.action_names = c.action_names
        self.observation_space = spaces.observation_space(c.features)
        self.action_space = self.site.action_space
        self.render_mode = render_mode
        self.episode: Episode | None = None
        self._t = 0
        self._n_steps = self.config.n_steps

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self.family is not None:  # a new site from the same generator, before its episode
            self.site = Site(self.family.draw(self.np_random))
            self.config, self.params = self.site.config, self.site.params
            if self.site_features:
                self._site_entries = spaces.site_parameter_entries(self.config)
        ep = self.site.episodes.sample([self.np_random])
        self.episode = ep
        self._soc_shown = self._battery_less_soc()
        # per-step rows as tuples, so a step reads floats without touching numpy
        rows = lambda a: list(zip(*a[:, :, 0].tolist()))  # noqa: E731
        self._exo_rows = list(zip(rows(ep.high_mw), rows(ep.low_mw), rows(ep.work), rows(ep.work_per_throughput),
                                  ep.duty[:, 0].tolist(), ep.limit_mw[:, 0].tolist(),
                                  rows(ep.class_duty) if spaces.class_duties(self.config) else [None] * len(ep.duty)))
        self._exo_obs = np.ascontiguousarray(ep.exo_obs[:, :, 0])
        self.state = initial_state(self.params, float(ep.limit_mw[0, 0]), float(ep.demand_mw[0, 0]))
        self._battery_mw: Scalar = 0.0
        self._t = 0
        return self._observation(), {}

    def _observation(self) -> np.ndarray:
        site = self.site
        obs = np.empty(len(self.obs_names), dtype=np.float32)
        n_state = len(site.obs_names)
        obs[: site.n_exo] = self._exo_obs[min(self._t, self._n_steps - 1)]
        obs[site.n_exo:n_state] = spaces.state_observation(
            self.params, self.state, self._battery_mw, site.floor_idx, site.inv_limit
        )
        if self.site_features:
            obs[n_state:] = self._site_entries
            if self._soc_shown is not None:
                obs[self._soc_idx] = self._soc_shown
        return obs

    def _battery_less_soc(self) -> float | None:
        """The ``soc`` entry this episode's site shows with its parameters and no battery, else None
        (:func:`cpm_env.site.battery_less_soc`)."""
        if not self.site_features:
            return None
        n_state = len(self.site.obs_names)
        soc = float(battery_less_soc(self._site_entries, self.obs_names[n_state:]))
        return None if np.isnan(soc) else soc

    def step(self, action):
        if self.episode is None:
            raise RuntimeError("call reset() before step()")
        if self._t >= self._n_steps:
            raise RuntimeError(f"the episode was truncated after {self._n_steps} steps: call reset() before step()")
        a = action.tolist() if isinstance(action, np.ndarray) else list(np.asarray(action, dtype=float).ravel())
        if isinstance(a, float) or len(a) != len(self.action_names):
            raise ValueError(f"action has shape {np.shape(action)}: expected ({len(self.action_names)},) "
                             f"for {self.action_names}")
        for v in a:
            if not math.isfinite(v):
                spaces.check_finite_action(np.asarray(action))
        a = [-1.0 if v < -1.0 else (1.0 if v > 1.0 else float(v)) for v in a]
        p, t = self.params, self._t
        exo = Exo(*self._exo_rows[t])
        if self.battery_action == "power":
            phys = spaces.to_physical(a, p, self.site.floor_idx, SCALAR)
        else:
            phys = spaces.to_physical_import(a, p, self.site.floor_idx, self.state, exo, SCALAR)
        report = None
        if self.shield:
            phys, report = safety.shield(p, self.state, exo, phys)
            phys = physics.Action(float(phys.battery_mw), tuple(map(float, phys.caps)), tuple(map(float, phys.floors)))
        self.state, out = physics.step(p, self.state, phys, exo, SCALAR)
        self._battery_mw = out.battery_power_mw
        self._t = t + 1
        info = out._asdict()
        for name, c, f in zip(self.site.class_names, self.state.caps, self.state.floors):
            info[f"cap_{name}"] = c
            info[f"floor_{name}"] = f
        info["step"] = t
        if report is not None:
            info["shield_intervened"] = bool(report.intervened)
            info["shield_delta_mw"] = float(report.delta_mw)
        return self._observation(), float(out.reward), False, self._t >= self._n_steps, info
