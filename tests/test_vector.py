"""Gymnasium's vector API: every scenario's vector entry point, one batched core with SB3's VecEnv."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers.vector import ClipAction, NormalizeObservation, RecordEpisodeStatistics

import cpm_env
from cpm_env.vector import CpmVectorEnv

SHORT = {"duration_h": 0.1}  # 6 steps
KPIS = ("grid_import_mw", "soc", "compute_delivered", "ramp_excess_mw", "cap_training")


@pytest.mark.parametrize("env_id", sorted(cpm_env.scenario_ids()))
def test_every_scenario_has_a_vector_entry_point(env_id):
    envs = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point")
    assert isinstance(envs.unwrapped, CpmVectorEnv) and envs.num_envs == 3
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert envs.observation_space.shape == (3, *envs.single_observation_space.shape)
    obs, info = envs.reset(seed=0)
    assert envs.observation_space.contains(obs) and info == {}
    assert isinstance(gym.make_vec(env_id, num_envs=2).unwrapped, CpmVectorEnv)  # the default mode


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP, "sb3"])
def test_both_adapters_equal_independent_single_envs_across_autoresets(mode):
    n, seed = 3, 11
    envs = [gym.make("cpm_env/DataCenter-v0", scenario=SHORT) for _ in range(n)]
    single = [e.reset(seed=seed + i)[0] for i, e in enumerate(envs)]
    if mode == "sb3":
        batch = cpm_env.make_vec("cpm_env/DataCenter-v0", n, seed=seed, scenario=SHORT, kpis_in_info=True)
        obs = batch.reset()
    else:
        batch = gym.make_vec("cpm_env/DataCenter-v0", num_envs=n, scenario=SHORT, autoreset_mode=mode)
        obs, _ = batch.reset(seed=seed)
    np.testing.assert_array_equal(obs, np.stack(single))
    rng = np.random.default_rng(0)
    resets = 0
    for _ in range(20):  # three episodes and their autoresets
        actions = rng.uniform(-1, 1, (n, 3)).astype(np.float32)
        if mode == AutoresetMode.NEXT_STEP and resets < 0:  # the reset step: actions ignored
            obs, rew, term, trunc, info = batch.step(actions)
            single = [e.reset()[0] for e in envs]
            np.testing.assert_array_equal(obs, np.stack(single))
            assert (rew == 0).all() and not trunc.any() and info == {}
            resets = -resets
            continue
        steps = [e.step(a) for e, a in zip(envs, actions)]
        if mode == "sb3":
            obs, rew, done, info = batch.step(actions)
            infos = [{k: info[i][k] for k in KPIS} for i in range(n)]
        else:
            obs, rew, term, done, info = batch.step(actions)
            assert not term.any()
            kpis = info["final_info"] if mode == AutoresetMode.SAME_STEP and done.any() else info
            infos = [{k: kpis[k][i] for k in KPIS} for i in range(n)]
        for i, (o, r, _te, tr, inf) in enumerate(steps):
            assert rew[i] == np.float32(r) if mode == "sb3" else rew[i] == r
            assert done[i] == tr and infos[i] == {k: inf[k] for k in KPIS}
            if tr:
                last = info[i]["terminal_observation"] if mode == "sb3" else \
                    info["final_obs"][i] if mode == AutoresetMode.SAME_STEP else obs[i]
                np.testing.assert_array_equal(last, o)
        if done.any():
            assert done.all()
            resets += 1
            if mode == AutoresetMode.NEXT_STEP:
                resets = -resets  # the next step is the reset step
                continue
            single = [e.reset()[0] for e in envs]
        np.testing.assert_array_equal(obs, np.stack([s[0] for s in steps]) if not done.any() else np.stack(single))
    assert abs(resets) >= 2


def test_gymnasium_vector_wrappers_run_on_it_and_record_the_envs_episodes():
    envs = gym.make_vec("cpm_env/DataCenter-v0", num_envs=4, scenario=SHORT)
    wrapped = ClipAction(NormalizeObservation(RecordEpisodeStatistics(envs)))
    obs, _ = wrapped.reset(seed=0)
    episodes = []
    for _ in range(14):
        obs, rew, term, trunc, info = wrapped.step(wrapped.action_space.sample() * 3)  # clipped to the space
        assert np.isfinite(obs).all() and obs.shape == (4, envs.single_observation_space.shape[0])
        if "episode" in info:
            episodes.append(info)
    assert len(episodes) == 2
    for info in episodes:
        np.testing.assert_allclose(info["episode"]["r"], info["episode_totals"]["r"], rtol=1e-9)
        assert (info["episode"]["l"] == 6).all() and info["_episode"].all()


def test_seeds_follow_gymnasium_and_bad_input_is_one_line():
    envs = gym.make_vec("cpm_env/DataCenter-v0", num_envs=2, scenario=SHORT)
    by_list, _ = envs.reset(seed=[5, 9])
    lone = [gym.make("cpm_env/DataCenter-v0", scenario=SHORT).reset(seed=s)[0] for s in (5, 9)]
    np.testing.assert_array_equal(by_list, np.stack(lone))
    for call, match in ((lambda: envs.reset(seed=[1]), "must be an int or a list of 2 ints"),
                        (lambda: envs.reset(options={"reset_mask": np.array([True, False])}), "reset options"),
                        (lambda: envs.step(np.full((2, 3), np.nan)), "non-finite"),
                        (lambda: gym.make_vec("cpm_env/DataCenter-v0", num_envs=2, autoreset_mode="Disabled"),
                         "autoreset_mode")):
        with pytest.raises(ValueError, match=match) as err:
            call()
        assert "\n" not in str(err.value)
