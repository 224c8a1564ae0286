"""Episode generator: one seeded draw of every exogenous series of an episode.

At reset the whole episode is drawn at once (demand of every class, the import limit with
its demand-response windows, the forecast of the scenario's ``forecast.kind``), so the MPC
and the oracle see the same trajectory. Random draws happen in a fixed order (classes in
scenario order, then demand response, then the forecaster's: ``oracle_noisy``'s noise; the
causal forecasters draw nothing), so a seed fixes the episode. With a ``grid.limit_calendar``
the demand-response draws are replaced, at the same place in the order, by one draw per env
of the calendar's offset (none with ``random_offset: false``; see
:class:`cpm_env.calendars.LimitCalendar`), and the windows are the calendar's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from cpm_env import spaces
from cpm_env.calendars import LimitCalendar, step_prices_usd_per_mwh
from cpm_env.config import ConfigError, ScenarioConfig, check_memory
from cpm_env.forecast import ForecastInputs, make_forecaster
from cpm_env.physics import site_duty
from cpm_env.site import SiteParams, make_params, work_per_throughput
from cpm_env.workloads import make_generator


class Episode(NamedTuple):
    """Exogenous trajectories of a batch of episodes, one per env (the last axis).

    Per-class arrays are (n_classes, n_steps, n_envs); per-step ones (n_steps, n_envs).
    """

    high_mw: np.ndarray
    low_mw: np.ndarray
    work: np.ndarray
    work_per_throughput: np.ndarray
    duty: np.ndarray  # fraction of each step at the high level of the meter's waveform (physics.site_duty)
    limit_mw: np.ndarray  # grid import limit
    demand_mw: np.ndarray  # uncapped facility mean demand
    scheduled_mw: np.ndarray  # facility demand the schedule and calendar foretell (up to a constant per env)
    dr_start_step: np.ndarray  # (n_envs, n_events) demand-response windows, in steps
    dr_end_step: np.ndarray
    exo_obs: np.ndarray  # (n_steps, n_exo, n_envs) float32, the exogenous part of the observation
    class_duty: np.ndarray  # (n_classes, n_steps, n_envs) each class's own duty (cpm_env.physics.site_duty)


def episode_bytes_per_step_env(cfg: ScenarioConfig) -> int:
    """Estimated peak memory of drawing one step of one env's episode, in bytes.

    Per GPU class about 16 float64 series (the generator's intermediates and the episode's
    four), 4 shared ones, 3 per forecast horizon, the observation block built in float64 and
    kept in float32, and 3 booleans per demand-response event. Measured on the shipped
    scenarios the peak is about 70-80 % of this.
    """
    n_classes = len(cfg.site.gpu_classes)
    n_horizons = len(cfg.forecast.horizons_steps) if cfg.forecast.enabled else 0
    n_exo = len(spaces.exo_observation_features(cfg))
    n_events = cfg.grid.demand_response.events_per_episode
    return 8 * (16 * n_classes + 4 + 3 * n_horizons) + 12 * n_exo + 3 * n_events


class EpisodeGenerator:
    """Draws :class:`Episode` s for a scenario, one per ``numpy.random.Generator``.

    A batch whose arrays would need more than ``cpm_env.config.MEMORY_BUDGET_BYTES`` is refused
    with a one-line :class:`~cpm_env.config.ConfigError`: one env when the generator is built,
    ``n_envs`` by :meth:`check_batch` (the batched env calls it when it is built) and at each draw.
    """

    def __init__(self, cfg: ScenarioConfig, params: SiteParams | None = None):
        self.cfg = cfg
        self._bytes_per_step_env = episode_bytes_per_step_env(cfg)
        self.check_batch(1)  # before the generators allocate per-step arrays
        self.params = params or make_params(cfg)
        self.generators = [
            make_generator(gpu, peak, cfg) for gpu, peak in zip(cfg.site.gpu_classes, self.params.peak_mw)
        ]
        self.forecaster = make_forecaster(cfg.forecast)
        # calendars are read and checked once, here (the batch shares them)
        self.limit_calendar = LimitCalendar(cfg) if cfg.grid.limit_calendar.path else None
        if self.limit_calendar is not None:
            self._bytes_per_step_env += 3 * self.limit_calendar.n_events
        self.price_usd_per_mwh = step_prices_usd_per_mwh(cfg)  # (n_steps,) from grid.price_calendar, or None

    def check_batch(self, n_envs: int) -> None:
        """Refuse (one-line ConfigError) a batch of ``n_envs`` episodes over the memory budget."""
        cfg = self.cfg
        check_memory(cfg.n_steps * n_envs * self._bytes_per_step_env,
                     f"scenario {cfg.id}: episodes of {cfg.n_steps} steps (duration_h = {cfg.duration_h:g} at "
                     f"dt_s = {cfg.dt_s:g}) x {n_envs} env{'s' if n_envs != 1 else ''}")

    def fits(self, n_envs: int) -> bool:
        """Whether a batch of ``n_envs`` episodes fits the memory budget (:meth:`check_batch` would pass)."""
        try:
            self.check_batch(n_envs)
        except ConfigError:
            return False
        return True

    def sample(self, rngs: Sequence[np.random.Generator]) -> Episode:
        """Draw one episode per generator; env ``i`` uses only ``rngs[i]``."""
        self.check_batch(len(rngs))
        cfg, p, n, n_env = self.cfg, self.params, self.cfg.n_steps, len(rngs)
        traces = [g.sample(rngs) for g in self.generators]
        high = np.stack([t.high_mw for t in traces])
        low = np.stack([t.low_mw for t in traces])
        work = np.stack([t.work for t in traces])
        duty, class_duty = site_duty(high, low, np.stack([t.duty for t in traces]))
        wpt = np.stack([work_per_throughput(p, k, high[k], work[k]) for k in range(len(p.peak_mw))])
        demand = p.pue * (class_duty * high + (1.0 - class_duty) * low).sum(axis=0)
        scheduled = p.pue * np.sum([t.scheduled_mw for t in traces], axis=0)

        dr = cfg.grid.demand_response
        dt_h = cfg.dt_h
        if self.limit_calendar is not None:
            limit = self.limit_calendar.limit_mw(self.limit_calendar.offsets(rngs))
            starts, ends = self.limit_calendar.windows(limit)
        else:
            draws = [rng.uniform(dr.earliest_start_h, dr.latest_start_h, dr.events_per_episode) for rng in rngs]
            starts = np.sort(np.round(np.array(draws).reshape(n_env, -1) / dt_h), axis=1).astype(int)
            ends = starts + max(int(round(dr.duration_h / dt_h)), 1)
            steps = np.arange(n)[:, None, None]
            active = ((steps >= starts) & (steps < ends)).any(axis=2)
            limit = cfg.grid.limit_mw * np.where(active, dr.limit_fraction, 1.0)

        forecast = None
        if cfg.forecast.enabled:
            forecast = self.forecaster.forecast_mw(ForecastInputs(demand, scheduled, dt_h), rngs)
        exo = spaces.exo_features(cfg, high, low, class_duty, duty, limit, demand, starts, ends, forecast)
        return Episode(high, low, work, wpt, duty, limit, demand, scheduled, starts, ends, exo, class_duty)
