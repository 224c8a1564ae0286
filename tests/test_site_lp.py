"""The LP is the env, on sites drawn at random, not only the shipped scenarios.

For each drawn site (traces finer and coarser than the step, power floors, mixed pools,
export, no battery, demand-response windows, one or three GPU classes): the oracle's LP
solves, replaying its set-points through the env reproduces its objective, and no rule
earns more.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.controllers.oracle import actions_from_plan, episode_series, episode_start
from agents.controllers.rules import RULES
from agents.controllers.site_lp import plan
from cpm_env.config import scenario_from_dict
from cpm_env.env import CpmEnv

TRACE_STEPS_S = (10, 60, 300)  # finer than, equal to and coarser than the 60-s control step


@pytest.fixture(scope="module")
def traces(tmp_path_factory) -> dict[int, str]:
    """Power traces (MW) of a swinging job at several resolutions, two hours long."""
    folder = tmp_path_factory.mktemp("traces")
    rng = np.random.default_rng(0)
    paths = {}
    for step_s in TRACE_STEPS_S:
        t = np.arange(0, 7200, step_s)
        swing = np.where((t // step_s) % 3 == 0, 8.0, 30.0) if step_s < 60 else 20.0
        power = 40 + swing + 15 * np.sin(t / 900) + rng.normal(0, 2, len(t))
        power[len(t) // 2: len(t) // 2 + max(1, 600 // step_s)] = 5.0  # a job failure
        path = folder / f"trace_{step_s}s.csv"
        path.write_text("timestamp,power_mw\n" + "".join(f"{a},{b:.3f}\n" for a, b in zip(t, power)))
        paths[step_s] = str(path)
    return paths


def _inference(name: str, share: float, floor_max: float = 0.0) -> dict:
    return {"name": name, "share": share, "floor_max": floor_max,
            "workload": {"kind": "inference", "burst_rate_per_h": 2.0}}


@st.composite
def site_dicts(draw, traces: dict[int, str]) -> dict:
    """A scenario dict for a one-hour, 60-s site with randomly drawn physics."""
    kind = draw(st.sampled_from(["training", "mixed", "trace"]))
    floor = draw(st.sampled_from([0.0, 0.0, 0.5]))
    training = {"checkpoint_interval_min": 20, "checkpoint_duration_s": 90, "mtbf_h": draw(st.sampled_from([0.5, 3]))}
    if kind == "training":
        workload = {"kind": "training", **training}
    elif kind == "mixed":
        workload = {"kind": "mixed", "training_share": draw(st.floats(0.3, 0.8)), "training": training}
    else:
        workload = {"kind": "trace", "path": traces[draw(st.sampled_from(TRACE_STEPS_S))], "value_unit": "mw"}
    three = draw(st.booleans())
    share = draw(st.floats(0.4, 0.8)) if three else 1.0
    classes = [{"name": "pool", "share": share, "floor_max": floor, "workload": workload}]
    if three:
        rest = 1.0 - share
        classes += [_inference("serve_a", rest / 2, floor_max=floor), _inference("serve_b", rest / 2)]
    battery_h = draw(st.sampled_from([0.0, 0.25, 1.0]))
    dr = draw(st.booleans())
    return {
        "id": "Drawn-v0", "dt_s": 60.0, "duration_h": 1.0,
        "site": {"oversubscription": draw(st.floats(0.9, 1.8)), "pue": draw(st.floats(1.1, 1.4)),
                 "gpu_classes": classes},
        "battery": {"capacity_mwh": 100.0 * battery_h, "power_mw": draw(st.floats(10.0, 50.0)),
                    "soc_init": draw(st.floats(0.2, 0.8))},
        "grid": {"limit_mw": 100.0, "ramp_limit_mw_per_min": draw(st.floats(4.0, 20.0)),
                 "swing_band_mw": draw(st.floats(10.0, 30.0)), "allow_export": draw(st.booleans()),
                 "demand_response": {"events_per_episode": int(dr), "earliest_start_h": 0.2, "latest_start_h": 0.4,
                                     "duration_h": 0.3, "notice_h": 0.2,
                                     "limit_fraction": draw(st.floats(0.5, 0.9))}},
        "forecast": {"enabled": False},
    }


def _episode_return(env: CpmEnv, seed: int, policy) -> float:
    """Return of one episode where ``policy(obs, t)`` gives the action of step ``t``."""
    obs, _ = env.reset(seed=seed)
    total, t, done = 0.0, 0, False
    while not done:
        obs, reward, _, done, _ = env.step(policy(obs, t))
        total, t = total + reward, t + 1
    return total


@given(data=st.data(), seed=st.integers(0, 10_000))
def test_lp_replays_exactly_and_no_rule_beats_it_on_drawn_sites(traces, data, seed):
    cfg = scenario_from_dict(data.draw(site_dicts(traces)))
    env = CpmEnv(cfg)
    env.reset(seed=seed)
    sp = plan(env.params, episode_series(env.episode), episode_start(env.site, env.episode))
    planned = actions_from_plan(env.site, sp)
    replayed = _episode_return(env, seed, lambda obs, t: planned[t])
    assert replayed == pytest.approx(sp.objective, rel=1e-6, abs=1e-6)
    for name in RULES:
        rule = RULES[name](env.site)
        earned = _episode_return(env, seed, lambda obs, t, rule=rule: rule.predict(obs)[0])
        assert earned <= sp.objective + 1e-6 * max(1.0, abs(sp.objective)), (name, earned, sp.objective)


def test_every_controller_runs_a_power_trace_at_its_own_resolution(traces):
    """A swinging class replaying a 60-s power trace at 60-s steps (duty 1: flat, cappable at its
    maximum) once made the LP unbounded; every rule, the MPC and the oracle now run it, and the
    oracle is not beaten."""
    import cpm_env
    from agents.evaluation.runner import make_controller, run_controller

    cfg = {"id": "Trace60-v0", "duration_h": 1.0,
           "site": {"gpu_classes": [{"name": "pool", "share": 1.0,
                                     "workload": {"kind": "trace", "path": traces[60], "value_unit": "mw"}}]}}
    venv = cpm_env.make_vec("cpm_env/DataCenter-v0", 2, scenario=cfg)
    rewards = {name: run_controller(make_controller(name, venv.site), venv, [3, 4], name).reward.to_numpy()
               for name in [*RULES, "mpc", "oracle"]}
    for name, reward in rewards.items():
        assert np.all(np.isfinite(reward)), name
        assert np.all(reward <= rewards["oracle"] + 1e-6 * np.abs(rewards["oracle"]).max()), name
