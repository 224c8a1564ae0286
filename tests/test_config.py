"""Bad input gives one-line errors naming file, field, value and what is allowed; extends: and the resolver."""

import re
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st

import cpm_env
from cpm_env.config import (
    ConfigError,
    ScenarioConfig,
    deep_merge,
    load_scenario,
    read_yaml,
    resolve_scenario,
    scenario_from_dict,
    scenario_to_dict,
)
from cpm_env.family import SiteFamily, is_family_file

DEFAULT = cpm_env.DEFAULT_SCENARIO
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import evaluate  # noqa: E402


def one_line_error(match: str, fn, *args, **kwargs) -> str:
    """The ConfigError ``fn`` raises: it matches ``match`` and is one line."""
    with pytest.raises(ConfigError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_shipped_scenarios_load_and_are_valid():
    ids = cpm_env.scenario_ids()
    assert {"cpm_env/DataCenter-v0", "cpm_env/FastRamp-v0", "cpm_env/DemandResponse-v0",
            "cpm_env/NoBattery-v0"} <= set(ids)
    for env_id, path in ids.items():
        if is_family_file(path):  # a family's base site is valid, and so is every corner of its ranges
            assert f"cpm_env/{SiteFamily(path).reference.id}" == env_id
            continue
        cfg = load_scenario(path)
        assert f"cpm_env/{cfg.id}" == env_id


def test_unknown_key_names_the_override_and_allowed_keys():
    one_line_error(rf"^scenario override battery\.capacity_mhw = '\(unknown key\)': allowed keys: capacity_mwh, "
                   rf".* \(base {re.escape(str(DEFAULT))}\)$",
                   load_scenario, DEFAULT, {"battery": {"capacity_mhw": 10}})


def test_bad_key_in_a_file_names_the_file(tmp_yaml):
    bad = tmp_yaml("id: Bad-v0\nbattery: {capacity_mhw: 10}\n")
    one_line_error(rf"^{re.escape(str(bad))}: battery\.capacity_mhw = '\(unknown key\)'", load_scenario, bad)


def test_wrong_type():
    one_line_error(r"^scenario override grid\.limit_mw = 'lots': must be a finite number", load_scenario, DEFAULT,
                   {"grid": {"limit_mw": "lots"}})


def test_negative_capacity():
    one_line_error(r"^scenario override battery\.capacity_mwh = -5\.0: must be >= 0 and <= 1e\+06 \(base ",
                   resolve_scenario, "DataCenter-v0", {"battery": {"capacity_mwh": -5}})


def test_soc_min_not_below_soc_max():
    one_line_error(r"^scenario override battery\.soc_min = 0\.9: must be < soc_max \(0\.5\)", load_scenario, DEFAULT,
                   {"battery": {"soc_min": 0.9, "soc_max": 0.5}})


def test_missing_and_malformed_yaml(tmp_yaml, tmp_path):
    one_line_error(r"nope\.yml: file not found", load_scenario, tmp_path / "nope.yml")
    bad = tmp_yaml("id: X-v0\nbattery: [1, 2\n")
    one_line_error(rf"^{re.escape(str(bad))}: malformed YAML at line \d+, column \d+", load_scenario, bad)
    one_line_error(r"list\.yml: top level = list: must be a mapping", load_scenario, tmp_yaml("- 1\n- 2\n", "list.yml"))


def test_unknown_workload_kind_and_bad_curve():
    with pytest.raises(ConfigError, match=r"site\.gpu_classes\[0\]\.workload\.kind = 'crypto'"):
        load_scenario(DEFAULT, {"site": {"gpu_classes": [{"name": "a", "workload": {"kind": "crypto"}}]}})
    with pytest.raises(ConfigError, match="concave"):
        load_scenario(DEFAULT, {"site": {"gpu_classes": [
            {"name": "a", "throughput_curve": [[0.2857, 0.0], [0.5, 0.1], [0.8, 0.6], [1.0, 1.0]]}]}})


def test_shares_must_sum_to_one():
    one_line_error(r"^<dict>: site\.gpu_classes = 'shares sum to 0\.5': shares must sum to 1$", scenario_from_dict,
                   {"site": {"gpu_classes": [{"name": "a", "share": 0.5}]}})


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
    msg = one_line_error(re.escape(str(path)), cpm_env.CpmEnv, trace_cfg(path))
    for part in expect:
        assert part in msg


def test_trace_fill_interpolate(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("timestamp,power_mw\n0,1\n60,nan\n120,3\n")
    env = cpm_env.CpmEnv(trace_cfg(path, fill="interpolate"))
    obs, _ = env.reset(seed=0)
    assert np.isfinite(obs).all()


def test_bad_scenario_writes_nothing(tmp_path, capsys):
    """evaluate.py stops at a bad scenario before it creates its output folder."""
    bad = tmp_path / "bad.yml"
    bad.write_text("id: Bad-v0\nextends: DataCenter-v0\nbattery: {soc_init: 2.0}\n")
    out = tmp_path / "out"
    args = ["--scenario", str(bad), "--controllers", "static_cap", "--seeds", "1", "--out", str(out)]
    assert evaluate.main(args) == 2
    assert "battery.soc_init = 2.0" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yml"]


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
    """An override that breaks a field it does not state: the error names the base and the overrides."""
    one_line_error(rf"^{re.escape(str(DEFAULT))} with scenario overrides: reward\.residual_swing_per_mwh = 0\.05: "
                   r"must exceed the smoothing loss cost",
                   load_scenario, DEFAULT, {"battery": {"round_trip_efficiency": 0.5}})


# --------------------------------------------------------------------------- extends:


def flat(tree, prefix=""):
    """Leaf paths of a plain dict (lists are leaves) -> value."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    return {k: v for key, sub in tree.items() for k, v in flat(sub, f"{prefix}.{key}".lstrip(".")).items()}


@pytest.mark.parametrize("name", ["demand_response.yml", "no_battery.yml"])
def test_shipped_variant_is_its_base_plus_its_differences(name):
    """Loading via extends equals the base with the variant's own fields as overrides, and the loaded
    variant differs from its base only in fields the variant states."""
    path = cpm_env.SCENARIO_DIR / name
    own = read_yaml(path)
    base = path.parent / own.pop("extends")
    variant = load_scenario(path)
    assert variant == load_scenario(base, own)
    base_fields = flat(scenario_to_dict(load_scenario(base)))
    changed = {k for k, v in flat(scenario_to_dict(variant)).items() if base_fields[k] != v}
    assert changed and changed <= set(flat(own))


def test_extends_merges_nested_fields_and_chains(tmp_path):
    (tmp_path / "mid.yml").write_text(f"id: Mid-v0\nextends: {DEFAULT}\nsite: {{pue: 1.3}}\n"
                                      "battery: {power_mw: 10}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "leaf.yml").write_text("id: Leaf-v0\nextends: ../mid.yml\nbattery: {capacity_mwh: 20}\n")
    leaf = load_scenario(tmp_path / "sub" / "leaf.yml")
    base = load_scenario(DEFAULT)
    assert leaf.id == "Leaf-v0" and leaf.site.pue == 1.3
    assert leaf.site.gpu_classes == base.site.gpu_classes and len(leaf.site.gpu_classes) == 2  # merged, not replaced
    battery = leaf.battery
    assert (battery.capacity_mwh, battery.power_mw, battery.soc_min) == (20.0, 10.0, base.battery.soc_min)
    by_id = tmp_path / "by_id.yml"
    by_id.write_text("id: ById-v0\nextends: cpm_env/NoBattery-v0\nduration_h: 2.0\n")
    assert load_scenario(by_id) == resolve_scenario("NoBattery-v0", {"id": "ById-v0", "duration_h": 2.0})


def test_extends_cycle_and_missing_base_are_one_line_errors(tmp_path):
    a, b = tmp_path / "a.yml", tmp_path / "b.yml"
    a.write_text("id: A-v0\nextends: b.yml\n")
    b.write_text("id: B-v0\nextends: a.yml\n")
    one_line_error(rf"^{re.escape(str(a))}: extends = cycle: .*a\.yml -> .*b\.yml -> .*a\.yml", load_scenario, a)
    a.write_text("id: A-v0\nextends: a.yml\n")
    one_line_error(r"a\.yml: extends = cycle", load_scenario, a)
    a.write_text("id: A-v0\nextends: gone.yml\n")
    one_line_error(rf"^{re.escape(str(a))}: extends = 'gone\.yml': no such file or registered id "
                   r"\(registered: cpm_env/",
                   load_scenario, a)
    a.write_text("id: A-v0\nextends: Nowhere-v9\n")
    one_line_error(r"a\.yml: extends = 'Nowhere-v9': no such file or registered id", load_scenario, a)
    a.write_text("id: A-v0\nextends: [datacenter.yml]\n")
    one_line_error(r"a\.yml: extends = \['datacenter\.yml'\]: must be a YAML path", load_scenario, a)


def test_trace_path_resolves_against_the_file_that_states_it(tmp_path):
    (tmp_path / "traces").mkdir()
    (tmp_path / "traces" / "site.yml").write_text(yaml.safe_dump(
        {"id": "Traced-v0", "duration_h": 1.0,
         "site": {"gpu_classes": [{"name": "gpus", "workload": {"kind": "trace", "path": "power.csv"}}]}}))
    (tmp_path / "variant.yml").write_text("id: TracedVariant-v0\nextends: traces/site.yml\nbattery: {power_mw: 5}\n")
    path = load_scenario(tmp_path / "variant.yml").site.gpu_classes[0].workload.path
    assert path == str(tmp_path / "traces" / "power.csv")


# --------------------------------------------------------------------------- the resolver


def test_resolver_takes_ids_paths_configs_overrides_and_none():
    default = load_scenario(DEFAULT)
    assert resolve_scenario() == resolve_scenario("DataCenter-v0") == default
    assert resolve_scenario("cpm_env/DataCenter-v0") == default
    assert resolve_scenario(str(DEFAULT)) == resolve_scenario(DEFAULT) == default
    no_battery = {"battery": {"capacity_mwh": 0.0, "power_mw": 0.0}}
    assert resolve_scenario(no_battery) == resolve_scenario(None, no_battery) == resolve_scenario(default, no_battery)
    assert resolve_scenario(no_battery).battery.capacity_mwh == 0.0
    assert resolve_scenario(default) is default
    assert resolve_scenario("FastRamp-v0") == gym.make("cpm_env/FastRamp-v0").unwrapped.config
    with pytest.raises(TypeError, match="must be a registered id"):
        resolve_scenario(42)


def test_unknown_id_lists_the_registered_ids():
    one_line_error(r"^scenario = 'Nope-v0': unknown id; registered ids: cpm_env/DataCenter-v0, "
                   r"cpm_env/DemandResponse-v0, cpm_env/FastRamp-v0, cpm_env/InferenceTrace-v0, cpm_env/NoBattery-v0, "
                   r"cpm_env/SiteFamily-v0 "
                   r"\(or pass a scenario YAML path\)$",
                   resolve_scenario, "Nope-v0")


def test_id_map_and_resolver_need_no_gymnasium():
    """config.py loaded on its own (the package's __init__ registers envs) resolves ids without gymnasium."""
    code = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('cfg', 'cpm_env/config.py'); "
            "cfg = importlib.util.module_from_spec(spec); sys.modules['cfg'] = cfg; spec.loader.exec_module(cfg); "
            "print(len(cfg.scenario_ids()), cfg.resolve_scenario('NoBattery-v0').id, 'gymnasium' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.stdout.split() == [str(len(cpm_env.scenario_ids())), "NoBattery-v0", "False"], proc.stderr


soc = st.floats(0.0, 1.0, allow_nan=False)


@given(soc, soc, st.floats(0.0, 1.0))
def test_battery_soc_window(soc_min, soc_max, where):
    """A window with soc_min < soc_max builds (and round-trips through a dict); any other is an error
    naming the override."""
    if soc_min < soc_max:
        soc_init = soc_min + where * (soc_max - soc_min)
        assume(soc_min <= soc_init <= soc_max)  # rounding can put it a hair outside
        cfg = resolve_scenario(None, {"battery": {"soc_min": soc_min, "soc_max": soc_max, "soc_init": soc_init}})
        assert scenario_from_dict(scenario_to_dict(cfg)) == cfg
    else:
        one_line_error(r"^scenario override battery\.soc_min = .*: must be < soc_max", resolve_scenario, None,
                       {"battery": {"soc_min": soc_min, "soc_max": soc_max}})


def test_deep_merge_replaces_lists_and_leaves_inputs_alone():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 3}
    merged = deep_merge(base, {"a": {"c": [9]}})
    assert merged == {"a": {"b": 1, "c": [9]}, "d": 3} and base == {"a": {"b": 1, "c": [1, 2]}, "d": 3}
