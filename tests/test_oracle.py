"""The oracle's LP is the env's reward: replay is exact, and no controller beats it."""

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import cpm_env
from agents.controllers.lp import BACKENDS
from agents.controllers.oracle import actions_from_plan, episode_series, episode_start
from agents.controllers.site_lp import lowest_slewed_caps, plan
from agents.evaluation.runner import make_controller, run_controller
from conftest import run_python

SHORT = {
    "cpm_env/DataCenter-v0": {"duration_h": 3.0},
    "cpm_env/DemandResponse-v0": {"duration_h": 3.0, "grid": {"demand_response": {
        "earliest_start_h": 1.0, "latest_start_h": 1.5, "duration_h": 1.0, "notice_h": 0.5}}},
    "cpm_env/NoBattery-v0": {"duration_h": 3.0},
    "cpm_env/FastRamp-v0": {"duration_h": 0.03},
}


@pytest.mark.parametrize("env_id", sorted(SHORT))
@pytest.mark.parametrize("seed", [5, 6])
@pytest.mark.parametrize("backend", BACKENDS)
def test_replaying_the_plan_reproduces_its_objective(env_id, seed, backend):
    env = gym.make(env_id, scenario=SHORT[env_id]).unwrapped
    env.reset(seed=seed)
    assert_replay_matches_plan(env, backend)


def assert_replay_matches_plan(env, backend: str = "clarabel") -> None:
    """The site LP's plan for ``env``'s episode (just reset), replayed in it, gives the plan's objective."""
    sp = plan(env.params, episode_series(env.episode), episode_start(env.site, env.episode),
              backend=backend)
    total = 0.0
    for a in actions_from_plan(env.site, sp):
        _, r, _, _, info = env.step(a)
        total += r
    assert abs(total - sp.objective) <= 1e-6 * max(1.0, abs(total))
    np.testing.assert_allclose(info["energy_mwh"], sp.energy_mwh[-1], atol=1e-6)


@pytest.mark.parametrize("env_id", sorted(SHORT))
def test_oracle_reward_is_at_least_every_other_controllers(env_id):
    venv = cpm_env.make_vec(env_id, 2, scenario=SHORT[env_id])
    seeds = [11, 12]
    rewards = {}
    for name in ("static_cap", "peak_shaving", "shave_then_cap", "greedy", "mpc", "oracle"):
        rows = run_controller(make_controller(name, venv.site), venv, seeds, name)
        rewards[name] = rows.reward.to_numpy()
    for name, r in rewards.items():
        assert np.all(rewards["oracle"] >= r - 1e-6), (name, r, rewards["oracle"])


@given(st.lists(st.floats(0.2, 1.0), min_size=1, max_size=40), st.floats(0.2, 1.0), st.floats(0.01, 0.5))
def test_lowest_slewed_caps_is_the_lowest_feasible_sequence(lower, start, step):
    lower = np.array(lower)
    caps = lowest_slewed_caps(lower, start, step)
    assert np.all(caps >= lower - 1e-12)
    assert np.all(np.abs(np.diff(caps)) <= step + 1e-12) and caps[0] >= start - step - 1e-12
    # lowest: every entry is forced by its own bound, the start, or a neighbour one step away
    forced = lower.copy()
    forced[0] = max(forced[0], start - step)
    forced[1:] = np.maximum(forced[1:], caps[:-1] - step)
    forced[:-1] = np.maximum(forced[:-1], caps[1:] - step)
    np.testing.assert_allclose(caps, forced, atol=1e-12)


def test_lp_solvers_print_nothing():
    """HiGHS prints a banner on the C-level stdout at a process's first instance: it is muted."""
    code = ("import numpy as np\n"
            "from agents.controllers.lp import LinearProgram\n"
            "lp = LinearProgram(); x = lp.var(2, 0.0, 1.0, cost=1.0); lp.rows([(x[:1], 1.0), (x[1:], 1.0)], hi=1.5)\n"
            "for backend in ('highs', 'clarabel'):\n"
            "    assert abs(lp.solve(backend)[1] - 1.5) < 1e-6\n")
    result = run_python(code)
    assert result.stdout == "" and result.stderr == ""
