"""Plots of an evaluation: one episode over time per controller, and a KPI comparison."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

FILTERED, PLAIN = "tab:orange", "tab:blue"  # bars of controllers behind the safety filter, and the rest


def short_name(controller: str) -> str:
    """A controller's name for a plot label: a policy folder by its last part (``ppo:runs/dc0+shield`` ->
    ``ppo:dc0+shield``)."""
    kind, sep, rest = controller.partition(":")
    if not sep:
        return controller
    path, plus, suffix = rest.rpartition("+shield") if rest.endswith("+shield") else (rest, "", "")
    return f"{kind}:{Path(path.rstrip('/')).name or path}{plus}{suffix}"


def plot_episodes(traces: dict[str, dict[str, list[float]]], dt_h: float, path: Path, title: str) -> None:
    """One row per controller: grid import against the limit (MW), SoC, and caps (fraction of TDP) over one
    episode; each column shares its y-axis, so rows compare at a glance."""
    names = list(traces)
    fig, axes = plt.subplots(len(names), 3, figsize=(15, 1.9 * len(names) + 1.2), sharex=True, sharey="col",
                             squeeze=False, layout="constrained")
    for i, name in enumerate(names):
        tr = traces[name]
        hours = np.arange(len(tr["grid_import_mw"])) * dt_h
        ax = axes[i, 0]
        ax.plot(hours, tr["grid_import_peak_mw"], color="tab:red", lw=0.5, alpha=0.5, label="import, high phase")
        ax.plot(hours, tr["facility_power_mw"], color="0.55", lw=0.8, label="facility power (mean)")
        ax.plot(hours, tr["grid_import_mw"], color="tab:blue", lw=0.9, alpha=0.85, label="grid import (mean)")
        ax.plot(hours, tr["grid_limit_mw"], color="k", lw=1.0, ls="--", label="import limit")
        ax.set_ylabel(f"{short_name(name)}\nMW", fontsize=8)
        axes[i, 1].plot(hours, tr["soc"], color="tab:green", lw=1.0, label="state of charge")
        axes[i, 1].set_ylim(0, 1)
        caps = [k for k in tr if k.startswith("cap_")]
        for key, style in zip(caps, ("-", "--", ":", "-.")):  # line styles keep overlapping caps apart
            axes[i, 2].plot(hours, tr[key], lw=1.0, ls=style, alpha=0.85, label=key.removeprefix("cap_") + " cap")
        axes[i, 2].set_ylim(0, 1.05)
    handles, labels = [], []
    for j, label in enumerate(("grid import and limit (MW)", "battery state of charge (fraction)",
                               "GPU power cap (fraction of TDP)")):
        axes[0, j].set_title(label, fontsize=9)
        axes[-1, j].set_xlabel("hour of the episode")
        h, lab = axes[0, j].get_legend_handles_labels()
        handles, labels = handles + h, labels + lab
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=8)  # off the data
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)


KPI_PANELS = (("reward", "reward (compute units, ± 95% CI)"), ("compute_per_mw", "compute per MW of grid limit"),
              ("violation_mwh", "energy over the limit (MWh)"),
              ("ramp_excess_mw", "ramp excess (MW, summed over steps)"),
              ("swing_excess_mwh", "oscillation above band (MW·h)"))


def kpi_panels(summary: pd.DataFrame) -> list[tuple[str, str]]:
    """The (column, title) of each panel of ``kpis.png``: reward always, another KPI unless it is 0 for all."""
    return [(col, label) for col, label in KPI_PANELS if col == "reward" or np.any(summary[col].to_numpy() != 0)]


def plot_kpis(summary: pd.DataFrame, path: Path, title: str) -> None:
    """Bars per controller: reward with its 95% confidence interval, compute per MW, and the violation KPIs
    (a KPI that is zero for every controller gets no panel)."""
    cols = kpi_panels(summary)
    names = [short_name(n) for n in summary.controller]
    shielded = [name.endswith("+shield") for name in summary.controller]
    colors = [FILTERED if s else PLAIN for s in shielded]
    y = np.arange(len(names))[::-1]  # the first controller on top
    fig, axes = plt.subplots(1, len(cols), figsize=(3.6 * len(cols), 1.4 + 0.3 * len(names)), sharey=True,
                             layout="constrained", squeeze=False)
    for ax, (col, label) in zip(axes[0], cols):
        ci = summary["reward_ci95"].to_numpy() if col == "reward" else None
        err = None if ci is None or not np.isfinite(ci).any() else np.nan_to_num(ci)  # one seed: no interval
        ax.barh(y, summary[col], xerr=err, color=colors, error_kw={"lw": 0.8, "capsize": 2})
        ax.axvline(0.0, color="0.3", lw=0.6)
        ax.set_title(label, fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", lw=0.3, alpha=0.5)
    axes[0, 0].set_yticks(y, names, fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in (PLAIN, FILTERED)]
    fig.legend(handles[:1 + any(shielded)], ["controller", "behind the safety filter (+shield)"][:1 + any(shielded)],
               loc="outside lower center", ncol=2, fontsize=8)
    fig.suptitle(f"{title} (higher reward and compute per MW are better, lower violations)", fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
