"""Workload generators: shapes, ranges, and the events the scenarios rely on."""

import numpy as np
import pandas as pd
from hypothesis import assume, given
from hypothesis import strategies as st

import cpm_env
from cpm_env.config import TraceWorkload
from cpm_env.workloads import Timing, TraceGenerator, _add_events, _per_env_normals


@given(st.integers(1, 30), st.integers(1, 6), st.integers(0, 40), st.integers(1, 12), st.integers(0, 10_000))
def test_events_add_in_draw_order_as_one_at_a_time(n_steps, n_envs, n_events, width, seed):
    """The batched scatter gives, bit for bit, what adding each event's values one step at a time in draw
    order gives: events past the episode's end are cut, overlapping ones add up per env."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n_steps, n_envs))
    env = rng.integers(0, n_envs, n_events)
    first = rng.integers(0, n_steps + 3, n_events)
    values = rng.normal(size=(n_events, width)) * 10.0 ** rng.integers(-8, 8, (n_events, 1))
    batched, naive = base.copy(), base.copy()
    _add_events(batched, env, first, values)
    for e in range(n_events):
        for j in range(width):
            if first[e] + j < n_steps:
                naive[first[e] + j, env[e]] += values[e, j]
    assert np.array_equal(batched, naive)


def test_per_env_normals_are_each_generators_draws_in_columns():
    seeds = [3, 1, 4, 1, 5]
    out = _per_env_normals([np.random.default_rng(s) for s in seeds], 7)
    assert out.shape == (7, 5) and out.flags.c_contiguous
    assert np.array_equal(out, np.stack([np.random.default_rng(s).standard_normal(7) for s in seeds], axis=1))


def test_training_has_checkpoints_failures_and_sudden_drops():
    env = cpm_env.CpmEnv({"dt_s": 1.0, "duration_h": 1.0, "site": {"gpu_classes": [{"name": "training", "workload": {
        "kind": "training", "mtbf_h": 0.5, "sudden_failure_fraction": 1.0}}]}})
    env.reset(seed=4)
    ep = env.episode
    duty = ep.duty[:, 0]
    mean = ep.demand_mw[:, 0]
    assert (duty == 0).sum() >= 100  # checkpoints (2 x 120 s) and idle time after failures
    assert np.diff(mean).min() < -0.4 * mean.max()  # a drop of ~half the site within one second
    assert np.all(ep.low_mw <= ep.high_mw + 1e-12)


@given(st.integers(0, 10_000))
def test_inference_stays_between_idle_and_peak(seed):
    env = cpm_env.CpmEnv({"duration_h": 6.0, "site": {"gpu_classes": [{"name": "inference", "workload": {
        "kind": "inference", "burst_rate_per_h": 5.0}}]}})
    env.reset(seed=seed)
    peak = env.params.peak_mw[0]
    high = env.episode.high_mw[0, :, 0]
    assert np.all(high >= 0.1 * peak - 1e-9) and np.all(high <= peak + 1e-9)
    np.testing.assert_array_equal(env.episode.low_mw, env.episode.high_mw)


@given(st.lists(st.floats(0.0, 50.0), min_size=20, max_size=200), st.sampled_from([2.0, 5.0, 10.0]))
def test_trace_two_level_summary_keeps_each_steps_mean(tmp_path_factory, values, dt_s):
    assume(max(values) > 0)  # an all-zero trace has no peak to scale by
    path = tmp_path_factory.mktemp("trace") / "t.csv"
    t = np.arange(len(values), dtype=float)
    pd.DataFrame({"timestamp": t, "power_mw": values}).to_csv(path, index=False)
    values = np.array(values)
    n_steps = int(np.ceil(len(values) / dt_s))
    gen = TraceGenerator(TraceWorkload(path=str(path), random_offset=False), peak_mw=values.max(),
                         timing=Timing(n_steps, dt_s, 0.0))
    tr = gen.sample([np.random.default_rng(0)])
    mean = tr.duty[:, 0] * tr.high_mw[:, 0] + (1 - tr.duty[:, 0]) * tr.low_mw[:, 0]
    bins = (t // dt_s).astype(int)
    expected = np.bincount(bins, values) / np.bincount(bins)
    np.testing.assert_allclose(mean, expected, rtol=1e-9, atol=1e-9)
