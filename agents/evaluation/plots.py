"""Plots of an evaluation: one episode over time per controller, and a KPI comparison."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def plot_episodes(traces: dict[str, dict[str, list[float]]], dt_h: float, path: Path, title: str) -> None:
    """Grid import vs limit, SoC and caps over one episode, one column per controller."""
    names = list(traces)
    fig, axes = plt.subplots(3, len(names), figsize=(4.2 * len(names), 8), sharex=True, squeeze=False)
    for j, name in enumerate(names):
        tr = traces[name]
        hours = np.arange(len(tr["grid_import_mw"])) * dt_h
        ax = axes[0, j]
        ax.plot(hours, tr["facility_power_mw"], color="0.6", lw=0.8, label="facility (mean)")
        ax.plot(hours, tr["grid_import_peak_mw"], color="tab:red", lw=0.6, alpha=0.7, label="import, high phase")
        ax.plot(hours, tr["grid_import_mw"], color="tab:blue", lw=0.9, label="import (mean)")
        ax.plot(hours, tr["grid_limit_mw"], color="k", lw=1.2, ls="--", label="limit")
        ax.set_title(name)
        ax.set_ylabel("MW")
        axes[1, j].plot(hours, tr["soc"], color="tab:green")
        axes[1, j].set_ylabel("SoC")
        axes[1, j].set_ylim(0, 1)
        for key in (k for k in tr if k.startswith("cap_")):
            axes[2, j].plot(hours, tr[key], lw=0.9, label=key)
        axes[2, j].set_ylabel("cap (fraction of TDP)")
        axes[2, j].set_xlabel("hour")
        axes[2, j].set_ylim(0, 1.05)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    axes[2, 0].legend(fontsize=7, loc="lower left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_kpis(summary: pd.DataFrame, path: Path, title: str) -> None:
    """Bars per controller: compute per MW, violation energy, ramp excess, oscillation above band."""
    cols = [("compute_per_mw", "compute per MW of grid limit"), ("violation_mwh", "energy over the limit (MWh)"),
            ("ramp_excess_mw", "ramp excess (MW, summed over steps)"),
            ("swing_excess_mwh", "oscillation above band (MW·h)")]
    names = list(summary.controller)
    shielded = [name.endswith("+shield") for name in names]
    colors = ["tab:orange" if s else "tab:blue" for s in shielded]
    y = np.arange(len(names))[::-1]  # the first controller on top
    fig, axes = plt.subplots(1, len(cols), figsize=(4 * len(cols), 1.2 + 0.28 * len(names)), sharey=True,
                             layout="constrained")
    for ax, (col, label) in zip(axes, cols):
        ax.barh(y, summary[col], color=colors)
        ax.set_title(label, fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
    axes[0].set_yticks(y, names, fontsize=8)
    if any(shielded):
        handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ("tab:blue", "tab:orange")]
        fig.legend(handles, ["controller", "behind the safety filter (+shield)"], loc="outside lower center",
                   ncol=2, fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
