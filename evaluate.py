"""Evaluate controllers on held-out seeds of a scenario and print the KPI table.

    python evaluate.py [--scenario ID_OR_YAML] [--controllers static_cap,greedy] [--seeds 100-119] [--out DIR]
    python evaluate.py --sweep configs/sweeps/cpm_frontier.yml [--seeds 100-102] [--out DIR] [--workers auto|N|ray]

The second form sizes a site: compute per MW over GPU oversubscription x battery size x
controllers (see agents/sweep.py), written to DIR (default results/sweeps/<name>).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from agents.evaluation.runner import make_controller, markdown_table, parse_seeds, run_controller, summarize
from agents.evaluation.plots import plot_episodes, plot_kpis
from agents.learning.ppo import MODELS_DIR
from cpm_env.config import ConfigError
from cpm_env.vec_env import make_vec

DEFAULT_CONTROLLERS = "static_cap,peak_shaving,shave_then_cap,greedy,mpc,ppo,oracle"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default=None, help="registered id or scenario YAML (default cpm_env/DataCenter-v0)")
    parser.add_argument("--controllers", default=None,
                        help=f"comma-separated names (default: {DEFAULT_CONTROLLERS}; ppo only where a policy "
                             "is shipped in models/<scenario id>/; ppo:RUN_DIR for a run dir; onnx:EXPORT_DIR for a "
                             "policy exported by export.py, run by agents/runtime.py)")
    parser.add_argument("--seeds", default=None, help="held-out seeds, e.g. 100-119 (default 100-104; a sweep: its file's)")
    parser.add_argument("--out", type=Path, default=Path("results"),
                        help="folder for episodes.csv, summary.md and the plots (default: results/<scenario>)")
    parser.add_argument("--sweep", default=None, metavar="FILE", help="a sweep YAML: size the site instead")
    parser.add_argument("--workers", default="auto", help="sweep processes: auto (every core), N, or ray (a Ray cluster)")
    args = parser.parse_args(argv)
    if args.sweep is not None:
        if args.scenario or args.controllers:
            print("error: --sweep takes its scenario and controllers from the sweep file, not --scenario/--controllers",
                  file=sys.stderr)
            return 2
        from agents.sizing.sweep import sweep_cli

        return sweep_cli(args.sweep, args.seeds, None if args.out == Path("results") else args.out, args.workers)
    args.scenario = args.scenario or "cpm_env/DataCenter-v0"
    args.seeds = args.seeds or "100-104"
    try:
        seeds = parse_seeds(args.seeds)
        venv = make_vec(args.scenario, len(seeds))
        names = [n.strip() for n in (args.controllers or DEFAULT_CONTROLLERS).split(",") if n.strip()]
        if args.controllers is None and not (MODELS_DIR / venv.config.id / "model.zip").is_file():
            names.remove("ppo")
        controllers = {n: make_controller(n, venv.site) for n in names}
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    import pandas as pd

    frames, traces = [], {}
    with tqdm(total=len(names) * len(seeds) * venv.config.n_steps, unit="step", desc=venv.config.id,
              disable=None) as bar:
        for name, ctrl in controllers.items():
            traces[name] = {}
            frames.append(run_controller(ctrl, venv, seeds, name, bar, trace=traces[name]))
    episodes = pd.concat(frames, ignore_index=True)
    summary = summarize(episodes)
    table = markdown_table(summary)
    out = args.out / venv.config.id if args.out == Path("results") else args.out
    out.mkdir(parents=True, exist_ok=True)
    episodes.to_csv(out / "episodes.csv", index=False)
    title = f"{venv.config.id}, seed {seeds[0]}"
    plot_episodes(traces, venv.config.dt_h, out / "episode.png", title)
    plot_kpis(summary, out / "kpis.png", f"{venv.config.id}, seeds {args.seeds}")
    timing = [f"{name}: {1e3 * np.mean(c.solve_seconds):.1f} ms mean, {1e3 * np.percentile(c.solve_seconds, 95):.1f} ms "
              f"p95 per solve ({len(c.solve_seconds)} solves"
              + (f", {c.fallbacks} fell back to greedy)" if getattr(c, "fallbacks", 0) else ")")
              for name, c in controllers.items() if getattr(c, "solve_seconds", None)]
    if timing:
        table += "\n\nLP solve time: " + "; ".join(timing)
    (out / "summary.md").write_text(table + "\n")
    print(table)
    print(f"\nwrote {out}/episodes.csv, summary.md, episode.png, kpis.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
