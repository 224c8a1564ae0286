"""What a behind-the-meter battery is worth per year, split by where the value comes from.

The battery's value on an AI site is the compute it enables, not energy arbitrage. This
module prices one site's episodes with and without its battery (same seeds, so the same
workload) and splits the difference into the parts listed in :mod:`agents.sizing.value_split`.
They sum to ``total_usd_per_year`` (a test checks it); the battery's annualized capital and
fixed O&M cost (``battery_cost_usd_per_year``) is reported beside it, and ``net`` is the
difference. ``arbitrage_potential_usd_per_year`` is what the same battery would earn doing
nothing but perfect-foresight arbitrage on the price series, ignoring wear (an LP): a generous
yardstick for "what is the battery worth in energy" (with wear at $40/MWh discharged, a $38/MWh
daily spread at 85% round trip earns nothing).

Energy is priced at the scenario's ``grid.price_calendar`` when it has one (each step's price from
the calendar's first row: :func:`cpm_env.calendars.step_prices_usd_per_mwh`, the env's series too),
else at ``EconomicsConfig.price``.

Episodes are annualized as days: ``dr_events_per_year`` days with one demand-response
window (from the DR scenario), the rest ordinary days. Compute units are the env's: one
unit is 1 MW of GPUs at full speed for one hour, i.e. ``1e6 / tdp_w`` GPU-hours.

The parts live in their own modules: :mod:`agents.sizing.economics_config` (the figures and
their sources), :mod:`~agents.sizing.units`, :mod:`~agents.sizing.battery_cost`,
:mod:`~agents.sizing.prices`, :mod:`~agents.sizing.arbitrage` and :mod:`~agents.sizing.value_split`;
this module prices the episodes and puts them together (its names re-export theirs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from agents.sizing.arbitrage import arbitrage_potential_usd
from agents.sizing.battery_cost import battery_cost_usd_per_year, capital_recovery_factor
from agents.sizing.economics_config import EconomicsConfig, PriceConfig, economics_from_dict
from agents.sizing.prices import (
    read_price_csv,
    scenario_step_prices_usd_per_mwh,
    step_prices_usd_per_mwh,
    synthetic_price_usd_per_mwh,
)
from agents.sizing.units import (
    DAYS_PER_YEAR,
    HOURS_PER_DAY,
    degradation_usd_per_mwh,
    gpu_hours_per_compute_unit,
    usd_per_compute_unit,
)
from agents.sizing.value_split import (
    COMPONENT_LABELS,
    COMPONENTS,
    DayKpis,
    day_value_usd,
    dr_payment_usd_per_year,
    value_split,
)
from cpm_env.config import ScenarioConfig, resolve_scenario

__all__ = ["COMPONENTS", "COMPONENT_LABELS", "BatteryValue", "DayKpis", "EconomicsConfig", "PriceConfig",
           "arbitrage_potential_usd", "battery_cost_usd_per_year", "battery_value", "capital_recovery_factor",
           "day_kpis", "day_value_usd", "degradation_usd_per_mwh", "dr_payment_usd_per_year", "economics_from_dict",
           "gpu_hours_per_compute_unit", "priced_episodes", "read_price_csv", "scenario_step_prices_usd_per_mwh",
           "step_prices_usd_per_mwh", "synthetic_price_usd_per_mwh", "usd_per_compute_unit", "value_markdown",
           "value_split", "without_battery"]

NO_BATTERY = {"battery": {"capacity_mwh": 0.0, "power_mw": 0.0}}


def priced_episodes(controller: str, cfg: ScenarioConfig, seeds: list[int], price_usd_per_mwh: np.ndarray
                    ) -> pd.DataFrame:
    """One row of KPIs per seed (:func:`agents.evaluation.runner.run_controller`'s, with ``energy_cost_usd``)."""
    from agents.evaluation.runner import make_controller, run_controller
    from cpm_env.vec_env import CpmVecEnv

    venv = CpmVecEnv(cfg, len(seeds))
    return run_controller(make_controller(controller, venv.site), venv, seeds, controller,
                          price_usd_per_mwh=price_usd_per_mwh)


def day_kpis(rows: pd.DataFrame, price_usd_per_mwh: np.ndarray, episode_h: float) -> DayKpis:
    """Mean per-episode totals of priced episodes."""
    return DayKpis(float(rows.compute_delivered.mean()), float(rows.grid_energy_mwh.mean()),
                   float(rows.energy_cost_usd.mean()), float(np.mean(price_usd_per_mwh)),
                   float(rows.battery_discharged_mwh.mean()), float(rows.dr_compliance_pct.mean()), episode_h)


def without_battery(scenario: str) -> ScenarioConfig:
    """The scenario's config with the battery removed (capacity and power 0)."""
    return resolve_scenario(scenario, NO_BATTERY)


class PricedDay(NamedTuple):
    """One kind of day priced with and without the battery."""

    config: ScenarioConfig
    price_usd_per_mwh: np.ndarray
    kpis: tuple[DayKpis, DayKpis]  # (with battery, without)
    episodes: list[pd.DataFrame]


def price_day(day: str, scenario: str, seeds: list[int], econ: EconomicsConfig, progress: Any = None) -> PricedDay:
    """Price ``econ.controller``'s episodes of ``scenario`` with and without its battery (same seeds)."""
    cfg = resolve_scenario(scenario)
    prices = scenario_step_prices_usd_per_mwh(econ.price, cfg)  # the scenario's price calendar, else econ.price
    pair, frames = [], []
    for battery, c in (("with", cfg), ("without", without_battery(scenario))):
        rows = priced_episodes(econ.controller, c, list(seeds), prices)
        pair.append(day_kpis(rows, prices, cfg.duration_h))
        frames.append(rows.assign(day=day, battery=battery))
        if progress is not None:
            progress.update(1)
    return PricedDay(cfg, prices, (pair[0], pair[1]), frames)


@dataclass
class BatteryValue:
    """A battery's yearly value on one site: the split, its cost, and the episodes behind it."""

    scenario: str
    capacity_mwh: float
    power_mw: float
    split: dict[str, float]
    battery_cost_usd_per_year: float
    arbitrage_potential_usd_per_year: float
    usd_per_compute_unit: float
    degradation_usd_per_mwh: float
    episodes: pd.DataFrame

    @property
    def net_usd_per_year(self) -> float:
        """Total operating value less the battery's yearly cost."""
        return self.split["total_usd_per_year"] - self.battery_cost_usd_per_year

    @property
    def compute_to_arbitrage(self) -> float:
        """Compute value / realized arbitrage (nan unless arbitrage earned something)."""
        arb = self.split["arbitrage_usd_per_year"]
        return self.split["compute_usd_per_year"] / arb if arb > 0 else float("nan")

    @property
    def compute_to_arbitrage_potential(self) -> float:
        """Compute value / what the battery could earn by arbitrage alone (wear ignored)."""
        pot = self.arbitrage_potential_usd_per_year
        return self.split["compute_usd_per_year"] / pot if pot > 0 else float("nan")


def battery_value(scenario: str, seeds: list[int], econ: EconomicsConfig, progress: Any = None) -> BatteryValue:
    """Price ``econ.controller`` on ``scenario`` with and without its battery (and on the
    demand-response scenario's days), and split the battery's yearly value.

    ``progress`` (a tqdm bar) advances per run.
    """
    cases = {"ordinary": scenario}
    if econ.dr_scenario and econ.dr_events_per_year > 0:
        cases["demand_response"] = econ.dr_scenario
    days = {day: price_day(day, scen, seeds, econ, progress) for day, scen in cases.items()}
    ordinary, dr_day = days["ordinary"], days.get("demand_response")
    site_cfg = ordinary.config
    usd_unit = usd_per_compute_unit(econ.value_of_compute_usd_per_gpu_h, site_cfg)
    deg = degradation_usd_per_mwh(econ, site_cfg)
    committed_mw = 0.0
    if dr_day is not None:
        dr_grid = dr_day.config.grid
        committed_mw = dr_grid.limit_mw * (1.0 - dr_grid.demand_response.limit_fraction)
    split = value_split(ordinary.kpis, dr_day.kpis if dr_day else None, committed_mw, usd_unit, econ, deg)
    bat = site_cfg.battery
    potential = arbitrage_potential_usd(ordinary.price_usd_per_mwh, site_cfg.dt_h, bat.capacity_mwh, bat.power_mw,
                                        bat.soc_min, bat.soc_max, bat.soc_init, bat.round_trip_efficiency,
                                        0.0)  # no wear: generous
    return BatteryValue(site_cfg.id, bat.capacity_mwh, bat.power_mw, split,
                        battery_cost_usd_per_year(bat.capacity_mwh, bat.power_mw, econ),
                        potential * DAYS_PER_YEAR * HOURS_PER_DAY / site_cfg.duration_h, usd_unit, deg,
                        pd.concat([f for d in days.values() for f in d.episodes], ignore_index=True))


def value_markdown(value: BatteryValue, econ: EconomicsConfig) -> str:
    """The value split as a markdown table, with the cost, net value and the two ratios."""
    s = value.split
    musd = lambda v: f"{v / 1e6:+,.2f}"  # noqa: E731
    total = s["total_usd_per_year"]
    lines = [f"Battery value on {value.scenario} ({value.capacity_mwh:g} MWh / {value.power_mw:g} MW), "
             f"operated by {econ.controller}, against the same site without it (M$ per year):", "",
             "| component | M$ / year | share of total |", "|---|---|---|"]
    for key in COMPONENTS:
        share = 100 * s[key] / total if total else float("nan")
        lines.append(f"| {COMPONENT_LABELS[key]} | {musd(s[key])} | {share:.1f}% |")
    lines += [f"| **total operating value** | **{musd(total)}** | 100% |",
              f"| battery capital (annualized) + fixed O&M | {musd(-value.battery_cost_usd_per_year)} | |",
              f"| **net value** | **{musd(value.net_usd_per_year)}** | |", "",
              f"- compute value / realized arbitrage: {value.compute_to_arbitrage:,.0f}; compute value / arbitrage "
              f"potential (the same battery doing nothing but perfect-foresight arbitrage, wear ignored: "
              f"{musd(value.arbitrage_potential_usd_per_year)} M$/yr): {value.compute_to_arbitrage_potential:,.0f}",
              f"- the site's own demand-response payment with the battery: "
              f"{musd(s['site_dr_payment_usd_per_year'])} M$/yr ({econ.dr_events_per_year} event days a year)",
              f"- prices: {econ.value_of_compute_usd_per_gpu_h:g} $/GPU-h (one compute unit = "
              f"{value.usd_per_compute_unit:,.0f} $), degradation {value.degradation_usd_per_mwh:.1f} $/MWh "
              f"discharged, battery {econ.battery_capex_usd_per_kwh:g} $/kWh + {econ.battery_capex_usd_per_kw:g} $/kW, "
              f"{100 * econ.discount_rate:g}% over {econ.lifetime_years:g} years"]
    return "\n".join(lines)
