"""An evaluation's files: episodes.csv, summary.md (the markdown table) and the plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from agents.evaluation.plots import plot_episodes, plot_kpis
from agents.evaluation.summary import markdown_table, solve_time_line, summarize
from cpm_env.config import ScenarioConfig

REPORT_FILES = ("episodes.csv", "summary.md", "episode.png", "kpis.png")


def write_report(out: Path, episodes: pd.DataFrame, traces: dict[str, dict[str, list[float]]],
                 timings: dict[str, dict[str, Any]], config: ScenarioConfig, seeds: list[int], seeds_label: str) -> str:
    """Write :data:`REPORT_FILES` to ``out`` (created if missing) and return summary.md's text:
    the KPI table and, for LP controllers, their solve times (``timings``: see
    :func:`agents.evaluation.summary.solve_timing`)."""
    summary = summarize(episodes)
    table = markdown_table(summary)
    out.mkdir(parents=True, exist_ok=True)
    episodes.to_csv(out / "episodes.csv", index=False)
    plot_episodes(traces, config.dt_h, out / "episode.png", f"{config.id}, seed {seeds[0]}")
    plot_kpis(summary, out / "kpis.png", f"{config.id}, seeds {seeds_label}")
    timing = solve_time_line(timings)
    if timing:
        table += "\n\n" + timing
    (out / "summary.md").write_text(table + "\n")
    return table
