"""A trained Stable-Baselines3 PPO policy (run dir with model.zip and vecnormalize.pkl) as a controller."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from cpm_env.scenario import Site
from cpm_env.vec_env import CpmVecEnv

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


def shipped_model_dir(site: Site) -> Path:
    """``models/<scenario id>/``, the policy shipped for a scenario; one-line error if there is none."""
    path = MODELS_DIR / site.config.id
    if not (path / "model.zip").is_file():
        shipped = sorted(p.parent.name for p in MODELS_DIR.glob("*/model.zip")) if MODELS_DIR.is_dir() else []
        raise ValueError(f"ppo: no shipped policy for {site.config.id} (shipped: {shipped or 'none'}); "
                         "train one with train.py --run-dir DIR and use ppo:DIR")
    return path


class PPOController:
    """Deterministic actions of a trained PPO model, observations normalized as in training."""

    def __init__(self, run_dir: str | Path, site: Site):
        run_dir = Path(run_dir)
        model_path = run_dir / "model.zip" if run_dir.is_dir() else run_dir
        if not model_path.is_file():
            raise ValueError(f"ppo:{run_dir}: no model.zip there: train one with train.py --run-dir DIR")
        self.model = PPO.load(model_path, device="cpu")
        if self.model.observation_space.shape != site.observation_space.shape:
            raise ValueError(f"ppo:{run_dir}: model observes {self.model.observation_space.shape}, "
                             f"this scenario gives {site.observation_space.shape}")
        self.norm = None
        stats = model_path.parent / "vecnormalize.pkl"
        if stats.is_file():
            self.norm = VecNormalize.load(str(stats), CpmVecEnv(site.config, 1))
            self.norm.training = False

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        obs = np.asarray(observation, dtype=np.float32)
        if self.norm is not None:
            obs = self.norm.normalize_obs(obs)
        action, _ = self.model.predict(obs, deterministic=deterministic)
        return action, state
