"""``NAME+shield``: any controller with its actions passed through the safety filter (:mod:`cpm_env.shield`).

The wrapper decodes the observation into the state and step it describes, maps the inner
controller's actions to physical set-points, filters them and encodes the rows the filter changed
(the others are returned exactly as the inner controller gave them, as float64: float32 would round
the filter's set-points across the boundaries it aims at). ``last_shield_report`` holds the
filter's :class:`cpm_env.shield.Report` of the last batch, for the evaluation's KPIs. The decoding
(:func:`cpm_env.shield.decode_observation`) is the exported runtime's (``agents/runtime.py``).
"""

from __future__ import annotations

import numpy as np

from agents.controllers.base import Controller, TelemetryDecoder
from cpm_env import spaces
from cpm_env.ops import NUMPY
from cpm_env.scenario import Site
from cpm_env.shield import MARGIN_MW, Report, shield


class Shielded:
    """A controller whose actions pass through :func:`cpm_env.shield.shield` (see the module doc)."""

    def __init__(self, inner: Controller, site: Site, name: str, margin_mw: float = MARGIN_MW):
        self.telemetry = TelemetryDecoder(site, f"controller {name!r}: +shield cannot apply to {site.config.id}",
                                          "filter")
        self.inner, self.site, self.params, self.margin_mw = inner, site, site.params, margin_mw
        self.last_shield_report: Report | None = None

    def __getattr__(self, name: str):
        """The inner controller's attributes (``start_episode``, solve times)."""
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        actions, state = self.inner.predict(observation, state, episode_start, deterministic)
        obs = np.atleast_2d(np.asarray(observation, dtype=np.float32))
        single = np.ndim(actions) == 1
        out = np.array(np.atleast_2d(actions), dtype=np.float64)  # float32 would round the filter's set-points
        spaces.check_finite_action(out)
        a = np.clip(out, -1.0, 1.0)
        p, floor_idx = self.params, self.site.floor_idx
        proposal = spaces.to_physical([a[:, j] for j in range(a.shape[1])], p, floor_idx, NUMPY)
        s, x = self.telemetry(obs)
        safe, report = shield(p, s, x, proposal, self.margin_mw)
        rows = report.intervened
        if rows.any():
            out[rows] = spaces.from_physical(safe.battery_mw[rows], [c[rows] for c in safe.caps],
                                             [f[rows] for f in safe.floors], p, floor_idx)
        self.last_shield_report = report
        return (out[0] if single else out), state
