"""The observation and action contract: every entry by name, unit, scale and bounds.

Observation entry ``i`` is ``physical_value / scale`` as float32, inside ``[low, high]``.
Powers are scaled by the site's nominal grid limit, so a policy sees the same numbers on a
10 MW site and a 300 MW one. The first ``n_exo`` entries come from the pre-drawn episode
(demand, limit, forecast, time, demand response); then those of the dynamic state; with the env
option ``site_features``, the site's static parameters last (:func:`site_parameter_features`).

Actions are ``Box(-1, 1)``; out-of-range values are clipped, NaN is an error. They map
affinely to physical set-points:

- ``battery``: ``a * power_mw`` (MW, + discharge into the site),
- ``cap_<class>``: ``cap_min + (a + 1) / 2 * (1 - cap_min)`` (fraction of TDP),
- ``floor_<class>`` (only classes with ``floor_max > 0``): ``(a + 1) / 2 * floor_max``.

The env option ``battery_action`` (:data:`BATTERY_ACTIONS`) chooses what the first entry sets:
``"power"`` (the default) the battery as above; ``"import_change"`` the step-mean grid import,
``import_prev + a * ramp_step_mw`` (MW): ``a = 0`` holds last step's import, ``+-1`` moves it by the
ramp limit, and the battery set-point is whatever that takes at the step's caps
(:func:`cpm_env.physics.battery_for_import`, :func:`to_physical_import`). Controllers, the
evaluation and the exported runtime always speak ``"power"``; a policy trained with
``"import_change"`` has its actions converted to it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from gymnasium import spaces as gym_spaces

from cpm_env.config import ScenarioConfig
from cpm_env.forecast import forecast_entries
from cpm_env.physics import BATTERY_ACTIONS, Action, battery_for_import
from cpm_env.site import SiteParams, State, make_params, state_of_charge, swinging_steps


class Feature(NamedTuple):
    """One observation or action entry."""

    name: str
    unit: str
    scale: float  # physical value = entry * scale (observations)
    low: float
    high: float
    description: str


FACILITY_DEMAND = "facility_demand"  # the entry holding the demand the forecasters read (cpm_env.forecast)


def _feat(name, unit, scale, low, high, description) -> Feature:
    margin = 0.01 * (high - low) + 1e-6  # float32 rounding and generator clipping slack
    return Feature(name, unit, float(scale), float(low - margin), float(high + margin), description)


def floor_classes(cfg: ScenarioConfig) -> list[int]:
    """Indices of the GPU classes whose power floor is an action."""
    return [k for k, c in enumerate(cfg.site.gpu_classes) if c.floor_max > 0]


def forecast_names(cfg: ScenarioConfig) -> list[str]:
    """Names of the forecast entries, ``forecast_<h>`` per horizon (steps); none when the forecast is disabled."""
    return [f"forecast_{h}" for h in cfg.forecast.horizons_steps] if cfg.forecast.enabled else []


CLASS_DUTY = "duty_"  # prefix of the per-class duty entries (:func:`class_duties`)
FLAT_KINDS = ("inference",)  # workload kinds that never swing within a step


def class_duties(cfg: ScenarioConfig) -> bool:
    """Whether the observation carries each class's own duty (``duty_<class>``): where two or more classes
    may swing (workloads not in :data:`FLAT_KINDS`), their duties differ from the step's one ``duty``."""
    return sum(c.workload.kind not in FLAT_KINDS for c in cfg.site.gpu_classes) >= 2


def exo_observation_features(cfg: ScenarioConfig) -> list[Feature]:
    """The observation entries that come from the pre-drawn episode."""
    lim, over = cfg.grid.limit_mw, cfg.site.oversubscription
    dr = cfg.grid.demand_response
    feats = []
    for c in cfg.site.gpu_classes:
        feats.append(_feat(f"demand_{c.name}", "MW", lim, 0, over, f"uncapped mean IT demand of {c.name}"))
        feats.append(_feat(f"swing_{c.name}", "MW", lim, 0, over, f"uncapped high-minus-low IT power of {c.name}"))
    feats.append(_feat("duty", "fraction", 1.0, 0, 1, "fraction of the step at the high level of the meter's "
                       "two-level waveform (the swing-weighted class duty, cpm_env.physics.site_duty)"))
    if class_duties(cfg):
        feats += [_feat(f"{CLASS_DUTY}{c.name}", "fraction", 1.0, 0, 1, f"fraction of the step {c.name} spends at "
                        "its high level (the step's duty where it does not swing)") for c in cfg.site.gpu_classes]
    feats += [
        _feat(FACILITY_DEMAND, "MW", lim, 0, over, "uncapped mean facility demand (IT x PUE)"),
        _feat("headroom", "MW", lim, -over, 1, "grid limit minus uncapped facility demand"),
        _feat("grid_limit", "MW", lim, 0, 1, "import limit this step"),
        _feat("facility_demand_lag", "MW", lim, 0, over, "uncapped facility demand one step ago"),
        _feat("time_of_day_sin", "1", 1.0, -1, 1, "sin(2 pi hour / 24)"),
        _feat("time_of_day_cos", "1", 1.0, -1, 1, "cos(2 pi hour / 24)"),
        _feat("episode_progress", "fraction", 1.0, 0, 1, "steps done / steps per episode"),
    ]
    if cfg.forecast.enabled:
        for h, name in zip(cfg.forecast.horizons_steps, forecast_names(cfg)):
            feats.append(_feat(name, "MW", lim, 0, 2 * over,
                               f"forecast of facility_demand {h} steps ahead, by forecast.kind = "
                               f"{cfg.forecast.kind} (see cpm_env.forecast)"))
    feats += [
        _feat("dr_active", "0/1", 1.0, 0, 1, "a demand-response window is in force"),
        _feat("dr_pending", "0/1", 1.0, 0, 1, "a window is announced and not yet started"),
        _feat("dr_starts_in", "h", 1.0, 0, dr.notice_h, "time until the announced window starts"),
        _feat("dr_remaining", "h", 1.0, 0, cfg.duration_h if cfg.grid.limit_calendar.path else dr.duration_h,
              "time left in the active window"),
        _feat("dr_limit", "MW", lim, 0, 1, "import limit of the pending or active window"),
    ]
    return feats


# Where a live controller gets each observation entry, and what to send where it does not apply
# (exported into policy.json beside each entry): (name or prefix, source, when not applicable)
LIVE_SOURCES = (
    ("demand_", "telemetry: the class's uncapped mean IT power this step (its GPUs' power at no cap: the "
                "scheduler's job power, or measured power over the cap's throughput curve)", "0 (no such load)"),
    ("swing_", "telemetry: the class's high-minus-low IT power within the step (a ~1 s power meter)",
     "0 (a flat load)"),
    ("duty_", "telemetry: the fraction of the step the class spends at its high level (a ~1 s power meter)",
     "duty (a flat load)"),
    ("duty", "telemetry: the swing-weighted mean of the swinging classes' duties (each class's fraction of the step "
             "at its high level, weighted by its swing)", "1 (flat loads)"),
    ("facility_demand_lag", "telemetry: facility_demand one step ago", "this step's facility_demand at the first"),
    ("facility_demand", "derived: the sum of the demand_<class> entries x PUE", "always applies"),
    ("headroom", "derived: grid_limit - facility_demand", "always applies"),
    ("grid_limit", "grid contract, lowered by a utility demand-response notice while a window is in force",
     "always applies"),
    ("time_of_day_", "site clock: the local hour h as sin/cos(2 pi h / 24)", "always applies"),
    ("episode_progress", "site clock: hours since the scenario's start_hour, modulo its duration_h, / duration_h "
                         "(training's episodes are those windows, so a day-long scenario reads the time of day)",
     "always applies"),
    ("forecast_", "forecast service, or the runtime itself in telemetry mode (policy.json's forecast section, "
                  "from facility_demand and the schedule)", "computed by the runtime in telemetry mode"),
    ("dr_active", "utility demand-response notice: a window is in force", "0 (no window)"),
    ("dr_pending", "utility demand-response notice: a window is announced and not yet started", "0 (none announced)"),
    ("dr_starts_in", "utility demand-response notice: time until the announced window starts", "0 (none announced)"),
    ("dr_remaining", "utility demand-response notice: time left in the active window", "0 (no window)"),
    ("dr_limit", "utility demand-response notice: the window's import limit", "1 (the normal limit, scaled)"),
    ("grid_import_prev", "revenue meter: the mean grid import over the last step", "always applies"),
    ("soc", "battery management system: state of charge",
     "0 (no battery; a policy that reads the site's parameters is shown the middle of the SoC bounds)"),
    ("battery_power_prev", "battery inverter: realized power over the last step, + discharging", "0 (no battery)"),
    ("cap_", "GPU power management: the class's power cap in force", "1 (uncapped)"),
    ("floor_", "GPU power management: the class's power floor in force", "0 (floor off)"),
    ("site_", "site configuration: policy.json's site_parameters (the runtime fills it in telemetry mode)",
     "always applies"),
)


def live_source(name: str) -> tuple[str, str]:
    """Where a live controller gets observation entry ``name``, and what to send where it does not apply."""
    for prefix, source, absent in LIVE_SOURCES:
        if name == prefix or (prefix.endswith("_") and name.startswith(prefix)):
            return source, absent
    raise KeyError(f"observation entry {name!r}: no live source listed in cpm_env.spaces.LIVE_SOURCES")


def state_observation_features(cfg: ScenarioConfig, p: SiteParams) -> list[Feature]:
    """The observation entries that come from the dynamic state."""
    lim, over = cfg.grid.limit_mw, cfg.site.oversubscription
    bp = p.battery_power_mw / lim
    feats = [
        _feat("grid_import_prev", "MW", lim, -bp if p.allow_export else 0, over + bp, "mean grid import last step"),
        _feat("soc", "fraction", 1.0, 0, 1, "battery state of charge (0 without a battery; with the site's "
              "parameters in the observation, the middle of its SoC bounds: site.battery_less_soc)"),
        _feat("battery_power_prev", "MW", lim, -bp, bp, "realized battery power last step, + discharging"),
    ]
    for c in cfg.site.gpu_classes:
        feats.append(_feat(f"cap_{c.name}_prev", "fraction of TDP", 1.0, 0, 1, f"power cap of {c.name} in force"))
    for k in floor_classes(cfg):
        name = cfg.site.gpu_classes[k].name
        feats.append(_feat(f"floor_{name}_prev", "fraction of TDP", 1.0, 0, 1, f"power floor of {name} in force"))
    return feats


def observation_features(cfg: ScenarioConfig, p: SiteParams) -> list[Feature]:
    """All observation entries, in order (without the site's parameters: :func:`site_parameter_features`)."""
    return exo_observation_features(cfg) + state_observation_features(cfg, p)


def _site_parameters(cfg: ScenarioConfig) -> list[tuple[Feature, float]]:
    """Each site-parameter entry with its physical value; the bounds are the range a policy can be told
    (a site outside it is refused, :func:`site_parameter_entries`), not the config's validation range."""
    lim, grid, bat = cfg.grid.limit_mw, cfg.grid, cfg.battery
    rows = [
        (Feature("site_grid_limit", "MW", 100.0, 0.0, 20.0, "grid connection's import limit"), lim),
        (Feature("site_oversubscription", "1", 1.0, 0.0, 3.0, "installed IT peak x PUE / grid limit"),
         cfg.site.oversubscription),
        (Feature("site_pue", "1", 1.0, 1.0, 3.0, "power usage effectiveness"), cfg.site.pue),
        (Feature("site_battery_energy", "h", 1.0, 0.0, 8.0, "battery capacity / grid limit (hours at the limit)"),
         bat.capacity_mwh / lim),
        (Feature("site_battery_power", "MW", lim, 0.0, 4.0, "battery power rating"), bat.power_mw),
        (Feature("site_soc_min", "fraction", 1.0, 0.0, 1.0, "lowest state of charge"), bat.soc_min),
        (Feature("site_soc_max", "fraction", 1.0, 0.0, 1.0, "highest state of charge"), bat.soc_max),
        (Feature("site_round_trip_efficiency", "fraction", 1.0, 0.0, 1.0, "battery round-trip efficiency"),
         bat.round_trip_efficiency),
        (Feature("site_ramp_limit", "MW/min", lim, 0.0, 2.0, "ramp limit on the step-mean import"),
         grid.ramp_limit_mw_per_min),
        (Feature("site_swing_band", "MW", lim, 0.0, 2.0, "allowed oscillation band at the meter"), grid.swing_band_mw),
        (Feature("site_step", "s", 60.0, 0.0, 60.0, "control step length"), cfg.dt_s),
    ]
    for c in cfg.site.gpu_classes:
        rows += [
            (Feature(f"site_share_{c.name}", "fraction", 1.0, 0.0, 1.0, f"share of the IT peak in {c.name}"), c.share),
            (Feature(f"site_cap_min_{c.name}", "fraction of TDP", 1.0, 0.0, 1.0, f"lowest power cap of {c.name}"),
             c.cap_min),
            (Feature(f"site_cap_slew_{c.name}", "fraction of TDP per s", 1.0, 0.0, 10.0,
                     f"fastest cap change of {c.name}"), c.cap_slew_per_s),
            (Feature(f"site_floor_max_{c.name}", "fraction of TDP", 1.0, 0.0, 1.0,
                     f"highest power floor of {c.name} (0: none)"), c.floor_max),
        ]
    return rows


def site_parameter_features(cfg: ScenarioConfig) -> list[Feature]:
    """The entries the env option ``site_features`` appends after the state entries: the site's static
    parameters, powers scaled by 100 MW (the limit) or by the site's limit (the rest), constant in an episode."""
    return [f for f, _ in _site_parameters(cfg)]


def check_site_features(value) -> bool:
    """``value`` if it is a bool (the env option ``site_features``); one-line ValueError otherwise."""
    if not isinstance(value, bool):
        raise ValueError(f"site_features = {value!r}: must be true or false")
    return value


def site_observation(cfg: ScenarioConfig, features: list[Feature], site_features: bool
                     ) -> tuple[list[Feature], np.ndarray]:
    """An env's observation entries (``features`` and, with ``site_features``, the site's parameters after
    them) and the constant tail its observations end with (empty without the option)."""
    if not check_site_features(site_features):
        return features, np.zeros(0, dtype=np.float32)
    return features + site_parameter_features(cfg), site_parameter_entries(cfg)


def with_site_entries(obs, entries: np.ndarray) -> np.ndarray:
    """Observation(s) ``obs`` (..., n_obs) of an env without the ``site_features`` option, with the site-parameter
    ``entries`` (:func:`site_parameter_entries`) appended to each, float32."""
    obs = np.asarray(obs, dtype=np.float32)
    return np.concatenate([obs, np.broadcast_to(entries, obs.shape[:-1] + entries.shape)], axis=-1)


class Padding(NamedTuple):
    """How a policy built for more GPU classes reads a site with fewer (:func:`class_padding`)."""

    source: np.ndarray  # per policy observation entry: the index of the site's entry, or -1 (padded)
    value: np.ndarray  # float32, the entry of a padded one (else 0)
    actions: np.ndarray  # per site action entry: the index of the policy's action it takes
    classes: tuple[str, ...]  # the classes padded


def _padded_entry(name: str, cls: str, reference: dict[str, float]) -> float | None:
    """The entry a class of share 0 shows under ``name`` (None: not one of the class's entries)."""
    constants = {f"demand_{cls}": 0.0, f"swing_{cls}": 0.0, f"cap_{cls}_prev": 1.0, f"floor_{cls}_prev": 0.0,
                 f"site_share_{cls}": 0.0, f"site_floor_max_{cls}": 0.0}
    if name in constants:
        return constants[name]
    if name in (f"site_cap_min_{cls}", f"site_cap_slew_{cls}"):  # levers of a class with nothing to move
        return reference[name]
    return None


def class_padding(trained: ScenarioConfig, site: ScenarioConfig, site_features: bool) -> Padding | None:
    """How a policy built for ``trained``'s GPU classes runs a site with fewer of them (None: the same classes).

    Each class of ``trained`` that ``site`` lacks is read as a class of share 0: uncapped demand and swing 0, its
    cap in force 1 and its floor 0, and (with ``site_features``) share 0, floor 0 and ``trained``'s cap range and
    slew; the policy's actions for it are dropped. Every other entry is the site's own, by name. A site with a
    class ``trained`` lacks, or its classes in another order, is a one-line ValueError.
    """
    mine = [c.name for c in site.site.gpu_classes]
    theirs = [c.name for c in trained.site.gpu_classes]
    if mine == theirs:
        return None
    if [c for c in theirs if c in mine] != mine:
        raise ValueError(f"{site.id}: GPU classes {mine}: a policy built for {theirs} runs a site with some of those "
                         "classes, in that order (the others are read as classes of share 0)")
    missing = tuple(c for c in theirs if c not in mine)

    def names(cfg: ScenarioConfig) -> list[str]:
        feats = observation_features(cfg, make_params(cfg))
        return [f.name for f in feats + (site_parameter_features(cfg) if site_features else [])]

    reference = dict(zip([f.name for f in site_parameter_features(trained)], site_parameter_entries(trained)))
    index = {name: i for i, name in enumerate(names(site))}
    source, value = [], []
    for name in names(trained):
        pad = next((v for cls in missing if (v := _padded_entry(name, cls, reference)) is not None), None)
        if name not in index and pad is None:
            raise ValueError(f"{site.id}: observation entry {name!r} of the policy's site is not this site's")
        source.append(index.get(name, -1) if pad is None else -1)
        value.append(0.0 if pad is None else pad)
    trained_actions = [f.name for f in action_features(trained, make_params(trained))]
    site_actions = [f.name for f in action_features(site, make_params(site))]
    return Padding(np.array(source), np.array(value, dtype=np.float32),
                   np.array([trained_actions.index(a) for a in site_actions]), missing)


def pad_observation(obs: np.ndarray, padding: Padding) -> np.ndarray:
    """Observation(s) (..., n_site) of a site in the layout of the policy that :func:`class_padding` built
    ``padding`` for."""
    obs = np.asarray(obs, dtype=np.float32)
    return np.where(padding.source >= 0, obs[..., np.maximum(padding.source, 0)], padding.value)


def site_parameter_entries(cfg: ScenarioConfig) -> np.ndarray:
    """The site-parameter entries of ``cfg`` (physical / scale), float32; one-line ValueError naming the
    parameter, its value and the range when one lies outside what the observation can tell a policy."""
    values = []
    for f, physical in _site_parameters(cfg):
        entry = physical / f.scale
        if not f.low <= entry <= f.high:
            raise ValueError(f"{cfg.id}: site_features: {f.name} = {physical:g} {f.unit}: outside the range the "
                             f"observation carries, [{f.low * f.scale:g}, {f.high * f.scale:g}] {f.unit}")
        values.append(entry)
    return np.array(values, dtype=np.float32)


def action_features(cfg: ScenarioConfig, p: SiteParams) -> list[Feature]:
    """All action entries, in order; low/high are the physical set-points at a = -1 / +1."""
    feats = [Feature("battery", "MW", p.battery_power_mw, -p.battery_power_mw, p.battery_power_mw,
                     "battery net power set-point, + discharge into the site")]
    for c in cfg.site.gpu_classes:
        feats.append(Feature(f"cap_{c.name}", "fraction of TDP", 1.0, c.cap_min, 1.0, f"power cap of {c.name}"))
    for k in floor_classes(cfg):
        c = cfg.site.gpu_classes[k]
        feats.append(Feature(f"floor_{c.name}", "fraction of TDP", 1.0, 0.0, c.floor_max, f"power floor of {c.name}"))
    return feats


def check_battery_action(value) -> str:
    """``value`` if it is one of :data:`BATTERY_ACTIONS`, else a one-line ValueError."""
    if value not in BATTERY_ACTIONS:
        raise ValueError(f"battery_action = {value!r}: must be one of {', '.join(BATTERY_ACTIONS)}")
    return value


def battery_action_feature(p: SiteParams, battery_action: str, power: Feature) -> Feature:
    """The first action entry under ``battery_action``: ``power`` (the scenario's battery entry) or
    ``import_change`` (MW of step-mean import change, scale the ramp limit per step)."""
    if check_battery_action(battery_action) == "power":
        return power
    r = p.ramp_step_mw
    return Feature("import_change", "MW", r, -r, r,
                   "change of the step-mean grid import from last step's (+ more import); the battery covers the "
                   "rest at the step's caps")


def action_names(p: SiteParams, features: list[Feature], battery_action: str) -> list[str]:
    """The action entries' names under ``battery_action``, from the scenario's ``features``."""
    return [battery_action_feature(p, battery_action, features[0]).name, *(f.name for f in features[1:])]


def to_physical_import(a: list | tuple, p: SiteParams, floor_idx: list[int], s: State, x, ops) -> Action:
    """Actions in [-1, 1] under ``battery_action = "import_change"`` to physical set-points: caps and
    floors as :func:`to_physical`, the battery set-point that moves the import by ``a[0] * ramp_step_mw``."""
    phys = to_physical(a, p, floor_idx, ops)
    return battery_for_import(p, s, phys, x, s.import_mw + a[0] * p.ramp_step_mw, ops)


def observation_space(features: list[Feature]) -> gym_spaces.Box:
    """Box of the observation entries' bounds, float32."""
    low = np.array([f.low for f in features], dtype=np.float32)
    high = np.array([f.high for f in features], dtype=np.float32)
    return gym_spaces.Box(low, high, dtype=np.float32)


def action_space(n_actions: int) -> gym_spaces.Box:
    """Box(-1, 1) of the actions, float32."""
    return gym_spaces.Box(-1.0, 1.0, (n_actions,), dtype=np.float32)


def exo_features(cfg, high, low, class_duty, duty, limit, demand, dr_start, dr_end, forecast) -> np.ndarray:
    """The exogenous observation block of a batch of episodes, (n_steps, n_exo, n_envs) float32.

    Per-class inputs (``class_duty``: each class's own duty, ``duty``: the step's, as
    :func:`cpm_env.physics.site_duty` gives them) are (n_classes, n_steps, n_envs), per-step ones (n_steps, n_envs),
    demand-response windows (n_envs, n_events), the forecast (n_steps, n_envs, n_horizons).
    """
    n, lim, dt_h = cfg.n_steps, cfg.grid.limit_mw, cfg.dt_h
    steps = np.arange(n)[:, None]
    cols = []  # each (n_steps, n_envs), or (n_steps, 1) where the same for every env
    swinging = swinging_steps(duty)
    for k in range(high.shape[0]):
        cols.append((class_duty[k] * high[k] + (1 - class_duty[k]) * low[k]) / lim)
        cols.append(np.where(swinging, high[k] - low[k], 0.0) / lim)
    hours = cfg.start_hour + steps * dt_h
    lag = np.concatenate([demand[:1], demand[:-1]])
    cols.append(duty)
    if class_duties(cfg):
        cols += list(class_duty)
    cols += [demand / lim, (limit - demand) / lim, limit / lim, lag / lim,
             np.sin(2 * np.pi * hours / 24), np.cos(2 * np.pi * hours / 24), steps / n]
    if forecast is not None:
        cols += list(np.moveaxis(forecast_entries(forecast, lim, cfg.site.oversubscription), -1, 0))
    dr = cfg.grid.demand_response
    if dr_start.shape[1] == 0:  # no events (a limit calendar's: none below the normal limit)
        zero = np.zeros((n, 1))
        cols += [zero, zero, zero, zero, zero + 1.0]
    else:
        notice = int(round(dr.notice_h / dt_h))
        t = steps[:, :, None]  # (n, 1, 1) against windows (n_envs, n_events)
        active = (t >= dr_start) & (t < dr_end)
        pending = (t >= dr_start - notice) & (t < dr_start)
        starts_in = np.where(pending, (dr_start - t) * dt_h, np.inf).min(axis=2)
        any_active, any_pending = active.any(axis=2), pending.any(axis=2)
        window_limit = np.where(any_active | any_pending, dr.limit_fraction, 1.0)
        if cfg.grid.limit_calendar.path:  # a calendar's window limit: its lowest, of the active or pending windows
            lowest = np.where(active, (limit / lim)[:, :, None], np.inf).min(axis=0)  # (n_envs, n_events)
            window_limit = np.where(active | pending, lowest, 1.0).min(axis=2)
        cols += [
            any_active.astype(float),
            any_pending.astype(float),
            np.where(np.isfinite(starts_in), starts_in, 0.0),
            np.where(active, (dr_end - t) * dt_h, 0.0).max(axis=2),
            window_limit,
        ]
    out = np.empty((n, len(cols), demand.shape[1]), dtype=np.float32)  # contiguous column writes
    for j, col in enumerate(cols):
        out[:, j] = col
    return out


def state_observation(p: SiteParams, s: State, battery_mw, floor_idx: list[int], inv_limit) -> list:
    """The dynamic observation entries (floats, or arrays over a batch)."""
    soc = state_of_charge(p, s.energy_mwh)
    return [s.import_mw * inv_limit, soc, battery_mw * inv_limit, *s.caps, *(s.floors[k] for k in floor_idx)]


def to_physical(a: list | tuple, p: SiteParams, floor_idx: list[int], ops) -> Action:
    """Map clipped actions in [-1, 1] (floats or arrays) to physical set-points."""
    n = len(p.peak_mw)
    caps = tuple(p.cap_min[k] + 0.5 * (a[1 + k] + 1.0) * (1.0 - p.cap_min[k]) for k in range(n))
    floors = [0.0 * a[0]] * n
    for j, k in enumerate(floor_idx):
        floors[k] = 0.5 * (a[1 + n + j] + 1.0) * p.floor_max[k]
    return Action(a[0] * p.battery_power_mw, caps, tuple(floors))


def from_physical(battery_mw, caps, floors, p: SiteParams, floor_idx: list[int]) -> np.ndarray:
    """Inverse of :func:`to_physical`: set-points (arrays of one shape, per class lists) ->
    actions in [-1, 1], float64, shape ``battery_mw.shape + (n_actions,)``."""
    battery_mw = np.asarray(battery_mw, dtype=float)
    bp = p.battery_power_mw
    cols = [battery_mw / bp if bp > 0 else np.zeros_like(battery_mw)]
    cols += [2.0 * (np.asarray(c) - cm) / (1.0 - cm) - 1.0 for c, cm in zip(caps, p.cap_min)]
    cols += [2.0 * np.asarray(floors[k]) / p.floor_max[k] - 1.0 for k in floor_idx]
    return np.clip(np.stack([np.broadcast_to(c, battery_mw.shape) for c in cols], axis=-1), -1.0, 1.0)


def check_finite_action(action: np.ndarray) -> None:
    """Raise a one-line ValueError for NaN or inf in an action."""
    if not np.all(np.isfinite(action)):
        bad = np.argwhere(~np.isfinite(np.asarray(action, dtype=float)))
        raise ValueError(f"action has non-finite entries at {bad.tolist()}: {np.asarray(action).tolist()}; "
                         "actions must be finite numbers in [-1, 1]")

