"""Plot helpers: short labels, no all-zero panels, a figure for one seed (no interval)."""

import numpy as np
import pandas as pd
import pytest

from agents.evaluation.plots import kpi_panels, plot_kpis, short_name


@pytest.mark.parametrize("name, short", [
    ("greedy", "greedy"), ("greedy+shield", "greedy+shield"), ("ppo:runs/dc0", "ppo:dc0"),
    ("ppo:models/DataCenter-v0/+shield", "ppo:DataCenter-v0+shield"), ("onnx:export/a/b+shield", "onnx:b+shield"),
])
def test_short_names_keep_the_kind_the_folder_and_the_filter(name, short):
    assert short_name(name) == short


def summary(violations: float, ci: float) -> pd.DataFrame:
    return pd.DataFrame({"controller": ["static_cap", "ppo:runs/x+shield"], "reward": [10.0, 12.0],
                         "reward_ci95": [ci, ci], "compute_per_mw": [0.5, 0.6], "violation_mwh": [0.0, violations],
                         "ramp_excess_mw": [3.0, 0.0], "swing_excess_mwh": [0.0, 0.0]})


def test_a_kpi_that_is_zero_for_every_controller_gets_no_panel():
    assert [c for c, _ in kpi_panels(summary(0.0, 1.0))] == ["reward", "compute_per_mw", "ramp_excess_mw"]
    assert [c for c, _ in kpi_panels(summary(0.2, 1.0))] == ["reward", "compute_per_mw", "violation_mwh",
                                                             "ramp_excess_mw"]


@pytest.mark.parametrize("ci", [1.5, np.nan])  # nan: one seed, no interval
def test_kpis_png_is_written_with_or_without_an_interval(tmp_path, ci):
    plot_kpis(summary(0.0, ci), tmp_path / "kpis.png", "t")
    assert (tmp_path / "kpis.png").stat().st_size > 1000
