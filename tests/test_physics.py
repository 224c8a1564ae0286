"""Property tests of the physics over random sites, states and actions."""

import math

import gymnasium as gym
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import cpm_env
from cpm_env import physics
from cpm_env.config import load_scenario
from cpm_env.ops import NUMPY, SCALAR
from cpm_env.physics import Action, Exo
from cpm_env.site import State, make_params

DEFAULT = cpm_env.DEFAULT_SCENARIO

sites = st.fixed_dictionaries(
    {
        "dt_s": st.sampled_from([1.0, 10.0, 60.0, 300.0]),
        "site": st.fixed_dictionaries({
            "oversubscription": st.floats(0.5, 2.0),
            "pue": st.floats(1.0, 1.5),
        }),
        "grid": st.fixed_dictionaries({
            "swing_band_mw": st.floats(0.0, 60.0),
            "ramp_limit_mw_per_min": st.floats(0.0, 50.0),
            "allow_export": st.booleans(),
        }),
        "battery": st.fixed_dictionaries({
            "capacity_mwh": st.sampled_from([0.0, 1.0, 20.0, 100.0]),
            "power_mw": st.floats(0.0, 80.0),
            "soc_init": st.floats(0.1, 0.9),
            "round_trip_efficiency": st.floats(0.5, 1.0),
        }),
        # high enough that full smoothing pays for its losses at any efficiency drawn here
        "reward": st.fixed_dictionaries({"residual_swing_per_mwh": st.just(0.5)}),
    }
)


def make_env(overrides):
    dur = {1.0: 0.02, 10.0: 0.2, 60.0: 1.0, 300.0: 4.0}[overrides["dt_s"]]
    return cpm_env.CpmEnv({**overrides, "duration_h": dur})


@given(sites, st.integers(0, 2**31 - 1), st.data())
def test_invariants_along_random_trajectories(overrides, seed, data):
    env = make_env(overrides)
    p, cfg = env.params, env.config
    obs, _ = env.reset(seed=seed)
    assert env.observation_space.contains(obs)
    energy = cfg.battery.soc_init * p.capacity_mwh
    done = False
    while not done:
        action = np.array(data.draw(st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3)), dtype=np.float32)
        obs, reward, term, done, info = env.step(action)
        assert math.isfinite(reward)
        assert obs.dtype == np.float32 and np.isfinite(obs).all()
        assert env.observation_space.contains(obs), [
            (n, float(v)) for n, v, lo, hi in zip(env.obs_names, obs, env.observation_space.low,
                                                  env.observation_space.high) if not lo <= v <= hi]
        # energy balance at the meter, exactly
        assert info["grid_import_mw"] == info["facility_power_mw"] - info["battery_power_mw"]
        assert abs(info["facility_power_mw"] - cfg.site.pue * info["it_power_mw"]) < 1e-9
        # the battery's energy moves exactly by what it exchanged, with its efficiencies
        moved = info["battery_discharged_mwh"] / p.eta_discharge - info["battery_charged_mwh"] * p.eta_charge
        assert abs(info["energy_mwh"] - (energy - moved)) < 1e-9
        energy = info["energy_mwh"]
        assert p.energy_min_mwh - 1e-9 <= energy <= p.energy_max_mwh + 1e-9
        assert abs(info["battery_power_mw"]) <= p.battery_power_mw + 1e-9
        if not cfg.grid.allow_export:
            assert info["grid_import_mw"] >= -1e-9
        for _k, c in enumerate(cfg.site.gpu_classes):
            assert c.cap_min - 1e-12 <= info[f"cap_{c.name}"] <= 1.0 + 1e-12
        assert 0.0 <= info["compute_delivered"] <= info["compute_demanded"] + 1e-12
        assert info["residual_swing_mw"] >= -1e-9 and info["over_limit_mwh"] >= 0.0


@given(sites, st.integers(0, 2**31 - 1), st.floats(-1, 1), st.floats(-1, 1), st.floats(-1, 1), st.integers(0, 30))
def test_throughput_non_decreasing_in_cap(overrides, seed, a_bat, a_lo, a_hi, t):
    env = make_env(overrides)
    env.reset(seed=seed)
    t = min(t, env.config.n_steps - 1)
    lo, hi = sorted([a_lo, a_hi])
    results = []
    for a_cap in (lo, hi):
        env.reset(seed=seed)
        for _ in range(t):
            env.step(np.array([0.0, 1.0, 1.0], dtype=np.float32))
        info = env.step(np.array([a_bat, a_cap, a_cap], dtype=np.float32))[4]
        results.append(info["compute_delivered"])
    assert results[0] <= results[1] + 1e-12


@given(sites, st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1))
def test_zero_size_battery_is_no_battery(overrides, seed, action_seed):
    none = make_env({**overrides, "battery": {"capacity_mwh": 0.0, "power_mw": 0.0}})
    zero_cap = make_env({**overrides, "battery": {"capacity_mwh": 0.0, "power_mw": 50.0}})
    zero_pow = make_env({**overrides, "battery": {"capacity_mwh": 50.0, "power_mw": 0.0}})
    rng = np.random.default_rng(action_seed)
    envs = [none, zero_cap, zero_pow]
    obs = [e.reset(seed=seed)[0] for e in envs]
    for o in obs[1:]:
        np.testing.assert_array_equal(o, obs[0])
    for _ in range(min(none.config.n_steps, 40)):
        a = rng.uniform(-1, 1, 3).astype(np.float32)
        steps = [e.step(a) for e in envs]
        for s in steps[1:]:
            np.testing.assert_array_equal(s[0], steps[0][0])
            assert s[1] == steps[0][1]
            assert s[4] == steps[0][4]


def brute_force_step(p, s, b, caps, x, period_s, n_hi_s, n_periods):
    """The same step simulated second by second: square wave, inner loop found by bisection."""
    dt_s = period_s * n_periods
    y = [min(h, c * peak) for h, c, peak in zip(x.high_mw, caps, p.peak_mw)]
    lo = [min(l_, yy) for l_, yy in zip(x.low_mw, y)]
    d = n_hi_s / period_s
    it_hi, it_lo = sum(y), sum(lo)
    it_mean = d * it_hi + (1 - d) * it_lo
    secs = np.arange(dt_s)
    it = np.where((secs % period_s) < n_hi_s, it_hi, it_lo)
    facility = p.pue * it_mean + (it - it_mean)
    swing = it_hi - it_lo

    def simulate(alpha):
        bat = b + alpha * (it - it_mean)
        e = s.energy_mwh - np.sum(np.where(bat > 0, bat / p.eta_discharge, bat * p.eta_charge)) / 3600.0
        return bat, e

    want = 1.0 if swing > 0 else 0.0

    def feasible(alpha):
        bat, e = simulate(alpha)
        return np.all(np.abs(bat) <= p.battery_power_mw + 1e-9) and e >= p.energy_min_mwh - 1e-12

    lo_a, hi_a = 0.0, want
    if not feasible(hi_a):
        for _ in range(80):
            mid = 0.5 * (lo_a + hi_a)
            lo_a, hi_a = (mid, hi_a) if feasible(mid) else (lo_a, mid)
    bat, e = simulate(lo_a if not feasible(hi_a) else hi_a)
    meter = facility - bat
    return {
        "energy_mwh": e,
        "grid_import_mw": meter.mean(),
        "residual_swing_mw": meter.max() - meter.min(),
        "over_limit_mwh": np.maximum(meter - x.limit_mw, 0.0).sum() / 3600.0,
        "battery_discharged_mwh": np.maximum(bat, 0).sum() / 3600.0,
        "battery_charged_mwh": np.maximum(-bat, 0).sum() / 3600.0,
    }


@given(
    period_s=st.integers(2, 6), n_hi=st.integers(1, 5), n_periods=st.integers(1, 20),
    soc=st.floats(0.1, 0.9), rte=st.floats(0.6, 1.0), power=st.floats(0.0, 80.0),
    band=st.floats(0.0, 40.0), action=st.floats(-1.0, 1.0), cap=st.floats(0.3, 1.0),
    limit=st.floats(40.0, 120.0), high=st.floats(0.6, 1.0), low=st.floats(0.1, 0.28),
)
def test_closed_form_smoothing_matches_one_second_simulation(period_s, n_hi, n_periods, soc, rte, power, band,
                                                             action, cap, limit, high, low):
    n_hi = min(n_hi, period_s - 1)
    dt_s = period_s * n_periods
    cfg = load_scenario(DEFAULT, {"dt_s": float(dt_s), "duration_h": 1.0, "grid": {"swing_band_mw": band},
                                  "reward": {"residual_swing_per_mwh": 0.5},
                                  "battery": {"capacity_mwh": 20.0, "power_mw": power, "round_trip_efficiency": rte}})
    p = make_params(cfg)
    peaks = p.peak_mw
    x = Exo((high * peaks[0], 0.5 * peaks[1]), (low * peaks[0], 0.5 * peaks[1]), (0.0, 0.0), (0.0, 0.0),
            n_hi / period_s, limit)
    s = State(soc * 20.0 * 0.8 + 2.0, 50.0, (1.0, 1.0), (0.0, 0.0))
    a = Action(action * power, (cap, 1.0), (0.0, 0.0))
    _, out = physics.step(p, s, a, x, SCALAR)
    ref = brute_force_step(p, s, out.battery_power_mw, (max(cap, p.cap_min[0]), 1.0), x, period_s, n_hi, n_periods)
    for key, value in ref.items():
        assert abs(getattr(out, key) - value) <= 1e-6 * max(1.0, abs(value)), (key, getattr(out, key), value)


@given(st.integers(0, 2**31 - 1), st.lists(st.floats(-1, 1), min_size=3, max_size=3))
def test_scalar_and_numpy_backends_agree_bitwise(seed, act):
    env = cpm_env.CpmEnv({"duration_h": 0.5})
    env.reset(seed=seed)
    p, s = env.params, env.state
    t = 3
    x = Exo(*env._exo_rows[t])
    from cpm_env.spaces import to_physical
    a = to_physical(act, p, [], SCALAR)
    _, out_s = physics.step(p, s, a, x, SCALAR)
    arr = lambda v: np.array([v])  # noqa: E731
    xa = Exo(*(tuple(arr(v) for v in f) if isinstance(f, tuple) else f if f is None else arr(f) for f in x))
    sa = State(arr(s.energy_mwh), arr(s.import_mw), tuple(arr(c) for c in s.caps), tuple(arr(f) for f in s.floors))
    aa = Action(arr(a.battery_mw), tuple(arr(c) for c in a.caps), tuple(arr(f) for f in a.floors))
    _, out_v = physics.step(p, sa, aa, xa, NUMPY)
    for name, vs, vv in zip(out_s._fields, out_s, out_v):
        assert np.asarray(vv).reshape(-1)[0] == vs, name


def test_nan_action_raises_and_out_of_range_is_clipped():
    env = gym.make("cpm_env/DataCenter-v0", scenario={"duration_h": 1.0})
    env.reset(seed=1)
    try:
        env.step(np.array([np.nan, 0.0, 0.0], dtype=np.float32))
    except ValueError as err:
        assert "non-finite" in str(err)
    else:
        raise AssertionError("NaN action accepted")
    try:
        env.step(np.zeros(5, dtype=np.float32))
    except ValueError as err:
        assert "shape" in str(err)
    else:
        raise AssertionError("wrong-length action accepted")
    a, b = gym.make("cpm_env/DataCenter-v0", scenario={"duration_h": 1.0}), gym.make(
        "cpm_env/DataCenter-v0", scenario={"duration_h": 1.0})
    a.reset(seed=3)
    b.reset(seed=3)
    out_a = a.step(np.array([5.0, -7.0, 2.0], dtype=np.float32))
    out_b = b.step(np.array([1.0, -1.0, 1.0], dtype=np.float32))
    np.testing.assert_array_equal(out_a[0], out_b[0])
    assert out_a[1] == out_b[1]


def test_sudden_load_loss_shows_as_ramp_violation_without_battery():
    env = cpm_env.CpmEnv({"dt_s": 1.0, "duration_h": 1.0, "battery": {"capacity_mwh": 0.0},
                          "site": {"gpu_classes": [{"name": "training", "workload": {
                              "kind": "training", "mtbf_h": 0.2, "sudden_failure_fraction": 1.0}}]}})
    env.reset(seed=0)
    ramps = []
    done = False
    while not done:
        _, _, _, done, info = env.step(np.array([0.0, 1.0], dtype=np.float32))
        ramps.append(info["ramp_excess_mw"])
    # a failure drops the whole job within a second: tens of MW against a 0.17 MW/s limit
    assert max(ramps) > 20.0
