"""Run controllers on batches of seeded episodes and summarize their KPIs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from tqdm import tqdm

from agents.controllers.base import Controller
from cpm_env.site import Site
from cpm_env.vec_env import CpmVecEnv


def parse_seeds(text: str, field: str = "--seeds") -> list[int]:
    """'100-119' or '1,5,9' (or a mix) -> a list of seeds; one-line error naming ``field`` otherwise."""
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
        raise ValueError(f"{field} = {text!r}: must be a range like 100-119 or a list like 1,5,9") from None
    if not seeds or min(seeds) < 0:
        raise ValueError(f"{field} = {text!r}: seeds must be integers >= 0")
    return seeds


def make_controller(name: str, site: Site) -> Controller:
    """Build a named controller for a site; unknown names list the available ones."""
    from agents.controllers.mpc import MPC
    from agents.controllers.oracle import Oracle
    from agents.controllers.rules import RULES

    available = {**RULES, "mpc": MPC, "oracle": Oracle}
    if name == "ppo" or name.startswith("ppo:"):
        from agents.learning.ppo import PPOController, shipped_model_dir

        return PPOController(name[4:] if name.startswith("ppo:") else shipped_model_dir(site), site)
    if name.startswith("onnx:"):
        return onnx_controller(name[5:], site)
    if name not in available:
        raise ValueError(f"controller {name!r} unknown: available are {', '.join(sorted(available))}, ppo, "
                         "ppo:RUN_DIR, onnx:EXPORT_DIR")
    return available[name](site)


def onnx_controller(directory: str, site: Site) -> Controller:
    """A policy exported by export.py, run by agents.runtime; one-line error if its contract
    (entry names, scales, bounds) is not this site's."""
    from agents.runtime import PolicyController

    try:
        ctrl = PolicyController.load(directory)
    except ValueError as err:
        raise ValueError(f"onnx:{directory}: {err}") from None
    spec = ctrl.spec  # JSON floats round-trip exactly, so an export of this scenario compares equal
    obs = [(e.get("name"), e.get("scale"), e.get("low"), e.get("high")) for e in spec["observations"]]
    actions = [(e.get("name"), e.get("low"), e.get("high")) for e in spec["actions"]]
    if (obs != [(f.name, f.scale, f.low, f.high) for f in site.obs_features]
            or actions != [(f.name, f.low, f.high) for f in site.action_features]):
        raise ValueError(f"onnx:{directory}: its observations or actions (names, scales, bounds) differ from "
                         f"{site.config.id}'s: export a policy trained on this scenario")
    return ctrl


RAMP_TOLERANCE_MW = 1e-6  # ramp excess below 1 W is LP solver tolerance, not a violation
DR_TOLERANCE_MWH = 1e-6  # a demand-response step is met if its import above the window's limit is below this


@dataclass
class EpisodeTotals:
    """Running sums of the per-step outputs over a batch of episodes."""

    n: int

    def __post_init__(self):
        z = lambda: np.zeros(self.n)  # noqa: E731
        self.reward, self.compute, self.demanded, self.over_mwh = z(), z(), z(), z()
        self.overshoot_max, self.ramp_count, self.ramp_mw, self.swing_mwh = z(), z(), z(), z()
        self.discharged, self.charged, self.grid_mwh, self.burn = z(), z(), z(), z()

    def add(self, out, dt_h: float) -> None:
        self.reward += out.reward
        self.compute += out.compute_delivered
        self.demanded += out.compute_demanded
        self.over_mwh += out.over_limit_mwh
        self.overshoot_max = np.maximum(self.overshoot_max, out.peak_overshoot_mw)
        self.ramp_count += out.ramp_excess_mw > RAMP_TOLERANCE_MW
        self.ramp_mw += out.ramp_excess_mw
        self.swing_mwh += out.swing_excess_mw * dt_h
        self.discharged += out.battery_discharged_mwh
        self.charged += out.battery_charged_mwh
        self.grid_mwh += out.grid_import_mw * dt_h
        self.burn += out.burn_mwh


TRACE_KEYS = ("grid_import_mw", "grid_import_peak_mw", "grid_limit_mw", "facility_power_mw", "battery_power_mw", "soc")


def run_controller(controller: Controller, venv: CpmVecEnv, seeds: list[int], label: str,
                   progress: tqdm | None = None, trace: dict | None = None,
                   price_usd_per_mwh: np.ndarray | None = None) -> pd.DataFrame:
    """One episode per seed, all seeds stepped as one batch; one row of KPIs per episode.

    If ``trace`` is a dict, it receives the first seed's per-step series (for plots). With
    ``price_usd_per_mwh`` (one price per step) the rows also get ``energy_cost_usd``.
    """
    venv.seed(seeds)
    obs = venv.reset()
    if hasattr(controller, "start_episode"):  # the oracle reads the episode it will face
        controller.start_episode(venv.episode)
    cfg, p = venv.config, venv.params
    totals = EpisodeTotals(len(seeds))
    ep = venv.episode
    dr_steps, dr_met, dr_over = np.zeros(len(seeds)), np.zeros(len(seeds)), np.zeros(len(seeds))
    energy_cost_usd = np.zeros(len(seeds))
    for t in range(cfg.n_steps):
        action, _ = controller.predict(obs, deterministic=True)
        obs, _, _, _ = venv.step(action)
        out = venv.last_outputs
        totals.add(out, p.dt_h)
        in_dr = ((ep.dr_start_step <= t) & (t < ep.dr_end_step)).any(axis=1)  # a demand-response window
        dr_steps += in_dr
        dr_met += in_dr & (out.over_limit_mwh <= DR_TOLERANCE_MWH)
        dr_over += np.where(in_dr, out.over_limit_mwh, 0.0)
        if price_usd_per_mwh is not None:
            energy_cost_usd += price_usd_per_mwh[t] * out.grid_import_mw * p.dt_h
        if trace is not None:
            for key in TRACE_KEYS:
                trace.setdefault(key, []).append(float(np.broadcast_to(getattr(out, key), (len(seeds),))[0]))
            for name, cap in zip(venv.site.class_names, venv.state.caps):
                trace.setdefault(f"cap_{name}", []).append(float(cap[0]))
        if progress is not None:
            progress.update(len(seeds))
    hours = cfg.duration_h
    w_deg = p.w_degradation
    cycles = totals.discharged / p.capacity_mwh if p.capacity_mwh > 0 else np.zeros(len(seeds))
    return pd.DataFrame({
        "controller": label,
        "scenario": cfg.id,
        "seed": seeds,
        "reward": totals.reward,
        "compute_delivered": totals.compute,
        "compute_demanded": totals.demanded,
        "compute_fraction": totals.compute / np.maximum(totals.demanded, 1e-12),
        "compute_per_mw": totals.compute / (cfg.grid.limit_mw * hours),
        "violation_mwh": totals.over_mwh,
        "max_overshoot_mw": totals.overshoot_max,
        "ramp_violations": totals.ramp_count.astype(int),
        "ramp_excess_mw": totals.ramp_mw,
        "swing_excess_mwh": totals.swing_mwh,
        "battery_throughput_mwh": totals.discharged + totals.charged,
        "battery_cycles": cycles,
        "battery_discharged_mwh": totals.discharged,
        "degradation_cost": w_deg * totals.discharged,
        "burn_mwh": totals.burn,
        "grid_energy_mwh": totals.grid_mwh,
        "dr_window_h": dr_steps * p.dt_h,
        "dr_compliance_pct": np.where(dr_steps > 0, 100 * dr_met / np.maximum(dr_steps, 1), np.nan),
        "dr_over_limit_mwh": dr_over,
        **({"energy_cost_usd": energy_cost_usd} if price_usd_per_mwh is not None else {}),
    })


def confidence_halfwidth(values: np.ndarray) -> float:
    """Half-width of the 95% confidence interval of the mean (Student t)."""
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
        })
    return pd.DataFrame(rows)


def markdown_table(summary: pd.DataFrame) -> str:
    """The summary as a markdown table, one row per controller."""
    head = ("| scenario | controller | reward (95% CI) | % of oracle reward | compute fraction | % of oracle compute "
            "| compute per MW | violation MWh | ramp violations (steps) | ramp excess MW | swing excess MWh |")
    lines = [head, "|" + "---|" * 11]
    for r in summary.itertuples():
        lines.append(
            f"| {r.scenario} | {r.controller} | {r.reward:.1f} ± {r.reward_ci95:.1f} | {r.pct_oracle_reward:.1f} "
            f"| {r.compute_fraction:.3f} | {r.pct_oracle_compute:.1f} | {r.compute_per_mw:.3f} "
            f"| {r.violation_mwh:.3f} | {r.ramp_violations:.1f} | {r.ramp_excess_mw:.1f} | {r.swing_excess_mwh:.3f} |"
        )
    if (summary.dr_window_h > 0).any():
        lines += ["", "Demand response (windows in force: the utility's lower import limit)", "",
                  "| scenario | controller | window h per episode | compliance (% of window steps) "
                  "| energy over the window limit (MWh) |", "|" + "---|" * 5]
        lines += [f"| {r.scenario} | {r.controller} | {r.dr_window_h:.2f} | {r.dr_compliance_pct:.1f} "
                  f"| {r.dr_over_limit_mwh:.3f} |" for r in summary.itertuples()]
    return "\n".join(lines)
