"""Building and training SB3 PPO on the batched env from configs/ppo.yml (RL Zoo conventions)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import torch
import yaml
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from stable_baselines3.common.vec_env import VecNormalize

from cpm_env.config import scenario_to_dict
from cpm_env.vec_env import CpmVecEnv, EPISODE_KPIS

PPO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ppo.yml"
# keys of configs/ppo.yml that are not PPO constructor arguments
RUN_KEYS = {"n_envs", "n_timesteps", "policy", "normalize"}
PPO_KEYS = {"learning_rate", "n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda", "clip_range", "ent_coef",
            "vf_coef", "max_grad_norm", "target_kl", "policy_kwargs", "use_sde", "sde_sample_freq",
            "normalize_advantage"}


def load_hyperparams(scenario_id: str, overrides: list[str] | None = None, path: Path = PPO_CONFIG) -> dict[str, Any]:
    """configs/ppo.yml's default block, then the scenario's block, then ``key:value`` overrides.

    Raises ValueError naming the key and the valid ones for an unknown or malformed override.
    """
    table = yaml.safe_load(path.read_text())
    hp = dict(table["default"])
    hp.update(table.get(scenario_id.split("/")[-1], {}) or {})
    for item in overrides or []:
        key, sep, raw = item.partition(":")
        if not sep or key not in RUN_KEYS | PPO_KEYS:
            raise ValueError(f"--hyperparams {item!r}: unknown key {key!r}; valid keys are "
                             f"{', '.join(sorted(RUN_KEYS | PPO_KEYS))}")
        try:
            hp[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            hp[key] = raw  # a plain string (e.g. policy: MlpPolicy)
    return hp


class KpiLogger(BaseCallback):
    """Logs each finished episode's site KPIs (from ``info["episode"]``) to TensorBoard."""

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            ep = info.get("episode")
            if ep is None:
                continue
            demanded = max(ep.get("compute_demanded", 0.0), 1e-12)
            self.logger.record_mean("site/compute_fraction", ep["compute_delivered"] / demanded)
            for key in EPISODE_KPIS:
                if key in ep:
                    self.logger.record_mean(f"site/{key}", ep[key])
        return True


def train(venv: CpmVecEnv, hp: dict[str, Any], timesteps: int, seed: int, run_dir: Path,
          checkpoint_every: int = 100_000) -> PPO:
    """Train PPO (VecNormalize if ``hp['normalize']``) and write the run dir.

    The run dir gets ``config.yml`` (hyperparameters), ``scenario.yml``, ``model.zip``,
    ``vecnormalize.pkl``, ``checkpoints/`` (model + normalizer) and ``tb/`` (TensorBoard).
    """
    torch.set_num_threads(1)  # SB3's small MLPs run slower with more threads than this machine's cores
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yml").write_text(yaml.safe_dump(hp, sort_keys=False))
    (run_dir / "scenario.yml").write_text(yaml.safe_dump(scenario_to_dict(venv.config), sort_keys=False))
    kwargs = {k: v for k, v in hp.items() if k in PPO_KEYS}
    env = VecNormalize(venv, gamma=kwargs.get("gamma", 0.99)) if hp.get("normalize", True) else venv
    model = PPO(hp.get("policy", "MlpPolicy"), env, seed=seed, device="cpu", verbose=0,
                tensorboard_log=str(run_dir / "tb"), **kwargs)
    n_envs = venv.num_envs
    checkpoints = CheckpointCallback(max(checkpoint_every // n_envs, 1), str(run_dir / "checkpoints"),
                                     name_prefix="model", save_vecnormalize=True)
    model.learn(timesteps, callback=[KpiLogger(), checkpoints], progress_bar=True, tb_log_name="ppo")
    model.save(run_dir / "model.zip")
    if isinstance(env, VecNormalize):
        env.save(str(run_dir / "vecnormalize.pkl"))
    return model
