"""A battery's yearly value split by where it comes from, from per-day KPIs with and without it.

=======================  ===================================================================
compute enabled          extra compute delivered x value of compute ($ per GPU-hour)
energy for that compute  extra grid energy (compute and battery losses) at the mean price
energy arbitrage         the rest of the energy bill's change: import moved between cheap
                         and dear hours (``sum((p_t - mean p) * delta import_t)``)
demand-response payment  capacity payment for a committed curtailment, scaled by compliance
degradation              battery wear per MWh discharged
=======================  ===================================================================

They sum to ``total_usd_per_year`` (a test checks it).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from agents.sizing.economics_config import EconomicsConfig
from agents.sizing.units import DAYS_PER_YEAR, HOURS_PER_DAY

COMPONENTS = ("compute_usd_per_year", "energy_for_compute_usd_per_year", "arbitrage_usd_per_year",
              "demand_response_usd_per_year", "degradation_usd_per_year")
COMPONENT_LABELS = {
    "compute_usd_per_year": "compute enabled",
    "energy_for_compute_usd_per_year": "energy for that compute (extra MWh at the mean price)",
    "arbitrage_usd_per_year": "energy arbitrage (import moved to cheaper hours)",
    "demand_response_usd_per_year": "demand-response payments",
    "degradation_usd_per_year": "battery degradation",
}


class DayKpis(NamedTuple):
    """Mean per-episode totals of one kind of day, for the site with or without its battery."""

    compute_units: float
    grid_energy_mwh: float
    energy_cost_usd: float  # sum over steps of price x import x dt
    mean_price_usd_per_mwh: float  # time-weighted over the episode
    discharged_mwh: float
    dr_compliance_pct: float  # nan where the day has no window
    episode_h: float


def day_value_usd(with_battery: DayKpis, without: DayKpis, usd_per_unit: float,
                  degradation_usd_per_mwh: float) -> dict[str, float]:
    """Per-day value of the battery (no DR payment: that is a yearly capacity payment)."""
    per_day = HOURS_PER_DAY / with_battery.episode_h
    extra_energy_mwh = with_battery.grid_energy_mwh - without.grid_energy_mwh
    extra_cost_usd = with_battery.energy_cost_usd - without.energy_cost_usd
    volume_usd = with_battery.mean_price_usd_per_mwh * extra_energy_mwh
    return {
        "compute_usd_per_year": per_day * usd_per_unit * (with_battery.compute_units - without.compute_units),
        "energy_for_compute_usd_per_year": -per_day * volume_usd,
        "arbitrage_usd_per_year": -per_day * (extra_cost_usd - volume_usd),
        "degradation_usd_per_year": -per_day * degradation_usd_per_mwh
        * (with_battery.discharged_mwh - without.discharged_mwh),
    }


def dr_payment_usd_per_year(committed_mw: float, compliance_pct: float, econ: EconomicsConfig) -> float:
    """Capacity payment for ``committed_mw`` of curtailment, in proportion to compliance."""
    if econ.dr_events_per_year == 0 or not np.isfinite(compliance_pct):
        return 0.0
    return committed_mw * econ.dr_capacity_usd_per_mw_day * DAYS_PER_YEAR * compliance_pct / 100.0


def value_split(ordinary: tuple[DayKpis, DayKpis], dr_day: tuple[DayKpis, DayKpis] | None, committed_mw: float,
                usd_per_unit: float, econ: EconomicsConfig, degradation_usd_mwh: float) -> dict[str, float]:
    """The battery's yearly value by component, their total, and the payments' context.

    ``ordinary`` and ``dr_day`` are (with battery, without) pairs; ``dr_day`` None means no
    demand-response days. Each day-value is scaled by its days per year.
    """
    n_dr = econ.dr_events_per_year if dr_day is not None else 0
    days = [(ordinary, DAYS_PER_YEAR - n_dr)] + ([(dr_day, n_dr)] if n_dr else [])
    split = dict.fromkeys(COMPONENTS, 0.0)
    for (with_b, without), n_days in days:
        for key, usd_per_day in day_value_usd(with_b, without, usd_per_unit, degradation_usd_mwh).items():
            split[key] += usd_per_day * n_days
    pay_with = pay_without = 0.0
    if n_dr:
        pay_with = dr_payment_usd_per_year(committed_mw, dr_day[0].dr_compliance_pct, econ)
        pay_without = dr_payment_usd_per_year(committed_mw, dr_day[1].dr_compliance_pct, econ)
    split["demand_response_usd_per_year"] = pay_with - pay_without
    split["total_usd_per_year"] = sum(split[k] for k in COMPONENTS)
    split["site_dr_payment_usd_per_year"] = pay_with
    return split
