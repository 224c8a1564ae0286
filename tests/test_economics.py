"""Battery economics: units, annualization, and a value split whose parts sum to its total."""

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import cpm_env
from agents.sizing import economics as ec
from cpm_env.config import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import evaluate  # noqa: E402


def test_compute_unit_is_a_megawatt_hour_of_gpus():
    cfg = cpm_env.load_scenario(cpm_env.DEFAULT_SCENARIO)
    assert ec.gpu_hours_per_compute_unit(cfg) == pytest.approx(1e6 / 700)  # H100 SXM at 700 W
    assert ec.usd_per_compute_unit(2.0, cfg) == pytest.approx(2e6 / 700)
    # the scenario's degradation weight at $2/GPU-h is its comment's $40/MWh
    assert ec.degradation_usd_per_mwh(ec.EconomicsConfig(), cfg) == pytest.approx(40.0, rel=0.01)
    assert ec.degradation_usd_per_mwh(ec.EconomicsConfig(degradation_usd_per_mwh=25.0), cfg) == 25.0


def test_capital_recovery_and_battery_cost():
    assert ec.capital_recovery_factor(0.0, 10) == pytest.approx(0.1)
    assert ec.capital_recovery_factor(0.07, 15) == pytest.approx(0.10979, abs=1e-5)
    econ = ec.EconomicsConfig(battery_capex_usd_per_kwh=300, battery_capex_usd_per_kw=100, discount_rate=0.0,
                              lifetime_years=10, fixed_om_fraction_per_year=0.0)
    # 50 MWh x 300 $/kWh + 25 MW x 100 $/kW = 17.5 M$, over 10 years at 0%
    assert ec.battery_cost_usd_per_year(50, 25, econ) == pytest.approx(1.75e6)
    assert ec.battery_cost_usd_per_year(0, 0, econ) == 0


def test_prices_synthetic_and_csv(tmp_path):
    price = ec.PriceConfig(mean_usd_per_mwh=40, amplitude_usd_per_mwh=20, peak_hour=19)
    p = ec.step_prices_usd_per_mwh(price, 0.0, 1.0, 24)
    assert p.mean() == pytest.approx(40) and p.argmax() == 19 and p.max() == pytest.approx(60)
    csv = tmp_path / "prices.csv"
    csv.write_text("hour,usd_per_mwh\n0,10\n12,50\n")
    p = ec.step_prices_usd_per_mwh(ec.PriceConfig(kind="csv", path=str(tmp_path / "prices.csv")), 0.0, 6.0, 4)
    np.testing.assert_allclose(p, [10, 30, 50, 30])  # periodic interpolation over the day
    csv.write_text("timestamp,usd_per_mwh\n2024-01-01T00:00,10\n2024-01-01T12:00,oops\n")
    with pytest.raises(ConfigError, match=r"prices\.csv: row 3, column usd_per_mwh = 'oops': must be a number$"):
        ec.read_price_csv(csv)


def test_arbitrage_potential():
    flat = np.full(96, 40.0)
    assert ec.arbitrage_potential_usd(flat, 0.25, 50, 25, 0.1, 0.9, 0.5, 0.85, 0.0) == pytest.approx(0, abs=1e-6)
    spread = np.r_[np.full(48, 20.0), np.full(48, 60.0)]  # cheap half day, dear half day
    earned = ec.arbitrage_potential_usd(spread, 0.25, 50, 25, 0.1, 0.9, 0.5, 0.85, 0.0)
    # at most one usable capacity (40 MWh) bought at 20 and sold at 60, less the losses
    assert 0 < earned < 40 * (60 - 20)
    worn = ec.arbitrage_potential_usd(spread, 0.25, 50, 25, 0.1, 0.9, 0.5, 0.85, 30.0)
    assert 0 <= worn < earned
    assert ec.arbitrage_potential_usd(spread, 0.25, 0, 0, 0.1, 0.9, 0.5, 0.85, 0.0) == 0


kpis = st.builds(ec.DayKpis, st.floats(0, 5000), st.floats(0, 5000), st.floats(-1e6, 1e6), st.floats(-100, 500),
                 st.floats(0, 1000), st.floats(0, 100), st.sampled_from([1.0, 24.0]))


@given(kpis, kpis, kpis, kpis, st.floats(0, 100), st.floats(0, 1e4), st.integers(0, 365), st.booleans())
def test_value_split_sums_to_its_total(ow, oo, dw, do, committed_mw, usd_per_unit, dr_days, with_dr):
    do = do._replace(episode_h=dw.episode_h)
    econ = ec.EconomicsConfig(dr_events_per_year=dr_days)
    split = ec.value_split((ow, oo), (dw, do) if with_dr else None, committed_mw, usd_per_unit, econ, 40.0)
    total = sum(split[k] for k in ec.COMPONENTS)
    assert math.isclose(split["total_usd_per_year"], total, rel_tol=1e-9, abs_tol=1e-6)
    if not with_dr or dr_days == 0:
        assert split["demand_response_usd_per_year"] == 0


def test_value_split_signs_and_units():
    """More compute and a flat price: compute is the gain, arbitrage is exactly 0, wear a cost."""
    without = ec.DayKpis(1000.0, 2000.0, 40.0 * 2000.0, 40.0, 0.0, float("nan"), 24.0)
    with_b = ec.DayKpis(1100.0, 2100.0, 40.0 * 2100.0, 40.0, 300.0, float("nan"), 24.0)
    split = ec.value_split((with_b, without), None, 0.0, 2857.0, ec.EconomicsConfig(), 40.0)
    assert split["compute_usd_per_year"] == pytest.approx(100 * 2857.0 * 365)
    assert split["energy_for_compute_usd_per_year"] == pytest.approx(-100 * 40.0 * 365)
    assert split["arbitrage_usd_per_year"] == pytest.approx(0.0, abs=1e-6)
    assert split["degradation_usd_per_year"] == pytest.approx(-300 * 40.0 * 365)
    # the same import moved from a $60 hour to a $20 hour is arbitrage, not volume
    shifted = with_b._replace(energy_cost_usd=with_b.energy_cost_usd - 10 * (60 - 20))
    split2 = ec.value_split((shifted, without), None, 0.0, 2857.0, ec.EconomicsConfig(), 40.0)
    assert split2["arbitrage_usd_per_year"] == pytest.approx(400.0 * 365)
    # a 1-hour episode is a 24th of a day
    hourly = ec.value_split((with_b._replace(episode_h=1.0), without._replace(episode_h=1.0)), None, 0.0, 2857.0,
                            ec.EconomicsConfig(), 40.0)
    assert hourly["compute_usd_per_year"] == pytest.approx(24 * split["compute_usd_per_year"])
    # a compliant window earns the capacity payment, a half-compliant one half of it
    econ = ec.EconomicsConfig(dr_capacity_usd_per_mw_day=300.0, dr_events_per_year=10)
    assert ec.dr_payment_usd_per_year(30.0, 100.0, econ) == pytest.approx(30 * 300 * 365)
    assert ec.dr_payment_usd_per_year(30.0, 50.0, econ) == pytest.approx(30 * 300 * 365 / 2)


@pytest.mark.parametrize("block, match", [
    ({"discount_rate": 2.0}, r"^sweep\.yml: economics\.discount_rate = 2\.0: must be >= 0 and <= 1$"),
    ({"price": {"kind": "futures"}}, r"^sweep\.yml: economics\.price\.kind = 'futures': must be one of"),
    ({"colour": 1}, r"^sweep\.yml: economics\.colour = '\(unknown key\)': allowed keys: controller, "),
    ([1, 2], r"^sweep\.yml: economics = \[1, 2\]: must be a mapping of EconomicsConfig fields$"),
])
def test_bad_economics_field_is_a_one_line_error(block, match):
    with pytest.raises(ConfigError, match=match):
        ec.economics_from_dict(block, "sweep.yml")


def test_economics_defaults_and_overrides():
    assert ec.economics_from_dict(None) == ec.EconomicsConfig()
    assert ec.economics_from_dict({"discount_rate": 0.05}).discount_rate == 0.05


@pytest.fixture
def short_sites(tmp_path):
    """2-hour days of the default site and of the DR site, its window moved inside the episode
    (0:30-1:30, announced at 0:15): both extend the shipped scenarios by registered id."""
    site = tmp_path / "short.yml"
    site.write_text("id: Short-v0\nextends: DataCenter-v0\nduration_h: 2.0\n")
    dr_site = tmp_path / "short_dr.yml"
    dr_site.write_text(yaml.safe_dump({"id": "ShortDR-v0", "extends": "DemandResponse-v0", "duration_h": 2.0,
                                       "grid": {"demand_response": {"earliest_start_h": 0.5, "latest_start_h": 0.5,
                                                                    "duration_h": 1.0, "notice_h": 0.25}}}))
    return site, dr_site


def test_battery_value_on_a_short_site(short_sites):
    """End to end on 2-hour days: the split sums to its total, the battery adds compute, and the DR
    day's window (inside the episode) is scored and paid for."""
    site, dr_site = short_sites
    econ = ec.EconomicsConfig(controller="greedy", dr_scenario=str(dr_site))
    value = ec.battery_value(str(site), [3, 4], econ)
    split = value.split
    assert split["total_usd_per_year"] == pytest.approx(sum(split[k] for k in ec.COMPONENTS))
    assert split["compute_usd_per_year"] > 0 and split["degradation_usd_per_year"] < 0
    assert value.battery_cost_usd_per_year > 0 and value.arbitrage_potential_usd_per_year >= 0
    assert set(value.episodes.day) == {"ordinary", "demand_response"} and len(value.episodes) == 2 * 2 * 2
    by_day = value.episodes.groupby("day").dr_compliance_pct
    assert by_day.apply(lambda c: c.isna().all())["ordinary"]  # no window on an ordinary day
    assert by_day.apply(lambda c: c.notna().all())["demand_response"]  # the window lies inside every DR episode
    dr_with = value.episodes[(value.episodes.day == "demand_response") & (value.episodes.battery == "with")]
    committed_mw = 100.0 * (1 - 0.7)  # limit x (1 - limit_fraction)
    assert split["site_dr_payment_usd_per_year"] == pytest.approx(
        committed_mw * econ.dr_capacity_usd_per_mw_day * 365 * dr_with.dr_compliance_pct.mean() / 100)
    assert split["site_dr_payment_usd_per_year"] > 0
    text = ec.value_markdown(value, econ)
    assert "compute enabled" in text and "net value" in text


def test_sweep_with_economics_writes_the_value_split(tmp_path, short_sites, capsys):
    site, dr_site = short_sites
    (tmp_path / "prices.csv").write_text("hour,usd_per_mwh\n0,10\n12,50\n")  # relative to the sweep file
    sweep = {"name": "money", "scenario": str(site), "oversubscription": [1.3], "battery_hours": [0, 0.5],
             "controllers": ["static_cap"], "seeds": "3-4",
             "economics": {"controller": "greedy", "dr_scenario": str(dr_site),
                           "price": {"kind": "csv", "path": "prices.csv"}}}
    path = tmp_path / "sweep.yml"
    path.write_text(yaml.safe_dump(sweep))
    out = tmp_path / "out"
    assert evaluate.main(["--sweep", str(path), "--out", str(out), "--workers", "1"]) == 0
    text = (out / "economics.md").read_text()
    assert "compute enabled" in text and "demand-response payments" in text and "net value" in text
    assert "compute enabled" in capsys.readouterr().out
    episodes = pd.read_csv(out / "economics.csv")
    assert len(episodes) == 2 * 2 * 2 and {"energy_cost_usd", "battery_discharged_mwh"} <= set(episodes.columns)


@pytest.mark.parametrize("economics, needle", [
    ({"discount_rate": -1}, "economics.discount_rate"),
    ({"controller": "nope"}, "economics.controller"),
    ({"price": {"kind": "csv", "path": "missing.csv"}}, "missing.csv"),
])
def test_bad_economics_block_is_a_one_line_error_and_writes_nothing(tmp_path, short_sites, capsys, economics,
                                                                   needle):
    site, _ = short_sites
    path = tmp_path / "sweep.yml"
    path.write_text(yaml.safe_dump({"scenario": str(site), "oversubscription": [1.3], "battery_hours": [0],
                                    "controllers": ["static_cap"], "economics": economics}))
    out = tmp_path / "out"
    assert evaluate.main(["--sweep", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and needle in err and str(path) in err
    assert not out.exists()
