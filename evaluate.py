"""Evaluate controllers on held-out seeds of a scenario and print the KPI table.

    python evaluate.py [--scenario ID_OR_YAML] [--controllers static_cap,greedy] [--seeds 100-119] [--out DIR]
    python evaluate.py --sweep configs/sweeps/cpm_frontier.yml [--seeds 100-102] [--out DIR] [--workers auto|N|ray]

The second form sizes a site: compute per MW over GPU oversubscription x battery size x
controllers (see agents/sizing/sweep.py), written to DIR (default results/sweeps/<name>).

The output folder is checked and created before any work and stamped with the run's
configuration (run.json). Each controller's rows are kept in DIR/rows/ as soon as its batch of
seeds finishes (a sweep: each point's), so rerunning the same command after an interruption
continues where it stopped; another configuration into the same folder needs --overwrite,
which moves the old folder aside. The final files are renamed into place together.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from agents.evaluation.outpaths import safe_name
from agents.evaluation.report import REPORT_FILES, write_report
from agents.evaluation.runfolder import RunFolder
from agents.evaluation.runner import (
    DEFAULT_CONTROLLERS,
    controller_names,
    make_controller,
    policy_fingerprints,
    run_controller,
)
from agents.evaluation.seeds import parse_seeds
from agents.evaluation.summary import solve_timing
from agents.files import scenario_sha256
from cpm_env.config import ConfigError, scenario_to_dict
from cpm_env.vec_env import CpmVecEnv, make_vec

DEFAULT_SEEDS = "100-104"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default=None,
                        help="registered id or scenario YAML (default cpm_env/DataCenter-v0)")
    parser.add_argument("--controllers", default=None,
                        help=f"comma-separated names (default: {DEFAULT_CONTROLLERS}; ppo only where a policy "
                             "is shipped in models/<scenario id>/; ppo:RUN_DIR for a run dir; onnx:EXPORT_DIR for a "
                             "policy exported by export.py, run by agents/runtime.py; NAME+shield: NAME behind the "
                             "safety filter cpm_env/shield.py)")
    parser.add_argument("--seeds", default=None,
                        help=f"held-out seeds, e.g. 100-119 (default {DEFAULT_SEEDS}; a sweep: its file's)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for episodes.csv, summary.md and the plots (default: results/<scenario id>)")
    parser.add_argument("--overwrite", action="store_true",
                        help="if --out holds a run of another configuration, move it aside (to DIR.old-TIME) "
                             "and start afresh; without it that is an error, and the same configuration resumes")
    parser.add_argument("--allow-other-scenario", action="store_true",
                        help="run ppo:RUN_DIR policies trained on another scenario (refused otherwise)")
    parser.add_argument("--sweep", default=None, metavar="FILE", help="a sweep YAML: size the site instead")
    parser.add_argument("--workers", default="auto",
                        help="sweep processes: auto (every core), N, or ray (a Ray cluster)")
    return parser.parse_args(argv)


def sweep(args: argparse.Namespace) -> int:
    """The --sweep form: the sweep file names the scenario and the controllers."""
    if args.scenario or args.controllers:
        print("error: --sweep takes its scenario and controllers from the sweep file, not --scenario/--controllers",
              file=sys.stderr)
        return 2
    from agents.sizing.sweep import sweep_cli

    return sweep_cli(args.sweep, args.seeds, args.out, args.workers, args.overwrite)


def run_stamp(venv: CpmVecEnv, names: list[str], seeds: list[int]) -> dict:
    """The configuration an evaluation folder is stamped with (run.json)."""
    return {"command": "evaluate", "scenario": venv.config.id,
            "scenario_sha256": scenario_sha256(scenario_to_dict(venv.config)), "controllers": names, "seeds": seeds,
            "policies": policy_fingerprints(names, venv.site)}  # a retrained policy is another run


def evaluate_all(folder: RunFolder, controllers: dict, venv: CpmVecEnv, seeds: list[int]) -> None:
    """Run each controller not yet done in ``folder`` (all seeds as one batch) and keep its rows,
    first-seed trace and solve times there as soon as its batch finishes."""
    names = list(controllers)
    todo = [i for i in range(len(names)) if not folder.has(i)]
    per_controller = len(seeds) * venv.config.n_steps
    with tqdm(total=len(names) * per_controller, initial=(len(names) - len(todo)) * per_controller, unit="step",
              desc=venv.config.id, disable=None) as bar:
        for i in todo:
            trace: dict[str, list[float]] = {}
            rows = run_controller(controllers[names[i]], venv, seeds, names[i], bar, trace=trace)
            folder.save(i, rows, {"trace": trace, "timing": solve_timing(controllers[names[i]])})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sweep is not None:
        return sweep(args)
    args.scenario = args.scenario or "cpm_env/DataCenter-v0"
    seeds_text = DEFAULT_SEEDS if args.seeds is None else args.seeds
    try:
        seeds = parse_seeds(seeds_text)
        venv = make_vec(args.scenario, len(seeds))
        if venv.family is not None:
            raise ValueError(f"--scenario {args.scenario}: the site family {venv.family.id} draws a site per seed, "
                             "and the rules, the MPC and the oracle read one site's model: evaluate sites drawn "
                             "from it with benchmarks/generalization.py, or one with "
                             "cpm_env.family.SiteFamily(path).site(seed)")
        names = controller_names(args.controllers, venv.config.id)
        out = args.out if args.out is not None else Path("results") / safe_name(venv.config.id, "scenario id")
        folder = RunFolder(out, run_stamp(venv, names, seeds), "--out", args.overwrite, REPORT_FILES)
        controllers = {n: make_controller(n, venv.site, args.allow_other_scenario) for n in names}
        folder.claim()
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        evaluate_all(folder, controllers, venv, seeds)
    except KeyboardInterrupt:
        print(f"interrupted: the finished controllers' rows are kept in {out}/rows; rerun the same command to continue",
              file=sys.stderr)
        return 130
    parts = [folder.load(i) for i in range(len(names))]
    episodes = pd.concat([rows for rows, _ in parts], ignore_index=True)
    traces = {n: extra["trace"] for n, (_, extra) in zip(names, parts)}
    timings = {n: extra["timing"] for n, (_, extra) in zip(names, parts)}
    with folder.publish() as staging:
        table = write_report(staging, episodes, traces, timings, venv.config, seeds, seeds_text)
    print(table)
    print(f"\nwrote {out}/{', '.join(REPORT_FILES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
