"""export.py and agents/runtime.py: parity, the contract, checksum refusal, fail-safe paths, JSON lines."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import export as export_cli
from agents.evaluation.runner import make_controller, run_controller
from agents.learning.export import (
    PARITY_TOLERANCE,
    PolicyGraph,
    export_policy,
    forecast_section,
    physical_setpoints,
    rollout,
)
from agents.learning.ppo import PPOController
from agents.runtime import PolicyController, seal
from cpm_env.vec_env import make_vec

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "DataCenter-v0"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The shipped DataCenter-v0 policy, exported once: (folder, sidecar)."""
    out = tmp_path_factory.mktemp("export") / "policy"
    return out, export_policy(MODEL, out)


@pytest.fixture(scope="module")
def controller(exported):
    return PolicyController.load(exported[0])


@pytest.fixture(scope="module")
def site():
    return make_vec(str(MODEL / "scenario.yml"), 1).site


def mid_obs(ctrl: PolicyController) -> np.ndarray:
    return ((ctrl.obs_low + ctrl.obs_high) / 2).astype(np.float32)


def test_each_export_ships_example_telemetry_the_runtime_answers_without_fallback(exported):
    out, spec = exported
    assert spec["example_telemetry"] == "obs.jsonl"
    ctrl = PolicyController.load(out)
    lines = [json.loads(line) for line in (out / "obs.jsonl").read_text().splitlines()]
    assert len(lines) >= 3
    for line in lines:
        assert list(line["telemetry"]) == ctrl.telemetry_names  # the fields a live site sends, by name
        ctrl.act_telemetry(line["telemetry"], line["schedule_mw"])
        assert ctrl.last_fallback_reason is None
    answers = subprocess.run([sys.executable, "-m", "agents.runtime", str(out)], input=(out / "obs.jsonl").read_text(),
                             capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(answers) == len(lines) and all(json.loads(a)["fallback"] is None for a in answers)


def test_sidecar_is_the_contract(exported, site):
    out, spec = exported
    assert json.loads((out / "policy.json").read_text()) == spec
    assert spec["scenario"]["id"] == "DataCenter-v0" and spec["scenario"]["dt_s"] == 60.0
    assert [o["name"] for o in spec["observations"]] == site.obs_names
    for entry, f in zip(spec["observations"], site.obs_features):
        assert (entry["unit"], entry["scale"], entry["low"], entry["high"]) == (f.unit, f.scale, f.low, f.high)
        assert entry["source"] and entry["when_not_applicable"]  # the integrator's contract, per entry
    by_name = {o["name"]: o for o in spec["observations"]}
    assert by_name["episode_progress"]["source"].startswith("site clock")
    assert by_name["dr_pending"]["when_not_applicable"].startswith("0")
    battery, *caps = spec["actions"]
    assert (battery["name"], battery["unit"], battery["low"], battery["high"], battery["safe"]) == \
        ("battery", "MW", -25.0, 25.0, 0.0)
    for cap in caps:
        assert cap["unit"] == "fraction of TDP" and cap["low"] <= cap["safe"] <= cap["high"] == 1.0
        assert cap["safe"] == pytest.approx(100.0 / 130.0)  # the installed peak x PUE fits the 100 MW limit
    assert spec["onnx"]["input"]["shape"] == ["batch", len(site.obs_names)]
    assert spec["onnx"]["output"]["shape"] == ["batch", len(site.action_names)]
    assert spec["onnx"]["sha256"] == hashlib.sha256((out / "policy.onnx").read_bytes()).hexdigest()
    assert {"python", "numpy", "torch", "stable-baselines3", "onnx", "onnxruntime", "cpm"} <= set(spec["versions"])
    assert spec["training_run"]["config"]["policy"] == "MlpPolicy"
    assert spec["forecast"] == forecast_section(site.config) and spec["forecast"]["kind"] == "schedule_persistence"
    assert spec["parity"]["observations"] >= 10_000 and spec["parity"]["max_abs_diff"] < PARITY_TOLERANCE


def test_onnx_matches_the_model_on_fresh_rollouts(exported, controller, one_torch_thread):
    """Parity from the files on disk, on rollouts of other seeds than the export's."""
    venv = make_vec(str(MODEL / "scenario.yml"), 16, seed=500)
    obs, expected = rollout(PPOController(MODEL, venv.site), venv, 10_000)
    got = controller.act_batch(obs)
    assert controller.last_fallback_reason is None
    assert len(obs) >= 10_000 and np.abs(got - expected).max() < PARITY_TOLERANCE
    for i in range(0, len(obs), 2500):  # one observation at a time gives the same set-points
        np.testing.assert_array_equal(controller.act(obs[i]), got[i])


def test_failed_parity_writes_nothing(exported, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "policy.json").write_text("previous export")
    import torch

    forward = PolicyGraph.forward
    mid = torch.tensor([(a["low"] + a["high"]) / 2 for a in exported[1]["actions"]], dtype=torch.float64)
    # 1e-4 off the trained actions, towards the middle of the bounds: a parity failure, never an out-of-bounds one
    monkeypatch.setattr(PolicyGraph, "forward", lambda self, obs: (lambda y: y + 1e-4 * torch.sign(mid - y))(
        forward(self, obs)))
    assert export_cli.main([str(MODEL), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "parity failed" in err and "nothing written" in err
    assert [p.name for p in out.iterdir()] == ["policy.json"] and (out / "policy.json").read_text() == "previous export"


def test_export_cli_errors_are_one_line(tmp_path, capsys):
    assert export_cli.main([str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 2
    assert export_cli.main([str(MODEL), "--out", str(tmp_path / "out"), "--parity-obs", "100"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "model.zip" in lines[0] and "at least 10000" in lines[1]
    assert not (tmp_path / "out").exists()


def test_runtime_imports_neither_torch_nor_sb3_and_loads_no_pickle(exported):
    """In the full install; without gymnasium it loads only cpm_env's numpy-only modules (test_runtime_forecast.py)."""
    code = (
        "import json, pickle, sys\n"
        "def refuse(*a, **k): raise AssertionError('pickle loaded')\n"
        "pickle.load = pickle.loads = refuse\n"
        "from agents.runtime import PolicyController\n"
        f"c = PolicyController.load({str(exported[0])!r})\n"
        "c.act((c.obs_low + c.obs_high) / 2)\n"
        "assert c.last_fallback_reason is None, c.last_fallback_reason\n"
        "print(json.dumps([m for m in ('torch', 'stable_baselines3') if m in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def _copy(exported, tmp_path) -> Path:
    return Path(shutil.copytree(exported[0], tmp_path / "copy"))


def test_load_refuses_a_changed_onnx_file(exported, tmp_path):
    path = _copy(exported, tmp_path)
    data = bytearray((path / "policy.onnx").read_bytes())
    data[-1] ^= 1
    (path / "policy.onnx").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256") as err:
        PolicyController.load(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("section", ["observations", "actions"])
def test_load_refuses_a_sidecar_of_other_shapes(exported, tmp_path, section):
    path = _copy(exported, tmp_path)
    spec = json.loads((path / "policy.json").read_text())
    spec[section].pop()
    (path / "policy.json").write_text(json.dumps(seal(spec, (path / "policy.onnx").read_bytes())))
    with pytest.raises(ValueError, match="policy.onnx: (input|output) .* does not match") as err:
        PolicyController.load(path)
    assert "\n" not in str(err.value)


def test_load_refuses_missing_files_and_other_schemas(exported, tmp_path):
    with pytest.raises(ValueError, match="not found"):
        PolicyController.load(tmp_path / "nope")
    path = _copy(exported, tmp_path)
    spec = json.loads((path / "policy.json").read_text())
    (path / "policy.json").write_text(json.dumps({**spec, "schema_version": 99}))
    with pytest.raises(ValueError, match="schema_version = 99"):
        PolicyController.load(path)


def _assert_safe(ctrl: PolicyController, setpoints, reason_part: str):
    np.testing.assert_array_equal(setpoints, ctrl.safe_setpoints)
    assert setpoints[0] == 0.0 and reason_part in ctrl.last_fallback_reason and "\n" not in ctrl.last_fallback_reason


@pytest.mark.parametrize("bad, reason", [
    (float("nan"), "not finite"), (float("inf"), "not finite"), (-float("inf"), "not finite"),
    (1e6, "outside"), (-1e6, "outside"),
])
def test_bad_values_fall_back_to_the_safe_action(controller, bad, reason):
    obs = mid_obs(controller)
    obs[7] = bad
    _assert_safe(controller, controller.act(obs), f"entry 7 ({controller.obs_names[7]})")
    assert reason in controller.last_fallback_reason
    controller.act(mid_obs(controller))
    assert controller.last_fallback_reason is None


@pytest.mark.parametrize("bad", ["short", "long", "2d", "string", "none", "dict", "mixed", "ragged", "bool"])
def test_malformed_observations_fall_back(controller, bad):
    obs = mid_obs(controller).tolist()
    bad_obs = {"short": obs[:-1], "long": obs + [0.0], "2d": [obs], "string": "obs", "none": None, "dict": {"a": 1},
               "mixed": obs[:-1] + ["x"], "ragged": [obs, [1.0]], "bool": [True] * len(obs)}[bad]
    _assert_safe(controller, controller.act(bad_obs), "observation")


def test_onnxruntime_errors_and_bad_outputs_fall_back(exported):
    ctrl = PolicyController.load(exported[0])

    class Session:
        def __init__(self, result):
            self.result = result

        def run(self, names, inputs):
            if isinstance(self.result, Exception):
                raise self.result
            return [np.full((len(next(iter(inputs.values()))), len(ctrl.action_names)), self.result)]

    ctrl._session = Session(RuntimeError("device lost\nmore"))
    _assert_safe(ctrl, ctrl.act(mid_obs(ctrl)), "RuntimeError: device lost")
    ctrl._session = Session(np.nan)
    _assert_safe(ctrl, ctrl.act(mid_obs(ctrl)), "outside the action bounds")
    y = ctrl.act_batch(np.stack([mid_obs(ctrl)] * 3))
    np.testing.assert_array_equal(y, np.tile(ctrl.safe_setpoints, (3, 1)))
    assert ctrl.last_fallback_reason.startswith("3 of 3 rows fell back")


def test_batches_fall_back_row_by_row(controller):
    obs = np.stack([mid_obs(controller)] * 4)
    obs[2, 0] = np.nan
    y = controller.act_batch(obs)
    np.testing.assert_array_equal(y[2], controller.safe_setpoints)
    for i in (0, 1, 3):
        np.testing.assert_array_equal(y[i], controller.act(obs[i]))
    controller.act_batch(obs)
    assert controller.last_fallback_reason.startswith("1 of 4 rows fell back; row 2: observation entry 0")
    y = controller.act_batch(obs[:, :-1])
    assert y.shape == (4, len(controller.action_names)) and "all 4 rows fell back" in controller.last_fallback_reason


def in_range_obs(ctrl):
    return st.tuples(*[st.floats(lo, hi) for lo, hi in zip(ctrl.obs_low, ctrl.obs_high)])


@given(data=st.data())
def test_in_range_observations_never_fall_back(controller, data):
    obs = np.array(data.draw(in_range_obs(controller)))
    y = controller.act(obs)
    assert controller.last_fallback_reason is None
    assert np.all(controller.action_low <= y) and np.all(y <= controller.action_high)


@given(data=st.data())
def test_out_of_range_observations_always_fall_back(controller, data):
    obs = np.array(data.draw(in_range_obs(controller)), dtype=np.float64)
    i = data.draw(st.integers(0, len(obs) - 1))
    lo, hi = controller.obs_low[i], controller.obs_high[i]
    obs[i] = data.draw(st.one_of(st.floats(max_value=lo, exclude_max=True), st.floats(min_value=hi, exclude_min=True),
                                 st.just(np.nan)))
    _assert_safe(controller, controller.act(obs), f"entry {i} ")


def test_predict_inverts_the_action_map(controller, site):
    obs = np.stack([mid_obs(controller)] * 2)
    actions, state = controller.predict(obs, state="s")
    assert state == "s" and actions.dtype == np.float32 and np.all(np.abs(actions) <= 1)
    np.testing.assert_allclose(physical_setpoints(actions, site), controller.act_batch(obs), atol=1e-5)
    np.testing.assert_array_equal(controller.predict(obs[0])[0], actions[0])


def test_json_lines_loop(exported, controller):
    obs = mid_obs(controller).tolist()
    lines = [json.dumps(obs), json.dumps({"obs": obs}), "not json", json.dumps(obs[:3]), json.dumps({"x": 1}),
             json.dumps(obs[:-1] + [float("nan")]), ""]
    done = subprocess.run([sys.executable, "-m", "agents.runtime", str(exported[0])], cwd=ROOT, text=True,
                          input="\n".join(lines) + "\n", capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(answers) == 6
    safe = controller.setpoint_dict(controller.safe_setpoints)
    expected = controller.setpoint_dict(controller.act(obs))
    assert answers[0] == answers[1] == {"setpoints": expected, "fallback": None}
    for answer, reason in zip(answers[2:], ["not JSON", "shape (3,)", "one of the fields 'obs' or 'telemetry'",
                                            "not finite"]):
        assert answer["setpoints"] == safe and reason in answer["fallback"]


def test_json_lines_loop_refuses_a_bad_folder(tmp_path):
    done = subprocess.run([sys.executable, "-m", "agents.runtime", str(tmp_path)], cwd=ROOT, text=True,
                          input="", capture_output=True, timeout=60, check=False)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "policy.json" in done.stderr


def test_evaluate_onnx_kpis_equal_the_source_model(exported, short_scenario, one_torch_thread):
    venv = make_vec(str(short_scenario()), 2)
    ppo = PPOController(MODEL, venv.site, allow_other_scenario=True)  # a short variant of its scenario
    a = run_controller(ppo, venv, [100, 101], "x")
    b = run_controller(make_controller(f"onnx:{exported[0]}", venv.site), venv, [100, 101], "x")
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-6, atol=1e-5)


def test_evaluate_refuses_an_export_of_another_scenario(exported):
    site = make_vec("cpm_env/NoBattery-v0", 1).site
    with pytest.raises(ValueError, match="differ from NoBattery-v0") as err:
        make_controller(f"onnx:{exported[0]}", site)
    assert "\n" not in str(err.value)


def test_a_site_without_a_battery_exports_and_runs(tmp_path, one_torch_thread):
    """NoBattery-v0's battery entry is 0 MW to 0 MW: one set-point, which the runtime accepts and answers."""
    out = tmp_path / "policy"
    assert export_cli.main([str(ROOT / "models" / "NoBattery-v0"), "--out", str(out)]) == 0
    ctrl = PolicyController.load(out)
    assert (ctrl.action_low[0], ctrl.action_high[0], ctrl.safe_setpoints[0]) == (0.0, 0.0, 0.0)
    actions, _ = ctrl.predict(np.stack([mid_obs(ctrl)] * 2))
    assert ctrl.last_fallback_reason is None and np.all(actions[:, 0] == 0) and np.all(np.isfinite(actions))
    data = yaml.safe_load((ROOT / "models" / "NoBattery-v0" / "scenario.yml").read_text())
    data.update({"id": "Short-v0", "duration_h": 2.0})
    (tmp_path / "short.yml").write_text(yaml.safe_dump(data))
    venv = make_vec(str(tmp_path / "short.yml"), 1)
    ppo = make_controller(f"ppo:{ROOT / 'models' / 'NoBattery-v0'}", venv.site, allow_other_scenario=True)
    a = run_controller(ppo, venv, [100], "x")
    b = run_controller(make_controller(f"onnx:{out}", venv.site), venv, [100], "x")
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("section, entry, message", [
    ("observations", 3, r"^policy.json: observations\[3\] \(swing_inference\) low = 0.5, high = 0.5: must have low < "
                        r"high$"),
    ("actions", 1, r"^policy.json: actions\[1\] \(cap_training\) low = 0.5, high = 0.25: must have low <= high "
                   r"\(low == high: one set-point\)$"),
])
def test_load_refuses_bounds_that_hold_no_value(exported, tmp_path, section, entry, message):
    path = _copy(exported, tmp_path)
    spec = json.loads((path / "policy.json").read_text())
    spec[section][entry].update(low=0.5, high=0.5 if section == "observations" else 0.25)
    (path / "policy.json").write_text(json.dumps(seal(spec, (path / "policy.onnx").read_bytes())))
    with pytest.raises(ValueError, match=message):
        PolicyController.load(path)
