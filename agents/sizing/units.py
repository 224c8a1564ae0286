"""Unit conversions of the economics: compute units to GPU-hours and dollars, wear to $/MWh."""

from __future__ import annotations

from agents.sizing.economics_config import EconomicsConfig
from cpm_env.config import ScenarioConfig

HOURS_PER_DAY = 24.0
DAYS_PER_YEAR = 365.0
W_PER_MW = 1e6
KW_PER_MW = 1e3


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
