"""Rule-based controllers, from the conventional provision-for-peak site to a greedy rule.

All work on batches of observations and reason in physical units:

- ``static_cap``: caps every class so the site's peak fits the current limit, battery idle.
- ``peak_shaving``: battery only; discharges what the peak would exceed, recharges in headroom.
- ``shave_then_cap``: battery first; caps to fit when the battery runs low.
- ``greedy``: per step, the highest uniform cap for which the battery can smooth the swing to
  the band, shave the peak and keep the import inside the ramp limit (charging on a load
  drop); the remaining battery power restores SoC towards a target.
"""

from __future__ import annotations

import numpy as np

from agents.controllers.base import RuleController
from cpm_env.site import class_levels


class _Demand:
    """Uncapped per-class high/low levels of a batch, decoded from observations."""

    def __init__(self, ctrl: RuleController, obs: np.ndarray):
        v = ctrl.view
        self.duty = np.clip(v(obs, "duty"), 0.0, 1.0)  # the meter waveform's
        self.mean = [v(obs, f"demand_{n}") for n in ctrl.class_names]
        self.swing = [v(obs, f"swing_{n}") for n in ctrl.class_names]
        self.class_duty = v.class_duty(obs) or [self.duty] * len(ctrl.class_names)
        levels = [class_levels(m, s, d) for m, s, d in zip(self.mean, self.swing, self.class_duty)]
        self.high = [h for h, _ in levels]
        self.low = [lo for _, lo in levels]
        self.limit = v(obs, "grid_limit")
        self.import_prev = v(obs, "grid_import_prev")
        self.soc = v(obs, "soc")

    def as_columns(self) -> _Demand:
        """Reshape every per-site array to (N, 1), to broadcast against a grid of caps."""
        for name, value in vars(self).items():
            setattr(self, name, [v[:, None] for v in value] if isinstance(value, list) else value[:, None])
        return self

    def it_power(self, caps, peaks):
        """IT mean and swing (MW) under caps (fractions of TDP); arrays broadcast."""
        mean = swing = 0.0
        for h, lo, d, c, p in zip(self.high, self.low, self.class_duty, caps, peaks):
            y = np.minimum(h, c * p)
            lo_c = np.minimum(lo, y)
            mean = mean + d * y + (1 - d) * lo_c
            swing = swing + (y - lo_c)
        return mean, swing


def fit_cap(p, limit_facility_mw):
    """Uniform cap that keeps the installed peak x PUE within ``limit_facility_mw``."""
    return np.clip(limit_facility_mw / (p.pue * sum(p.peak_mw)), max(p.cap_min), 1.0)


class StaticCap(RuleController):
    """Provision for peak: caps so installed peak power fits the limit; no battery."""

    def act(self, obs):
        d = _Demand(self, obs)
        cap = fit_cap(self.params, d.limit)
        return np.zeros(len(obs)), [cap for _ in self.class_names]


class PeakShaving(RuleController):
    """Battery only: discharge what the high phase would exceed, recharge in headroom."""

    recharge_margin_mw = 2.0

    def act(self, obs):
        p, d = self.params, _Demand(self, obs)
        it_mean, swing = d.it_power([1.0] * len(p.peak_mw), p.peak_mw)
        facility = p.pue * it_mean
        resid = np.minimum(swing, p.swing_band_mw)
        need = facility + (1 - d.duty) * resid - d.limit
        battery = np.where(need > 0, need, -np.maximum(-need - self.recharge_margin_mw, 0.0))
        return battery, [np.ones(len(obs)) for _ in self.class_names]


class ShaveThenCap(PeakShaving):
    """Battery first; when SoC is within ``low_soc_margin`` of its floor, cap to fit instead."""

    low_soc_margin = 0.05

    def act(self, obs):
        p, d = self.params, _Demand(self, obs)
        battery, caps = super().act(obs)
        soc_min = p.energy_min_mwh / p.capacity_mwh if p.capacity_mwh > 0 else 1.0
        low = d.soc <= soc_min + self.low_soc_margin
        cap_fit = fit_cap(p, d.limit)
        battery = np.where(low & (battery > 0), 0.0, battery)
        caps = [np.where(low, cap_fit, c) for c in caps]
        return battery, caps


class Greedy(RuleController):
    """Smooth first, then shave, then cap; respect the ramp limit; restore SoC with the rest.

    For a grid of uniform caps it checks whether a battery set-point exists that keeps the
    high-phase import under the limit, smooths the swing to the band and keeps the mean
    import within the ramp limit of last step's; it takes the highest such cap.
    """

    n_caps = 48
    soc_target = 0.6
    restore_h = 1.0  # time scale on which SoC is pulled back to target

    def __init__(self, site):
        super().__init__(site)
        p = self.params
        self.cap_grid = np.linspace(max(p.cap_min), 1.0, self.n_caps)

    def act(self, obs):
        p, d = self.params, _Demand(self, obs).as_columns()
        dt_h, pmax, ramp = p.dt_h, p.battery_power_mw, p.ramp_step_mw
        c = self.cap_grid[None, :]
        it_mean, swing = d.it_power([c] * len(p.peak_mw), p.peak_mw)
        duty = d.duty
        facility = p.pue * it_mean
        energy = d.soc * p.capacity_mwh
        b_soc_hi = (energy - p.energy_min_mwh) * p.eta_discharge / dt_h
        b_soc_lo = -(p.energy_max_mwh - energy) / (p.eta_charge * dt_h)
        u = np.maximum(swing - p.swing_band_mw, 0.0)
        b_hi = np.minimum(np.minimum(pmax - (1 - duty) * u, b_soc_hi), facility)
        b_lo = np.maximum(duty * u - pmax, b_soc_lo)
        resid = swing - u
        need_peak = facility + (1 - duty) * resid - d.limit
        need_ramp_up = facility - d.import_prev - ramp  # discharge at least this
        need_ramp_down = facility - d.import_prev + ramp  # discharge at most this
        lo = np.maximum(np.maximum(need_peak, need_ramp_up), b_lo)
        hi = np.minimum(need_ramp_down, b_hi)
        capacity = max(p.capacity_mwh, 1e-9)
        b_pref = (d.soc - self.soc_target) * capacity / self.restore_h  # (N, 1)
        # sustainable: smoothing alone must not need more net discharge than SoC can spare
        feasible = (lo <= hi + 1e-9) & (np.maximum(b_lo, need_ramp_up) <= np.maximum(b_pref, need_peak) + 1e-9)
        # highest feasible cap; if none, the highest cap that at least meets the peak
        peak_ok = np.maximum(need_peak, b_lo) <= b_hi + 1e-9
        pick = np.where(feasible.any(axis=1), _last_true(feasible), _last_true(peak_ok))
        rows = np.arange(len(obs))
        lo, hi = lo[rows, pick], hi[rows, pick]
        b_pref = b_pref[:, 0]
        battery = np.clip(b_pref, np.minimum(lo, hi), np.maximum(lo, hi))
        battery = np.where(hi < lo, lo, battery)  # infeasible ramp: favour the limit
        cap = self.cap_grid[pick]
        if p.capacity_mwh <= 0:
            battery = np.zeros(len(obs))
        return battery, [cap for _ in self.class_names]


def _last_true(mask: np.ndarray) -> np.ndarray:
    """Index of the last True per row (0 where none)."""
    n = mask.shape[1]
    rev = np.argmax(mask[:, ::-1], axis=1)
    return np.where(mask.any(axis=1), n - 1 - rev, 0)


RULES = {
    "static_cap": StaticCap,
    "peak_shaving": PeakShaving,
    "shave_then_cap": ShaveThenCap,
    "greedy": Greedy,
}
