"""The Gymnasium contract: checkers, spaces, seeding, a light import."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import cpm_env
from conftest import run_python

IDS = sorted(cpm_env.scenario_ids())


@pytest.mark.parametrize("env_id", IDS)
def test_checkers_pass_on_every_registered_id(env_id):
    env = gym.make(env_id)
    gym_check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=False)


@pytest.mark.parametrize("env_id", IDS)
def test_names_match_spaces(env_id):
    env = gym.make(env_id).unwrapped
    assert len(env.obs_names) == env.observation_space.shape[0] == len(set(env.obs_names))
    assert len(env.action_names) == env.action_space.shape[0]
    assert env.action_names[0] == "battery" and env.action_names[1].startswith("cap_")
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)


def rollout(env_id, seed, n_steps=200, action_seed=0, **kw):
    env = gym.make(env_id, **kw)
    rng = np.random.default_rng(action_seed)
    obs, _ = env.reset(seed=seed)
    traj = [obs]
    for _ in range(n_steps):
        obs, r, _, done, info = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        traj += [obs, np.array([r, info["soc"], info["grid_import_mw"]])]
        if done:
            obs, _ = env.reset()
    return traj


@pytest.mark.parametrize("env_id", IDS)
def test_same_seed_same_trajectory_bitwise(env_id):
    a, b = rollout(env_id, 7), rollout(env_id, 7)
    for x, y in zip(a, b):
        assert x.tobytes() == y.tobytes()


@pytest.mark.parametrize("env_id", IDS)
def test_different_seed_different_trajectory(env_id):
    a, b = rollout(env_id, 7, 50), rollout(env_id, 8, 50)
    assert any(x.tobytes() != y.tobytes() for x, y in zip(a, b))


def test_episode_truncates_after_duration_and_reset_continues_the_rng():
    env = gym.make("cpm_env/DataCenter-v0", scenario={"duration_h": 0.5})
    env.reset(seed=3)
    n = 0
    done = False
    while not done:
        _, _, term, done, _ = env.step(env.action_space.sample())
        assert not term
        n += 1
    assert n == 30
    first = env.unwrapped.episode.demand_mw.copy()
    env.reset()
    assert not np.array_equal(first, env.unwrapped.episode.demand_mw)


def test_demand_response_window_lowers_the_limit_and_is_announced():
    env = gym.make("cpm_env/DemandResponse-v0").unwrapped
    obs, _ = env.reset(seed=11)
    names = env.obs_names
    limits, pending, active = [], [], []
    done = False
    while not done:
        obs, _, _, done, info = env.step(np.array([0, 1, 1], dtype=np.float32))
        limits.append(info["grid_limit_mw"])
        pending.append(obs[names.index("dr_pending")])
        active.append(obs[names.index("dr_active")])
    limits = np.array(limits)
    assert np.isclose(limits.min(), 70.0) and np.isclose(limits.max(), 100.0)
    assert (limits < 100).sum() == 120  # 2 h at 1-min steps
    first_active = int(np.argmax(np.array(active) > 0))
    first_pending = int(np.argmax(np.array(pending) > 0))
    assert first_active - first_pending == 60  # announced 1 h ahead


def test_import_and_make_load_neither_torch_nor_sb3():
    """A plain ``gym.make`` (and a step) must not pay for the training stack; ``make_vec`` loads it lazily."""
    code = ("import sys, gymnasium as gym, cpm_env\n"
            "env = gym.make('cpm_env/DataCenter-v0'); env.reset(seed=0); env.step(env.action_space.sample())\n"
            "heavy = [m for m in ('torch', 'stable_baselines3', 'scipy', 'pandas') if m in sys.modules]\n"
            "assert not heavy, heavy\n"
            "venv = cpm_env.make_vec('cpm_env/DataCenter-v0', 2, seed=0)\n"
            "from stable_baselines3.common.vec_env import VecEnv\n"
            "assert isinstance(venv, VecEnv) and 'torch' in sys.modules\n")
    run_python(code)
