"""evaluate.py --sweep: rows equal single runs of the same configuration; bad files change nothing."""

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import cpm_env
from agents.evaluation.runner import make_controller, run_controller
from agents.sizing.economics_config import EconomicsConfig, PriceConfig
from agents.sizing.sweep import SweepConfig, load_sweep, point_overrides
from cpm_env.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import evaluate  # noqa: E402

TINY = {"name": "tiny", "oversubscription": [1.1, 1.4], "battery_hours": [0, 0.5], "c_rate": 0.5,
        "controllers": ["static_cap", "greedy"], "seeds": "3-4"}


@pytest.fixture
def tiny_sweep(tmp_path):
    (tmp_path / "short.yml").write_text("id: Short-v0\nextends: DataCenter-v0\nduration_h: 2.0\n")
    path = tmp_path / "sweep.yml"
    path.write_text(yaml.safe_dump({**TINY, "scenario": str(tmp_path / "short.yml")}))
    return path


def test_sweep_rows_match_single_runs(tmp_path, tiny_sweep):
    out = tmp_path / "out"
    assert evaluate.main(["--sweep", str(tiny_sweep), "--out", str(out), "--workers", "2"]) == 0
    table = pd.read_csv(out / "sweep.csv")
    assert {"oversubscription", "battery_hours", "battery_mw", "controller", "compute_per_mw",
            "violation_mwh"} <= set(table.columns)
    assert len(table) == 2 * 2 * 2
    for png in ("frontier.png", "heatmap.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Best violation-free configuration" in (out / "sizing.md").read_text()
    sweep = load_sweep(tiny_sweep)
    for over, hours in [(1.4, 0.5), (1.1, 0.0)]:
        venv = cpm_env.make_vec(sweep.scenario, 2, scenario=point_overrides(100.0, over, hours, 0.5))
        for name in ("static_cap", "greedy"):
            single = run_controller(make_controller(name, venv.site), venv, [3, 4], name)
            row = table[(table.oversubscription == over) & (table.battery_hours == hours) & (table.controller == name)]
            np.testing.assert_allclose(row.compute_per_mw.iat[0], single.compute_per_mw.mean(), rtol=1e-12)
            np.testing.assert_allclose(row.violation_mwh.iat[0], single.violation_mwh.mean(), rtol=1e-12, atol=1e-15)
            assert row.battery_mw.iat[0] == venv.params.battery_power_mw == 0.5 * 100.0 * hours


@pytest.mark.parametrize("field, value, needle", [
    ("oversubscription", [], "oversubscription"),
    ("battery_hours", [-1], "battery_hours"),
    ("c_rate", 0, "c_rate"),
    ("seeds", "9-1", "seeds"),
    ("colour", 1, "colour"),
    ("controllers", ["static_cap", "nope"], "nope"),
])
def test_bad_sweep_file_is_a_one_line_error_and_writes_nothing(tmp_path, capsys, field, value, needle):
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump({**TINY, field: value}))
    out = tmp_path / "out"
    assert evaluate.main(["--sweep", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and needle in err
    assert not out.exists()


def test_sweep_refuses_scenario_and_controllers_flags(tmp_path, tiny_sweep, capsys):
    assert evaluate.main(["--sweep", str(tiny_sweep), "--controllers", "greedy"]) == 2
    assert "sweep file" in capsys.readouterr().err


def test_load_sweep_defaults_seeds_and_price_path(tmp_path):
    path = tmp_path / "plain.yml"
    path.write_text(yaml.safe_dump({"oversubscription": [1, 1.5], "battery_hours": [0]}))
    assert load_sweep(path) == SweepConfig(name="plain", oversubscription=(1.0, 1.5), battery_hours=(0.0,))
    assert load_sweep(path, seeds="7-8").seeds == (7, 8)
    path.write_text(yaml.safe_dump({"oversubscription": [1], "battery_hours": [0],
                                    "economics": {"price": {"kind": "csv", "path": "p.csv"}}}))
    assert load_sweep(path).economics == EconomicsConfig(price=PriceConfig(kind="csv", path=str(tmp_path / "p.csv")))


@pytest.mark.parametrize("field, value, match", [
    ("oversubscription", [], r"oversubscription = \[\]: must be a non-empty list of numbers in \[0\.1, 10\]$"),
    ("battery_hours", [-1], r"battery_hours = \[-1\.0\]: must be a non-empty list of numbers in \[0, 100\]$"),
    ("c_rate", 0, r"c_rate = 0\.0: must be a number in \(0, 10\]"),
    ("c_rate", "fast", r"c_rate = 'fast': must be a finite number$"),
    ("seeds", "9-1", r"seeds"),
    ("colour", 1, r"colour = '\(unknown key\)': allowed keys: name, scenario, "),
    ("economics", {"lifetime_years": 0}, r"economics\.lifetime_years = 0\.0: must be >= 1 and <= 100$"),
])
def test_bad_sweep_field_names_file_field_and_value(tmp_path, field, value, match):
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump({**TINY, field: value}))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: {match}") as info:
        load_sweep(path)
    assert "\n" not in str(info.value)
