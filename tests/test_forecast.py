"""Forecasters (issue 13): causal ones (the default) never see the unscheduled future; scheduled
events do show; ``oracle_noisy`` (studies of foresight only) sees failures coming."""

import dataclasses
import typing

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from conftest import one_site
from cpm_env import spaces
from cpm_env.config import ConfigError, ForecastConfig, resolve_scenario, scenario_ids, scenario_to_dict
from cpm_env.forecast import FORECASTERS, make_forecaster, persistence_mw, schedule_persistence_mw
from cpm_env.scenario import Site
from cpm_env.workloads import InferenceGenerator, TrainingGenerator

CAUSAL = [kind for kind in FORECASTERS if make_forecaster(ForecastConfig(kind=kind)).causal]  # type: ignore[arg-type]
HORIZONS = (1, 5, 15, 60)


def _site(kind: str, **overrides) -> Site:
    """DataCenter-v0 (training + inference), 6 h, with ``forecast.kind = kind``."""
    return Site({"duration_h": 6.0, "forecast": {"kind": kind, "horizons_steps": list(HORIZONS)}, **overrides},
                base="DataCenter-v0")


def _forecast_mw(site: Site, exo_obs: np.ndarray, h: int) -> np.ndarray:
    """The ``forecast_<h>`` entries of an episode's exogenous observation block, in MW, shape (n_steps, n_envs)."""
    names = [f.name for f in spaces.exo_observation_features(site.config)]
    return exo_obs[:, names.index(f"forecast_{h}")] * site.config.grid.limit_mw


def _patch_unscheduled_future(site: Site, t: int, fail_at: int, fail_steps: int, burst: float) -> None:
    """Make the episodes ``site`` draws differ from step ``t + 1`` on: a failure of the training job from
    ``t + 1 + fail_at`` for ``fail_steps`` steps and an inference burst of ``burst`` (utilization) from
    ``t + 1``. The generators still make every random draw, so everything else stays as drawn."""
    for gen in site.episodes.generators:
        if isinstance(gen, TrainingGenerator):
            draw_down = gen._down_fraction

            def down(rngs, draw_down=draw_down):
                out = draw_down(rngs)
                out[t + 1 + fail_at:t + 1 + fail_at + fail_steps] = 1.0
                return out

            gen._down_fraction = down  # type: ignore[method-assign]
        elif isinstance(gen, InferenceGenerator):
            draw_util = gen.utilization

            def util(rngs, draw_util=draw_util):
                out = draw_util(rngs)
                out[t + 1:] = np.clip(out[t + 1:] + burst * np.exp(-np.arange(len(out) - t - 1) / 10.0)[:, None], 0, 1)
                return out

            gen.utilization = util  # type: ignore[method-assign]


def _episodes_with_two_futures(kind: str, seed: int, t: int, fail_at: int, fail_steps: int, burst: float):
    """(site, as drawn, with another unscheduled future after ``t``), both from ``seed``."""
    site, other = _site(kind), _site(kind)
    _patch_unscheduled_future(other, t, fail_at, fail_steps, burst)
    drawn, redrawn = (s.episodes.sample([np.random.default_rng(seed)]) for s in (site, other))
    return site, drawn, redrawn


@given(st.sampled_from(CAUSAL), st.integers(0, 10_000), st.integers(0, 340), st.integers(0, 30), st.integers(1, 30),
       st.floats(0.0, 0.5))
def test_causal_forecast_ignores_the_unscheduled_future(kind, seed, t, fail_at, fail_steps, burst):
    site, drawn, redrawn = _episodes_with_two_futures(kind, seed, t, fail_at, fail_steps, burst)
    assume(not np.array_equal(drawn.demand_mw, redrawn.demand_mw))  # the future did change
    np.testing.assert_array_equal(drawn.demand_mw[:t + 1], redrawn.demand_mw[:t + 1])
    np.testing.assert_array_equal(drawn.scheduled_mw, redrawn.scheduled_mw)  # the schedule is not the failure's
    np.testing.assert_array_equal(drawn.exo_obs[:t + 1], redrawn.exo_obs[:t + 1])


@given(st.integers(2, 60), st.integers(0, 59), st.integers(0, 2**32 - 1))
def test_causal_functions_read_the_demand_only_up_to_the_step(n_steps, t, seed):
    assume(t < n_steps)
    rng = np.random.default_rng(seed)
    demand, scheduled = rng.uniform(0, 100, (n_steps, 2)), rng.uniform(0, 100, (n_steps, 2))
    other = demand.copy()
    other[t + 1:] = rng.uniform(0, 100, (n_steps - t - 1, 2))
    h = np.array(HORIZONS)
    for a, b in [(persistence_mw(demand, h), persistence_mw(other, h)),
                 (schedule_persistence_mw(demand, scheduled, h), schedule_persistence_mw(other, scheduled, h))]:
        np.testing.assert_array_equal(a[:t + 1], b[:t + 1])


def test_schedule_persistence_shows_a_checkpoint_dip_before_it_happens():
    site = Site({"duration_h": 3.0, "site": {"gpu_classes": [{"name": "training", "workload": {
        "kind": "training", "mtbf_h": 0.0, "high_jitter": 0.0}}]},
        "forecast": {"kind": "schedule_persistence", "horizons_steps": list(HORIZONS)}})
    ep = site.episodes.sample([np.random.default_rng(5)])
    demand = ep.demand_mw[:, 0]
    starts = np.flatnonzero(np.diff(demand) < -0.05 * demand.max()) + 1  # first steps of checkpoints
    dip = int(starts[starts > 5][0])
    ahead_5 = _forecast_mw(site, ep.exo_obs, 5)[:, 0]
    assert demand[dip - 5] > demand[dip] + 0.05 * demand.max()  # flat before the dip ...
    assert ahead_5[dip - 5] == pytest.approx(demand[dip], rel=1e-5)  # ... yet the forecast shows it 5 steps ahead
    flat = Site(dataclasses.replace(site.config, forecast=ForecastConfig(horizons_steps=HORIZONS, kind="persistence")))
    assert _forecast_mw(flat, flat.episodes.sample([np.random.default_rng(5)]).exo_obs, 5)[dip - 5, 0] == \
        pytest.approx(demand[dip - 5], rel=1e-5)  # persistence does not


def test_schedule_persistence_follows_the_daily_profile_of_calm_inference():
    site = Site({"site": {"gpu_classes": [{"name": "inference", "workload": {
        "kind": "inference", "noise_std": 0.0, "burst_rate_per_h": 0.0}}]},
        "forecast": {"kind": "schedule_persistence", "horizons_steps": list(HORIZONS)}})
    ep = site.episodes.sample([np.random.default_rng(0)])
    demand = ep.demand_mw[:, 0]
    for h in HORIZONS:
        truth = demand[np.minimum(np.arange(len(demand)) + h, len(demand) - 1)]
        np.testing.assert_allclose(_forecast_mw(site, ep.exo_obs, h)[:, 0], truth, rtol=1e-5)


def test_oracle_noisy_sees_a_future_failure():
    """Why ``oracle_noisy`` is no honest benchmark: its forecast changes before an unscheduled failure."""
    t, fail_at = 100, 3  # the failure starts at step 104
    site, drawn, redrawn = _episodes_with_two_futures("oracle_noisy", 7, t, fail_at, 20, 0.0)
    np.testing.assert_array_equal(drawn.demand_mw[:t + 1], redrawn.demand_mw[:t + 1])
    assert not np.array_equal(drawn.exo_obs[:t + 1], redrawn.exo_obs[:t + 1])  # observations before it differ
    first = t + 1 + fail_at - 15  # the first step whose 15-step forecast reaches into the failure
    drop = _forecast_mw(site, redrawn.exo_obs, 15)[first, 0] / _forecast_mw(site, drawn.exo_obs, 15)[first, 0]
    assert drop < 0.5  # the job's drop to idle shows 15 steps before it happens


def test_unknown_forecast_kind_is_a_one_line_error_listing_the_kinds():
    with pytest.raises(ConfigError) as err:
        resolve_scenario("DataCenter-v0", {"forecast": {"kind": "crystal_ball"}})
    message = str(err.value)
    assert "\n" not in message and "forecast.kind = 'crystal_ball'" in message
    assert all(kind in message for kind in FORECASTERS)


def test_config_kinds_are_the_registered_forecasters():
    kind_type = typing.get_type_hints(ForecastConfig)["kind"]
    assert set(typing.get_args(kind_type)) == set(FORECASTERS)
    assert set(CAUSAL) == {"persistence", "schedule_persistence"}


@pytest.mark.parametrize("scenario_id", sorted(scenario_ids()))
def test_every_registered_scenario_forecasts_causally(scenario_id):
    """No shipped scenario (nor the config's default) benchmarks a controller that sees failures coming."""
    cfg = one_site(scenario_id)
    assert make_forecaster(cfg.forecast).causal, f"{scenario_id}: forecast.kind = {cfg.forecast.kind}"
    assert make_forecaster(ForecastConfig()).causal
    assert scenario_to_dict(cfg)["forecast"]["kind"] == cfg.forecast.kind  # stated in every run's scenario.yml
    noisy = resolve_scenario(cfg, {"forecast": {"kind": "oracle_noisy"}})
    assert resolve_scenario(scenario_to_dict(noisy)) == noisy  # oracle_noisy stays available by name


def test_an_announced_demand_response_window_shows_before_it_starts():
    """The schedule a site is told: an announced window is in the observation from its notice on,
    with its start and its limit, identically under every forecaster."""
    site = Site("DemandResponse-v0")
    cfg = site.config
    ep = site.episodes.sample([np.random.default_rng(3)])
    names = [f.name for f in spaces.exo_observation_features(cfg)]
    col = {n: ep.exo_obs[:, names.index(n), 0] for n in ("dr_pending", "dr_active", "dr_starts_in", "dr_limit")}
    start = int(np.flatnonzero(col["dr_active"] > 0.5)[0])
    notice = int(round(cfg.grid.demand_response.notice_h / cfg.dt_h))
    assert start >= notice  # the draw leaves room for the whole notice
    assert not col["dr_pending"][:start - notice].any()
    assert col["dr_pending"][start - notice:start].all()
    np.testing.assert_allclose(col["dr_starts_in"][start - notice:start],
                               (start - np.arange(start - notice, start)) * cfg.dt_h, rtol=1e-6)
    assert col["dr_limit"][start - notice] == pytest.approx(cfg.grid.demand_response.limit_fraction, rel=1e-6)
    for kind in CAUSAL:
        other = Site(dataclasses.replace(cfg, forecast=dataclasses.replace(cfg.forecast, kind=kind)))
        redrawn = other.episodes.sample([np.random.default_rng(3)])
        for name in col:
            np.testing.assert_array_equal(redrawn.exo_obs[:, names.index(name), 0], col[name])
