"""The env option battery_action="import_change": the first action entry moves the grid import."""

import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import given
from hypothesis import strategies as st

import cpm_env
from cpm_env.vec_env import make_vec


def test_checkers_pass_and_the_entry_is_named():
    env = gym.make("cpm_env/FastRamp-v0", battery_action="import_change")
    gym_check_env(env.unwrapped)
    assert env.unwrapped.action_names[0] == "import_change"
    assert gym.make("cpm_env/FastRamp-v0").unwrapped.action_names[0] == "battery"


@given(st.integers(0, 10_000), st.lists(st.floats(-1, 1), min_size=3, max_size=3), st.integers(1, 40))
def test_the_import_moves_by_the_action_times_the_ramp_limit_where_the_battery_can(seed, action, steps):
    env = cpm_env.CpmEnv("cpm_env/FastRamp-v0", battery_action="import_change")
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):  # somewhere into the episode
        env.step(rng.uniform(-1, 1, 3))
    before, p = env.state.import_mw, env.params
    _, _, _, _, info = env.step(np.array(action))
    battery = info["battery_power_mw"]
    soc_room = p.energy_min_mwh + 1e-6 < env.state.energy_mwh < p.energy_max_mwh - 1e-6
    if abs(battery) < p.battery_power_mw - 1e-6 and soc_room and battery < info["facility_power_mw"]:
        assert info["grid_import_mw"] == pytest.approx(before + action[0] * p.ramp_step_mw, abs=1e-9)
        assert info["ramp_excess_mw"] <= 1e-9  # inside the ramp limit by construction


def test_single_and_batched_env_agree_bitwise():
    env = gym.make("cpm_env/DataCenter-v0", battery_action="import_change").unwrapped
    venv = make_vec("cpm_env/DataCenter-v0", 1, seed=3, battery_action="import_change")
    obs, _ = env.reset(seed=3)
    assert np.array_equal(obs, venv.reset()[0])
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = rng.uniform(-1, 1, 3).astype(np.float32)
        obs, reward, *_ = env.step(a)
        vobs, vreward, _, _ = venv.step(a[None])
        assert np.array_equal(obs, vobs[0]) and reward == vreward[0]


def test_unknown_battery_action_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"^battery_action = 'grid': must be one of power, import_change$"):
        cpm_env.CpmEnv(battery_action="grid")
    with pytest.raises(ValueError, match="battery_action"):
        make_vec("cpm_env/DataCenter-v0", 2, battery_action="grid")


def test_a_policy_trained_on_import_change_acts_the_same_through_the_power_contract(import_change_run,
                                                                                  one_torch_thread):
    from agents.controllers.import_change import ImportChangeActions
    from agents.evaluation.runner import make_controller, run_controller
    from agents.learning.artifacts import check_artifacts
    from agents.learning.ppo import PPOController
    from cpm_env.vec_env import CpmVecEnv

    run, scenario = import_change_run
    assert check_artifacts(run)["env_options"]["battery_action"] == "import_change"
    plain = CpmVecEnv(str(scenario), 3)
    controller = make_controller(f"ppo:{run}", plain.site)
    assert isinstance(controller, ImportChangeActions)
    converted = run_controller(controller, plain, [5, 6, 7], "ppo").reward.to_numpy()
    raw, trained = PPOController(run, plain.site), CpmVecEnv(str(scenario), 3, battery_action="import_change")
    trained.seed([5, 6, 7])
    obs, total = trained.reset(), np.zeros(3)
    for _ in range(trained.config.n_steps):
        obs, reward, _, _ = trained.step(raw.predict(obs)[0])
        total += reward
    assert np.allclose(converted, total, rtol=1e-4, atol=1e-3)  # the observation's float32 rounding only


def test_the_config_sets_it_per_scenario_and_a_bad_value_is_a_one_line_error():
    from agents.learning.train import load_hyperparams

    assert load_hyperparams("cpm_env/FastRamp-v0")["battery_action"] == "import_change"  # train.py: its sub-block
    assert "battery_action" not in load_hyperparams("cpm_env/DataCenter-v0")  # the default, power
    with pytest.raises(ValueError, match=r"battery_action = 'grid': must be one of power, import_change$"):
        load_hyperparams("cpm_env/DataCenter-v0", ["battery_action:grid"])


# ---------------------------------------------------------------- exported: the runtime converts


def test_policy_json_names_the_import_change_and_the_outputs_stay_battery_mw(import_change_exports,
                                                                             import_change_run):
    from agents.runtime import PolicyController
    from cpm_env.scenario import Site
    from cpm_env.site import params_from_json

    folder, _ = import_change_exports
    ctrl = PolicyController.load(folder)
    spec, site = ctrl.spec, Site(str(import_change_run[1]))
    r, pmax = site.params.ramp_step_mw, site.params.battery_power_mw
    section = spec["battery_action"]
    assert section["kind"] == ctrl.battery_action == "import_change"
    graph = section["graph_output"]
    assert (graph["index"], graph["name"], graph["unit"], graph["scale"], graph["low"], graph["high"]) == \
        (0, "import_change", "MW", r, -r, r)
    assert params_from_json(spec["shield"]["site_params"]) == site.params and spec["shield"]["enabled"] is False
    assert spec["schema_version"] == 7 and spec["onnx"]["output"]["shape"] == ["batch", len(site.action_names)]
    battery = spec["actions"][0]
    assert (battery["name"], battery["unit"], battery["low"], battery["high"]) == ("battery", "MW", -pmax, pmax)
    assert spec["parity"]["max_abs_diff"] < spec["parity"]["tolerance"]
    assert ctrl.output_low[0] == -r and ctrl.action_low[0] == -pmax

    obs = (ctrl.obs_low + ctrl.obs_high) / 2
    graph_out = ctrl._session.run(None, {"obs": obs[None].astype(np.float32)})[0][0]
    y = ctrl.act(obs)
    assert ctrl.last_fallback_reason is None
    assert y[0] != graph_out[0] and np.array_equal(y[1:], graph_out[1:])  # converted: battery MW, caps as given
    answer = ctrl.respond(json.dumps(obs.tolist()))
    assert answer == {"setpoints": ctrl.setpoint_dict(y), "fallback": None} and "battery" in answer["setpoints"]
    np.testing.assert_array_equal(ctrl.act_batch(np.stack([obs, obs]))[1], y)
    actions, _ = ctrl.predict(obs)
    assert actions[0] == pytest.approx(y[0] / pmax, abs=1e-6)  # battery power over its rating


def test_parity_compares_the_models_converted_set_points_with_the_runtimes(import_change_exports,
                                                                          import_change_run, one_torch_thread):
    """On fresh rollouts under import_change (other seeds than the export's), the model's actions converted as the
    evaluation converts them and the runtime's answers agree within the export's tolerance."""
    from agents.learning.export import PARITY_TOLERANCE, rollout
    from agents.learning.ppo import PPOController
    from agents.runtime import PolicyController
    from cpm_env.vec_env import make_vec

    run, scenario = import_change_run
    venv = make_vec(str(scenario), 16, seed=500, battery_action="import_change")
    obs, expected = rollout(PPOController(run, venv.site), venv, 2_000)
    ctrl = PolicyController.load(import_change_exports[0])
    got = ctrl.act_batch(obs)
    assert ctrl.last_fallback_reason is None and np.abs(got - expected).max() < PARITY_TOLERANCE


def test_exported_import_change_policy_gives_the_kpis_of_ppo(import_change_exports, import_change_run,
                                                             one_torch_thread):
    """onnx:DIR equals ppo:DIR (both convert from the observation), and behind the filter onnx:DIR-with---shield
    equals ppo:DIR+shield (conversion, then filter)."""
    from agents.evaluation.runner import make_controller, run_controller
    from cpm_env.vec_env import make_vec

    run, scenario = import_change_run
    venv = make_vec(str(scenario), 2)
    for ppo, folder in ((f"ppo:{run}", import_change_exports[0]), (f"ppo:{run}+shield", import_change_exports[1])):
        a = run_controller(make_controller(ppo, venv.site), venv, [100, 101], "x")
        b = run_controller(make_controller(f"onnx:{folder}", venv.site), venv, [100, 101], "x")
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-6, atol=1e-5)
    assert a.shield_interventions.sum() > 0  # the filter acted


def test_a_failed_conversion_gets_the_safe_action(import_change_exports, monkeypatch):
    import agents.runtime as runtime

    ctrl = runtime.PolicyController.load(import_change_exports[0])
    obs = (ctrl.obs_low + ctrl.obs_high) / 2
    monkeypatch.setattr(runtime, "battery_for_import", lambda *a: (_ for _ in ()).throw(RuntimeError("bug\nmore")))
    np.testing.assert_array_equal(ctrl.act(obs), ctrl.safe_setpoints)
    assert ctrl.last_fallback_reason == "import_change conversion: RuntimeError: bug"
    np.testing.assert_array_equal(ctrl.act_batch(np.stack([obs, obs])), np.tile(ctrl.safe_setpoints, (2, 1)))
    assert ctrl.last_fallback_reason == "2 of 2 rows fell back; row 0: import_change conversion: RuntimeError: bug"
    monkeypatch.setattr(runtime, "battery_for_import", lambda p, s, a, x, import_mw, ops: a._replace(
        battery_mw=np.nan * import_mw))
    np.testing.assert_array_equal(ctrl.act(obs), ctrl.safe_setpoints)
    assert ctrl.last_fallback_reason == "import_change conversion: ValueError: battery set-point nan MW is not finite"
    ctrl.act_batch(np.stack([obs, obs]))
    assert ctrl.last_fallback_reason == ("2 of 2 rows fell back; row 0: import_change conversion: battery set-point "
                                         "not finite")


@pytest.mark.parametrize("change, message", [
    (lambda s: s["battery_action"].update(kind="grid"),
     "policy.json: battery_action.kind = 'grid': this runtime converts power, import_change: re-export the policy "
     "with export.py"),
    (lambda s: s.pop("battery_action"),
     "policy.json: field 'battery_action.kind' missing: re-export the policy with export.py"),
    (lambda s: s["battery_action"].pop("graph_output"),
     "policy.json: field 'battery_action.graph_output' missing: re-export the policy with export.py"),
    (lambda s: s["battery_action"]["graph_output"].update(low=1.0, high=-1.0),
     "policy.json: battery_action.graph_output[0] (import_change) low = 1.0, high = -1.0: must have low <= high "
     "(low == high: one set-point)"),
    (lambda s: s["shield"].update(entries=[]),
     "policy.json: shield.entries = []: must be the observation entries ['demand_training', 'demand_inference', "
     "'swing_training', 'swing_inference', 'duty', 'grid_limit', 'grid_import_prev', 'soc', 'cap_training_prev', "
     "'cap_inference_prev']"),
    (lambda s: s["shield"].update(floor_classes=[0]),
     "policy.json: actions has 3 entries: the import_change conversion (shield.class_names, shield.floor_classes) "
     "reads battery, 2 caps and 1 floors"),
])
def test_load_refuses_a_battery_action_it_cannot_convert(import_change_exports, tmp_path, change, message):
    """The conversion reads the shield section's site model even where the filter is off."""
    from agents.runtime import PolicyController, seal

    path = Path(shutil.copytree(import_change_exports[0], tmp_path / "copy"))
    spec = json.loads((path / "policy.json").read_text())
    change(spec)
    (path / "policy.json").write_text(json.dumps(seal(spec, (path / "policy.onnx").read_bytes())))
    with pytest.raises(ValueError) as err:
        PolicyController.load(path)
    assert str(err.value) == message
