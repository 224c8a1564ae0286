"""Train a PPO agent on a cpm_env scenario (a first, minimal pipeline).

    python train.py [--scenario ID_OR_YAML] [--timesteps N] [--seed S] [--n-envs N] [--run-dir DIR]

Hyperparameters come from configs/ppo.yml (default block, then the scenario's block).
The run dir gets the model (model.zip), the normalizer (vecnormalize.pkl) and the args.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecNormalize

from cpm_env.config import ConfigError
from cpm_env.vec_env import make_vec

PPO_CONFIG = Path(__file__).parent / "configs" / "ppo.yml"


def load_hyperparams(scenario_id: str) -> dict:
    """The default block of configs/ppo.yml updated with the scenario's block."""
    table = yaml.safe_load(PPO_CONFIG.read_text())
    hp = dict(table["default"])
    hp.update(table.get(scenario_id.split("/")[-1], {}) or {})
    return hp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="cpm_env/DataCenter-v0")
    parser.add_argument("--timesteps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-envs", type=int, default=None)
    parser.add_argument("--run-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # SB3's small MLPs run slower with more threads than this machine's cores
    try:
        venv = make_vec(args.scenario, 1)
        hp = load_hyperparams(venv.config.id)
        n_envs = args.n_envs or hp.pop("n_envs")
        hp.pop("n_envs", None)
        timesteps = args.timesteps or hp.pop("n_timesteps")
        hp.pop("n_timesteps", None)
        venv = make_vec(args.scenario, n_envs, seed=args.seed)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    normalize = hp.pop("normalize", True)
    policy = hp.pop("policy")
    env = VecNormalize(venv) if normalize else venv
    run_dir = args.run_dir or Path("runs") / f"{venv.config.id}_seed{args.seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    model = PPO(policy, env, seed=args.seed, device="cpu", verbose=0, **hp)
    model.learn(timesteps, progress_bar=True)
    model.save(run_dir / "model.zip")
    if normalize:
        env.save(str(run_dir / "vecnormalize.pkl"))
    (run_dir / "args.yml").write_text(yaml.safe_dump({**vars(args), "run_dir": str(run_dir)}, sort_keys=False))
    print(f"saved {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
