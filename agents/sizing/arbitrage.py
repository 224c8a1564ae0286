"""What a battery could earn by energy arbitrage alone: a perfect-foresight LP yardstick."""

from __future__ import annotations

import math

import numpy as np


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
