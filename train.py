"""Train a PPO agent on a cpm_env scenario (RL Zoo conventions).

    python train.py [--scenario ID_OR_YAML] [--timesteps N] [--seed S] [--n-envs N]
                    [--hyperparams key:value ...] [--run-dir DIR]

Hyperparameters: configs/ppo.yml (default block, then the scenario's block, then
--hyperparams). The run dir gets config.yml, args.yml, scenario.yml, model.zip,
vecnormalize.pkl, checkpoints/ and tb/ (TensorBoard, with the site's KPIs under site/).
Evaluate the result with `python evaluate.py --controllers greedy,ppo:RUN_DIR`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from agents.ppo_train import load_hyperparams, train
from cpm_env.config import ConfigError
from cpm_env.vec_env import make_vec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="cpm_env/DataCenter-v0", help="registered id or scenario YAML")
    parser.add_argument("--timesteps", type=int, default=None, help="total env steps (default: n_timesteps)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (envs get seed, seed+1, ...)")
    parser.add_argument("--n-envs", type=int, default=None, help="envs in the batch (default: n_envs)")
    parser.add_argument("--hyperparams", nargs="*", default=[], metavar="KEY:VALUE",
                        help="override configs/ppo.yml, e.g. learning_rate:0.0001 n_steps:512")
    parser.add_argument("--run-dir", type=Path, default=None, help="default: runs/<scenario>_seed<seed>")
    args = parser.parse_args(argv)
    try:
        probe = make_vec(args.scenario, 1)
        hp = load_hyperparams(probe.config.id, args.hyperparams)
        n_envs = args.n_envs or int(hp["n_envs"])
        timesteps = args.timesteps or int(hp["n_timesteps"])
        if timesteps < 1:
            raise ValueError(f"--timesteps = {timesteps}: must be >= 1")
        venv = make_vec(args.scenario, n_envs, seed=args.seed)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    run_dir = args.run_dir or Path("runs") / f"{venv.config.id}_seed{args.seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "args.yml").write_text(yaml.safe_dump({**vars(args), "run_dir": str(run_dir)}, sort_keys=False))
    train(venv, {**hp, "n_envs": n_envs, "n_timesteps": timesteps}, timesteps, args.seed, run_dir)
    print(f"saved {run_dir}: evaluate with  python evaluate.py --controllers greedy,ppo:{run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
