"""Evaluate controllers on held-out seeds of a scenario and print the KPI table.

    python evaluate.py [--scenario ID_OR_YAML] [--controllers static_cap,greedy] [--seeds 100-119] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

import cpm_env
from agents.evaluation import make_controller, markdown_table, run_controller, summarize
from cpm_env.config import ConfigError
from cpm_env.vec_env import make_vec

DEFAULT_CONTROLLERS = "static_cap,peak_shaving,shave_then_cap,greedy,oracle"


def parse_seeds(text: str) -> list[int]:
    """'100-119' or '1,5,9' (or a mix) -> a list of seeds; one-line error otherwise."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                lo, hi = part.split("-", 1)
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                seeds += list(range(lo_i, hi_i + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise ValueError(f"--seeds = {text!r}: must be a range like 100-119 or a list like 1,5,9") from None
    if not seeds or min(seeds) < 0:
        raise ValueError(f"--seeds = {text!r}: seeds must be integers >= 0")
    return seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="cpm_env/DataCenter-v0", help="registered id or scenario YAML")
    parser.add_argument("--controllers", default=DEFAULT_CONTROLLERS, help="comma-separated controller names")
    parser.add_argument("--seeds", default="100-104", help="held-out seeds, e.g. 100-119")
    parser.add_argument("--out", type=Path, default=None, help="folder for episodes.csv and summary.md")
    args = parser.parse_args(argv)
    try:
        seeds = parse_seeds(args.seeds)
        if args.scenario.endswith((".yml", ".yaml")) and not Path(args.scenario).is_file():
            raise ConfigError(f"{args.scenario}: file not found: --scenario must be a registered id or a YAML file")
        venv = make_vec(args.scenario, len(seeds))
        names = [n.strip() for n in args.controllers.split(",") if n.strip()]
        controllers = {n: make_controller(n, venv.site) for n in names}
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    import pandas as pd

    frames = []
    with tqdm(total=len(names) * len(seeds) * venv.config.n_steps, unit="step", desc=venv.config.id,
              disable=None) as bar:
        for name, ctrl in controllers.items():
            frames.append(run_controller(ctrl, venv, seeds, name, bar))
    episodes = pd.concat(frames, ignore_index=True)
    table = markdown_table(summarize(episodes))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        episodes.to_csv(args.out / "episodes.csv", index=False)
        (args.out / "summary.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
