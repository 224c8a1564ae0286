"""The env option site_features: the site's static parameters at the end of every observation."""

import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from hypothesis import given
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import cpm_env  # noqa: F401  (registers the ids)
from conftest import TINY_TRAINING
from cpm_env import spaces
from cpm_env.config import resolve_scenario
from cpm_env.vec_env import CpmVecEnv, make_vec


def test_env_checkers_pass_with_site_features():
    env = gym.make("cpm_env/DataCenter-v0", site_features=True)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=False)


def test_observations_end_with_the_sites_parameters_and_keep_the_rest_bit_for_bit():
    plain, tagged = make_vec("cpm_env/FastRamp-v0", 3, seed=7), make_vec("cpm_env/FastRamp-v0", 3, seed=7,
                                                                         site_features=True)
    cfg = plain.config
    names = [f.name for f in spaces.site_parameter_features(cfg)]
    assert tagged.obs_names == plain.obs_names + names
    a, b = plain.reset(), tagged.reset()
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = len(plain.obs_names)
        assert np.array_equal(a, b[:, :n]) and tagged.observation_space.contains(b[0])
        assert np.array_equal(b[:, n:], np.broadcast_to(spaces.site_parameter_entries(cfg), (3, len(names))))
        action = rng.uniform(-1, 1, (3, plain.action_space.shape[0]))
        a, b = plain.step(action)[0], tagged.step(action)[0]
    single = gym.make("cpm_env/FastRamp-v0", site_features=True).unwrapped
    obs, _ = single.reset(seed=7)
    assert single.obs_names == tagged.obs_names
    assert np.array_equal(obs, make_vec("cpm_env/FastRamp-v0", 1, seed=7, site_features=True).reset()[0])


@given(limit=st.floats(10.0, 1000.0), hours=st.floats(0.0, 4.0), c_rate=st.floats(0.25, 1.0),
       ramp_pct=st.floats(2.0, 30.0), band_pct=st.floats(5.0, 40.0), over=st.floats(1.0, 2.0),
       dt_s=st.sampled_from([1.0, 10.0, 60.0, 300.0]))
def test_entries_times_their_scale_are_the_sites_physical_parameters(limit, hours, c_rate, ramp_pct, band_pct, over,
                                                                     dt_s):
    cfg = resolve_scenario("cpm_env/DataCenter-v0", {
        "dt_s": dt_s, "duration_h": 1.0, "site": {"oversubscription": over},
        "grid": {"limit_mw": limit, "ramp_limit_mw_per_min": ramp_pct / 100 * limit,
                 "swing_band_mw": band_pct / 100 * limit},
        "battery": {"capacity_mwh": hours * limit, "power_mw": hours * c_rate * limit}})
    physical = {f.name: float(v) * f.scale for f, v in zip(spaces.site_parameter_features(cfg),
                                                          spaces.site_parameter_entries(cfg))}
    expected = {"site_grid_limit": limit, "site_oversubscription": over, "site_battery_power": hours * c_rate * limit,
                "site_battery_energy": hours, "site_ramp_limit": ramp_pct / 100 * limit,
                "site_swing_band": band_pct / 100 * limit, "site_step": dt_s, "site_share_training": 0.75}
    for name, value in expected.items():
        assert physical[name] == pytest.approx(value, rel=1e-6, abs=1e-6), name
    space = spaces.observation_space(spaces.site_parameter_features(cfg))
    assert space.contains(spaces.site_parameter_entries(cfg))


def test_a_site_outside_the_observed_range_and_a_bad_option_are_one_line_errors():
    big = resolve_scenario("cpm_env/DataCenter-v0", {"battery": {"capacity_mwh": 1000.0}})  # 10 h at 100 MW
    with pytest.raises(ValueError, match=r"^DataCenter-v0: site_features: site_battery_energy = 10 h: outside the "
                                         r"range the observation carries, \[0, 8\] h$"):
        CpmVecEnv(big, 1, site_features=True)
    CpmVecEnv(big, 1)  # without the option the site is fine
    with pytest.raises(ValueError, match=r"^site_features = 'yes': must be true or false$"):
        gym.make("cpm_env/DataCenter-v0", site_features="yes")


def test_a_battery_less_site_shows_the_middle_of_its_soc_bounds_only_with_its_parameters():
    tagged = gym.make("cpm_env/NoBattery-v0", site_features=True).unwrapped
    plain = gym.make("cpm_env/NoBattery-v0").unwrapped
    bat = tagged.config.battery
    i = tagged.obs_names.index("soc")
    batch = make_vec("cpm_env/NoBattery-v0", 2, seed=1, site_features=True)
    a, b, c = tagged.reset(seed=1)[0], plain.reset(seed=1)[0], batch.reset()
    rng = np.random.default_rng(0)
    for _ in range(5):
        assert a[i] == np.float32(0.5 * (bat.soc_min + bat.soc_max)) and b[i] == 0.0  # one run empty: what 0 says
        assert np.array_equal(a[:i], b[:i]) and np.array_equal(a[i + 1:len(b)], b[i + 1:])
        assert np.array_equal(c[0], a) and tagged.observation_space.contains(a)
        action = rng.uniform(-1, 1, tagged.action_space.shape)
        a, b = tagged.step(action)[0], plain.step(action)[0]
        c = batch.step(np.stack([action, rng.uniform(-1, 1, tagged.action_space.shape)]))[0]
    # a site with a battery shows its state of charge, with its parameters or without
    with_battery = make_vec("cpm_env/DataCenter-v0", 2, seed=1, site_features=True)
    no_params = make_vec("cpm_env/DataCenter-v0", 2, seed=1)
    with_battery.reset(), no_params.reset()
    for _ in range(30):
        action = rng.uniform(-1, 1, (2, with_battery.action_space.shape[0]))
        x, y = with_battery.step(action)[0], no_params.step(action)[0]
        assert np.array_equal(x[:, i], y[:, i])
    assert x[0, i] != 0.5  # it moved


def test_a_policy_trained_with_site_features_runs_as_ppo_dir_and_as_its_export(tmp_path, short_scenario):
    import export
    import train
    from agents.evaluation.runner import make_controller
    from agents.learning.artifacts import check_artifacts
    from agents.learning.ppo import PPOController
    from agents.runtime import PolicyController

    scenario, run = str(short_scenario(hours=1.0)), tmp_path / "run"
    assert train.main(["--scenario", scenario, "--site-features", "--run-dir", str(run)] + TINY_TRAINING) == 0
    assert check_artifacts(run)["env_options"]["site_features"] is True
    tagged = make_vec(scenario, 2, seed=3, site_features=True)
    plain = make_vec(scenario, 2, seed=3)
    controller = make_controller(f"ppo:{run}", plain.site)
    assert isinstance(controller, PPOController)
    full, obs = tagged.reset(), plain.reset()
    a_plain, _ = controller.predict(obs)  # a plain env's observation: the policy appends the site's parameters
    a_full, _ = controller.predict(full)  # already there: passed as it is
    assert np.array_equal(a_plain, a_full)
    out = tmp_path / "export"
    assert export.main([str(run), "--out", str(out), "--scenario", scenario, "--no-shield"]) == 0
    runtime = PolicyController.load(out)
    names = [f.name for f in spaces.site_parameter_features(plain.config)]
    assert runtime.obs_names == tagged.obs_names and runtime.spec["site_parameters"]["entries"] == names
    assert not set(names) & set(runtime.telemetry_names)  # the runtime fills them, the site does not pass them
    telemetry = {n: float(full[0, tagged.obs_names.index(n)]) for n in runtime.telemetry_names}
    built = runtime.observation(telemetry, np.full(200, full[0, plain.obs_names.index("facility_demand")] * 100.0))
    assert np.allclose(built[-len(names):], spaces.site_parameter_entries(plain.config))
    onnx = make_controller(f"onnx:{out}", plain.site)  # evaluate.py's onnx:DIR on the plain env's observations
    assert np.allclose(onnx.predict(obs)[0], a_plain, atol=1e-4)
    # off the site it was trained on: it still acts, and says so (act, batch, JSON line)
    assert runtime.act(full[0]) is not None and runtime.last_site_warning is None
    moved = full[0].copy()
    moved[runtime.obs_names.index("site_ramp_limit")] *= 0.5
    setpoints = runtime.act(moved)
    assert runtime.last_fallback_reason is None and np.isfinite(setpoints).all()
    assert runtime.last_site_warning.startswith("site parameter site_ramp_limit = 0.05 outside the range the policy "
                                                "was trained on [0.1, 0.1]")
    runtime.act_batch(np.stack([full[0], moved]))
    assert "site_ramp_limit" in runtime.last_site_warning
    runtime.act_batch(full)
    assert runtime.last_site_warning is None
    # a site without a battery sends soc 0; the runtime shows the policy the middle of the SoC bounds, as the env does
    soc, soc_min, soc_max = (runtime.obs_names.index(n) for n in ("soc", "site_soc_min", "site_soc_max"))
    empty, neutral, drained = full[0].copy(), full[0].copy(), full[0].copy()
    drained[soc] = 0.0
    assert not np.allclose(runtime.act(drained), runtime.act(full[0]), atol=1e-6, rtol=0)  # it reads soc
    for obs in (empty, neutral):
        obs[runtime.obs_names.index("site_battery_power")] = 0.0
    empty[soc], neutral[soc] = 0.0, 0.5 * (np.float64(full[0, soc_min]) + np.float64(full[0, soc_max]))
    assert np.array_equal(runtime.act(empty), runtime.act(neutral))
    assert np.allclose(runtime.act_batch(np.stack([empty, neutral])), runtime.act(neutral), atol=1e-6, rtol=0)
    answer = runtime.respond(json.dumps({"obs": moved.tolist()}))
    assert answer["fallback"] is None and "site_ramp_limit" in answer["site_warning"]
    assert runtime.respond(json.dumps({"obs": full[0].tolist()}))["site_warning"] is None
