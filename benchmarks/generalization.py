"""How far one policy carries: the generalist trained on a site family, on sites it never saw.

    python benchmarks/generalization.py [--family cpm_env/SiteFamily-v0] [--generalist models/SiteFamily-v0]
        [--sites 2000-2009] [--seeds 100-102] [--shipped ID,...|none] [--out results/generalization]

Three sets of sites, every controller scored against the oracle on the same episodes:

- ``family``: sites drawn from the family by site seeds never used in training (training draws its sites
  from env seeds 0-15 and their streams, its evaluations from 10000-10004);
- ``shipped``: DataCenter-v0, DemandResponse-v0 and NoBattery-v0 zero-shot, beside each one's specialist
  (``models/<id>``);
- ``outside``: the family's base site with one parameter past the family's ranges (oversubscription 1.9,
  a 4-hour battery, a ramp limit of 2% of the limit per minute).

The rules run alone and behind the safety filter, the generalist alone and behind it. Writes
``generalization.csv`` (one row per site x controller x seed) and ``generalization.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from agents.controllers.rules import RULES
from agents.evaluation.oracle_share import oracle_share_rows, write_rows_and_table
from agents.evaluation.seeds import parse_seeds
from agents.learning.ppo import MODELS_DIR
from cpm_env.config import ScenarioConfig, resolve_scenario, scenario_from_dict
from cpm_env.family import SiteFamily, apply_draws, find_family

SHIPPED = ("cpm_env/DataCenter-v0", "cpm_env/DemandResponse-v0", "cpm_env/NoBattery-v0")
# past the default family's ranges, one parameter at a time (family keys, applied to the base site)
OUTSIDE = {"oversubscription 1.9": {"site.oversubscription": 1.9},
           "4-hour battery": {"battery.energy_h": 4.0, "battery.c_rate": 0.25},
           "ramp limit 2%/min": {"grid.ramp_limit_fraction_per_min": 0.02}}
RULE_NAMES = tuple(name for rule in RULES for name in (rule, f"{rule}+shield"))


def outside_site(family: SiteFamily, label: str, values: dict) -> ScenarioConfig:
    """The family's base site with the family keys ``values`` set (outside its ranges)."""
    data = apply_draws(family.base, values, family.source)
    data["id"] = f"{family.id}-{label.replace(' ', '-').replace('%', 'pct').replace('/', '-per-')}"
    return scenario_from_dict(data, family.source)


def pct(group: pd.DataFrame) -> float:
    """% of the oracle's reward, totals over the group's episodes."""
    return 100.0 * group.reward.sum() / group.oracle_reward.sum()


def site_line(cfg: ScenarioConfig) -> str:
    """The drawn parameters of a site, short."""
    lim, bat, grid = cfg.grid.limit_mw, cfg.battery, cfg.grid
    share = cfg.site.gpu_classes[0].share
    c_rate = bat.power_mw / bat.capacity_mwh if bat.capacity_mwh > 0 else 0.0
    return (f"{cfg.site.oversubscription:.2f} | {bat.capacity_mwh / lim:.2f} h, {c_rate:.2f} C | "
            f"{100 * grid.ramp_limit_mw_per_min / lim:.0f} | {100 * grid.swing_band_mw / lim:.0f} | {share:.2f} | "
            f"{'yes' if grid.demand_response.events_per_episode else 'no'}")


def tables(frame: pd.DataFrame, configs: dict[str, ScenarioConfig]) -> list[str]:
    """Markdown tables of the three sets."""
    lines = ["## Sites drawn from the family (held-out site seeds)", "",
             "| site | oversubscription | battery (h of the limit, C-rate) | ramp (%/min) | band (%) | training share "
             "| DR window | best rule | best rule % | generalist % | generalist+shield % | violation MWh, generalist / "
             "+shield |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    fam = frame[frame.set == "family"]
    best_rule_pcts, gen_pcts, shield_pcts = [], [], []
    rule_pcts: dict[str, list[float]] = {name: [] for name in RULE_NAMES}
    for site, group in fam.groupby("scenario", sort=False):
        rules = {name: pct(group[group.controller == name]) for name in RULE_NAMES}
        for name, value in rules.items():
            rule_pcts[name].append(value)
        best = max(rules, key=lambda n: rules[n])
        gen, gen_s = pct(group[group.controller == "generalist"]), pct(group[group.controller == "generalist+shield"])
        over = [group[group.controller == c].violation_mwh.mean() for c in ("generalist", "generalist+shield")]
        best_rule_pcts.append(rules[best])
        gen_pcts.append(gen)
        shield_pcts.append(gen_s)
        lines.append(f"| {site.rsplit('-site', 1)[-1]} | {site_line(configs[site])} | {best} | {rules[best]:.1f} | "
                     f"{gen:.1f} | {gen_s:.1f} | {over[0]:.2f} / {over[1]:.2f} |")
    n = len(gen_pcts)
    single = max(rule_pcts, key=lambda name: sum(rule_pcts[name]))  # the one rule best over all the sites
    lines += [f"| mean of {n} sites | | | | | | | each site's best | {sum(best_rule_pcts) / n:.1f} | "
              f"{sum(gen_pcts) / n:.1f} | {sum(shield_pcts) / n:.1f} | |",
              f"| mean of {n} sites | | | | | | | best single rule: {single} | {sum(rule_pcts[single]) / n:.1f} | "
              f"| | |", "",
              f"The generalist is at or above the best rule on {sum(g >= b for g, b in zip(gen_pcts, best_rule_pcts))} "
              f"of {n} sites (behind the filter: {sum(g >= b for g, b in zip(shield_pcts, best_rule_pcts))}).", "",
              "## The shipped scenarios, zero-shot", "",
              "| scenario | specialist % | generalist % | generalist+shield % | generalist minus specialist (points) |",
              "|---|---|---|---|---|"]
    for site, group in frame[frame.set == "shipped"].groupby("scenario", sort=False):
        spec, gen = pct(group[group.controller == "specialist"]), pct(group[group.controller == "generalist"])
        gen_s = pct(group[group.controller == "generalist+shield"])
        lines.append(f"| {site} | {spec:.1f} | {gen:.1f} | {gen_s:.1f} | {gen - spec:+.1f} |")
    lines += ["", "## Outside the family", "",
              "| site | static_cap+shield % | generalist % | generalist+shield % "
              "| violation MWh, generalist / +shield |",
              "|---|---|---|---|---|"]
    for site, group in frame[frame.set == "outside"].groupby("label", sort=False):
        cells = [pct(group[group.controller == c]) for c in ("static_cap+shield", "generalist", "generalist+shield")]
        over = [group[group.controller == c].violation_mwh.mean() for c in ("generalist", "generalist+shield")]
        lines.append(f"| {site} | " + " | ".join(f"{c:.1f}" for c in cells) + f" | {over[0]:.2f} / {over[1]:.2f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", default="cpm_env/SiteFamily-v0", help="registered family id or family YAML")
    parser.add_argument("--generalist", type=Path, default=MODELS_DIR / "SiteFamily-v0",
                        help="the generalist's run dir (default: the shipped one)")
    parser.add_argument("--sites", default="2000-2009", help="site seeds of the family's held-out sites")
    parser.add_argument("--seeds", default="100-102", help="evaluation seeds per site (default 100-102)")
    parser.add_argument("--shipped", default=",".join(SHIPPED),
                        help="shipped scenarios run zero-shot beside their specialists (comma-separated; none: skip)")
    parser.add_argument("--out", type=Path, default=Path("results/generalization"), help="output folder")
    args = parser.parse_args(argv)
    try:
        family = find_family(args.family, None)
        if family is None:
            raise ValueError(f"--family {args.family}: not a site family (a scenario file without family:)")
        sites, seeds = parse_seeds(args.sites, "--sites"), parse_seeds(args.seeds, "--seeds")
        shipped = [] if args.shipped == "none" else [resolve_scenario(s) for s in args.shipped.split(",")]
        for cfg in shipped:
            if not (MODELS_DIR / cfg.id / "manifest.json").is_file():
                raise ValueError(f"--shipped {cfg.id}: no specialist in {MODELS_DIR / cfg.id}")
        if not (args.generalist / "manifest.json").is_file():
            raise ValueError(f"--generalist {args.generalist}: no manifest.json: train one with train.py --scenario "
                             f"{args.family} --run-dir DIR")
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    gen = f"ppo:{args.generalist}"
    generalist = {"generalist": gen, "generalist+shield": f"{gen}+shield"}
    runs: list[tuple[str, str, ScenarioConfig, dict[str, str]]] = []
    for seed in sites:
        runs.append(("family", str(seed), family.site(seed), {**{n: n for n in RULE_NAMES}, **generalist}))
    for cfg in shipped:
        runs.append(("shipped", cfg.id, cfg, {"specialist": f"ppo:{MODELS_DIR / cfg.id}", **generalist}))
    for label, values in OUTSIDE.items():
        runs.append(("outside", label, outside_site(family, label, values), {"static_cap+shield": "static_cap+shield",
                                                                             **generalist}))
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for set_name, label, cfg, controllers in runs:
        rows += oracle_share_rows(cfg, controllers, seeds, {"set": set_name, "label": label})
    frame = pd.DataFrame(rows)
    configs = {cfg.id: cfg for _, _, cfg, _ in runs}
    lines = [f"# The generalist ({args.generalist}) on sites it never saw: % of the oracle's reward, "
             f"seeds {args.seeds}",
             "", *tables(frame, configs)]
    write_rows_and_table(args.out, "generalization", frame, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
