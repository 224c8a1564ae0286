"""What a behind-the-meter battery is worth per year, split by where the value comes from.

The battery's value on an AI site is the compute it enables, not energy arbitrage. This
module prices one site's episodes with and without its battery (same seeds, so the same
workload) and splits the difference into:

=======================  ===================================================================
compute enabled          extra compute delivered x value of compute ($ per GPU-hour)
energy for that compute  extra grid energy (compute and battery losses) at the mean price
energy arbitrage         the rest of the energy bill's change: import moved between cheap
                         and dear hours (``sum((p_t - mean p) * delta import_t)``)
demand-response payment  capacity payment for a committed curtailment, scaled by compliance
degradation              battery wear per MWh discharged
=======================  ===================================================================

They sum to ``total_usd_per_year`` (a test checks it); the battery's annualized capital and
fixed O&M cost (``battery_cost_usd_per_year``) is reported beside it, and ``net`` is the
difference. ``arbitrage_potential_usd_per_year`` is what the same battery would earn doing
nothing but perfect-foresight arbitrage on the price series, ignoring wear (an LP): a generous
yardstick for "what is the battery worth in energy" (with wear at $40/MWh discharged, a $38/MWh
daily spread at 85% round trip earns nothing).

Episodes are annualized as days: ``dr_events_per_year`` days with one demand-response
window (from the DR scenario), the rest ordinary days. Compute units are the env's: one
unit is 1 MW of GPUs at full speed for one hour, i.e. ``1e6 / tdp_w`` GPU-hours.

Default figures and their sources (every one is in :class:`EconomicsConfig`):

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

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, NamedTuple

import numpy as np
import pandas as pd

from cpm_env.config import ConfigError, ScenarioConfig, _build, _FieldError, _in_range, _require

HOURS_PER_DAY = 24.0
DAYS_PER_YEAR = 365.0
W_PER_MW = 1e6
KW_PER_MW = 1e3


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class PriceConfig:
    """The energy price over a day: synthetic (a cosine) or a CSV."""

    kind: Literal["synthetic", "csv"] = "synthetic"
    mean_usd_per_mwh: float = 40.0
    amplitude_usd_per_mwh: float = 20.0
    peak_hour: float = 19.0
    path: str = ""  # csv: columns hour (0-24, local time) or timestamp (ISO), and usd_per_mwh

    def validate(self) -> None:
        _in_range("mean_usd_per_mwh", self.mean_usd_per_mwh, -1e4, 1e5)
        _in_range("amplitude_usd_per_mwh", self.amplitude_usd_per_mwh, 0.0, 1e5)
        _in_range("peak_hour", self.peak_hour, 0.0, 24.0, hi_open=True)
        if self.kind == "csv":
            _require(bool(self.path), "path", self.path, "must name a CSV file with hour or timestamp, usd_per_mwh")


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
        _require(bool(self.controller), "controller", self.controller, "must name a controller")
        _in_range("value_of_compute_usd_per_gpu_h", self.value_of_compute_usd_per_gpu_h, 0.0, 1e4)
        _in_range("battery_capex_usd_per_kwh", self.battery_capex_usd_per_kwh, 0.0, 1e5)
        _in_range("battery_capex_usd_per_kw", self.battery_capex_usd_per_kw, 0.0, 1e5)
        _in_range("fixed_om_fraction_per_year", self.fixed_om_fraction_per_year, 0.0, 1.0)
        _in_range("discount_rate", self.discount_rate, 0.0, 1.0)
        _in_range("lifetime_years", self.lifetime_years, 1.0, 100.0)
        if self.degradation_usd_per_mwh is not None:
            _in_range("degradation_usd_per_mwh", self.degradation_usd_per_mwh, 0.0, 1e5)
        _in_range("dr_capacity_usd_per_mw_day", self.dr_capacity_usd_per_mw_day, 0.0, 1e6)
        _in_range("dr_events_per_year", self.dr_events_per_year, 0, 365)


def economics_from_dict(data: Mapping[str, Any] | None, source: str = "<dict>",
                        prefix: str = "economics") -> EconomicsConfig:
    """Build and check an :class:`EconomicsConfig`; ConfigError names the source, field, value."""
    if data is None:
        return EconomicsConfig()
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {prefix} = {data!r}: must be a mapping of EconomicsConfig fields")
    try:
        return _build(EconomicsConfig, data, prefix, source)
    except _FieldError as err:
        raise ConfigError(f"{source}: {err.path} = {err.value!r}: {err.allowed}") from None


# --------------------------------------------------------------------------- unit conversions


def gpu_hours_per_compute_unit(cfg: ScenarioConfig) -> float:
    """GPU-hours in one compute unit (1 MW of GPUs at full speed for 1 h): ``1e6 / tdp_w``,
    share-weighted over GPU classes (exact when the classes share a TDP, as the shipped ones do)."""
    return sum(c.share * W_PER_MW / c.tdp_w for c in cfg.site.gpu_classes)


def usd_per_compute_unit(value_of_compute_usd_per_gpu_h: float, cfg: ScenarioConfig) -> float:
    """Dollar value of one compute unit."""
    return value_of_compute_usd_per_gpu_h * gpu_hours_per_compute_unit(cfg)


def degradation_usd_per_mwh(econ: EconomicsConfig, cfg: ScenarioConfig) -> float:
    """Battery wear per MWh discharged: the configured figure, or the scenario's reward weight
    (compute units per MWh) at the value of compute."""
    if econ.degradation_usd_per_mwh is not None:
        return econ.degradation_usd_per_mwh
    return cfg.reward.degradation_per_mwh * usd_per_compute_unit(econ.value_of_compute_usd_per_gpu_h, cfg)


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


# --------------------------------------------------------------------------- energy prices


def synthetic_price_usd_per_mwh(hour_of_day: np.ndarray, price: PriceConfig) -> np.ndarray:
    """Diurnal price: ``mean + amplitude * cos(2 pi (h - peak_hour) / 24)``."""
    phase = 2.0 * np.pi * (np.asarray(hour_of_day, float) - price.peak_hour) / HOURS_PER_DAY
    return price.mean_usd_per_mwh + price.amplitude_usd_per_mwh * np.cos(phase)


def read_price_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A price CSV as an average day: (hour of day, $/MWh), sorted by hour.

    Columns: ``hour`` (0-24) or ``timestamp`` (ISO date-times), and ``usd_per_mwh``. Several
    days are averaged by hour of day (which understates the day-to-day spread arbitrage
    could use). Bad input is a one-line ConfigError naming the file, row and column.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found: the price CSV needs hour or timestamp, usd_per_mwh")
    frame = pd.read_csv(path)
    if "usd_per_mwh" not in frame.columns or not ({"hour", "timestamp"} & set(frame.columns)):
        raise ConfigError(f"{path}: columns = {list(frame.columns)}: need hour or timestamp, and usd_per_mwh")
    price = pd.to_numeric(frame.usd_per_mwh, errors="coerce")
    if "hour" in frame.columns:
        hours = pd.to_numeric(frame.hour, errors="coerce")
        column = "hour"
    else:
        stamps = pd.to_datetime(frame.timestamp, errors="coerce")
        hours = stamps.dt.hour + stamps.dt.minute / 60.0 + stamps.dt.second / 3600.0
        column = "timestamp"
    for name, values in ((column, hours), ("usd_per_mwh", price)):
        bad = ~np.isfinite(values.to_numpy(float))
        if bad.any():
            row = int(np.argmax(bad)) + 2  # 1-based, after the header
            raise ConfigError(f"{path}: row {row}, column {name} = {frame[name].iat[row - 2]!r}: must be a number"
                              + (" (hour 0-24) or ISO time" if name == column else ""))
    if ((hours < 0) | (hours > HOURS_PER_DAY)).any():
        raise ConfigError(f"{path}: column {column}: hours must lie in [0, 24]")
    day = pd.DataFrame({"hour": hours % HOURS_PER_DAY, "usd_per_mwh": price}).groupby("hour").usd_per_mwh.mean()
    return day.index.to_numpy(float), day.to_numpy(float)


def step_prices_usd_per_mwh(price: PriceConfig, start_hour: float, dt_h: float, n_steps: int) -> np.ndarray:
    """The price of each control step of an episode (periodic over the day)."""
    hours = (start_hour + dt_h * np.arange(n_steps)) % HOURS_PER_DAY
    if price.kind == "synthetic":
        return synthetic_price_usd_per_mwh(hours, price)
    day_h, day_usd = read_price_csv(price.path)
    return np.interp(hours, day_h, day_usd, period=HOURS_PER_DAY)


def arbitrage_potential_usd(price_usd_per_mwh: np.ndarray, dt_h: float, capacity_mwh: float, power_mw: float,
                            soc_min: float, soc_max: float, soc_init: float, round_trip_efficiency: float,
                            degradation_usd_per_mwh: float) -> float:
    """Most a battery could earn over the series by arbitrage alone (perfect foresight, the
    stored energy back to its start at the end, wear per MWh discharged): an LP on Clarabel."""
    from agents.controllers.lp import LinearProgram

    if capacity_mwh <= 0 or power_mw <= 0:
        return 0.0
    n = len(price_usd_per_mwh)
    eta = math.sqrt(round_trip_efficiency)
    lp = LinearProgram()
    charge = lp.var(n, 0.0, power_mw, cost=-price_usd_per_mwh * dt_h)
    discharge = lp.var(n, 0.0, power_mw, cost=(price_usd_per_mwh - degradation_usd_per_mwh) * dt_h)
    energy = lp.var(n, soc_min * capacity_mwh, soc_max * capacity_mwh)  # after each step
    e0 = soc_init * capacity_mwh
    lp.rows([(energy[:1], 1.0), (charge[:1], -eta * dt_h), (discharge[:1], dt_h / eta)], e0, e0)
    lp.rows([(energy[1:], 1.0), (energy[:-1], -1.0), (charge[1:], -eta * dt_h), (discharge[1:], dt_h / eta)],
            0.0, 0.0)
    lp.rows([(energy[-1:], 1.0)], e0)
    _, objective = lp.solve("clarabel")
    return max(float(objective), 0.0)  # idle earns 0; a tiny negative optimum is solver tolerance


# --------------------------------------------------------------------------- the value split

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


# --------------------------------------------------------------------------- pricing episodes


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


def without_battery(scenario: str, n_envs: int = 1):
    """The scenario's config with the battery removed (capacity and power 0)."""
    from cpm_env.vec_env import make_vec

    return make_vec(scenario, n_envs, scenario={"battery": {"capacity_mwh": 0.0, "power_mw": 0.0}}).config


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
    from cpm_env.vec_env import make_vec

    cases = {"ordinary": scenario}
    if econ.dr_scenario and econ.dr_events_per_year > 0:
        cases["demand_response"] = econ.dr_scenario
    kpis, frames, configs, prices = {}, [], {}, {}
    for day, scen in cases.items():
        cfg = configs[day] = make_vec(scen, 1).config
        prices[day] = step_prices_usd_per_mwh(econ.price, cfg.start_hour, cfg.dt_h, cfg.n_steps)
        pair = []
        for battery, c in (("with", cfg), ("without", without_battery(scen))):
            rows = priced_episodes(econ.controller, c, list(seeds), prices[day])
            pair.append(day_kpis(rows, prices[day], cfg.duration_h))
            frames.append(rows.assign(day=day, battery=battery))
            if progress is not None:
                progress.update(1)
        kpis[day] = tuple(pair)
    site_cfg = configs["ordinary"]
    usd_unit = usd_per_compute_unit(econ.value_of_compute_usd_per_gpu_h, site_cfg)
    deg = degradation_usd_per_mwh(econ, site_cfg)
    committed_mw = 0.0
    if "demand_response" in configs:
        dr_grid = configs["demand_response"].grid
        committed_mw = dr_grid.limit_mw * (1.0 - dr_grid.demand_response.limit_fraction)
    split = value_split(kpis["ordinary"], kpis.get("demand_response"), committed_mw, usd_unit, econ, deg)
    bat = site_cfg.battery
    potential = arbitrage_potential_usd(prices["ordinary"], site_cfg.dt_h, bat.capacity_mwh, bat.power_mw,
                                        bat.soc_min, bat.soc_max, bat.soc_init, bat.round_trip_efficiency,
                                        0.0)  # no wear: generous
    return BatteryValue(site_cfg.id, bat.capacity_mwh, bat.power_mw, split,
                        battery_cost_usd_per_year(bat.capacity_mwh, bat.power_mw, econ),
                        potential * DAYS_PER_YEAR * HOURS_PER_DAY / site_cfg.duration_h, usd_unit, deg,
                        pd.concat(frames, ignore_index=True))


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
