"""What a battery costs per year: annualized capital plus fixed O&M."""

from __future__ import annotations

from agents.sizing.economics_config import EconomicsConfig
from agents.sizing.units import KW_PER_MW


def capital_recovery_factor(discount_rate: float, lifetime_years: float) -> float:
    """Share of a capital cost paid each year to repay it with interest over its life."""
    if discount_rate == 0:
        return 1.0 / lifetime_years
    growth = (1.0 + discount_rate) ** lifetime_years
    return discount_rate * growth / (growth - 1.0)


def battery_cost_usd_per_year(capacity_mwh: float, power_mw: float, econ: EconomicsConfig) -> float:
    """Annualized capital cost plus fixed O&M of a battery."""
    capex_usd = (capacity_mwh * KW_PER_MW * econ.battery_capex_usd_per_kwh
                 + power_mw * KW_PER_MW * econ.battery_capex_usd_per_kw)
    crf = capital_recovery_factor(econ.discount_rate, econ.lifetime_years)
    return capex_usd * (crf + econ.fixed_om_fraction_per_year)
