"""Train a PPO agent on a cpm_env scenario (RL Zoo conventions).

    python train.py [--scenario ID_OR_YAML] [--timesteps N] [--seed S] [--n-envs N]
                    [--hyperparams key:value ...] [--run-dir DIR [--overwrite]]
    python train.py --resume DIR
    python train.py --optimize --n-trials N [--storage URL] [--study-name NAME] [--timesteps N]

Hyperparameters: configs/ppo.yml (default block, then the scenario's block, then
--hyperparams). The run dir gets config.yml, args.yml, scenario.yml, the final model
(policy.npz, policy_spec.json, normalizer.json: what ppo:RUN_DIR and export.py read, no
pickle; SB3's model.zip and vecnormalize.pkl) sealed by manifest.json (each file's SHA-256,
the step count, the scenario), checkpoints/model_<steps>_steps/ (model.zip +
vecnormalize.pkl + manifest.json, for --resume), evaluations.csv and best/ (a sealed set,
from periodic evaluation on held-out seeds against the best rule) and tb/ (TensorBoard: SB3's
scalars, the site's KPIs under site/: compute delivered, violation MWh, SoC, caps, % of the
best rule; evaluations under eval/). --resume continues a killed run from its newest complete
checkpoint (an incomplete one is skipped with a note; its pickles run code: see
docs/SECURITY.md) to its total timesteps (refused for a finished run or another --scenario).
Ctrl-C saves a checkpoint where training stands and says, in one line, how to --resume (exit 130).
A run never shares a folder: the default run dir is runs/<scenario>_seed<seed>_<UTC time>, a
non-empty --run-dir is refused unless --overwrite moves it aside to <DIR>.old-<UTC time>
(nothing is deleted), and every argument is checked before anything is written. --optimize
searches hyperparameters with Optuna (any storage URL; several machines may share one study).
Evaluate the result with `python evaluate.py --controllers greedy,ppo:RUN_DIR`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agents.files import move_aside
from agents.learning.artifacts import ENV_OPTIONS, options_in
from agents.learning.callbacks import final_evaluation_line
from agents.learning.rundir import check_fresh_run_dir, check_name, default_run_dir
from agents.learning.train import (
    TrainingInterrupted,
    check_resumable,
    check_same_scenario,
    check_start,
    resume,
    run_hyperparams,
    train,
)
from cpm_env.config import ConfigError
from cpm_env.family import SiteFamily, resolve
from cpm_env.spaces import BATTERY_ACTIONS
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
    parser.add_argument("--shield", action=argparse.BooleanOptionalAction, default=None,
                        help="train behind the safety filter (cpm_env.shield): every action filtered before the "
                             "physics, evaluations too; recorded in the policy's manifest, so ppo:DIR and export.py "
                             "apply it (default: configs/ppo.yml's shield for the scenario, else off)")
    parser.add_argument("--battery-action", choices=BATTERY_ACTIONS, default=None,
                        help="what the policy's first action sets: power, the battery's, or import_change, the "
                             "change of the grid import per step in units of the ramp limit (0 holds it); recorded "
                             "in the manifest, so ppo:DIR and export.py convert it to battery set-points (default: "
                             "configs/ppo.yml's battery_action for the scenario, else power)")
    parser.add_argument("--site-features", action=argparse.BooleanOptionalAction, default=None,
                        help="append the site's static parameters (grid limit, battery, ramp limit, band, class "
                             "shares, cap floors and slews, step length: cpm_env.spaces.site_parameter_features) "
                             "to every observation; recorded in the manifest, so ppo:DIR appends them (default: "
                             "configs/ppo.yml's site_features for the scenario, else off)")
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="default: runs/<scenario>_seed<seed>_<UTC time> (with --optimize: "
                             "runs/optuna/<study name>); must be empty or absent unless --overwrite")
    parser.add_argument("--overwrite", action="store_true",
                        help="move a non-empty --run-dir aside to <DIR>.old-<UTC time> and start fresh")
    parser.add_argument("--resume", type=Path, default=None, metavar="DIR",
                        help="continue the killed run in DIR from its newest checkpoint")
    parser.add_argument("--optimize", action="store_true", help="tune hyperparameters with Optuna")
    parser.add_argument("--n-trials", type=int, default=20, help="Optuna trials this process runs (default 20)")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL (default sqlite:///RUN_DIR/optuna.db); "
                             "machines given one URL and study name share the study")
    parser.add_argument("--study-name", default=None, help="Optuna study name (default ppo_<scenario>)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.seed < 0:
            raise ValueError(f"--seed = {args.seed}: must be >= 0")
        if args.resume is not None:
            run_args, hp, checkpoint = check_resumable(args.resume)
            if args.scenario is not None:
                check_same_scenario(args.resume, args.scenario)
            # fresh episodes after the checkpoint: the generators' state is not saved
            venv = make_vec(str(args.resume / "scenario.yml"), int(hp["n_envs"]),
                            seed=int(run_args["seed"]) + checkpoint[2], **options_in(run_args))
        else:
            scenario = args.scenario or DEFAULT_SCENARIO
            source = resolve(scenario)
            scenario_id = source.id
            hp = run_hyperparams(scenario_id, args.hyperparams, args.n_envs, args.timesteps, args.optimize,
                                 args.n_trials)
            # the env options: the command line's, else the config's for the scenario, else the defaults
            given = {key: value for key, value in options_in(vars(args)).items() if value is not None}
            # a policy for a site family must know the site it faces: it observes the site's parameters by default
            family_default = {"site_features": True} if isinstance(source, SiteFamily) else {}
            options = {**ENV_OPTIONS, **family_default, **{k: hp[k] for k in ENV_OPTIONS if k in hp}, **given}
            vars(args).update(options)  # args.yml: --resume rebuilds the env from them
            hp.update(options)
            check_start(hp)
            if args.optimize:
                from agents.learning.tune import check_storage, check_study_dir  # optuna only where tuning

                name = check_name(args.study_name or f"ppo_{scenario_id.split('/')[-1]}", "--study-name")
                study_dir = args.run_dir or Path("runs") / "optuna" / name
                if args.storage is not None:
                    check_storage(args.storage)
                check_study_dir(study_dir, name, scenario_id)
            else:
                run_dir = args.run_dir or default_run_dir(scenario_id, args.seed)
                check_fresh_run_dir(run_dir, args.overwrite)
                venv = make_vec(scenario, hp["n_envs"], seed=args.seed, **options)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        if args.resume is not None:
            resume(args.resume, venv, checkpoint)
            print(final_evaluation_line(args.resume) or "no evaluation recorded")
            print(f"resumed and finished {args.resume}: evaluate with  "
                  f"python evaluate.py --controllers greedy,ppo:{args.resume}")
            return 0
        if args.optimize:
            from agents.learning.tune import optimize

            optimize(scenario, scenario_id, hp, args.n_trials, hp["n_timesteps"], args.seed, study_dir, args.storage,
                     name)
            best = study_dir / "best_hyperparams.yml"
            print(best.read_text() if best.is_file() else "no trial finished (all pruned or failed)")
            return 0
        old = move_aside(run_dir) if args.overwrite else None
        if old is not None:
            print(f"moved the previous contents of {run_dir} to {old}")
        saved_args = {**vars(args), "scenario": scenario, "run_dir": str(run_dir), "resume": None}
        train(venv, hp, hp["n_timesteps"], args.seed, run_dir, run_args=saved_args)
        print(final_evaluation_line(run_dir) or "no evaluation recorded")
        print(f"saved {run_dir}: evaluate with  python evaluate.py --controllers greedy,ppo:{run_dir}")
        return 0
    except (TrainingInterrupted, KeyboardInterrupt) as stop:  # Ctrl-C: one line on what was kept, no traceback
        if args.optimize:
            print("\ninterrupted: the finished trials are in the study; the same command adds more", file=sys.stderr)
        elif isinstance(stop, TrainingInterrupted):
            print(f"\n{stop}", file=sys.stderr)
        else:
            where = args.resume if args.resume is not None else run_dir
            print(f"\ninterrupted outside the training loop (before it, or saving after it): {where} keeps what "
                  f"finished; python train.py --resume {where} continues from its newest checkpoint, if it has one",
                  file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
