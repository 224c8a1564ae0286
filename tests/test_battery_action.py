"""The env option battery_action="import_change": the first action entry moves the grid import."""

import gymnasium as gym
import numpy as np
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


def test_a_policy_trained_on_import_change_acts_the_same_through_the_power_contract(tmp_path, short_scenario,
                                                                                  one_torch_thread):
    import train
    from agents.controllers.import_change import ImportChangeActions
    from agents.evaluation.runner import make_controller, run_controller
    from agents.learning.artifacts import check_artifacts
    from agents.learning.ppo import PPOController
    from cpm_env.vec_env import CpmVecEnv

    scenario, run = str(short_scenario(hours=1.0)), tmp_path / "run"
    assert train.main(["--scenario", scenario, "--battery-action", "import_change", "--timesteps", "256",
                       "--run-dir", str(run), "--n-envs", "2", "--hyperparams", "n_steps:64", "batch_size:64",
                       "n_epochs:1", "eval_seeds:1-2"]) == 0
    assert check_artifacts(run)["env_options"]["battery_action"] == "import_change"
    plain = CpmVecEnv(scenario, 3)
    controller = make_controller(f"ppo:{run}", plain.site)
    assert isinstance(controller, ImportChangeActions)
    converted = run_controller(controller, plain, [5, 6, 7], "ppo").reward.to_numpy()
    raw, trained = PPOController(run, plain.site), CpmVecEnv(scenario, 3, battery_action="import_change")
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
