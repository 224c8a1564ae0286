"""Train a PPO agent on a cpm_env scenario (RL Zoo conventions).

    python train.py [--scenario ID_OR_YAML] [--timesteps N] [--seed S] [--n-envs N]
                    [--hyperparams key:value ...] [--run-dir DIR]
    python train.py --resume DIR
    python train.py --optimize --n-trials N [--storage URL] [--study-name NAME] [--timesteps N]

Hyperparameters: configs/ppo.yml (default block, then the scenario's block, then
--hyperparams). The run dir gets config.yml, args.yml, scenario.yml, model.zip,
vecnormalize.pkl, checkpoints/ (model + normalizer), evaluations.csv and best/ (periodic
evaluation on held-out seeds against the best rule) and tb/ (TensorBoard: SB3's scalars,
the site's KPIs under site/: compute delivered, violation MWh, SoC, caps, % of the best
rule; evaluations under eval/). --resume continues a killed run from its newest checkpoint
to its total timesteps (refused for a finished run or another --scenario). --optimize
searches hyperparameters with Optuna (any storage URL; several machines may share one study).
Evaluate the result with `python evaluate.py --controllers greedy,ppo:RUN_DIR`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from agents.learning.train import latest_checkpoint, load_hyperparams, resume, train
from cpm_env.config import ConfigError, read_yaml, resolve_scenario, scenario_to_dict
from cpm_env.vec_env import make_vec

DEFAULT_SCENARIO = "cpm_env/DataCenter-v0"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default=None, help=f"registered id or scenario YAML (default {DEFAULT_SCENARIO})")
    parser.add_argument("--timesteps", type=int, default=None,
                        help="total env steps (default: n_timesteps; with --optimize: per trial, n_timesteps / 5)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (envs get seed, seed+1, ...)")
    parser.add_argument("--n-envs", type=int, default=None, help="envs in the batch (default: n_envs)")
    parser.add_argument("--hyperparams", nargs="*", default=[], metavar="KEY:VALUE",
                        help="override configs/ppo.yml, e.g. learning_rate:0.0001 n_steps:512")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="default: runs/<scenario>_seed<seed> (with --optimize: runs/optuna/<study name>)")
    parser.add_argument("--resume", type=Path, default=None, metavar="DIR",
                        help="continue the killed run in DIR from its newest checkpoint")
    parser.add_argument("--optimize", action="store_true", help="tune hyperparameters with Optuna")
    parser.add_argument("--n-trials", type=int, default=20, help="Optuna trials this process runs (default 20)")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL (default sqlite:///RUN_DIR/optuna.db); "
                             "machines given one URL and study name share the study")
    parser.add_argument("--study-name", default=None, help="Optuna study name (default ppo_<scenario>)")
    return parser.parse_args(argv)


def check_resumable(run_dir: Path, scenario: str | None) -> tuple[dict, dict, int]:
    """The run's args, hyperparameters and the env steps of its newest checkpoint; ValueError
    if it cannot be resumed (as asked)."""
    for name in ("args.yml", "config.yml", "scenario.yml"):
        if not (run_dir / name).is_file():
            raise ValueError(f"--resume {run_dir}: {name} missing: not a train.py run dir")
    if (run_dir / "model.zip").is_file():
        raise ValueError(f"--resume {run_dir}: the run already finished (model.zip is there)")
    _, _, done = latest_checkpoint(run_dir)
    run_args = read_yaml(run_dir / "args.yml", "train.py arguments")
    if scenario is not None:
        saved = read_yaml(run_dir / "scenario.yml")
        given = scenario_to_dict(resolve_scenario(scenario))
        if given != saved:
            raise ValueError(f"--resume {run_dir}: the run trained on scenario {saved.get('id')!r} "
                             f"({run_args.get('scenario')}), not --scenario {scenario} ({given.get('id')!r}); "
                             "resume without --scenario or start a new run")
    return run_args, read_yaml(run_dir / "config.yml", "hyperparameters"), done


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.resume is not None:
            run_args, hp, done = check_resumable(args.resume, args.scenario)
            # fresh episodes after the checkpoint: the generators' state is not saved
            venv = make_vec(str(args.resume / "scenario.yml"), int(hp["n_envs"]), seed=int(run_args["seed"]) + done)
        else:
            scenario = args.scenario or DEFAULT_SCENARIO
            scenario_id = resolve_scenario(scenario).id
            hp = load_hyperparams(scenario_id, args.hyperparams)
            n_envs = args.n_envs or int(hp["n_envs"])
            default_steps = int(hp["n_timesteps"]) // (5 if args.optimize else 1)
            timesteps = args.timesteps or default_steps
            if timesteps < 1 or n_envs < 1 or args.n_trials < 1:
                raise ValueError(f"--timesteps = {timesteps}, --n-envs = {n_envs}, --n-trials = {args.n_trials}: "
                                 "each must be >= 1")
            hp = {**hp, "n_envs": n_envs, "n_timesteps": timesteps}
            if not args.optimize:
                venv = make_vec(scenario, n_envs, seed=args.seed)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    if args.resume is not None:
        resume(args.resume, venv)
        print(f"resumed and finished {args.resume}: evaluate with  "
              f"python evaluate.py --controllers greedy,ppo:{args.resume}")
        return 0
    if args.optimize:
        from agents.learning.tune import optimize

        name = args.study_name or f"ppo_{scenario_id}"
        study_dir = args.run_dir or Path("runs") / "optuna" / name
        optimize(scenario, scenario_id, hp, args.n_trials, timesteps, args.seed, study_dir, args.storage, name)
        best = study_dir / "best_hyperparams.yml"
        print(best.read_text() if best.is_file() else "no trial finished (all pruned or failed)")
        return 0
    run_dir = args.run_dir or Path("runs") / f"{venv.config.id}_seed{args.seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    saved_args = {**vars(args), "scenario": scenario, "run_dir": str(run_dir), "resume": None}
    (run_dir / "args.yml").write_text(yaml.safe_dump(saved_args, sort_keys=False))
    train(venv, hp, timesteps, args.seed, run_dir)
    print(f"saved {run_dir}: evaluate with  python evaluate.py --controllers greedy,ppo:{run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
