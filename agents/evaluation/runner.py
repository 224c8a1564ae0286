"""Controllers by name, and their episodes: every seed stepped as one batch, one row of KPIs per episode."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from agents.controllers.base import Controller
from cpm_env import spaces
from cpm_env.scenario import Site
from cpm_env.site import SiteParams
from cpm_env.vec_env import CpmVecEnv

# every rule and the MPC alone and behind the safety filter (a fair comparison for a policy deployed behind it)
DEFAULT_CONTROLLERS = ("static_cap,static_cap+shield,peak_shaving,peak_shaving+shield,shave_then_cap,"
                       "shave_then_cap+shield,greedy,greedy+shield,mpc,mpc+shield,ppo,ppo+shield,oracle")
RAMP_TOLERANCE_MW = 1e-6  # ramp excess below 1 W is LP solver tolerance, not a violation
DR_TOLERANCE_MWH = 1e-6  # a demand-response step is met if its import above the window's limit is below this
SHIELD_SUFFIX = "shield"  # NAME+shield: the controller behind the safety filter
TRACE_KEYS = ("grid_import_mw", "grid_import_peak_mw", "grid_limit_mw", "facility_power_mw", "battery_power_mw", "soc")


def controller_names(text: str | None, scenario_id: str, field: str = "--controllers") -> list[str]:
    """Comma-separated controller names -> a list; None gives :data:`DEFAULT_CONTROLLERS`, less
    ``ppo`` and ``ppo+shield`` where no policy is shipped for ``scenario_id`` in ``models/<scenario id>/``. An empty
    list, an empty name or a name given twice is a one-line error naming ``field``."""
    from agents.learning.ppo import MODELS_DIR  # SB3 and torch stay out of the rule-only path

    if text is None:
        names = DEFAULT_CONTROLLERS.split(",")
        if not (MODELS_DIR / scenario_id / "manifest.json").is_file():
            names = [n for n in names if n.partition("+")[0] != "ppo"]
        return names
    return check_names([n.strip() for n in text.split(",")], f"{field} = {text!r}")


def check_names(names: list[str], where: str) -> list[str]:
    """``names`` if every one is non-empty and distinct; else a one-line error starting with ``where``."""
    for i, name in enumerate(names):
        if not name:
            raise ValueError(f"{where}: name {i + 1} is empty: must be comma-separated controller names, "
                             "e.g. static_cap,greedy")
        if name in names[:i]:
            raise ValueError(f"{where}: controller {name} given twice")
    return names


def policy_fingerprints(names: list[str], site: Site) -> dict[str, str]:
    """SHA-256 of the file that seals each policy controller of ``names`` (``ppo``: the shipped or given
    folder's ``manifest.json``; ``onnx``: its ``policy.json``; ``missing`` where absent), for a run folder's
    stamp: a folder holding another policy's rows under the same name is then another configuration."""
    from agents.learning.artifacts import sha256_file
    from agents.learning.ppo import MODELS_DIR

    out = {}
    for name in names:
        base = name.removesuffix("+shield")
        if base == "ppo":
            path = MODELS_DIR / site.config.id / "manifest.json"
        elif base.startswith(("ppo:", "onnx:")):
            kind, _, where = base.partition(":")
            folder = Path(where).parent if Path(where).is_file() else Path(where)
            path = folder / ("manifest.json" if kind == "ppo" else "policy.json")
        else:
            continue
        out[name] = sha256_file(path) if path.is_file() else "missing"
    return out


def make_controller(name: str, site: Site, allow_other_scenario: bool = False) -> Controller:
    """Build a named controller for a site; unknown names list the available ones. A ``ppo`` policy
    trained on another scenario is refused unless ``allow_other_scenario``. ``NAME+shield`` is ``NAME``
    with its actions passed through the safety filter (:mod:`agents.controllers.shielded`); a ``ppo``
    policy trained behind the filter (its manifest's ``env_options``) always runs behind it, and so does
    an ``onnx`` export whose ``policy.json`` enables it (in the runtime), so ``+shield`` changes nothing
    there. A ``ppo`` policy trained with ``battery_action = import_change`` has its actions converted to
    battery power (:mod:`agents.controllers.import_change`; an ``onnx`` export of one converts in the runtime).
    Any other suffix is a one-line error. A
    ``+`` followed by a ``/`` belongs to a path (``onnx:runs/a+b/export``)."""
    base, plus, suffix = name.rpartition("+")
    if plus and "/" not in suffix:
        if suffix != SHIELD_SUFFIX or base.endswith(f"+{SHIELD_SUFFIX}"):
            what = f"+{suffix} given twice" if suffix == SHIELD_SUFFIX else f"unknown suffix +{suffix}"
            raise ValueError(f"controller {name!r}: {what}: the allowed suffix is +{SHIELD_SUFFIX} (once), "
                             f"e.g. greedy+{SHIELD_SUFFIX}")
        from agents.controllers.shielded import Shielded

        inner = make_controller(base, site, allow_other_scenario)
        # an export whose runtime applies the filter says so (agents.runtime.PolicyController.safety_filter)
        already = isinstance(inner, Shielded) or getattr(inner, "safety_filter", None) is not None
        return inner if already else Shielded(inner, site, name)
    from agents.controllers.mpc import MPC
    from agents.controllers.oracle import Oracle
    from agents.controllers.rules import RULES

    available = {**RULES, "mpc": MPC, "oracle": Oracle}
    if name == "ppo" or name.startswith("ppo:"):
        from agents.learning.artifacts import env_options
        from agents.learning.ppo import PPOController, shipped_model_dir

        policy: Controller = PPOController(name[4:] if name.startswith("ppo:") else shipped_model_dir(site), site,
                                           allow_other_scenario=allow_other_scenario)
        options = env_options(policy.manifest)
        if options["battery_action"] != "power":  # its first entry moves the import: convert to battery power
            from agents.controllers.import_change import ImportChangeActions

            policy = ImportChangeActions(policy, site, name)
        if options["shield"]:  # trained behind the filter: it acts behind it
            from agents.controllers.shielded import Shielded

            return Shielded(policy, site, name)
        return policy
    if name.startswith("onnx:"):
        return onnx_controller(name[5:], site)
    if name not in available:
        raise ValueError(f"controller {name!r} unknown: available are {', '.join(sorted(available))}, ppo, "
                         "ppo:RUN_DIR, onnx:EXPORT_DIR")
    return available[name](site)


def onnx_controller(directory: str, site: Site) -> Controller:
    """A policy exported by export.py, run by agents.runtime; one-line error if its contract
    (entry names, scales, bounds) or, with its safety filter on or a policy trained with
    ``battery_action = import_change``, the site model the runtime reads is not this site's."""
    from agents.runtime import PolicyController

    try:
        ctrl = PolicyController.load(directory)
    except ValueError as err:
        raise ValueError(f"onnx:{directory}: {err}") from None
    spec = ctrl.spec  # JSON floats round-trip exactly, so an export of this scenario compares equal
    obs = [(e.get("name"), e.get("scale"), e.get("low"), e.get("high")) for e in spec["observations"]]
    actions = [(e.get("name"), e.get("low"), e.get("high")) for e in spec["actions"]]
    # trained with site_features: its observations end with the site's parameters, appended to the env's below
    features, site_entries = spaces.site_observation(site.config, site.obs_features,
                                                     bool(spec["site_parameters"]["entries"]))
    if (obs != [(f.name, f.scale, f.low, f.high) for f in features]
            or actions != [(f.name, f.low, f.high) for f in site.action_features]):
        raise ValueError(f"onnx:{directory}: its observations or actions (names, scales, bounds) differ from "
                         f"{site.config.id}'s: export a policy trained on this scenario")
    if ctrl.site_model is not None and ctrl.site_model.params != site.params:
        name = next(n for n, a, b in zip(SiteParams._fields, ctrl.site_model.params, site.params) if a != b)
        reader = "safety filter" if ctrl.safety_filter is not None else "import_change conversion"
        raise ValueError(f"onnx:{directory}: its {reader}'s site model (policy.json shield.site_params) differs "
                         f"from {site.config.id}'s in {name}: export the policy for this scenario")
    return SiteParameterObservations(ctrl, site_entries) if site_entries.size else ctrl


class SiteParameterObservations:
    """``inner`` (a policy whose observations end with the site's parameters) fed an env's observations
    without them: ``predict`` appends ``entries`` (:func:`cpm_env.spaces.site_parameter_entries`) to each."""

    def __init__(self, inner: Controller, entries: np.ndarray):
        self.inner, self.entries = inner, entries

    def __getattr__(self, name: str):
        """The inner controller's attributes (its safety filter, its last report, ...)."""
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        return self.inner.predict(spaces.with_site_entries(observation, self.entries), state, episode_start,
                                  deterministic)


@dataclass
class EpisodeTotals:
    """Running sums of the per-step outputs over a batch of ``n`` episodes (MWh, MW, compute units, USD)."""

    n: int

    def __post_init__(self):
        z = lambda: np.zeros(self.n)  # noqa: E731
        self.reward, self.compute, self.demanded, self.over_mwh = z(), z(), z(), z()
        self.overshoot_max, self.ramp_count, self.ramp_mw, self.swing_mwh = z(), z(), z(), z()
        self.discharged, self.charged, self.grid_mwh, self.burn = z(), z(), z(), z()
        self.dr_steps, self.dr_met, self.dr_over_mwh, self.energy_cost_usd = z(), z(), z(), z()
        self.shield_steps, self.shield_mw = z(), z()

    def add(self, out, dt_h: float, in_dr: np.ndarray, price_usd_per_mwh: float | None = None) -> None:
        """Add one step's outputs; ``in_dr`` marks the episodes inside a demand-response window."""
        self.reward += out.reward
        self.compute += out.compute_delivered
        self.demanded += out.compute_demanded
        self.over_mwh += out.over_limit_mwh
        self.overshoot_max = np.maximum(self.overshoot_max, out.peak_overshoot_mw)
        self.ramp_count += out.ramp_excess_mw > RAMP_TOLERANCE_MW
        self.ramp_mw += out.ramp_excess_mw
        self.swing_mwh += out.swing_excess_mw * dt_h
        self.discharged += out.battery_discharged_mwh
        self.charged += out.battery_charged_mwh
        self.grid_mwh += out.grid_import_mw * dt_h
        self.burn += out.burn_mwh
        self.dr_steps += in_dr
        self.dr_met += in_dr & (out.over_limit_mwh <= DR_TOLERANCE_MWH)
        self.dr_over_mwh += np.where(in_dr, out.over_limit_mwh, 0.0)
        if price_usd_per_mwh is not None:
            self.energy_cost_usd += price_usd_per_mwh * out.grid_import_mw * dt_h


    def add_shield(self, report) -> None:
        """Add one step's safety-filter report (:class:`cpm_env.shield.Report`)."""
        self.shield_steps += report.intervened
        self.shield_mw += np.where(report.intervened, report.delta_mw, 0.0)


def record_trace(trace: dict[str, list[float]], venv: CpmVecEnv) -> None:
    """Append the first episode's last step (powers in MW, SoC and caps as fractions) to ``trace``."""
    out = venv.last_outputs
    for key in TRACE_KEYS:
        trace.setdefault(key, []).append(float(np.broadcast_to(getattr(out, key), (venv.num_envs,))[0]))
    for name, cap in zip(venv.site.class_names, venv.state.caps):
        trace.setdefault(f"cap_{name}", []).append(float(cap[0]))


def episode_rows(totals: EpisodeTotals, venv: CpmVecEnv, seeds: list[int], label: str, priced: bool,
                 shielded: bool = False) -> pd.DataFrame:
    """One row of KPIs per episode (the columns of episodes.csv), from a batch's totals; a shielded
    controller's rows also get ``shield_interventions`` (steps where the filter changed the action)
    and ``shield_delta_mw`` (mean over those steps of |battery change| + IT MW of cap change)."""
    cfg, p = venv.config, venv.params
    capacity = np.asarray(p.capacity_mwh)  # per env on a site family's batch
    cycles = np.where(capacity > 0, totals.discharged / np.maximum(capacity, 1e-12), 0.0)
    limit_mw = np.array([site.config.grid.limit_mw for site in venv.sites])
    return pd.DataFrame({
        "controller": label,
        "scenario": cfg.id,
        "seed": seeds,
        "reward": totals.reward,
        "compute_delivered": totals.compute,
        "compute_demanded": totals.demanded,
        "compute_fraction": totals.compute / np.maximum(totals.demanded, 1e-12),
        "compute_per_mw": totals.compute / (limit_mw * cfg.duration_h),
        "violation_mwh": totals.over_mwh,
        "max_overshoot_mw": totals.overshoot_max,
        "ramp_violations": totals.ramp_count.astype(int),
        "ramp_excess_mw": totals.ramp_mw,
        "swing_excess_mwh": totals.swing_mwh,
        "battery_throughput_mwh": totals.discharged + totals.charged,
        "battery_cycles": cycles,
        "battery_discharged_mwh": totals.discharged,
        "degradation_cost": p.w_degradation * totals.discharged,
        "burn_mwh": totals.burn,
        "grid_energy_mwh": totals.grid_mwh,
        "dr_window_h": totals.dr_steps * p.dt_h,
        "dr_compliance_pct": np.where(totals.dr_steps > 0, 100 * totals.dr_met / np.maximum(totals.dr_steps, 1),
                                      np.nan),
        "dr_over_limit_mwh": totals.dr_over_mwh,
        **({"energy_cost_usd": totals.energy_cost_usd} if priced else {}),
        **({"shield_interventions": totals.shield_steps.astype(int),
            "shield_delta_mw": totals.shield_mw / np.maximum(totals.shield_steps, 1)} if shielded else {}),
    })


def run_controller(controller: Controller, venv: CpmVecEnv, seeds: list[int], label: str,
                   progress: tqdm | None = None, trace: dict | None = None,
                   price_usd_per_mwh: np.ndarray | None = None, built_for_its_site: bool = False) -> pd.DataFrame:
    """One episode per seed, all seeds stepped as one batch; one row of KPIs per episode.

    On a site family's batch only a controller that reads nothing but the observation runs
    (``reads_observation_only``), or one built for the site its single seed draws (``built_for_its_site``,
    as :func:`run_named` builds them); any other is a one-line ValueError.

    If ``trace`` is a dict, it receives the first seed's per-step series (for plots). With
    ``price_usd_per_mwh`` (one price per step) the rows also get ``energy_cost_usd``.
    """
    if venv.family is not None and not (getattr(controller, "reads_observation_only", False)
                                        or (built_for_its_site and len(seeds) == 1)):
        raise ValueError(f"{label}: reads one site's model, and the site family {venv.family.id} draws a site per "
                         "seed: run it per site (agents.evaluation.runner.run_named, benchmarks/generalization.py)")
    venv.seed(seeds)
    obs = venv.reset()
    if hasattr(controller, "start_episode"):  # the oracle reads the episode it will face
        controller.start_episode(venv.episode)
    totals = EpisodeTotals(len(seeds))
    ep = venv.episode
    for t in range(venv.config.n_steps):
        action, _ = controller.predict(obs, deterministic=True)
        report = getattr(controller, "last_shield_report", None)
        if report is not None:
            totals.add_shield(report)
        obs, _, _, _ = venv.step(action)
        in_dr = ((ep.dr_start_step <= t) & (t < ep.dr_end_step)).any(axis=1)  # a demand-response window
        totals.add(venv.last_outputs, venv.params.dt_h, in_dr,
                   None if price_usd_per_mwh is None else price_usd_per_mwh[t])
        if trace is not None:
            record_trace(trace, venv)
        if progress is not None:
            progress.update(len(seeds))
    return episode_rows(totals, venv, seeds, label, price_usd_per_mwh is not None,
                        shielded=getattr(controller, "last_shield_report", None) is not None)


def run_named(name: str, venv: CpmVecEnv, seeds: list[int], label: str) -> pd.DataFrame:
    """:func:`run_controller` of the controller ``name`` on ``venv``'s episodes for ``seeds``. A controller
    reads one site's model, so on a site family (``venv.family``) each seed runs alone, in an env of its
    own with ``venv``'s options, by the controller built for the site that seed draws."""
    from agents.learning.artifacts import options_in  # the env options, as every env is rebuilt with them

    family = venv.family
    if family is None:
        return run_controller(make_controller(name, venv.site), venv, seeds, label)
    options = options_in(vars(venv))
    return pd.concat([run_controller(make_controller(name, Site(family.site(seed))), CpmVecEnv(family, 1, **options),
                                     [seed], label, built_for_its_site=True) for seed in seeds], ignore_index=True)
