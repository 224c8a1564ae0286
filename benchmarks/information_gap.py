"""What a causal controller cannot know: each controller on a scenario as it is, and on the same
site with its unforeseeable events (job failures, inference bursts) switched off.

    python benchmarks/information_gap.py [--scenarios cpm_env/DataCenter-v0,cpm_env/DemandResponse-v0]
        [--controllers mpc,ppo,ppo+shield] [--seeds 100-104] [--out results/information_gap]

Without failures and bursts the causal forecast (the schedule plus persistence) is the future up to
the inference noise, so what a causal controller still loses there against the oracle is its own
doing; what it loses on top of that on the scenario as it is, is what it could not see coming. The
shipped policies were trained with the events on (they run on the variant as on another scenario).
Scores are % of the oracle's reward on the same episodes (the oracle of each variant). Writes
``information_gap.csv`` (one row per scenario x variant x controller x seed) and ``information_gap.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from agents.evaluation.oracle_share import oracle_share_rows, write_rows_and_table
from agents.evaluation.runner import check_names, make_controller
from agents.evaluation.seeds import parse_seeds
from agents.learning.ppo import shipped_model_dir
from cpm_env.config import ScenarioConfig, resolve_scenario, scenario_from_dict, scenario_to_dict
from cpm_env.vec_env import CpmVecEnv

VARIANTS = ("as is", "no failures or bursts")


def without_surprises(cfg: ScenarioConfig) -> ScenarioConfig:
    """``cfg`` with every class's job failures (``mtbf_h`` 0) and traffic bursts (``burst_rate_per_h`` 0) off."""
    data = scenario_to_dict(cfg)
    for gpu_class in data["site"]["gpu_classes"]:
        workload = gpu_class["workload"]
        for key in ("mtbf_h", "burst_rate_per_h"):
            if key in workload:
                workload[key] = 0.0
    data["id"] = f"{cfg.id.rsplit('-v', 1)[0]}-NoSurprises-v0"
    return scenario_from_dict(data, source=f"{cfg.id} without failures or bursts")


def pinned(name: str, cfg: ScenarioConfig) -> str:
    """``name`` with ``ppo`` (the shipped policy) spelled ``ppo:models/<id>``, so that it names the policy
    of ``cfg`` also where it runs on a variant of it."""
    base, plus, suffix = name.partition("+")
    if base != "ppo":
        return name
    return f"ppo:{shipped_model_dir(CpmVecEnv(cfg, 1).site)}{plus}{suffix}"


def table(rows: pd.DataFrame, controllers: list[str]) -> list[str]:
    """Markdown: per scenario and controller, % of the oracle's reward (totals over seeds) in each variant."""
    lines = ["| scenario | controller | " + " | ".join(f"% of the oracle, {v}" for v in VARIANTS)
             + " | lost to what it could not see (points) |", "|---|---|" + "---|" * (len(VARIANTS) + 1)]
    for scenario, group in rows.groupby("scenario", sort=False):
        for name in controllers:
            pct = []
            for variant in VARIANTS:
                g = group[(group.variant == variant) & (group.controller == name)]
                pct.append(100.0 * g.reward.sum() / g.oracle_reward.sum())
            cells = " | ".join(f"{p:.1f}" for p in pct)
            lines.append(f"| {scenario} | {name} | {cells} | {pct[1] - pct[0]:.1f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="cpm_env/DataCenter-v0,cpm_env/DemandResponse-v0",
                        help="comma-separated registered ids or YAML paths")
    parser.add_argument("--controllers", default="mpc,ppo,ppo+shield", help="comma-separated controller names")
    parser.add_argument("--seeds", default="100-104", help="evaluation seeds (default 100-104)")
    parser.add_argument("--out", type=Path, default=Path("results/information_gap"), help="output folder")
    args = parser.parse_args(argv)
    try:
        seeds = parse_seeds(args.seeds, "--seeds")
        configs = [resolve_scenario(s) for s in args.scenarios.split(",")]
        controllers = check_names([c.strip() for c in args.controllers.split(",") if c.strip()], "--controllers")
        for cfg in configs:
            for name in controllers:
                make_controller(name, CpmVecEnv(cfg, 1).site)  # a name that cannot run fails before any work
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for cfg in configs:
        for variant, variant_cfg in zip(VARIANTS, (cfg, without_surprises(cfg))):
            rows += oracle_share_rows(variant_cfg, {n: pinned(n, cfg) for n in controllers}, seeds,
                                      {"variant": variant})
    frame = pd.DataFrame(rows)
    frame["scenario"] = frame.scenario.str.replace("-NoSurprises", "", regex=False)
    lines = [f"# Held-out seeds {args.seeds}: % of the oracle's reward", "", *table(frame, controllers), "",
             "no failures or bursts: every class's mtbf_h and burst_rate_per_h set to 0 (the causal forecast then "
             "misses only the inference noise); each variant against its own oracle; the policies trained with the "
             "events on."]
    write_rows_and_table(args.out, "information_gap", frame, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
