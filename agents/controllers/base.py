"""The controller interface shared by rules, MPC, oracle and learned policies.

Every controller follows Stable-Baselines3's ``predict`` signature and acts on the
observation vector only (one row, or a batch of rows), decoded through the contract in
:mod:`cpm_env.spaces`. It may know the site's static parameters (the same ones an exported
policy's JSON sidecar carries), never the simulator's hidden state.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from cpm_env.physics import Exo
from cpm_env.scenario import Site
from cpm_env.shield import decode_observation, required_entries
from cpm_env.site import State
from cpm_env.spaces import class_duties, from_physical


class Controller(Protocol):
    """Anything with SB3's ``predict``: observation(s) in, actions in [-1, 1] out."""

    def predict(self, observation: np.ndarray, state=None, episode_start=None, deterministic: bool = True):
        ...


class ObsView:
    """Physical values of named observation entries, for a batch of observations (N, n_obs)."""

    def __init__(self, site: Site):
        self.index = {f.name: i for i, f in enumerate(site.obs_features)}
        self.scale = {f.name: f.scale for f in site.obs_features}
        self.class_names = site.class_names

    def __call__(self, obs: np.ndarray, name: str) -> np.ndarray:
        """Column ``name`` of ``obs`` in physical units (float64)."""
        return obs[:, self.index[name]].astype(np.float64) * self.scale[name]

    def class_duty(self, obs: np.ndarray) -> list[np.ndarray] | None:
        """Each class's own duty (fraction of the step at its high level, clipped to [0, 1]) where the observation
        carries them (``duty_<class>``, :func:`cpm_env.spaces.class_duties`); None where it does not: every class's
        duty is then the step's ``duty``."""
        if f"duty_{self.class_names[0]}" not in self.index:
            return None
        return [np.clip(self(obs, f"duty_{n}"), 0.0, 1.0) for n in self.class_names]


class TelemetryDecoder:
    """The state and step (arrays over the batch) that observations (N, n_obs) describe, for a wrapper
    that holds only the observation: :func:`cpm_env.shield.decode_observation` of the entries
    :func:`cpm_env.shield.required_entries` names (the safety filter's, the import-change conversion's
    and the exported runtime's decoding). A one-line ValueError, starting with ``where``, if the
    site's observation lacks one of them (``reader``: what needs them)."""

    def __init__(self, site: Site, where: str, reader: str):
        entries = required_entries(site.class_names, site.floor_idx, class_duties(site.config))
        missing = [e for e in entries if e not in site.obs_names]
        if missing:
            raise ValueError(f"{where}: its observation lacks {', '.join(missing)} (the {reader} needs "
                             f"{', '.join(entries)})")
        view = ObsView(site)
        self.index = [view.index[e] for e in entries]
        self.scale = [view.scale[e] for e in entries]
        self.params, self.floor_idx = site.params, site.floor_idx

    def __call__(self, obs: np.ndarray) -> tuple[State, Exo]:
        return decode_observation(self.params, obs, self.index, self.scale, self.floor_idx)


class RuleController:
    """Base for rule-based controllers: decodes observations, encodes physical set-points."""

    def __init__(self, site: Site):
        self.site = site
        self.params = site.params
        self.view = ObsView(site)
        self.class_names = site.class_names

    def act(self, obs: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Battery MW (N,) and caps per class [(N,)] for a batch of observations."""
        raise NotImplementedError

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == 1
        obs2 = np.atleast_2d(obs)
        battery_mw, caps = self.act(obs2)
        floors = [np.zeros(len(obs2)) for _ in caps]  # rules leave floors off
        actions = from_physical(battery_mw, caps, floors, self.params, self.site.floor_idx).astype(np.float32)
        return (actions[0] if single else actions), state
