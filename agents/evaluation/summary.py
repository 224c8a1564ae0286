"""Summaries of evaluated episodes: per-controller means with 95% confidence intervals, % of
the oracle, the markdown table evaluate.py prints, and the LP controllers' solve times."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from agents.controllers.base import Controller


def confidence_halfwidth(values: np.ndarray) -> float:
    """Half-width of the 95% confidence interval of the mean (Student t), in the values' unit."""
    n = len(values)
    if n < 2:
        return float("nan")
    return float(stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / math.sqrt(n))


def summarize(episodes: pd.DataFrame) -> pd.DataFrame:
    """Per scenario and controller: mean and 95% CI of reward, compute, violations, % of oracle."""
    rows = []
    oracle = episodes[episodes.controller == "oracle"].set_index(["scenario", "seed"])
    for (scenario, controller), g in episodes.groupby(["scenario", "controller"], sort=False):
        pct_reward = pct_compute = float("nan")
        if len(oracle):
            ref = oracle.loc[[(scenario, s) for s in g.seed]]
            pct_reward = 100 * g.reward.sum() / ref.reward.sum()
            pct_compute = 100 * g.compute_delivered.sum() / ref.compute_delivered.sum()
        rows.append({
            "scenario": scenario,
            "controller": controller,
            "episodes": len(g),
            "reward": g.reward.mean(),
            "reward_ci95": confidence_halfwidth(g.reward.to_numpy()),
            "compute_fraction": g.compute_fraction.mean(),
            "compute_per_mw": g.compute_per_mw.mean(),
            "violation_mwh": g.violation_mwh.mean(),
            "ramp_violations": g.ramp_violations.mean(),
            "ramp_excess_mw": g.ramp_excess_mw.mean(),
            "swing_excess_mwh": g.swing_excess_mwh.mean(),
            "battery_cycles": g.battery_cycles.mean(),
            "dr_window_h": g.dr_window_h.mean(),
            "dr_compliance_pct": g.dr_compliance_pct.mean(),
            "dr_over_limit_mwh": g.dr_over_limit_mwh.mean(),
            "pct_oracle_reward": pct_reward,
            "pct_oracle_compute": pct_compute,
            **{k: g[k].mean() if k in g else float("nan") for k in SHIELD_KPIS},
        })
    return pd.DataFrame(rows)


SHIELD_KPIS = ("shield_interventions", "shield_delta_mw")  # only shielded controllers' rows have them

LEGEND = (
    "reward: compute units per episode (1 = 1 MW of GPUs at full speed for 1 h), net of penalties, higher is "
    "better; ± half-width of the 95% CI over seeds (n/a for one seed). % of oracle: the controller's total over "
    "the oracle's on the same seeds (n/a without the oracle). compute fraction: delivered / demanded at full "
    "speed. compute per MW: compute units per MW of grid limit per hour (higher is better). violation MWh: energy "
    "imported above the limit, high phases included; ramp violations: steps whose mean import moved faster than "
    "the ramp limit; ramp excess MW: summed excess over it; swing excess MWh: oscillation above the allowed band "
    "at the meter (all four: per episode, lower is better)."
)


def _num(value: float, spec: str) -> str:
    """``value`` formatted with ``spec``, or ``n/a`` where it is not defined (NaN)."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def markdown_table(summary: pd.DataFrame) -> str:
    """The summary as a markdown table, one row per controller, with its legend (and a demand-response
    table if any window)."""
    head = ("| scenario | controller | reward (95% CI) | % of oracle reward | compute fraction | % of oracle compute "
            "| compute per MW | violation MWh | ramp violations (steps) | ramp excess MW | swing excess MWh |")
    lines = [head, "|" + "---|" * 11]
    for r in summary.itertuples():
        lines.append(
            f"| {r.scenario} | {r.controller} | {r.reward:.1f} ± {_num(r.reward_ci95, '.1f')} "
            f"| {_num(r.pct_oracle_reward, '.1f')} | {r.compute_fraction:.3f} | {_num(r.pct_oracle_compute, '.1f')} "
            f"| {r.compute_per_mw:.3f} | {r.violation_mwh:.3f} | {r.ramp_violations:.1f} | {r.ramp_excess_mw:.1f} "
            f"| {r.swing_excess_mwh:.3f} |"
        )
    lines += ["", LEGEND]
    if (summary.dr_window_h > 0).any():
        lines += ["", "Demand response (windows in force: the utility's lower import limit)", "",
                  "| scenario | controller | window h per episode | compliance (% of window steps) "
                  "| energy over the window limit (MWh) |", "|" + "---|" * 5]
        lines += [f"| {r.scenario} | {r.controller} | {r.dr_window_h:.2f} | {_num(r.dr_compliance_pct, '.1f')} "
                  f"| {r.dr_over_limit_mwh:.3f} |" for r in summary.itertuples()]
    if summary.shield_interventions.notna().any():
        lines += ["", "Safety filter (NAME+shield; n/a: no filter)", "",
                  "| scenario | controller | interventions (steps per episode) | mean change per intervention (MW) |",
                  "|" + "---|" * 4]
        lines += [f"| {r.scenario} | {r.controller} | {_num(r.shield_interventions, '.1f')} "
                  f"| {_num(r.shield_delta_mw, '.3f')} |" for r in summary.itertuples()]
        lines += ["", "mean change: |battery set-point change| + IT MW at TDP of cap change, over the steps where the "
                  "filter changed the action."]
    return "\n".join(lines)


def solve_timing(controller: Controller) -> dict[str, Any]:
    """A controller's LP solve times (``solve_seconds``, s) and fallbacks to greedy, as plain JSON data."""
    return {"solve_seconds": [float(t) for t in getattr(controller, "solve_seconds", None) or []],
            "fallbacks": int(getattr(controller, "fallbacks", 0))}


def solve_time_line(timings: dict[str, dict[str, Any]]) -> str | None:
    """'LP solve time: NAME: mean and p95 ms per solve ...' for the controllers that timed their
    solves (:func:`solve_timing` per name), with their fallbacks to greedy; None if none did."""
    timing = [f"{name}: {1e3 * np.mean(t['solve_seconds']):.1f} ms mean, "
              f"{1e3 * np.percentile(t['solve_seconds'], 95):.1f} ms p95 per solve ({len(t['solve_seconds'])} solves"
              + (f", {t['fallbacks']} fell back to greedy)" if t.get("fallbacks", 0) else ")")
              for name, t in timings.items() if t.get("solve_seconds")]
    return "LP solve time: " + "; ".join(timing) if timing else None
