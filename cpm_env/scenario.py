"""A scenario resolved into what both envs and every controller need: its config, the site model's
parameters (:mod:`cpm_env.site`), the episode generator and the observation/action contract."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from cpm_env import config, spaces
from cpm_env.config import ScenarioConfig
from cpm_env.episode import EpisodeGenerator
from cpm_env.family import SiteFamily, Source, find_family
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



class EnvContract(NamedTuple):
    """What both envs (``CpmEnv``, ``CpmVecEnv``) build from their arguments: :func:`env_contract`."""

    family: SiteFamily | None  # a site family: a site is drawn per episode (per env in a batch)
    site: Site  # the site; of a family, its base site (whose layout every draw shares)
    source: Source  # what builds the same env again: the site's config or the family
    shield: bool
    battery_action: str
    site_features: bool
    features: list[spaces.Feature]  # the observation entries (a family's bounds), the site's parameters last
    site_entries: np.ndarray  # the observation's constant tail: the site's parameters (empty without the option)
    action_names: list[str]


def env_contract(scenario: ScenarioLike, base: str | Path | None, shield, battery_action, site_features
                 ) -> EnvContract:
    """The site (or family) and the observation/action contract of an env's arguments, the options checked
    (one-line ValueError): ``shield`` a bool, ``battery_action`` one of :data:`cpm_env.spaces.BATTERY_ACTIONS`,
    ``site_features`` a bool or None (on for a site family, whose policy must know the site it faces)."""
    if not isinstance(shield, bool):
        raise ValueError(f"shield = {shield!r}: must be true or false")
    spaces.check_battery_action(battery_action)
    family = find_family(scenario, base)
    site = Site(family.reference) if family is not None else Site(scenario, base)
    if site_features is None:
        site_features = family is not None
    features, site_entries = spaces.site_observation(site.config, site.obs_features, site_features)
    if family is not None:
        features = family.observation_features(features) + features[len(site.obs_features):]
    return EnvContract(family, site, family if family is not None else site.config, shield, battery_action,
                       site_features, features, site_entries,
                       spaces.action_names(site.params, site.action_features, battery_action))
