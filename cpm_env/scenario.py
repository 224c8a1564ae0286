"""A scenario resolved into what both envs and every controller need: its config, the site model's
parameters (:mod:`cpm_env.site`), the episode generator and the observation/action contract."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cpm_env import config, spaces
from cpm_env.config import ScenarioConfig
from cpm_env.episode import EpisodeGenerator
from cpm_env.site import make_params

ScenarioLike = ScenarioConfig | str | Path | Mapping[str, Any] | None


class Site:
    """A scenario resolved into the objects both envs need.

    ``scenario`` may be a :class:`ScenarioConfig`, a registered id or YAML path (replaces
    ``base``), a mapping of overrides merged onto ``base`` (or onto the default scenario), or
    None (``base``); :func:`cpm_env.config.resolve_scenario` resolves it.
    """

    def __init__(self, scenario: ScenarioLike = None, base: str | Path | None = None):
        if scenario is None or isinstance(scenario, Mapping):
            cfg = config.resolve_scenario(base, scenario)
        else:
            cfg = config.resolve_scenario(scenario)
        self.config = cfg
        self.params = make_params(cfg)
        self.episodes = EpisodeGenerator(cfg, self.params)
        self.obs_features = spaces.observation_features(cfg, self.params)
        self.action_features = spaces.action_features(cfg, self.params)
        self.obs_names = [f.name for f in self.obs_features]
        self.action_names = [f.name for f in self.action_features]
        self.n_exo = len(spaces.exo_observation_features(cfg))
        self.floor_idx = spaces.floor_classes(cfg)
        self.inv_limit = 1.0 / cfg.grid.limit_mw
        self.class_names = [c.name for c in cfg.site.gpu_classes]
        self.observation_space = spaces.observation_space(self.obs_features)
        self.action_space = spaces.action_space(len(self.action_features))

