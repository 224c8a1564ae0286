"""Spread of a training method over training seeds, and its time to quality.

    python benchmarks/learning_spread.py --scenario cpm_env/DataCenter-v0 --runs runs/dc_s0 runs/dc_s1 runs/dc_s2 \
        [--seeds 100-104] [--shield] [--out results/spread/DataCenter-v0]

Each run dir (one per training seed, same config) is evaluated through its ``best/`` (the policy
chosen on the tuning seeds, as a shipped one is) on the held-out ``--seeds``, next to the oracle on
the same episodes. Scores are % of the oracle's reward per episode; the table gives, over training
seeds x episodes, the interquartile mean with its 95% bootstrap CI and each run's mean
(:mod:`agents.evaluation.spread`). Time to quality: from each run's ``evaluations.csv`` (reward on
the tuning seeds, wall-clock seconds since training started), the first evaluation at 90% and 95%
of the oracle's reward on those tuning seeds. Writes ``spread.csv`` (one row per run x episode),
``spread.md`` and ``spread.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from agents.evaluation.runner import make_controller, run_controller
from agents.evaluation.seeds import parse_seeds
from agents.evaluation.spread import spread
from agents.files import write_atomic
from cpm_env.config import read_yaml, resolve_scenario
from cpm_env.vec_env import CpmVecEnv

QUALITY_PCT = (90.0, 95.0)


def oracle_rewards(venv: CpmVecEnv, seeds: list[int]) -> np.ndarray:
    """The oracle's reward on each seed's episode."""
    return run_controller(make_controller("oracle", venv.site), venv, seeds, "oracle").reward.to_numpy()


def time_to_quality(run_dir: Path, oracle_tuning: float) -> dict[str, float]:
    """Wall seconds and env steps of the first evaluation reaching each of :data:`QUALITY_PCT` % of
    ``oracle_tuning`` (the oracle's mean reward on the run's tuning seeds); NaN where none did."""
    evals = pd.read_csv(run_dir / "evaluations.csv")
    out: dict[str, float] = {"best_pct_tuning": float(100.0 * evals.reward.max() / oracle_tuning)}
    for pct in QUALITY_PCT:
        hit = evals[evals.reward >= pct / 100.0 * oracle_tuning]
        out[f"s_to_{pct:g}"] = float(hit.wall_s.iloc[0]) if len(hit) else float("nan")
        out[f"steps_to_{pct:g}"] = float(hit.timesteps.iloc[0]) if len(hit) else float("nan")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", required=True, help="registered id or YAML: the scenario the runs trained on")
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="train.py run dirs, one per training seed")
    parser.add_argument("--seeds", default="100-104", help="held-out evaluation seeds (default 100-104)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default results/spread/<scenario id>)")
    parser.add_argument("--shield", action="store_true", help="evaluate each policy behind the safety filter (+shield)")
    args = parser.parse_args(argv)
    try:
        seeds = parse_seeds(args.seeds, "--seeds")
        cfg = resolve_scenario(args.scenario)
        for run in args.runs:
            if not (run / "best" / "manifest.json").is_file() or not (run / "evaluations.csv").is_file():
                raise ValueError(f"--runs {run}: needs best/manifest.json and evaluations.csv (a train.py run)")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = args.out or Path("results") / "spread" / cfg.id
    out.mkdir(parents=True, exist_ok=True)
    venv = CpmVecEnv(cfg, len(seeds))
    oracle = oracle_rewards(venv, seeds)
    rows, quality = [], []
    for run in args.runs:
        hp = read_yaml(run / "config.yml", "hyperparameters")
        tuning = parse_seeds(str(hp.get("eval_seeds", "10000-10004")), "eval_seeds")
        tuning_env = CpmVecEnv(cfg, len(tuning))
        quality.append({"run": str(run), **time_to_quality(run, float(oracle_rewards(tuning_env, tuning).mean()))})
        policy = make_controller(f"ppo:{run / 'best'}{'+shield' if args.shield else ''}", venv.site)
        reward = run_controller(policy, venv, seeds, "ppo").reward.to_numpy()
        rows += [{"run": str(run), "seed": s, "reward": r, "oracle_reward": o, "pct_oracle": 100.0 * r / o}
                 for s, r, o in zip(seeds, reward, oracle)]
        print(f"{run}: {np.mean(reward):.1f} ({100 * reward.sum() / oracle.sum():.1f}% of the oracle)", flush=True)
    table = pd.DataFrame(rows)
    scores = table.pivot(index="run", columns="seed", values="pct_oracle").loc[[str(r) for r in args.runs]]
    s = spread(scores.to_numpy())
    q = pd.DataFrame(quality)
    write_atomic(out / "spread.csv", table.to_csv(index=False).encode())
    lines = [
        f"# {cfg.id}: {s.n_runs} training seeds x {s.n_episodes} held-out episodes (seeds {args.seeds})", "",
        "| % of the oracle's reward | IQM (95% CI) | median run | worst run | best run |", "|---|---|---|---|---|",
        f"| PPO (best/){' + filter' if args.shield else ''} "
        f"| {s.iqm:.1f} ({s.iqm_low:.1f}-{s.iqm_high:.1f}) | {s.median_run:.1f} | {s.worst_run:.1f} "
        f"| {s.best_run:.1f} |", "",
        "| run | % of oracle (held-out, mean over episodes) | best % of oracle (tuning seeds) | min to 90% "
        "| min to 95% |",
        "|---|---|---|---|---|",
    ]
    for run, row in zip(args.runs, q.itertuples()):
        lines.append(f"| {run} | {scores.loc[str(run)].mean():.1f} | {row.best_pct_tuning:.1f} "
                     f"| {_minutes(row.s_to_90)} | {_minutes(row.s_to_95)} |")
    lines += ["", "IQM: mean of the middle 50% of all run x episode scores; CI: percentile bootstrap over runs and "
              "episodes. Minutes to quality: wall clock of train.py on this machine to the first evaluation on the "
              "tuning seeds at that % of the oracle's reward there (n/a: never reached)."]
    write_atomic(out / "spread.md", ("\n".join(lines) + "\n").encode())
    _plot(scores, s, out / "spread.png", cfg.id)
    print("\n".join(lines))
    print(f"wrote {out}/spread.csv, spread.md, spread.png")
    return 0


def _minutes(seconds: float) -> str:
    return "n/a" if not np.isfinite(seconds) else f"{seconds / 60:.1f}"


def _plot(scores: pd.DataFrame, s, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for i, (_, row) in enumerate(scores.iterrows()):
        ax.scatter(np.full(row.size, i), row.to_numpy(), s=14, alpha=0.6, color="tab:blue",
                   label="episode (held-out seed)" if i == 0 else None)
        ax.scatter([i], [row.mean()], marker="_", s=400, color="tab:blue", label="run mean" if i == 0 else None)
    ax.axhspan(s.iqm_low, s.iqm_high, color="tab:orange", alpha=0.25, label=f"IQM 95% CI ({s.iqm:.1f})")
    ax.set_xticks(range(len(scores)), [Path(r).name for r in scores.index], rotation=20, fontsize=8)
    ax.set_ylabel("% of the oracle's reward")
    ax.set_title(f"{title}: PPO over training seeds", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
