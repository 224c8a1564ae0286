"""The batched VecEnv equals independent single envs, and follows SB3's VecEnv contract."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import VecNormalize

import cpm_env


@pytest.mark.parametrize("env_id", ["cpm_env/DataCenter-v0", "cpm_env/DemandResponse-v0", "cpm_env/FastRamp-v0"])
def test_vec_env_equals_independent_envs(env_id):
    n_envs, seed = 3, 42
    overrides = {"duration_h": 0.05} if "Fast" in env_id else {"duration_h": 2.0}
    venv = cpm_env.make_vec(env_id, n_envs, seed=seed, scenario=overrides, kpis_in_info=True)
    envs = [gym.make(env_id, scenario=overrides) for _ in range(n_envs)]
    obs_v = venv.reset()
    obs_s = [e.reset(seed=seed + i)[0] for i, e in enumerate(envs)]
    np.testing.assert_array_equal(obs_v, np.stack(obs_s))
    rng = np.random.default_rng(0)
    n_steps = venv.config.n_steps
    for step in range(2 * n_steps + 5):  # crosses two autoresets
        actions = rng.uniform(-1.2, 1.2, (n_envs, venv.action_space.shape[0])).astype(np.float32)
        obs_v, rew_v, done_v, infos = venv.step(actions)
        for i, env in enumerate(envs):
            o, r, term, trunc, info = env.step(actions[i])
            assert rew_v[i] == np.float32(r)
            assert done_v[i] == (term or trunc)
            for key in ("grid_import_mw", "soc", "compute_delivered", "ramp_excess_mw", "cap_training"):
                assert infos[i][key] == info[key], key
            if trunc:
                np.testing.assert_array_equal(infos[i]["terminal_observation"], o)
                assert infos[i]["TimeLimit.truncated"] is True
                assert "r" in infos[i]["episode"]
                o, _ = env.reset()
            np.testing.assert_array_equal(obs_v[i], o)


def test_vec_env_kpis_match_info_and_work_under_vecnormalize():
    venv = cpm_env.make_vec("cpm_env/DataCenter-v0", 4, seed=0, scenario={"duration_h": 1.0})
    norm = VecNormalize(venv)
    obs = norm.reset()
    assert obs.shape == (4, venv.observation_space.shape[0])
    for _ in range(60):
        obs, rew, done, infos = norm.step(np.zeros((4, 3), dtype=np.float32))
    assert done.all() and all("terminal_observation" in i for i in infos)
    out = venv.last_outputs
    assert out.grid_import_mw.shape == (4,)
    np.testing.assert_array_equal(out.grid_import_mw, out.facility_power_mw - out.battery_power_mw)


def test_make_vec_errors():
    with pytest.raises(ValueError, match="registered ids"):
        cpm_env.make_vec("cpm_env/Nope-v0", 2)
    with pytest.raises(ValueError, match="n_envs"):
        cpm_env.make_vec("cpm_env/DataCenter-v0", 0)
    venv = cpm_env.make_vec("cpm_env/DataCenter-v0", 2, seed=0, scenario={"duration_h": 1.0})
    venv.reset()
    with pytest.raises(ValueError, match="non-finite"):
        venv.step(np.full((2, 3), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        venv.step(np.zeros((3, 3), dtype=np.float32))


def test_sb3_ppo_learns_on_the_vec_env_smoke():
    from stable_baselines3 import PPO

    venv = cpm_env.make_vec("cpm_env/DataCenter-v0", 4, seed=0, scenario={"duration_h": 1.0})
    model = PPO("MlpPolicy", VecNormalize(venv), n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(256)
    action, _ = model.predict(venv.reset(), deterministic=True)
    assert action.shape == (4, 3)
