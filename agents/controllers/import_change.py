"""A policy trained with ``battery_action="import_change"`` seen through the contract every controller speaks.

Such a policy's first action entry moves the step-mean grid import by ``a * ramp_step_mw`` (MW) from
last step's (:mod:`cpm_env.spaces`). The evaluation's env, the safety filter and the other
controllers take the battery's power instead, so :class:`ImportChangeActions` converts: it decodes
the observation into the state and step it describes (:func:`cpm_env.shield.decode_observation`,
the filter's and the runtime's decoder), takes the battery set-point that puts the import there at
the policy's caps (:func:`cpm_env.spaces.to_physical_import`) and encodes it as a power action.
"""

from __future__ import annotations

import numpy as np

from agents.controllers.base import Controller, TelemetryDecoder
from cpm_env import spaces
from cpm_env.ops import NUMPY
from cpm_env.scenario import Site


class ImportChangeActions:
    """``inner``'s import-change actions as battery-power actions (float64, in [-1, 1]; see the module doc)."""

    def __init__(self, inner: Controller, site: Site, name: str):
        self.telemetry = TelemetryDecoder(site, f"controller {name!r}: trained with battery_action = import_change, "
                                          f"it cannot run on {site.config.id}", "conversion")
        self.inner, self.site, self.params = inner, site, site.params

    def __getattr__(self, name: str):
        """The inner controller's attributes (its manifest, for one)."""
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        actions, state = self.inner.predict(observation, state, episode_start, deterministic)
        return self.to_power(observation, actions), state

    def to_power(self, observation, actions) -> np.ndarray:
        """Import-change ``actions`` (N, n_actions) or (n_actions,) for ``observation`` (the same leading shape)
        as battery-power actions in [-1, 1], float64: the battery's power (MW) / its rating (0 without a battery)."""
        single = np.ndim(actions) == 1
        a = np.clip(np.array(np.atleast_2d(actions), dtype=np.float64), -1.0, 1.0)
        obs = np.atleast_2d(np.asarray(observation, dtype=np.float32))
        p, floor_idx = self.params, self.site.floor_idx
        s, x = self.telemetry(obs)
        phys = spaces.to_physical_import([a[:, j] for j in range(a.shape[1])], p, floor_idx, s, x, NUMPY)
        pmax = p.battery_power_mw
        a[:, 0] = np.clip(np.asarray(phys.battery_mw) / pmax, -1.0, 1.0) if pmax > 0 else 0.0
        return a[0] if single else a
