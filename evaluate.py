"""Evaluate controllers on held-out seeds of a scenario and print the KPI table.

    python evaluate.py [--scenario ID_OR_YAML] [--controllers static_cap,greedy] [--seeds 100-119] [--out DIR]
    python evaluate.py --sweep configs/sweeps/cpm_frontier.yml [--seeds 100-102] [--out DIR] [--workers auto|N|ray]

The second form sizes a site: compute per MW over GPU oversubscription x battery size x
controllers (see agents/sizing/sweep.py), written to DIR (default results/sweeps/<name>).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from agents.evaluation.report import REPORT_FILES, write_report
from agents.evaluation.runner import DEFAULT_CONTROLLERS, controller_names, make_controller, run_controllers
from agents.evaluation.seeds import parse_seeds
from cpm_env.config import ConfigError
from cpm_env.vec_env import make_vec


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default=None,
                        help="registered id or scenario YAML (default cpm_env/DataCenter-v0)")
    parser.add_argument("--controllers", default=None,
                        help=f"comma-separated names (default: {DEFAULT_CONTROLLERS}; ppo only where a policy "
                             "is shipped in models/<scenario id>/; ppo:RUN_DIR for a run dir; onnx:EXPORT_DIR for a "
                             "policy exported by export.py, run by agents/runtime.py)")
    parser.add_argument("--seeds", default=None,
                        help="held-out seeds, e.g. 100-119 (default 100-104; a sweep: its file's)")
    parser.add_argument("--out", type=Path, default=Path("results"),
                        help="folder for episodes.csv, summary.md and the plots (default: results/<scenario>)")
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

    return sweep_cli(args.sweep, args.seeds, None if args.out == Path("results") else args.out, args.workers)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sweep is not None:
        return sweep(args)
    args.scenario = args.scenario or "cpm_env/DataCenter-v0"
    args.seeds = args.seeds or "100-104"
    try:
        seeds = parse_seeds(args.seeds)
        venv = make_vec(args.scenario, len(seeds))
        names = controller_names(args.controllers, venv.config.id)
        controllers = {n: make_controller(n, venv.site) for n in names}
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    with tqdm(total=len(names) * len(seeds) * venv.config.n_steps, unit="step", desc=venv.config.id,
              disable=None) as bar:
        episodes, traces = run_controllers(controllers, venv, seeds, bar)
    out = args.out / venv.config.id if args.out == Path("results") else args.out
    print(write_report(out, episodes, traces, controllers, venv.config, seeds, args.seeds))
    print(f"\nwrote {out}/{', '.join(REPORT_FILES)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
