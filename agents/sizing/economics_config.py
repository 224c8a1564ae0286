"""Prices and costs that turn a site's KPIs into dollars per year: :class:`EconomicsConfig`.

Default figures and their sources:

- value of compute: $2.00 per H100-hour: the low end of 2025-26 on-demand rental (Lambda lists
  an H100 SXM at $2.49/GPU-h; AWS p5.48xlarge $98.32/h for 8 GPUs = $12.29/GPU-h before its
  June 2025 cut; computespec.pages.dev "Cloud GPU pricing explained"). It is revenue, not margin.
- energy price: synthetic day, mean $40/MWh (EIA Short-Term Energy Outlook, Jan 2024: PJM 2024
  wholesale average ~$39/MWh), a cosine peaking at 19:00 with a $20/MWh amplitude, i.e. a
  top-4-hours-minus-bottom-4-hours spread of ~$38/MWh (typical CAISO nodes ~$30/MWh,
  amperical.ai "TB4 spread", 2025; NP15 $46-58/MWh in early 2025, Energy GPS CAISO battery
  dashboard). The shape is an assumption; a CSV replaces it.
- battery capital cost: $326 per kWh, 4-hour system, 2030 mid case (Cole & Karmakar, "Cost
  Projections for Utility-Scale Battery Storage: 2023 Update", NREL/TP-6A40-85332), all put on
  the kWh ($0/kW) because the cited figure is the whole system's; fixed O&M 2.5% of capital
  per year, 15-year life (NREL ATB utility-scale battery storage); 7% real discount rate
  (OMB Circular A-94's base rate).
- degradation: the scenario's reward weight priced at the value of compute ($40/MWh
  discharged at $2/GPU-h: ~$150/kWh replacement over 2,500-6,000 cycles, DESIGN.md).
- demand response: PJM capacity price $329.17/MW-day (2026/27 Base Residual Auction, the
  price paid to cleared demand response) for the committed curtailment (limit x (1 -
  limit_fraction)), paid in proportion to window compliance (an assumption: PJM's real
  non-performance charges differ); 22 events a year of 2 h = 0.5% of the year's hours
  (Norris et al., "Rethinking Load Growth", Duke Nicholas Institute 2025: 0.25-1%).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from cpm_env.config import FILE_PATH, build_config, check_range, require


@dataclass(frozen=True)
class PriceConfig:
    """The energy price over a day: synthetic (a cosine) or a CSV; a scenario's ``grid.price_calendar``, where it
    has one, takes its place (:func:`agents.sizing.prices.scenario_step_prices_usd_per_mwh`)."""

    kind: Literal["synthetic", "csv"] = "synthetic"
    mean_usd_per_mwh: float = 40.0
    amplitude_usd_per_mwh: float = 20.0
    peak_hour: float = 19.0
    # csv: columns hour (0-24, local time) or timestamp (ISO), and usd_per_mwh; relative to the file stating it
    path: str = field(default="", metadata=FILE_PATH)

    def validate(self) -> None:
        check_range("mean_usd_per_mwh", self.mean_usd_per_mwh, -1e4, 1e5)
        check_range("amplitude_usd_per_mwh", self.amplitude_usd_per_mwh, 0.0, 1e5)
        check_range("peak_hour", self.peak_hour, 0.0, 24.0, hi_open=True)
        if self.kind == "csv":
            require(bool(self.path), "path", self.path, "must name a CSV file with hour or timestamp, usd_per_mwh")


@dataclass(frozen=True)
class EconomicsConfig:
    """Prices and costs that turn a site's KPIs into dollars per year (defaults cited above)."""

    controller: str = "oracle"  # whose operation is priced
    value_of_compute_usd_per_gpu_h: float = 2.0
    price: PriceConfig = field(default_factory=PriceConfig)
    battery_capex_usd_per_kwh: float = 326.0
    battery_capex_usd_per_kw: float = 0.0
    fixed_om_fraction_per_year: float = 0.025
    discount_rate: float = 0.07
    lifetime_years: float = 15.0
    degradation_usd_per_mwh: float | None = None  # None: the scenario's weight x value of compute
    dr_capacity_usd_per_mw_day: float = 329.17
    dr_events_per_year: int = 22
    dr_scenario: str = "cpm_env/DemandResponse-v0"  # the same site with one window a day; "" for none

    def validate(self) -> None:
        require(bool(self.controller), "controller", self.controller, "must name a controller")
        check_range("value_of_compute_usd_per_gpu_h", self.value_of_compute_usd_per_gpu_h, 0.0, 1e4)
        check_range("battery_capex_usd_per_kwh", self.battery_capex_usd_per_kwh, 0.0, 1e5)
        check_range("battery_capex_usd_per_kw", self.battery_capex_usd_per_kw, 0.0, 1e5)
        check_range("fixed_om_fraction_per_year", self.fixed_om_fraction_per_year, 0.0, 1.0)
        check_range("discount_rate", self.discount_rate, 0.0, 1.0)
        check_range("lifetime_years", self.lifetime_years, 1.0, 100.0)
        if self.degradation_usd_per_mwh is not None:
            check_range("degradation_usd_per_mwh", self.degradation_usd_per_mwh, 0.0, 1e5)
        check_range("dr_capacity_usd_per_mw_day", self.dr_capacity_usd_per_mw_day, 0.0, 1e6)
        check_range("dr_events_per_year", self.dr_events_per_year, 0, 365)


def economics_from_dict(data: Mapping[str, Any] | None, source: str = "<dict>",
                        prefix: str = "economics") -> EconomicsConfig:
    """Build and check an :class:`EconomicsConfig` (None: the defaults); ConfigError names the source, field, value."""
    if data is None:
        return EconomicsConfig()
    return build_config(EconomicsConfig, data, source, prefix)
