"""The batched VecEnv equals independent single envs, and follows SB3's VecEnv contract."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import VecNormalize

import cpm_env
from cpm_env.batch import SiteBatch
from cpm_env.vec_env import EPISODE_KPIS


@pytest.mark.parametrize("env_id", ["cpm_env/DataCenter-v0", "cpm_env/DemandResponse-v0", "cpm_env/FastRamp-v0"])
def test_vec_env_equals_independent_envs(env_id):
    n_envs, seed = 3, 42
    overrides = {"duration_h": 0.05} if "Fast" in env_id else {"duration_h": 2.0}
    if "DemandResponse" in env_id:  # its window (starting 12:00-20:00) moved inside the 2 h
        overrides["grid"] = {"demand_response": {"earliest_start_h": 0.5, "latest_start_h": 1.0, "duration_h": 0.5}}
    venv = cpm_env.make_vec(env_id, n_envs, seed=seed, scenario=overrides, kpis_in_info=True)
    envs = [gym.make(env_id, scenario=overrides) for _ in range(n_envs)]
    obs_v = venv.reset()
    obs_s = [e.reset(seed=seed + i)[0] for i, e in enumerate(envs)]
    np.testing.assert_array_equal(obs_v, np.stack(obs_s))
    rng = np.random.default_rng(0)
    n_steps = venv.config.n_steps
    for _step in range(2 * n_steps + 5):  # crosses two autoresets
        actions = rng.uniform(-1.2, 1.2, (n_envs, venv.action_space.shape[0])).astype(np.float32)
        obs_v, rew_v, done_v, infos = venv.step(actions)
        for i, env in enumerate(envs):
            o, r, term, trunc, info = env.step(actions[i])
            assert rew_v[i] == np.float32(r)
            assert done_v[i] == (term or trunc)
            assert set(info) <= set(infos[i])  # kpis_in_info: every KPI gym.make's info has (README)
            for key in ("grid_import_mw", "soc", "compute_delivered", "ramp_excess_mw", "cap_training"):
                assert infos[i][key] == info[key], key
            if trunc:
                np.testing.assert_array_equal(infos[i]["terminal_observation"], o)
                assert infos[i]["TimeLimit.truncated"] is True
                assert "r" in infos[i]["episode"]
                o, _ = env.reset()
            np.testing.assert_array_equal(obs_v[i], o)


def test_vec_env_kpis_match_info_and_work_under_vecnormalize():
    """Under VecNormalize, one episode's totals in ``infos[i]["episode"]`` equal the sums of the
    per-step outputs and of the raw rewards, and the meter balance holds at every step."""
    venv = cpm_env.make_vec("cpm_env/DataCenter-v0", 4, seed=0, scenario={"duration_h": 1.0})
    norm = VecNormalize(venv)
    obs = norm.reset()
    assert obs.shape == (4, venv.observation_space.shape[0])
    sums = {key: np.zeros(4) for key in ("r", *EPISODE_KPIS)}
    actions = np.tile(np.array([0.5, 0.2, -0.3], dtype=np.float32), (4, 1))  # discharge, caps below the top
    for _ in range(venv.config.n_steps):
        obs, rew, done, infos = norm.step(actions)
        out = venv.last_outputs
        np.testing.assert_allclose(out.grid_import_mw, out.facility_power_mw - out.battery_power_mw, rtol=1e-12)
        sums["r"] += norm.get_original_reward()
        for key in EPISODE_KPIS:
            sums[key] += np.broadcast_to(getattr(out, key), (4,))
    assert done.all() and all("terminal_observation" in i for i in infos)
    assert not np.allclose(rew, norm.get_original_reward())  # the agent sees normalized rewards ...
    for key, total in sums.items():  # ... the episode record keeps the raw ones
        np.testing.assert_allclose([i["episode"][key] for i in infos], total, rtol=1e-5, err_msg=key)
    assert (sums["battery_discharged_mwh"] > 0).all() and (sums["compute_delivered"] > 0).all()


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


def test_sb3_ppo_improves_its_return_on_the_vec_env(one_torch_thread):
    """PPO on the batched env (8 envs, VecNormalize, ~12k steps: a few seconds) raises its episodes'
    return by more than a quarter: fails if rewards, observations or episode ends are wired wrong.

    Measured on seeds 0-5: the first 8 episodes return -1150 to -1330 (the untrained policy's
    exploration breaks the limit), the last 8 -600 to -830.
    """
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    returns: list[float] = []

    class EpisodeReturns(BaseCallback):
        def _on_step(self) -> bool:
            returns.extend(info["episode"]["r"] for info in self.locals["infos"] if "episode" in info)
            return True

    n_envs, timesteps = 8, 12_288
    venv = cpm_env.make_vec("cpm_env/DataCenter-v0", n_envs, seed=0, scenario={"duration_h": 1.0})
    model = PPO("MlpPolicy", VecNormalize(venv), n_steps=64, batch_size=128, n_epochs=4, seed=0, device="cpu")
    model.learn(timesteps, callback=EpisodeReturns())
    assert len(returns) == n_envs * (timesteps // n_envs // venv.config.n_steps)
    first, last = np.mean(returns[:n_envs]), np.mean(returns[-n_envs:])
    assert last > first + 0.25 * abs(first), (first, last)


def test_episodes_drawn_ahead_equal_episodes_drawn_at_the_reset(monkeypatch):
    """Large batches draw their next episodes in the background: the same episodes, bitwise."""
    short = {"duration_h": 0.1}
    at_reset = cpm_env.make_vec("cpm_env/DataCenter-v0", 3, seed=4, scenario=short)
    monkeypatch.setattr(SiteBatch, "prefetch_min_envs", 1)
    ahead = cpm_env.make_vec("cpm_env/DataCenter-v0", 3, seed=4, scenario=short)
    np.testing.assert_array_equal(at_reset.reset(), ahead.reset())
    assert at_reset._ahead is None and ahead._ahead is not None
    actions = np.random.default_rng(0).uniform(-1, 1, (20, 3, 3)).astype(np.float32)
    for a in actions:  # three autoresets
        (o1, r1, d1, i1), (o2, r2, d2, i2) = at_reset.step(a), ahead.step(a)
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)
        assert (d1 == d2).all()
        if d1.all():
            np.testing.assert_array_equal(i1[0]["terminal_observation"], i2[0]["terminal_observation"])


def test_reseeding_after_episodes_drawn_ahead_gives_the_seeds_episodes(monkeypatch):
    """The next episodes are drawn in the background; a new seed before the reset must still decide them."""
    monkeypatch.setattr(SiteBatch, "prefetch_min_envs", 1)
    short = {"duration_h": 0.5}
    venv = cpm_env.make_vec("cpm_env/DataCenter-v0", 3, seed=1, scenario=short)
    venv.reset()
    assert venv._ahead is not None  # drawn ahead from seeds 1-3's generators
    venv.seed(7)
    np.testing.assert_array_equal(venv.reset(), cpm_env.make_vec("cpm_env/DataCenter-v0", 3, seed=7,
                                                                 scenario=short).reset())
    again = cpm_env.make_vec("cpm_env/DataCenter-v0", 3, seed=7, scenario=short)
    again.reset()
    np.testing.assert_array_equal(venv.reset(), again.reset())  # the second episodes: drawn ahead, the same
    venv.close()
    assert venv._ahead is None
