"""Forecasters of the facility demand: the ``forecast_<h>`` entries of the observation.

The scenario names one in ``forecast.kind`` (:class:`~cpm_env.config.ForecastConfig`). Each
turns an episode's facility demand (MW, uncapped, per step) and its scheduled part into a
forecast for every step and horizon, shape (n_steps, n_envs, n_horizons), in MW.

Two families:

- **causal** forecasters (``persistence``, ``schedule_persistence``) use only what a site knows
  at step ``t``: the observed demand up to and including step ``t`` (the observation of step
  ``t`` shows its demand), the workload's schedule (checkpoint times of running training jobs)
  and the calendar (the inference daily profile). Never failures, restart delays, ramps after a
  restart, inference bursts or noise. Their forecast at step ``t`` is unchanged by anything the
  episode does after ``t`` (``tests/test_forecast.py`` proves it).
- ``oracle_noisy`` reads the true future demand and adds noise: it sees unscheduled events
  (a job failure, a burst) coming. It is for studies of what foresight is worth, not for honest
  benchmarks; it is today's default only so that published results stay valid until the
  policies are retrained.

Pure numpy (importable with numpy alone): the exported runtime (``agents/runtime.py``) computes
the causal ones for one step with :func:`forecast_step_mw` and turns them into observation
entries with :func:`forecast_entries`, as the env does with the whole episode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar, NamedTuple, Protocol

import numpy as np

if TYPE_CHECKING:
    from cpm_env.config import ForecastConfig


class ForecastInputs(NamedTuple):
    """What forecasters may read, arrays of shape (n_steps, n_envs), in MW.

    ``demand_mw`` is the uncapped facility mean demand; entry ``t`` is observed at step ``t``
    (causal forecasters read it only up to ``t``). ``scheduled_mw`` is the facility demand the
    workload's schedule and the calendar foretell (known at reset, free of unscheduled events),
    meaningful up to a constant per env: only its changes between steps are used.
    """

    demand_mw: np.ndarray
    scheduled_mw: np.ndarray
    dt_h: float


class Forecaster(Protocol):
    """Forecasts the facility demand ``horizons_steps`` ahead of every step of a batch of episodes."""

    causal: ClassVar[bool]  # True: the forecast at step t reads nothing after step t but the schedule

    def forecast_mw(self, inputs: ForecastInputs, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """Forecast of the facility demand, MW, shape (n_steps, n_envs, n_horizons); env ``i`` uses ``rngs[i]``."""
        ...


def ahead_steps(n_steps: int, horizons_steps: np.ndarray) -> np.ndarray:
    """Index of the step ``h`` ahead of every step, held at the episode's last step, shape (n_steps, n_horizons)."""
    return np.minimum(np.arange(n_steps)[:, None] + horizons_steps, n_steps - 1)


def persistence_mw(demand_mw: np.ndarray, horizons_steps: np.ndarray) -> np.ndarray:
    """The demand of step ``t`` (MW) held flat for every horizon: (n_steps, n_envs) -> (n_steps, n_envs, n_horizons)."""
    return np.repeat(demand_mw[:, :, None], len(horizons_steps), axis=2)


def schedule_persistence_mw(demand_mw: np.ndarray, scheduled_mw: np.ndarray, horizons_steps: np.ndarray) -> np.ndarray:
    """Demand of step ``t`` plus the scheduled change from ``t`` to ``t + h``, at least 0 MW.

    ``demand_mw[t] + scheduled_mw[t + h] - scheduled_mw[t]``, shapes (n_steps, n_envs) ->
    (n_steps, n_envs, n_horizons). Reads ``demand_mw`` only at ``t`` and the schedule (known at reset).
    The scheduled change is added as is: during a failure it still shows a coming checkpoint dip,
    which the idle job will not make (a known limit of this simple forecaster).
    """
    ahead = ahead_steps(len(demand_mw), horizons_steps)  # (n, H)
    out = np.empty(np.shape(demand_mw) + (len(horizons_steps),))
    for k in range(len(horizons_steps)):  # a horizon at a time: whole rows gathered (3x faster, same numbers)
        out[:, :, k] = np.maximum(demand_mw + (scheduled_mw[ahead[:, k]] - scheduled_mw), 0.0)
    return out


class OracleNoisy:
    """The true future demand times ``1 + noise``; the noise std grows with the square root of the lead time.

    NOT causal: it sees unscheduled events (failures, restarts, inference bursts) up to the
    longest horizon ahead, which no site can. For studies of what foresight is worth.
    Draws ``n_steps x n_horizons`` standard normals from each env's generator.
    """

    causal: ClassVar[bool] = False

    def __init__(self, horizons_steps: Sequence[int], noise_std_per_sqrt_h: float):
        self.horizons_steps = np.asarray(horizons_steps)
        self.noise_std_per_sqrt_h = noise_std_per_sqrt_h

    def forecast_mw(self, inputs: ForecastInputs, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """True demand ``h`` steps ahead (held at the last step) x (1 + sigma(h) * N(0, 1)), at least 0 MW."""
        h, demand, n = self.horizons_steps, inputs.demand_mw, len(inputs.demand_mw)
        noise = np.stack([rng.standard_normal((n, len(h))) for rng in rngs], axis=1)  # (n, n_env, H)
        truth = demand[ahead_steps(n, h)].transpose(0, 2, 1)  # (n, n_env, H)
        sigma = self.noise_std_per_sqrt_h * np.sqrt(h * inputs.dt_h)
        return np.maximum(truth * (1.0 + sigma * noise), 0.0)


class Persistence:
    """Causal: the last observed facility demand (that of the current step), flat over every horizon."""

    causal: ClassVar[bool] = True
    reads_schedule: ClassVar[bool] = False

    def __init__(self, horizons_steps: Sequence[int]):
        self.horizons_steps = np.asarray(horizons_steps)

    def forecast_mw(self, inputs: ForecastInputs, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """See :func:`persistence_mw`; draws nothing."""
        return persistence_mw(inputs.demand_mw, self.horizons_steps)


class SchedulePersistence:
    """Causal: persistence of the current demand plus the scheduled change (checkpoint dips, daily profile).

    Announced demand-response windows change the limit, not the demand: they are in the
    observation's demand-response entries, not here.
    """

    causal: ClassVar[bool] = True
    reads_schedule: ClassVar[bool] = True

    def __init__(self, horizons_steps: Sequence[int]):
        self.horizons_steps = np.asarray(horizons_steps)

    def forecast_mw(self, inputs: ForecastInputs, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """See :func:`schedule_persistence_mw`; draws nothing."""
        return schedule_persistence_mw(inputs.demand_mw, inputs.scheduled_mw, self.horizons_steps)


# the causal forecasters, which a deployed controller computes (forecast_step_mw), by kind
STEP_FORECASTERS: dict[str, type[Persistence] | type[SchedulePersistence]] = {
    "persistence": Persistence, "schedule_persistence": SchedulePersistence}
SCHEDULE_KINDS = tuple(kind for kind, cls in STEP_FORECASTERS.items() if cls.reads_schedule)  # need the schedule
FORECASTERS: dict[str, Callable[[ForecastConfig], Forecaster]] = {
    "oracle_noisy": lambda cfg: OracleNoisy(cfg.horizons_steps, cfg.noise_std_per_sqrt_h),
    "persistence": lambda cfg: Persistence(cfg.horizons_steps),
    "schedule_persistence": lambda cfg: SchedulePersistence(cfg.horizons_steps),
}


def make_forecaster(cfg: ForecastConfig) -> Forecaster:
    """The forecaster named by ``cfg.kind`` (one of :data:`FORECASTERS`; the config loader refuses others)."""
    return FORECASTERS[cfg.kind](cfg)


def forecast_entries(forecast_mw, limit_mw: float, oversubscription: float) -> np.ndarray:
    """Forecast (MW, any shape) -> its ``forecast_<h>`` observation entries (same shape, float64).

    The forecast is clipped at ``2 * oversubscription * limit_mw`` (the entries' upper bound)
    and divided by the nominal grid limit ``limit_mw`` (MW).
    """
    return np.minimum(forecast_mw, 2 * oversubscription * limit_mw) / limit_mw



def _schedule_window(schedule_mw, horizons_steps: Sequence[int]) -> np.ndarray:
    """``schedule_mw`` (numbers, MW, at steps t, t+1, ...) checked and cut to its first ``max(h) + 1`` entries.

    One-line ValueError naming ``schedule_mw`` for anything but a non-empty flat list of finite numbers.
    """
    try:
        window = np.asarray(schedule_mw)
    except (TypeError, ValueError) as err:  # ragged nesting
        raise ValueError(f"schedule_mw: not a list of numbers ({type(err).__name__})") from None
    if window.ndim != 1 or len(window) == 0 or window.dtype.kind not in "fiu":
        raise ValueError(f"schedule_mw: shape {window.shape}, dtype {window.dtype}: expected a non-empty flat list of "
                         f"numbers (MW at steps t, t+1, ..., t+{max(horizons_steps)})")
    window = window[:max(horizons_steps) + 1].astype(np.float64)
    if not np.all(np.isfinite(window)):
        i = int(np.flatnonzero(~np.isfinite(window))[0])
        raise ValueError(f"schedule_mw[{i}] = {float(window[i])!r}: not finite")
    return window


def forecast_step_mw(kind: str, demand_mw: float, schedule_mw, horizons_steps: Sequence[int]) -> np.ndarray:
    """The forecast of ONE step, MW, shape (n_horizons,), from what a deployed controller has.

    ``demand_mw`` is the facility demand of the current step t (MW). ``schedule_mw`` is the
    scheduled facility demand at steps t, t+1, ..., t+max(h) (MW; only its changes from entry 0
    matter; a shorter window is held at its last value, as the env holds the episode's last
    step; longer is cut). ``schedule_persistence`` needs it (a site without a schedule passes
    zeros); ``persistence`` ignores it (it may be None). Calls the whole-episode function of
    ``kind`` (:func:`persistence_mw`, :func:`schedule_persistence_mw`) on a one-env window and
    keeps step t. One-line ValueError for ``oracle_noisy`` (it reads the realized future) or an
    unknown kind, a missing schedule where ``kind`` needs one, or a malformed one.
    """
    if kind not in STEP_FORECASTERS:
        why = ("reads the realized future demand, which no deployed controller has"
               if kind == "oracle_noisy" else "unknown")
        raise ValueError(f"forecast.kind = {kind!r}: {why}; a deployed controller computes "
                         f"{', '.join(STEP_FORECASTERS)}")
    if schedule_mw is None:
        if kind in SCHEDULE_KINDS:
            raise ValueError(f"schedule_mw: missing: forecast.kind = {kind!r} needs the scheduled facility demand (MW) "
                             f"at steps t..t+{max(horizons_steps)} (a site without a schedule passes zeros)")
        window = np.zeros(1)
    else:
        window = _schedule_window(schedule_mw, horizons_steps)
    demand = np.full((len(window), 1), float(demand_mw))  # causal forecasters read row t's demand only at t
    return STEP_FORECASTERS[kind](horizons_steps).forecast_mw(ForecastInputs(demand, window[:, None], 0.0), [])[0, 0]
