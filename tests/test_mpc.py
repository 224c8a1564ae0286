"""The MPC re-solves warm (HiGHS from the last decision's basis): the same LP, so the same optimum."""

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.controllers.lp import WarmStart, _circular
from agents.controllers.mpc import MPC
from agents.controllers.site_lp import plan

SHORT = {
    "cpm_env/DataCenter-v0": {"duration_h": 1.5},
    "cpm_env/DemandResponse-v0": {"duration_h": 1.5, "grid": {"demand_response": {
        "earliest_start_h": 0.5, "latest_start_h": 0.5, "duration_h": 0.5, "notice_h": 0.25}}},
}


@given(st.lists(st.integers(1, 8), min_size=1, max_size=6), st.integers(0, 50))
def test_circular_blocks_keep_each_shared_step_in_its_place(lengths, step):
    now, later = _circular(lengths, step), _circular(lengths, step + 1)
    assert sorted(now) == list(range(sum(lengths)))  # a permutation
    start = 0
    for n in lengths:  # entry i + 1 of this decision's block is entry i of the next one's
        np.testing.assert_array_equal(later[start:start + n - 1], now[start + 1:start + n])
        start += n
    np.testing.assert_array_equal(_circular(lengths, 0), np.arange(sum(lengths)))


@pytest.mark.parametrize("env_id", sorted(SHORT))
def test_warm_mpc_plans_have_the_cold_plans_objective_along_a_closed_loop(env_id):
    env = gym.make(env_id, scenario=SHORT[env_id])
    mpc = MPC(env.unwrapped.site)
    obs, _ = env.reset(seed=3)
    warm, same, steps = WarmStart(), 0, 0
    for _ in range(60):
        series, start = mpc._series(obs)
        warm.advance()
        hot = plan(mpc.params, series, start, backend="highs", warm=warm)
        for backend in ("clarabel", "highs"):  # compared below with HiGHS's vertex, as the MPC's was
            cold = plan(mpc.params, series, start, backend=backend)
            assert hot.objective == pytest.approx(cold.objective, rel=1e-7, abs=1e-7)
        same += np.allclose(hot.battery_mw[0], cold.battery_mw[0], atol=1e-5) and \
            np.allclose(hot.caps[:, 0], cold.caps[:, 0], atol=1e-6)
        steps += 1
        action, _ = mpc.predict(obs)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    # where the LP has one optimum both give it; ties (several optimal set-points) are rare
    assert steps == 60 and same >= 0.8 * steps
    assert mpc.fallbacks == 0


def test_a_batched_mpc_keeps_one_warm_start_per_site():
    env_id = "cpm_env/DataCenter-v0"
    envs = [gym.make(env_id, scenario=SHORT[env_id]) for _ in range(2)]
    obs = np.stack([e.reset(seed=s)[0] for e, s in zip(envs, (1, 2))])
    batched, alone = MPC(envs[0].unwrapped.site), [MPC(e.unwrapped.site) for e in envs]
    for _ in range(10):
        actions, _ = batched.predict(obs)
        np.testing.assert_allclose(actions, np.stack([m.predict(o)[0] for m, o in zip(alone, obs)]), atol=1e-9)
        obs = np.stack([e.step(a)[0] for e, a in zip(envs, actions)])
