"""Bad input gives one-line errors naming file, field, value and what is allowed."""

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import cpm_env
from cpm_env.config import ConfigError, ScenarioConfig, load_scenario, scenario_from_dict

DEFAULT = cpm_env.DEFAULT_SCENARIO
ROOT = Path(__file__).resolve().parents[1]


def one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_shipped_scenarios_load_and_are_valid():
    ids = cpm_env.scenario_ids()
    assert {"cpm_env/DataCenter-v0", "cpm_env/FastRamp-v0", "cpm_env/DemandResponse-v0",
            "cpm_env/NoBattery-v0"} <= set(ids)
    for env_id, path in ids.items():
        cfg = load_scenario(path)
        assert f"cpm_env/{cfg.id}" == env_id


def test_unknown_key_names_file_field_and_allowed_keys():
    msg = one_line_error(load_scenario, DEFAULT, {"battery": {"capacity_mhw": 10}})
    assert str(DEFAULT) in msg and "battery.capacity_mhw" in msg and "capacity_mwh" in msg


def test_wrong_type():
    msg = one_line_error(load_scenario, DEFAULT, {"grid": {"limit_mw": "lots"}})
    assert "grid.limit_mw" in msg and "'lots'" in msg and "number" in msg


def test_negative_capacity():
    msg = one_line_error(load_scenario, DEFAULT, {"battery": {"capacity_mwh": -5}})
    assert "battery.capacity_mwh" in msg and "-5" in msg and ">= 0" in msg


def test_soc_min_not_below_soc_max():
    msg = one_line_error(load_scenario, DEFAULT, {"battery": {"soc_min": 0.9, "soc_max": 0.5}})
    assert "battery.soc_min" in msg and "0.9" in msg and "soc_max" in msg


def test_missing_and_malformed_yaml(tmp_yaml, tmp_path):
    msg = one_line_error(load_scenario, tmp_path / "nope.yml")
    assert "nope.yml" in msg and "not found" in msg
    bad = tmp_yaml("id: X-v0\nbattery: [1, 2\n")
    msg = one_line_error(load_scenario, bad)
    assert str(bad) in msg and "malformed YAML" in msg and "line" in msg
    msg = one_line_error(load_scenario, tmp_yaml("- 1\n- 2\n", "list.yml"))
    assert "top level" in msg


def test_unknown_workload_kind_and_bad_curve():
    classes = load_scenario(DEFAULT).site.gpu_classes
    with pytest.raises(ConfigError, match="workload.kind"):
        load_scenario(DEFAULT, {"site": {"gpu_classes": [{"name": "a", "workload": {"kind": "crypto"}}]}})
    with pytest.raises(ConfigError, match="concave"):
        load_scenario(DEFAULT, {"site": {"gpu_classes": [
            {"name": "a", "throughput_curve": [[0.2857, 0.0], [0.5, 0.1], [0.8, 0.6], [1.0, 1.0]]}]}})
    assert len(classes) == 2


def test_shares_must_sum_to_one():
    msg = one_line_error(scenario_from_dict, {"site": {"gpu_classes": [{"name": "a", "share": 0.5}]}})
    assert "shares" in msg


def trace_cfg(path, **kw):
    wl = {"kind": "trace", "path": str(path), "value_column": "power_mw", **kw}
    return {"duration_h": 1.0, "site": {"gpu_classes": [{"name": "gpus", "workload": wl}]}}


@pytest.mark.parametrize(
    "body, expect",
    [
        ("timestamp,power_mw\n0,1\n60,nan\n120,3\n", ["line 3", "power_mw", "nan"]),
        ("timestamp,power_mw\n0,1\n60,-2\n120,3\n", ["line 3", "power_mw", "-2", ">= 0"]),
        ("timestamp,watts\n0,1\n60,2\n", ["power_mw", "missing"]),
        ("timestamp,power_mw\n0,1\nyesterday,2\n", ["line 3", "timestamp", "yesterday"]),
    ],
)
def test_bad_trace_csv(tmp_path, body, expect):
    path = tmp_path / "trace.csv"
    path.write_text(body)
    with pytest.raises(ConfigError) as info:
        cpm_env.CpmEnv(trace_cfg(path))
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    for part in expect:
        assert part in msg


def test_trace_fill_interpolate(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("timestamp,power_mw\n0,1\n60,nan\n120,3\n")
    env = cpm_env.CpmEnv(trace_cfg(path, fill="interpolate"))
    obs, _ = env.reset(seed=0)
    assert np.isfinite(obs).all()


def test_bad_config_changes_nothing_on_disk(tmp_path):
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ConfigError):
        load_scenario(DEFAULT, {"battery": {"soc_init": 2.0}})
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_gym_make_with_overrides_and_path(tmp_yaml):
    env = gym.make("cpm_env/DataCenter-v0", scenario={"battery": {"capacity_mwh": 0.0}})
    assert env.unwrapped.params.capacity_mwh == 0.0
    path = tmp_yaml(DEFAULT.read_text().replace("id: DataCenter-v0", "id: Custom-v0"))
    env = gym.make("cpm_env/DataCenter-v0", scenario=str(path))
    assert env.unwrapped.config.id == "Custom-v0"
    assert isinstance(env.unwrapped.config, ScenarioConfig)


def test_cli_prints_one_line_error_without_traceback(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("id: Bad-v0\nbattery: {capacity_mwh: -1}\n")
    for args in (["--scenario", str(bad)], ["--seeds", "9-3"], ["--controllers", "magic"],
                 ["--scenario", str(tmp_path / "missing.yml")]):
        proc = subprocess.run([sys.executable, "evaluate.py", *args], capture_output=True, text=True,
                              cwd=ROOT, stdin=subprocess.DEVNULL)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "battery.capacity_mwh" in subprocess.run(
        [sys.executable, "evaluate.py", "--scenario", str(bad)], capture_output=True, text=True, cwd=ROOT).stderr


def test_residual_swing_weight_must_cover_smoothing_losses():
    msg = one_line_error(load_scenario, DEFAULT, {"battery": {"round_trip_efficiency": 0.5}})
    assert "reward.residual_swing_per_mwh" in msg and "loss cost" in msg
