"""A trained PPO policy (a sealed artifact set: policy.npz, policy_spec.json, normalizer.json) as a controller."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from agents.learning.artifacts import MANIFEST, check_artifacts, env_options, scenario_sha256
from agents.learning.policy_files import NORMALIZER_FILE, SPEC_FILE, WEIGHTS_FILE, load_policy_files
from cpm_env import spaces
from cpm_env.config import read_yaml, scenario_to_dict
from cpm_env.family import FAMILY_KEY, SiteFamily
from cpm_env.scenario import Site
from cpm_env.site import battery_less_soc

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def shipped_model_dir(site: Site) -> Path:
    """``models/<scenario id>/``, the policy shipped for a scenario; one-line error if there is none."""
    path = MODELS_DIR / site.config.id
    if not (path / MANIFEST).is_file():
        shipped = sorted(p.parent.name for p in MODELS_DIR.glob(f"*/{MANIFEST}")) if MODELS_DIR.is_dir() else []
        raise ValueError(f"ppo: no shipped policy for {site.config.id} (shipped: {shipped or 'none'}); "
                         "train one with train.py --run-dir DIR and use ppo:DIR")
    return path


def trained_family(directory: Path, manifest: dict) -> SiteFamily | None:
    """The site family a sealed set was trained on: the ``scenario.yml`` in the set, or in the run dir it was
    saved under (``best/``, a checkpoint), whose hash is the manifest's scenario's and which holds a
    ``family:``; None for a policy of one site."""
    for folder in (directory, directory.parent, directory.parent.parent):
        path = folder / "scenario.yml"
        if path.is_file():
            data = read_yaml(path)
            if FAMILY_KEY in data and scenario_sha256(data, folder) == manifest["scenario"].get("sha256"):
                return SiteFamily(path)
    return None


class PPOController:
    """Deterministic actions of a trained PPO policy, observations normalized as in training.

    Reads only the pickle-free files of a sealed set (``policy.npz``, ``policy_spec.json``,
    ``normalizer.json``), after :func:`check_artifacts` has checked them against ``manifest.json``.
    A policy trained on another scenario (another scenario dict than ``site``'s) is refused unless
    ``allow_other_scenario=True``, except a policy trained on a site family (:func:`trained_family`), which
    runs on any site and prints a warning where the site lies outside the family (``self.outside``); a
    different observation shape is refused always.
    """

    def __init__(self, run_dir: str | Path, site: Site, allow_other_scenario: bool = False):
        given = Path(run_dir)
        directory = given.parent if given.is_file() else given
        if not directory.is_dir():
            raise ValueError(f"ppo:{given}: no such folder: pass a run dir of train.py (with model.zip and "
                             f"{MANIFEST}), e.g. train one with train.py --run-dir DIR")
        try:
            manifest = check_artifacts(directory, (WEIGHTS_FILE, SPEC_FILE))
            self.policy, self.normalizer = load_policy_files(directory)
        except ValueError as err:
            raise ValueError(f"ppo:{given}: {err}") from None
        if self.normalizer is not None and NORMALIZER_FILE not in manifest["files"]:
            raise ValueError(f"ppo:{given}: {directory / MANIFEST}: does not list {NORMALIZER_FILE}: the set is "
                             "incomplete")
        trained = manifest["scenario"]
        # a generalist serves any site of its family's layout; off the family's ranges it says so, once
        self.family = trained_family(directory, manifest)
        self.outside = self.family.outside(site.config) if self.family is not None else []
        if self.outside:
            print(f"warning: ppo:{given}: {site.config.id} lies outside the site family {self.family.id} the policy "
                  f"was trained on ({'; '.join(self.outside)}): its decisions there are untested", file=sys.stderr)
        if (self.family is None and trained.get("sha256") != scenario_sha256(scenario_to_dict(site.config))
                and not allow_other_scenario):
            same = " (same id, other settings)" if trained.get("id") == site.config.id else ""
            raise ValueError(f"ppo:{given}: trained on scenario {trained.get('id')!r}, not {site.config.id!r}{same}: "
                             "train a policy on this scenario, or allow it explicitly (allow_other_scenario=True; "
                             "evaluate.py --allow-other-scenario)")
        # trained with site_features: its observations end with the site's parameters, which it appends here
        try:
            self.site_entries = spaces.site_parameter_entries(site.config) if env_options(manifest)["site_features"] \
                else np.zeros(0, dtype=np.float32)
        except ValueError as err:
            raise ValueError(f"ppo:{given}: {err}") from None
        self.n_plain = site.observation_space.shape[0]
        # appended here, a battery-less site's soc reads as the env with site_features shows it
        soc = (battery_less_soc(self.site_entries, [f.name for f in spaces.site_parameter_features(site.config)])
               if self.site_entries.size else np.nan)
        self._battery_less_soc = None if np.isnan(soc) else (site.obs_names.index("soc"), float(soc))
        # a generalist on a site with fewer GPU classes reads the missing ones as classes of share 0
        try:
            self.padding = (spaces.class_padding(self.family.reference, site.config, bool(self.site_entries.size))
                            if self.family is not None else None)
        except ValueError as err:
            raise ValueError(f"ppo:{given}: {err}") from None
        n_policy = self.n_plain + self.site_entries.size if self.padding is None else len(self.padding.source)
        if self.policy.observation_space.shape != (n_policy,):
            raise ValueError(f"ppo:{given}: model observes {self.policy.observation_space.shape}, "
                             f"this scenario gives {site.observation_space.shape}"
                             + (f" and {self.site_entries.size} site parameters" if self.site_entries.size else ""))
        self.manifest = manifest

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """SB3's interface: actions in [-1, 1] for one observation or a batch."""
        obs = np.asarray(observation, dtype=np.float32)
        if self.site_entries.size and obs.shape[-1] == self.n_plain:  # a plain env's observation
            obs = spaces.with_site_entries(obs, self.site_entries)
            if self._battery_less_soc is not None:
                obs[..., self._battery_less_soc[0]] = self._battery_less_soc[1]
        if self.padding is not None:
            obs = spaces.pad_observation(obs, self.padding)
        if self.normalizer is not None:
            obs = self.normalizer.normalize(obs)
        action, _ = self.policy.predict(obs, deterministic=deterministic)
        return (action if self.padding is None else action[..., self.padding.actions]), state
