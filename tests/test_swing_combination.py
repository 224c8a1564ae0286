"""Several swinging classes at one meter (cpm_env.physics.site_duty), against a brute-force 1-second simulation.

The closed form keeps each class's own levels and duty and summarizes the meter's waveform (the
classes' high phases in phase) as the two-level wave with the same mean, peak and trough. What this
file accepts, and checks on random steps:

- exact (to 1e-9 MW / MWh): the step-mean import, the high-phase (peak) import, the residual swing at
  the meter (peak-to-peak) and so the oscillation band's excess, wherever the caps do not bind;
- never understated: the energy above the limit and the battery's throughput (the smoothing's energy),
  since the two-level wave is the most spread of all with that mean, peak and trough; in pure smoothing
  overstated by at most ``min(d / d_min, (1 - d) / (1 - d_max))`` (``d`` the step's duty, ``d_min`` and
  ``d_max`` the swinging classes' extremes): 1 where the duties agree, 10 for duties 0.05 and 0.95 of
  equal swings, whose staircase sits at its mean nearly all step;
- with caps: the peak moves by exactly ``sum_k (d_k - d) * swing_k`` of the capped swings.
"""

import gymnasium as gym
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cpm_env import physics
from cpm_env.config import resolve_scenario
from cpm_env.episode import EpisodeGenerator
from cpm_env.ops import SCALAR
from cpm_env.site import State, make_params
from test_oracle import assert_replay_matches_plan

PERIOD_S, STEP_S = 20, 60  # the classes' common iteration period within a 60-s control step
THREE_TRAINING = {"site": {"gpu_classes": [
    {"name": "a", "share": 0.4, "workload": {"kind": "training", "duty": 0.8}},
    {"name": "b", "share": 0.35, "workload": {"kind": "training", "duty": 0.5, "checkpoint_interval_min": 17}},
    {"name": "c", "share": 0.25, "workload": {"kind": "training", "duty": 0.3, "mtbf_h": 1.0}},
]}}


def _params():
    return make_params(resolve_scenario("DataCenter-v0", THREE_TRAINING))


P = _params()


def _brute_force(p, high, low, seconds_high, battery_mw, limit_mw):
    """One step at 1-s resolution: (mean import, peak import, peak-to-peak at the meter, MWh above the limit,
    MWh discharged by the battery). The classes are high for their first ``seconds_high`` s of each period;
    the battery's inner loop adds the same gain of the facility's deviation every second, the largest
    its power rating allows (the energy is ample)."""
    t = np.arange(STEP_S)
    it = sum(lo + (hi - lo) * ((t % PERIOD_S) < n) for hi, lo, n in zip(high, low, seconds_high))
    fac = p.pue * it.mean() + (it - it.mean())  # PUE scales the mean; cooling does not follow the swing
    dev = fac - fac.mean()
    pmax = p.battery_power_mw
    gains = [1.0]
    if dev.max() > 0:
        gains += [(pmax - battery_mw) / dev.max(), (pmax + battery_mw) / -dev.min()]
    gain = max(min(gains), 0.0)
    bat = battery_mw + gain * dev
    grid = fac - bat
    return (grid.mean(), grid.max(), grid.max() - grid.min(), np.maximum(grid - limit_mw, 0).sum() / 3600,
            np.maximum(bat, 0).sum() / 3600)


def _closed_form(p, high, low, duty, battery_mw, limit_mw, caps=(1.0, 1.0, 1.0)):
    """The env's step (physics.step) of the same step: duties from site_duty, battery set-point as given."""
    arr = lambda v: np.array(v, dtype=float)[:, None, None]  # noqa: E731
    site, per_class = physics.site_duty(arr(high), arr(low), arr(duty))
    x = physics.Exo(tuple(high), tuple(low), (0.0,) * 3, (0.0,) * 3, float(site[0, 0]), limit_mw,
                    tuple(float(d) for d in per_class[:, 0, 0]))
    s = State(0.5 * (p.energy_min_mwh + p.energy_max_mwh), 0.0, (1.0,) * 3, (0.0,) * 3)
    _, out = physics.step(p, s, physics.Action(battery_mw, tuple(caps), (0.0,) * 3), x, SCALAR)
    return out, float(site[0, 0])


step_draws = st.tuples(
    st.lists(st.integers(1, PERIOD_S - 1), min_size=3, max_size=3),  # seconds high per period
    st.lists(st.floats(0.3, 1.0), min_size=3, max_size=3),  # high level, fraction of the class peak
    st.lists(st.floats(0.0, 0.28), min_size=3, max_size=3),  # low level, fraction of the class peak
    st.floats(0.0, 1.5),  # battery rating, fraction of the peak-to-peak swing
    st.floats(-0.9, 0.9),  # battery set-point, fraction of the rating
    st.floats(0.6, 1.2),  # limit, fraction of the facility's peak
)


def _levels(draw):
    seconds, hi_f, lo_f, rating, setpoint, lim_f = draw
    high = [f * pk for f, pk in zip(hi_f, P.peak_mw)]
    low = [f * pk for f, pk in zip(lo_f, P.peak_mw)]
    swing = sum(h - lo for h, lo in zip(high, low))
    p = P._replace(battery_power_mw=rating * swing)
    peak_fac = P.pue * sum(lo + n / PERIOD_S * (h - lo) for h, lo, n in zip(high, low, seconds)) + \
        sum((1 - n / PERIOD_S) * (h - lo) for h, lo, n in zip(high, low, seconds))
    return p, high, low, seconds, setpoint * p.battery_power_mw, lim_f * peak_fac


@settings(max_examples=300, deadline=None)
@given(step_draws)
def test_uncapped_step_matches_the_brute_force_exactly_where_it_should(draw):
    p, high, low, seconds, battery_mw, limit_mw = _levels(draw)
    duty = [n / PERIOD_S for n in seconds]
    out, _ = _closed_form(p, high, low, duty, battery_mw, limit_mw)
    g_mean, g_peak, swing_pp, over_mwh, discharged_mwh = _brute_force(p, high, low, seconds, out.battery_power_mw,
                                                                      limit_mw)
    assert abs(out.grid_import_mw - g_mean) < 1e-9
    assert abs(out.grid_import_peak_mw - g_peak) < 1e-9
    assert abs(out.residual_swing_mw - swing_pp) < 1e-9
    assert out.over_limit_mwh >= over_mwh - 1e-12  # convex costs: never understated
    assert out.battery_discharged_mwh >= discharged_mwh - 1e-12


@settings(max_examples=300, deadline=None)
@given(step_draws)
def test_the_smoothings_energy_is_overstated_at_most_by_the_stated_factor(draw):
    """Pure smoothing (set-point 0, the rating covers the swing): the closed form's throughput is at least the
    brute force's and at most ``min(d / d_min, (1 - d) / (1 - d_max))`` times it, ``d`` the step's duty: the
    staircase spends at least ``d_min`` of the step at its peak and ``1 - d_max`` at its trough."""
    p, high, low, seconds, _, limit_mw = _levels(draw)
    p = p._replace(battery_power_mw=10 * sum(high))
    duty = [n / PERIOD_S for n in seconds]
    out, site = _closed_form(p, high, low, duty, 0.0, limit_mw)
    discharged_mwh = _brute_force(p, high, low, seconds, 0.0, limit_mw)[4]
    bound = min(site / min(duty), (1 - site) / (1 - max(duty)))
    assert discharged_mwh - 1e-12 <= out.battery_discharged_mwh <= bound * discharged_mwh + 1e-12


@settings(max_examples=200, deadline=None)
@given(step_draws, st.lists(st.floats(P.cap_min[0], 1.0), min_size=3, max_size=3))
def test_caps_move_the_peak_by_the_stated_amount(draw, caps):
    p, high, low, seconds, battery_mw, limit_mw = _levels(draw)
    duty = [n / PERIOD_S for n in seconds]
    out, site = _closed_form(p, high, low, duty, 0.0, limit_mw, caps)
    y = [min(h, c * pk) for h, c, pk in zip(high, caps, p.peak_mw)]
    lo = [min(lv, yk) for lv, yk in zip(low, y)]
    capped_seconds_high = seconds  # a cap clips the high level, not its timing
    _, _, swing_pp, _, _ = _brute_force(p._replace(battery_power_mw=0.0), y, lo, capped_seconds_high, 0.0, limit_mw)
    peak_true = p.pue * sum(d * a + (1 - d) * b for d, a, b in zip(duty, y, lo)) + sum(
        (1 - d) * (a - b) for d, a, b in zip(duty, y, lo))
    shift = sum((d - site) * (a - b) for d, a, b in zip(duty, y, lo) if a > b)
    assert abs(out.facility_swing_mw - swing_pp) < 1e-9  # the swing is the sum of the capped swings
    assert abs((out.facility_power_mw + (1 - site) * out.facility_swing_mw) - (peak_true + shift)) < 1e-9


def test_one_swinging_class_keeps_the_steps_duty():
    """Where at most one class swings, every class's duty is the step's (the shipped scenarios' episodes)."""
    gen = EpisodeGenerator(resolve_scenario("DataCenter-v0", {"duration_h": 2.0}))
    ep = gen.sample([np.random.default_rng(s) for s in range(3)])
    np.testing.assert_array_equal(ep.class_duty, np.broadcast_to(ep.duty, ep.class_duty.shape))


def test_three_training_classes_keep_their_own_duties_and_means():
    cfg = resolve_scenario("DataCenter-v0", {**THREE_TRAINING, "duration_h": 2.0})
    ep = EpisodeGenerator(cfg).sample([np.random.default_rng(s) for s in range(2)])
    several = (ep.class_duty != ep.duty).any(axis=0)
    assert several.mean() > 0.5  # most steps have classes at their own duties
    mean = (ep.class_duty * ep.high_mw + (1 - ep.class_duty) * ep.low_mw).sum(axis=0)
    np.testing.assert_allclose(ep.demand_mw, make_params(cfg).pue * mean, rtol=1e-12)
    assert ((ep.duty >= ep.class_duty.min(axis=0) - 1e-12) & (ep.duty <= ep.class_duty.max(axis=0) + 1e-12)).all()


def test_the_lp_is_the_env_with_several_swinging_classes():
    """The oracle's plan replayed in the env gives its objective, on a site of three training classes."""
    env = gym.make("cpm_env/DataCenter-v0", scenario={**THREE_TRAINING, "duration_h": 2.0}).unwrapped
    env.reset(seed=3)
    assert "duty_a" in env.obs_names
    assert_replay_matches_plan(env)
