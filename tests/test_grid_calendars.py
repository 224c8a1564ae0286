"""Grid calendars from CSV (grid.limit_calendar, grid.price_calendar): the import limit and its
demand-response windows from a calendar, seeded offsets, wrapping, the price both the env and the
economics read, and one-line errors naming file, line and column for bad data."""

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import cpm_env
from agents.sizing import economics as ec
from cpm_env import calendars, spaces
from cpm_env.config import ConfigError, resolve_scenario, scenario_to_dict
from cpm_env.episode import EpisodeGenerator

DR_NAMES = ("dr_active", "dr_pending", "dr_starts_in", "dr_remaining", "dr_limit")


def write_csv(folder: Path, rows, name: str = "limit.csv", header: str = "timestamp,limit_mw") -> Path:
    path = folder / name
    path.write_text(header + "\n" + "".join(f"{t},{v}\n" for t, v in rows))
    return path


def scenario(path: Path | str, hours: float = 2.0, base: str = "DataCenter-v0", **calendar):
    """``base``, ``hours`` long, with ``path`` as its limit calendar (``calendar``: the section's other keys)."""
    return resolve_scenario(base, {"duration_h": hours, "grid": {"limit_calendar": {"path": str(path), **calendar}}})


def sample(cfg, seeds=(0,)):
    return EpisodeGenerator(cfg).sample([np.random.default_rng(s) for s in seeds])


def dr_columns(cfg, ep) -> np.ndarray:
    """The five demand-response entries of env 0's exogenous observation, (n_steps, 5)."""
    names = [f.name for f in spaces.exo_observation_features(cfg)]
    return ep.exo_obs[:, [names.index(n) for n in DR_NAMES], 0].astype(float)


def raises_one_line(pattern: str, fn, *args, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg and re.fullmatch(pattern, msg), msg
    return msg


def held_value(t_rows, v_rows, t):
    """Brute force: the value of the last row at or before ``t``."""
    return [v for tr, v in zip(t_rows, v_rows) if tr <= t + 1e-9][-1]


def runs_below(limit, normal):
    """Brute force: the (start, end) steps of each maximal run below ``normal``."""
    runs, start = [], None
    for i, x in enumerate(list(limit) + [normal]):
        if x < normal and start is None:
            start = i
        elif x >= normal and start is not None:
            runs.append((start, i))
            start = None
    return runs


# ---------------------------------------------------------------- the limit of each step


def test_limit_is_the_calendar_at_each_step_start(tmp_path):
    rows = [(0, 100), (90, 80), (600, 100), (3000, 55.5), (3630, 100), (7199, 90)]  # irregular, not on steps
    cfg = scenario(write_csv(tmp_path, rows), random_offset=False)
    ep = sample(cfg)
    t, v = zip(*rows)
    want = [held_value(t, v, k * cfg.dt_s) for k in range(cfg.n_steps)]
    np.testing.assert_array_equal(ep.limit_mw[:, 0], want)
    assert ep.limit_mw[1, 0] == 100 and ep.limit_mw[2, 0] == 80  # step 1 starts at 60 s, before the 90 s row


def test_iso_timestamps_give_the_same_limits_as_seconds(tmp_path):
    rows = [(0, 100), (1800, 70), (3600, 100), (5400, 60)]
    seconds = write_csv(tmp_path, rows, "s.csv")
    iso = write_csv(tmp_path, [(f"2025-07-01T{t // 3600:02d}:{t % 3600 // 60:02d}:00Z", v) for t, v in rows], "iso.csv")
    a, b = (sample(scenario(p, random_offset=False)) for p in (seconds, iso))
    np.testing.assert_array_equal(a.limit_mw, b.limit_mw)


@given(st.lists(st.tuples(st.integers(1, 40), st.sampled_from([0.0, 50.0, 70.0, 100.0])), min_size=2, max_size=12))
def test_limit_and_windows_match_brute_force(tmp_path_factory, rows):
    """Random calendars (rows every 30 s multiple): the limit is the row at each step start, the windows
    the maximal runs below grid.limit_mw."""
    folder = tmp_path_factory.mktemp("cal")
    times = np.cumsum([0] + [30 * g for g, _ in rows[1:]])
    values = [v for _, v in rows]
    if not any(values):
        values[0] = 100.0
    cfg = scenario(write_csv(folder, zip(times, values)), hours=0.5, random_offset=False, max_gap_s=1e6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a short calendar wraps
        ep = sample(cfg)
    period = times[-1] + np.median(np.diff(times))
    want = [held_value(times, values, (k * cfg.dt_s) % (np.ceil(period / cfg.dt_s) * cfg.dt_s))
            for k in range(cfg.n_steps)]
    np.testing.assert_array_equal(ep.limit_mw[:, 0], want)
    runs = runs_below(want, cfg.grid.limit_mw)
    got = [(s, e) for s, e in zip(ep.dr_start_step[0], ep.dr_end_step[0]) if s < cfg.n_steps]
    assert got == runs


# ---------------------------------------------------------------- offsets and wrapping


def test_seeded_offsets_are_reproducible_and_inside_the_calendar(tmp_path):
    rng = np.random.default_rng(7)
    rows = [(60 * i, float(rng.choice([100, 100, 100, 75]))) for i in range(600)]  # 10 h, one row a step
    cfg = scenario(write_csv(tmp_path, rows))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a calendar longer than the episode does not wrap, so no warning
        a, b, c = sample(cfg, (0, 1, 2)), sample(cfg, (0, 1, 2)), sample(cfg, (3, 4, 5))
    for name in a._fields:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.limit_mw, c.limit_mw)
    series = np.array([v for _, v in rows])
    n = cfg.n_steps
    for ep in (a, c):
        for i in range(ep.limit_mw.shape[1]):
            fits = [o for o in range(len(series) - n + 1) if np.array_equal(series[o:o + n], ep.limit_mw[:, i])]
            assert fits, "every episode is a slice of the calendar, with no wrap"
    # env i of a batch gets what a lone env with the same seed gets
    np.testing.assert_array_equal(sample(cfg, (1,)).limit_mw[:, 0], a.limit_mw[:, 1])


def test_offsets_come_after_the_classes_in_the_draw_order(tmp_path):
    """The calendar's offset is drawn where the demand-response windows would be: the classes' demand is
    the scenario's without a calendar, and the offset is the first draw after them."""
    rows = [(60 * i, 100 if i % 7 else 80) for i in range(500)]
    cfg = scenario(write_csv(tmp_path, rows))
    plain = resolve_scenario("DataCenter-v0", {"duration_h": 2.0})
    ep, ref = sample(cfg, (5,)), sample(plain, (5,))
    np.testing.assert_array_equal(ep.high_mw, ref.high_mw)
    np.testing.assert_array_equal(ep.low_mw, ref.low_mw)
    gen = EpisodeGenerator(plain)
    rng = np.random.default_rng(5)
    for g in gen.generators:
        g.sample([rng])
    offset = int(rng.integers(0, 500 - cfg.n_steps + 1))
    np.testing.assert_array_equal(ep.limit_mw[:, 0], np.array([v for _, v in rows])[offset:offset + cfg.n_steps])


def test_a_short_calendar_wraps_with_one_warning(tmp_path):
    path = write_csv(tmp_path, [(0, 100), (1800, 60)])  # 1 h (the last row holds for the median interval)
    cfg = scenario(path, hours=3.0, random_offset=False)
    with pytest.warns(UserWarning) as caught:
        gen = EpisodeGenerator(cfg)
        ep = gen.sample([np.random.default_rng(0)])
        gen.sample([np.random.default_rng(1), np.random.default_rng(2)])
    wraps = [w for w in caught if "wraps around" in str(w.message)]
    assert len(wraps) == 1 and str(path) in str(wraps[0].message)
    assert len(caught) == 1
    np.testing.assert_array_equal(ep.limit_mw[:, 0], np.tile(np.repeat([100.0, 60.0], 30), 3))
    # three windows, one per hour, each the calendar's second half-hour
    assert [(s, e) for s, e in zip(ep.dr_start_step[0], ep.dr_end_step[0])] == [(30, 60), (90, 120), (150, 180)]


def test_the_calendar_is_read_once_per_generator(tmp_path, monkeypatch):
    path = write_csv(tmp_path, [(60 * i, 100 if i % 5 else 70) for i in range(300)])
    price = write_csv(tmp_path, [(0, 30), (3600, 50)], "price.csv", "timestamp,usd_per_mwh")
    cfg = resolve_scenario("DataCenter-v0", {"duration_h": 2.0, "grid": {"limit_calendar": {"path": str(path)},
                                                                         "price_calendar": {"path": str(price)}}})
    calls = []
    real = calendars.read_calendar
    monkeypatch.setattr(calendars, "read_calendar", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    from cpm_env.vec_env import CpmVecEnv

    venv = CpmVecEnv(cfg, 3)
    for seed in range(3):
        venv.seed(seed)
        venv.reset()
    assert sorted(map(str, calls)) == sorted([str(path), str(price)])


# ---------------------------------------------------------------- demand-response windows


def test_calendar_windows_drive_the_observation(tmp_path):
    # 2 h at 60 s: 100 MW except 70 MW on steps [30, 50) and 60-65 MW on [80, 86)
    rows = [(0, 100), (1800, 70), (3000, 100), (4800, 65), (4980, 60), (5160, 100), (7140, 100)]
    cfg = scenario(write_csv(tmp_path, rows), random_offset=False)
    cfg = resolve_scenario(cfg, {"grid": {"demand_response": {"notice_h": 0.25}}})  # 15 steps of notice
    ep = sample(cfg)
    n = cfg.n_steps
    assert ep.dr_start_step.tolist() == [[30, 80]] and ep.dr_end_step.tolist() == [[50, 86]]
    dr = dr_columns(cfg, ep)
    t = np.arange(n)
    active = ((t >= 30) & (t < 50)) | ((t >= 80) & (t < 86))
    pending = ((t >= 15) & (t < 30)) | ((t >= 65) & (t < 80))
    np.testing.assert_array_equal(dr[:, 0], active)
    np.testing.assert_array_equal(dr[:, 1], pending)
    np.testing.assert_allclose(dr[:, 2], np.where(t < 30, 30 - t, 80 - t) * pending / 60, atol=1e-6)
    np.testing.assert_allclose(dr[:, 3], np.where(t < 50, 50 - t, 86 - t) * active / 60, atol=1e-6)
    np.testing.assert_allclose(dr[:, 4], np.where(t < 50, 0.7, 0.6) * (active | pending) + ~(active | pending),
                               atol=1e-6)  # each window's lowest limit / grid.limit_mw
    # the env's observation carries the same entries, inside the observation space
    env = cpm_env.CpmEnv(cfg)
    obs, _ = env.reset(seed=0)
    names = [f.name for f in spaces.exo_observation_features(cfg)]
    idx = [names.index(x) for x in DR_NAMES]
    rows_seen = [obs[idx]]
    for _ in range(n - 1):
        obs, *_ = env.step(np.zeros(env.action_space.shape, dtype=np.float32))
        assert env.observation_space.contains(obs)
        rows_seen.append(obs[idx])
    np.testing.assert_allclose(np.array(rows_seen), dr, atol=1e-6)


def test_windows_are_padded_to_the_most_any_offset_sees(tmp_path):
    """Windows on hours 1, 5 and 6 of a 10 h calendar: a 2 h episode sees at most two (hours 5 and 6),
    every episode has two, and a padded one is never active or pending."""
    rows = [(60 * i, 50 if (i // 60) in (1, 5, 6) and i % 60 < 20 else 100) for i in range(600)]
    cfg = scenario(write_csv(tmp_path, rows))
    assert EpisodeGenerator(cfg).limit_calendar.n_events == 2
    ep = sample(cfg, range(20))
    assert ep.dr_start_step.shape == ep.dr_end_step.shape == (20, 2)
    n, notice = cfg.n_steps, int(round(cfg.grid.demand_response.notice_h / cfg.dt_h))
    for i in range(20):
        real = runs_below(ep.limit_mw[:, i], cfg.grid.limit_mw)
        pads = [(s, e) for s, e in zip(ep.dr_start_step[i], ep.dr_end_step[i]) if s >= n]
        assert list(zip(ep.dr_start_step[i], ep.dr_end_step[i]))[:len(real)] == real
        assert pads == [(n + notice, n + notice)] * (2 - len(real))
    names = [f.name for f in spaces.exo_observation_features(cfg)]
    active = ep.exo_obs[:, names.index("dr_active")]
    np.testing.assert_array_equal(active.astype(bool), ep.limit_mw < cfg.grid.limit_mw)


def test_a_calendar_never_below_the_normal_limit_has_no_windows(tmp_path):
    cfg = scenario(write_csv(tmp_path, [(0, 100), (3600, 100)]), random_offset=False)
    ep = sample(cfg)
    assert ep.dr_start_step.shape == (1, 0)
    np.testing.assert_array_equal(dr_columns(cfg, ep), np.tile([0, 0, 0, 0, 1.0], (cfg.n_steps, 1)))


def test_demand_response_events_with_a_calendar_are_refused(tmp_path):
    write_csv(tmp_path, [(0, 100), (3600, 70)])
    site = tmp_path / "site.yml"
    site.write_text("id: Both-v0\nextends: DemandResponse-v0\ngrid:\n  limit_calendar:\n    path: limit.csv\n")
    raises_one_line(re.escape(f"{site}: grid.demand_response.events_per_episode = 1: must be 0 with a "
                              "grid.limit_calendar (its windows are the calendar's runs below grid.limit_mw)"),
                    cpm_env.load_scenario, site)


# ---------------------------------------------------------------- no calendar: nothing changes


@pytest.mark.parametrize("sid", ["DataCenter-v0", "DemandResponse-v0"])
def test_an_empty_calendar_path_is_the_scenario_without_one(sid):
    base = resolve_scenario(sid)
    empty = resolve_scenario(sid, {"grid": {"limit_calendar": {"path": ""}, "price_calendar": {"path": ""}}})
    assert empty == base and scenario_to_dict(empty) == scenario_to_dict(base)
    assert "limit_calendar" not in scenario_to_dict(base)["grid"]  # shipped scenarios' hashes stay as they were
    a, b = sample(base, (0, 1)), sample(empty, (0, 1))
    for name in a._fields:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), name
    gen = EpisodeGenerator(base)
    assert gen.limit_calendar is None and gen.price_usd_per_mwh is None


def test_calendar_paths_resolve_against_the_yaml_file(tmp_path):
    (tmp_path / "cal").mkdir()
    write_csv(tmp_path / "cal", [(0, 100), (1800, 70), (3600, 100), (7200, 100)])
    site = tmp_path / "site.yml"
    site.write_text(yaml.safe_dump({"id": "Cal-v0", "extends": "DataCenter-v0", "duration_h": 2.0,
                                    "grid": {"limit_calendar": {"path": "cal/limit.csv", "random_offset": False}}}))
    cfg = cpm_env.load_scenario(site)
    assert cfg.grid.limit_calendar.path == str(tmp_path / "cal" / "limit.csv")
    assert scenario_to_dict(cfg)["grid"]["limit_calendar"]["path"] == cfg.grid.limit_calendar.path
    assert sample(cfg).limit_mw[30:32, 0].tolist() == [70.0, 70.0]


# ---------------------------------------------------------------- bad data: one line, file, line, column

LIMIT_CASES = [
    # (csv text, calendar keys, message after "<path>: ")
    ("timestamp,limit_mw\n0,100\n60,oops\n", {}, "line 3, column limit_mw = 'oops': must be a finite number >= 0 "
     "(or set grid.limit_calendar.fill: hold)"),
    ("timestamp,limit_mw\n0,100\n60,\n", {}, "line 3, column limit_mw = '': must be a finite number >= 0 "
     "(or set grid.limit_calendar.fill: hold)"),
    ("timestamp,limit_mw\n0,100\n60,-5\n", {}, "line 3, column limit_mw = '-5': must be a finite number >= 0 "
     "(or set grid.limit_calendar.fill: hold)"),
    ("timestamp,limit_mw\n0,100\n60,inf\n", {}, "line 3, column limit_mw = 'inf': must be a finite number >= 0 "
     "(or set grid.limit_calendar.fill: hold)"),
    ("timestamp,limit_mw\n0,100\n120,90\n60,80\n", {}, "line 4, column timestamp = '60': comes before line 3's '120': "
     "timestamps must increase"),
    ("timestamp,limit_mw\n0,100\n60,90\n60,80\n", {}, "line 4, column timestamp = '60': repeats line 3's '60': "
     "timestamps must increase"),
    ("timestamp,limit_mw\n0,100\n60,90\n7260,80\n", {}, "line 4, column timestamp = '7260': 7200 s after line 3: a gap "
     "above grid.limit_calendar.max_gap_s = 3600 s (or set grid.limit_calendar.fill: hold)"),
    ("timestamp,limit_mw\n0,100\nnoon,90\n", {}, "line 3, column timestamp = 'noon': must be seconds or an ISO "
     "date-time"),
    ("timestamp,limit_mw\n0,0\n60,0\n", {}, "column limit_mw: every limit is 0: a limit calendar must allow some "
     "import"),
    ("timestamp,limit_mw\n0,100\n60,120\n", {}, "line 3, column limit_mw = 120: above grid.limit_mw = 100: the "
     "contract's normal limit is the highest (it scales the observation); raise grid.limit_mw"),
    ("time,limit_mw\n0,100\n60,90\n", {}, "column 'timestamp' missing (grid.limit_calendar.timestamp_column): "
     "columns are ['time', 'limit_mw']"),
    ("timestamp,mw\n0,100\n60,90\n", {}, "column 'limit_mw' missing (grid.limit_calendar.limit_column): columns are "
     "['timestamp', 'mw']"),
    ("timestamp,limit_mw\n0,100\n", {}, "1 data rows: a calendar needs at least two"),
    ("timestamp,limit_mw\n0,x\n60,90\n", {"fill": "hold"}, "line 2, column limit_mw = 'x': must be a finite number "
     ">= 0 (grid.limit_calendar.fill: hold has no earlier value to hold on the first row)"),
]


@pytest.mark.parametrize("text, keys, message", LIMIT_CASES)
def test_bad_limit_calendar_is_one_line_naming_file_line_column(tmp_path, text, keys, message):
    path = tmp_path / "limit.csv"
    path.write_text(text)
    cfg = scenario(path, **keys)  # the config is fine: the data are checked when the env is built
    raises_one_line(re.escape(f"{path}: {message}"), cpm_env.CpmEnv, cfg)


def test_a_missing_calendar_file_is_one_line(tmp_path):
    path = tmp_path / "nowhere.csv"
    raises_one_line(re.escape(f"{path}: file not found: grid.limit_calendar.path must name an existing CSV file"),
                    cpm_env.CpmEnv, scenario(path))
    price = resolve_scenario("DataCenter-v0", {"grid": {"price_calendar": {"path": str(path)}}})
    raises_one_line(re.escape(f"{path}: file not found: grid.price_calendar.path must name an existing CSV file"),
                    cpm_env.CpmEnv, price)


def test_a_bad_calendar_section_is_one_line():
    raises_one_line(r"scenario override grid\.limit_calendar\.fill = 'interpolate': must be one of \['error', "
                    r"'hold'\] \(base .*\)", resolve_scenario, "DataCenter-v0",
                    {"grid": {"limit_calendar": {"path": "x.csv", "fill": "interpolate"}}})
    raises_one_line(r"scenario override grid\.price_calendar\.max_gap_s = 0\.0: must be > 0 and <= 1e\+09 \(base .*\)",
                    resolve_scenario, "DataCenter-v0", {"grid": {"price_calendar": {"max_gap_s": 0.0}}})


def test_fill_hold_holds_bad_cells_and_gaps_with_one_warning(tmp_path):
    path = tmp_path / "limit.csv"
    path.write_text("timestamp,limit_mw\n0,100\n600,70\n1200,-1\n1800,\n2400,100\n9600,90\n")
    cfg = scenario(path, fill="hold", random_offset=False)
    with pytest.warns(UserWarning) as caught:
        ep = sample(cfg)
    assert len(caught) == 1
    assert str(caught[0].message) == (f"{path}: 2 bad values in column limit_mw (first at line 4) and 1 gap above "
                                      "max_gap_s = 3600 s (first after line 6): held at the previous valid value "
                                      "(grid.limit_calendar.fill: hold)")
    np.testing.assert_array_equal(ep.limit_mw[:, 0], np.repeat([100.0, 70.0, 100.0], [10, 30, 80]))


# ---------------------------------------------------------------- prices: env and economics read one series


def price_scenario(tmp_path, rows, hours=2.0, **keys):
    path = write_csv(tmp_path, rows, "price.csv", "timestamp,usd_per_mwh")
    return path, resolve_scenario("DataCenter-v0", {"id": "Priced-v0", "duration_h": hours,
                                                    "grid": {"price_calendar": {"path": str(path), **keys}}})


def test_price_calendar_allows_negative_prices_and_is_one_series(tmp_path):
    _, cfg = price_scenario(tmp_path, [(0, 35.5), (1800, -12.0), (3600, 80.0), (5400, 20.0)])
    want = np.repeat([35.5, -12.0, 80.0, 20.0], 30)
    got = calendars.step_prices_usd_per_mwh(cfg)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(EpisodeGenerator(cfg).price_usd_per_mwh, want)  # the env's
    np.testing.assert_array_equal(ec.scenario_step_prices_usd_per_mwh(ec.PriceConfig(), cfg), want)  # economics'
    plain = resolve_scenario("DataCenter-v0", {"duration_h": 2.0})
    np.testing.assert_array_equal(ec.scenario_step_prices_usd_per_mwh(ec.PriceConfig(), plain),
                                  ec.step_prices_usd_per_mwh(ec.PriceConfig(), 0.0, plain.dt_h, plain.n_steps))


@pytest.mark.parametrize("cell, shown", [("inf", "'inf'"), ("", "''"), ("cheap", "'cheap'")])
def test_a_non_finite_price_is_one_line(tmp_path, cell, shown):
    path, cfg = price_scenario(tmp_path, [(0, 30), (60, cell), (120, 40)])
    raises_one_line(re.escape(f"{path}: line 3, column usd_per_mwh = {shown}: must be a finite number (or set "
                              "grid.price_calendar.fill: hold)"), cpm_env.CpmEnv, cfg)


def test_a_short_price_calendar_wraps_with_one_warning(tmp_path):
    _, cfg = price_scenario(tmp_path, [(0, 10), (1800, 20)], hours=3.0)
    with pytest.warns(UserWarning, match="wraps around") as caught:
        prices = calendars.step_prices_usd_per_mwh(cfg)
    assert len(caught) == 1
    np.testing.assert_array_equal(prices, np.tile(np.repeat([10.0, 20.0], 30), 3))


def test_economics_prices_the_scenario_calendar(tmp_path):
    """price_day prices the episodes at the scenario's calendar, not at EconomicsConfig.price."""
    path, _ = price_scenario(tmp_path, [(0, 30), (1800, -5), (3600, 120), (5400, 60)])
    site = tmp_path / "priced.yml"
    site.write_text(yaml.safe_dump({"id": "Priced-v0", "extends": "DataCenter-v0", "duration_h": 2.0,
                                    "grid": {"price_calendar": {"path": path.name}}}))
    econ = ec.EconomicsConfig(controller="static_cap", price=ec.PriceConfig(mean_usd_per_mwh=999.0))
    day = ec.price_day("ordinary", str(site), [0], econ)
    want = np.repeat([30.0, -5.0, 120.0, 60.0], 30)
    np.testing.assert_array_equal(day.price_usd_per_mwh, want)
    assert day.kpis[0].mean_price_usd_per_mwh == pytest.approx(want.mean())
    rows = day.episodes[0]
    assert rows.energy_cost_usd.iloc[0] < rows.grid_energy_mwh.iloc[0] * 999.0 / 10  # not the config's $999/MWh


def test_the_exported_fail_safe_fits_the_calendars_lowest_limit(tmp_path):
    from agents.controllers.rules import fit_cap
    from agents.learning.export import safe_action
    from cpm_env.scenario import Site

    rows = [(0, 100), (600, 55.5), (1200, 100), (3600, 90), (7199, 90)]
    site = Site(scenario(write_csv(tmp_path, rows)))
    setpoints, rule = safe_action(site)
    assert setpoints[1] == pytest.approx(float(fit_cap(site.params, 55.5))) and "(55.5 MW" in rule
