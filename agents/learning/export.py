"""Trained PPO run -> standalone controller: ``policy.onnx`` and its contract ``policy.json``.

The ONNX graph is the whole decision. It normalizes and clips the observation with the run's
normalizer statistics (``normalizer.json``, read with the policy by :class:`PPOController` from
a sealed set, no pickle), computes the policy's deterministic action (the Gaussian mean)
clipped to [-1, 1], and maps it to physical set-points with :func:`cpm_env.spaces.to_physical`:
battery MW (+ discharging), caps and floors as fractions of TDP. The normalized observation
is rounded to float32 as VecNormalize does; everything else runs in float64, because
onnxruntime's float32 tanh is off by up to ~4 ulp, which a 25 MW battery scale would magnify
to ~1e-5 MW. The outputs then differ from the trained model's only by its own float32
rounding (a few 1e-6 MW for the shipped policy).

A policy trained with ``battery_action = "import_change"`` (its manifest's ``env_options``) moves the
step-mean grid import: there the graph's first output is that change (MW, the action x
``ramp_step_mw``), and ``policy.json``'s ``battery_action`` section (:func:`battery_action_section`)
says so; the runtime turns it into the battery's set-point (MW) from the decoded observation, as
:class:`agents.controllers.import_change.ImportChangeActions` does in evaluation. Its parity rollouts
run under that option, and parity compares battery set-points both ways: the model's converted as
the evaluation converts them, the runtime's after its conversion.

The safety filter (:mod:`cpm_env.shield`) runs after the graph, in the runtime: ``policy.json``'s
``shield`` section (:func:`shield_section`) says whether it is on (by default as the policy was
trained: its manifest's ``env_options``) and carries the site model it judges by
(:func:`cpm_env.site.params_to_json`) and the observation entries it decodes (which the ``import_change``
conversion reads too). Parity compares the policy alone, before any filter.

Nothing is written until the graph, run through :class:`agents.runtime.PolicyController` on
the observations of the model's own rollouts, reproduces the model's set-points (max abs
difference below ``tolerance``, physical units). ``policy.json`` is sealed by
:func:`agents.runtime.seal` (a checksum over the ONNX bytes and every other field). The files
are written to temporary names and moved into place, so a failed export leaves the output
folder as it was.
"""

from __future__ import annotations

import copy
import io
import json
import platform
import warnings
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import onnx
import torch

from agents.controllers.import_change import ImportChangeActions
from agents.controllers.rules import fit_cap
from agents.files import write_atomic
from agents.learning.artifacts import env_options
from agents.learning.ppo import PPOController
from agents.runtime import (
    INPUT_DTYPE,
    ONNX_FILE,
    OUTPUT_DTYPE,
    SCHEMA_VERSION,
    SIDECAR_FILE,
    PolicyController,
    seal,
    sha256_hex,
)
from cpm_env import spaces
from cpm_env.config import ForecastConfig, ScenarioConfig, read_yaml, scenario_to_dict
from cpm_env.family import SiteFamily, is_family_file
from cpm_env.forecast import SCHEDULE_KINDS, STEP_FORECASTERS, make_forecaster
from cpm_env.ops import NUMPY
from cpm_env.physics import setpoint_columns
from cpm_env.scenario import Site
from cpm_env.shield import CONSTRAINTS, GAVE_UP, MARGIN_MW, required_entries
from cpm_env.site import params_to_json
from cpm_env.vec_env import CpmVecEnv, make_vec

OPSET = 17  # onnxruntime >= 1.14 runs it
INPUT_NAME, OUTPUT_NAME = "obs", "setpoints"
PARITY_TOLERANCE = 1e-5  # physical units (MW, fraction of TDP)
PARITY_OBSERVATIONS = 10_240  # 640 steps of 16 envs
MIN_PARITY_OBSERVATIONS = 10_000
PARITY_ENVS = 16
PACKAGES = ("numpy", "torch", "stable-baselines3", "gymnasium", "onnx", "onnxruntime", "cpm")


class ParityError(ValueError):
    """The exported graph does not reproduce the trained model; nothing was written."""


class PolicyGraph(torch.nn.Module):
    """Observations (batch, n_obs) float32 -> physical set-points (batch, n_actions) float64; under
    ``battery_action = "import_change"`` the first output is the change of the step-mean import instead
    (MW: the action x ``ramp_step_mw``), which the runtime turns into the battery's set-point."""

    def __init__(self, controller: PPOController, site: Site, battery_action: str = "power"):
        super().__init__()
        policy = controller.policy
        if policy.squash_output:
            raise ValueError("export: policies with squash_output=True are not supported (their actions are "
                             "rescaled, not clipped)")
        # float64 copies of the actor; the controller keeps its float32 model for the parity reference
        self.features = copy.deepcopy(policy.pi_features_extractor).double()
        self.actor = copy.deepcopy(policy.mlp_extractor).double()
        self.action_net = copy.deepcopy(policy.action_net).double()
        self.params, self.floor_idx = site.params, site.floor_idx
        # MW per unit of the first action: the battery's rating, or the ramp limit per step (import_change)
        self.first_scale = spaces.battery_action_feature(site.params, battery_action, site.action_features[0]).scale
        norm = controller.normalizer
        self.normalize = norm is not None and norm.norm_obs
        if norm is not None and norm.norm_obs:
            # VecNormalize divides by sqrt(var + eps) in float64 and casts the result to float32
            self.register_buffer("mean", torch.as_tensor(norm.mean, dtype=torch.float64))
            self.register_buffer("std", torch.as_tensor(np.sqrt(norm.var + norm.epsilon), dtype=torch.float64))
            self.clip_obs = float(norm.clip_obs)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs
        if self.normalize:
            x = torch.clamp((obs.double() - self.mean) / self.std, -self.clip_obs, self.clip_obs).float()
        mean = self.action_net(self.actor.forward_actor(self.features(x.double())))
        a = torch.clamp(mean, -1.0, 1.0)
        action = spaces.to_physical([a[:, j] for j in range(a.shape[1])], self.params, self.floor_idx, NUMPY)
        return torch.stack([a[:, 0] * self.first_scale, *setpoint_columns(action, self.floor_idx)[1:]], dim=1)


def physical_setpoints(actions: np.ndarray, site: Site) -> np.ndarray:
    """Actions (N, n_actions) in [-1, 1] -> physical set-points (N, n_actions) float64, as the env maps them."""
    a = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
    action = spaces.to_physical([a[:, j] for j in range(a.shape[1])], site.params, site.floor_idx, NUMPY)
    return np.stack(setpoint_columns(action, site.floor_idx), axis=1)


EXAMPLE_FILE = "obs.jsonl"  # example telemetry-mode input shipped with each export
EXAMPLE_LINES = 5


def rollout(controller: PPOController, venv: CpmVecEnv, n_obs: int) -> tuple[np.ndarray, np.ndarray]:
    """At least ``n_obs`` observations of the model's own deterministic rollouts (float32, in ``venv``, whose
    ``battery_action`` is the policy's) and the physical set-points it chose for each: battery MW, under
    ``import_change`` converted as the evaluation converts (:class:`ImportChangeActions`), then caps and floors."""
    power = None if venv.battery_action == "power" else ImportChangeActions(controller, venv.site, "export")
    obs = venv.reset()
    observed, chosen = [], []
    for _ in range(-(-n_obs // venv.num_envs)):
        action, _ = controller.predict(obs)
        observed.append(obs)
        chosen.append(physical_setpoints(action if power is None else power.to_power(obs, action), venv.site))
        obs, _, _, _ = venv.step(action)
    return np.concatenate(observed), np.concatenate(chosen)


def safe_action(site: Site) -> tuple[list[float], str]:
    """The fail-safe set-points in action order, and the rule that sets them (one line)."""
    cfg, p = site.config, site.params
    dr, calendar = cfg.grid.demand_response, site.episodes.limit_calendar
    lowest_limit_mw = cfg.grid.limit_mw * (dr.limit_fraction if dr.events_per_episode > 0 else 1.0)
    if calendar is not None:  # a limit calendar's windows: its lowest step
        lowest_limit_mw = float(calendar.steps_mw.min())
    cap = float(fit_cap(p, lowest_limit_mw))
    rule = (f"battery idle (0 MW); every cap at {cap:.4f}, the highest uniform cap at which the installed GPU "
            f"peak ({sum(p.peak_mw):.1f} MW) x PUE ({p.pue}) fits the lowest import limit of the scenario "
            f"({lowest_limit_mw:.1f} MW, demand response and the limit calendar included), at least every cap_min "
            "(the static_cap rule); floors off")
    return [0.0] + [cap] * len(p.peak_mw) + [0.0] * len(site.floor_idx), rule


def onnx_bytes(graph: PolicyGraph, site: Site, battery_action: str = "power", obs_names: list[str] | None = None
               ) -> bytes:
    """The traced graph as a checked ONNX model, with a dynamic batch axis (``battery_action`` names its first
    output in the model's doc string; ``obs_names``: its inputs, default the site's observation)."""
    obs_names = site.obs_names if obs_names is None else obs_names
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(graph, (torch.zeros(1, len(obs_names)),), buffer, dynamo=False, opset_version=OPSET,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    model = onnx.load_from_string(buffer.getvalue())
    first = spaces.battery_action_feature(site.params, battery_action, site.action_features[0])
    outputs = ", ".join([f"{first.name} ({first.unit})", *site.action_names[1:]])
    model.doc_string = (f"cpm policy for {site.config.id}: scaled observations ({', '.join(obs_names)}) -> "
                        f"physical outputs ({outputs}); contract in {SIDECAR_FILE}")
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _read_yaml(path: Path):
    return read_yaml(path, "run settings") if path.is_file() else None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def schedule_input(fc: ForecastConfig) -> str:
    """One line on the schedule a deployed controller passes for forecaster ``fc.kind``."""
    if fc.kind not in STEP_FORECASTERS:
        return (f"none: forecast.kind = {fc.kind} reads the realized future, which a deployed controller cannot "
                "compute: telemetry mode is refused; pass whole observations")
    window = (f"scheduled facility demand (MW) at steps t, t+1, ..., t+{max(fc.horizons_steps)}; only its changes "
              "from entry 0 matter; a shorter list is held at its last value")
    return window + ("; required (a site without a schedule passes zeros)" if fc.kind in SCHEDULE_KINDS else
                     "; optional, unused by this forecaster")


def forecast_section(cfg: ScenarioConfig) -> dict:
    """How a deployed controller computes the ``forecast_<h>`` entries itself (``policy.json``'s ``forecast``).

    The arguments of :func:`cpm_env.forecast.forecast_step_mw` and
    :func:`cpm_env.forecast.forecast_entries` besides the telemetry and the schedule; only
    ``{"enabled": false, "entries": []}`` when the scenario has no forecast.
    """
    fc = cfg.forecast
    if not fc.enabled:
        return {"enabled": False, "entries": []}
    return {
        "enabled": True,
        "kind": fc.kind,
        "causal": make_forecaster(fc).causal,
        "horizons_steps": list(fc.horizons_steps),
        "entries": spaces.forecast_names(cfg),
        "demand_entry": spaces.FACILITY_DEMAND,
        "limit_mw": cfg.grid.limit_mw,
        "oversubscription": cfg.site.oversubscription,
        "schedule_mw": schedule_input(fc),
        "computed_by": "cpm_env.forecast.forecast_step_mw, then cpm_env.forecast.forecast_entries",
    }


def shield_section(site: Site, enabled: bool, trained_behind_filter: bool) -> dict:
    """How the runtime applies the safety filter to the graph's set-points (``policy.json``'s ``shield``).

    The site model the filter judges by (``site_params``, the one source: :func:`cpm_env.site.params_to_json`
    of the scenario's :class:`cpm_env.site.SiteParams`), the tightening ``margin_mw`` (MW), the contract
    in priority order, the GPU classes and which have a floor action, and the observation entries it
    decodes (:func:`cpm_env.shield.required_entries`); the ``import_change`` conversion reads the site model
    and the entries too (:func:`battery_action_section`). One-line ValueError where the observation lacks one.
    """
    entries = required_entries(site.class_names, site.floor_idx, spaces.class_duties(site.config))
    missing = [e for e in entries if e not in site.obs_names]
    if enabled and missing:
        raise ValueError(f"--shield: the observation of {site.config.id} lacks {', '.join(missing)}: the safety "
                         f"filter reads {', '.join(entries)}")
    return {
        "enabled": enabled,
        "trained_behind_filter": trained_behind_filter,
        "site_params": params_to_json(site.params),
        "margin_mw": MARGIN_MW,
        "constraints": list(CONSTRAINTS),
        "gave_up": list(GAVE_UP),
        "class_names": site.class_names,
        "floor_classes": site.floor_idx,
        "entries": entries,
        "computed_by": "cpm_env.shield.decode_observation, then cpm_env.shield.shield",
    }


def battery_action_section(site: Site, battery_action: str) -> dict:
    """What the graph's first output is (``policy.json``'s ``battery_action``): the battery's set-point itself
    (``kind`` ``power``: ``actions[0]``), or (``import_change``) the change of the step-mean grid import from
    last step's, MW, ``graph_output`` with its bounds (+- ``ramp_step_mw``). The runtime turns the latter into
    the battery's set-point (MW) on the state and step the observation describes, decoded as the safety filter
    decodes it (``shield.entries``, with the site model ``shield.site_params``, whether or not the filter is on)."""
    if battery_action == "power":
        return {"kind": "power"}
    f = spaces.battery_action_feature(site.params, battery_action, site.action_features[0])
    return {
        "kind": battery_action,
        "graph_output": {"index": 0, "name": f.name, "unit": f.unit, "scale": f.scale, "low": f.low, "high": f.high,
                         "description": f"{f.description}; = the policy's action in [-1, 1] x scale (the ramp limit "
                                        "per step, shield.site_params.ramp_step_mw)"},
        "computed_by": "cpm_env.shield.decode_observation (shield.entries, shield.site_params), then "
                       "cpm_env.physics.battery_for_import at the graph's caps and floors, import = last step's "
                       "(grid_import_prev) + graph output 0; clipped to the bounds of actions[0]",
    }


def sidecar(site: Site, run_dir: Path, manifest: dict, model: bytes, shield: bool | None = None,
            family: SiteFamily | None = None) -> dict:
    """The contract of an exported graph: entries (the site's parameters last where the policy was trained
    with ``site_features``), safe action, safety filter (``shield``: on or off; None: as the policy was
    trained), provenance (parity and checksum added later). ``family``: the site family the policy was
    trained on (its site parameters' range goes into ``trained_low/high``), or None."""
    cfg = site.config
    options = env_options(manifest)
    features, site_entries = spaces.site_observation(cfg, site.obs_features, options["site_features"])
    site_names = [f.name for f in features[len(site.obs_features):]]
    trained_behind_filter = bool(options["shield"])
    safe, rule = safe_action(site)
    trained = ((family.site_low, family.site_high) if family is not None and site_entries.size
               else (site_entries.astype(float), site_entries.astype(float)))
    return {
        "schema_version": SCHEMA_VERSION,
        "scenario": {"id": cfg.id, "dt_s": cfg.dt_s, "config": scenario_to_dict(cfg)},
        "observations": [{"index": i, "name": f.name, "unit": f.unit, "scale": f.scale, "low": f.low, "high": f.high,
                          "description": f"{f.description}; entry = physical value / scale",
                          **dict(zip(("source", "when_not_applicable"), spaces.live_source(f.name)))}
                         for i, f in enumerate(features)],
        "observation_scaling": "every entry is scaled: physical value (in its unit) / scale; MW entries are "
                               "fractions of the grid limit. source: where a live controller gets the entry; "
                               "when_not_applicable: the entry to send where it does not apply",
        "example_telemetry": EXAMPLE_FILE,
        "site_parameters": {"entries": site_names, "values": site_entries.astype(float).tolist(),
                            # trained on one scenario: its range is its own values; on a family: the family's
                            "trained_low": trained[0].tolist(), "trained_high": trained[1].tolist(),
                            "description": "the site's static parameters (train.py --site-features): observation "
                                           "entries the runtime fills from values in telemetry mode; an observation "
                                           "outside trained_low..trained_high makes the runtime warn"},
        "actions": [{"index": i, "name": f.name, "unit": f.unit, "low": f.low, "high": f.high, "safe": s,
                     "description": f.description} for i, (f, s) in enumerate(zip(site.action_features, safe))],
        "safe_action_rule": rule,
        "forecast": forecast_section(cfg),
        "shield": shield_section(site, trained_behind_filter if shield is None else shield, trained_behind_filter),
        "battery_action": battery_action_section(site, options["battery_action"]),
        "onnx": {
            "file": ONNX_FILE,
            "sha256": sha256_hex(model),
            "opset": OPSET,
            "input": {"name": INPUT_NAME, "shape": ["batch", len(features)], "dtype": INPUT_DTYPE},
            "output": {"name": OUTPUT_NAME, "shape": ["batch", len(site.action_features)], "dtype": OUTPUT_DTYPE},
        },
        "training_run": {
            "source": str(run_dir.resolve()),
            "num_timesteps": manifest["num_timesteps"],
            "files_sha256": {name: entry["sha256"] for name, entry in manifest["files"].items()},
            "config": _read_yaml(run_dir / "config.yml"),
            "args": _read_yaml(run_dir / "args.yml"),
        },
        "versions": {"python": platform.python_version(), **{name: _version(name) for name in PACKAGES}},
        "exported_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def export_policy(source: str | Path, out: str | Path, scenario: str | None = None,
                  n_obs: int = PARITY_OBSERVATIONS, seed: int = 0, tolerance: float = PARITY_TOLERANCE,
                  shield: bool | None = None) -> dict:
    """Export ``source`` (a run dir, its ``best/``, or a file in one) to ``out/policy.onnx`` and ``out/policy.json``.

    The source must be a sealed artifact set (its manifest checks); only its pickle-free files are
    read. ``scenario`` (registered id or YAML) defaults to the run dir's ``scenario.yml``. ``shield``:
    whether the runtime passes the set-points through the safety filter (None: as the policy was
    trained, its manifest's ``env_options``). Parity runs on ``n_obs`` observations of rollouts seeded
    ``seed``; raises :class:`ParityError` (nothing written) when the max abs difference is not below
    ``tolerance``. Returns the sidecar.
    """
    source, out = Path(source), Path(out)
    run_dir = source.parent if source.is_file() else source
    if not run_dir.is_dir():
        raise ValueError(f"{source}: no such folder: pass a run dir of train.py (with model.zip and manifest.json)")
    if n_obs < MIN_PARITY_OBSERVATIONS:
        raise ValueError(f"parity observations = {n_obs}: must be at least {MIN_PARITY_OBSERVATIONS}")
    if seed < 0:
        raise ValueError(f"--seed = {seed}: must be >= 0 (the parity rollouts' seed)")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: is a file, not a folder: pass a folder for policy.onnx and policy.json")
    if scenario is None:
        scenario_path = run_dir / "scenario.yml"
        if not scenario_path.is_file():
            raise ValueError(f"{scenario_path}: not found: pass --scenario ID_OR_YAML, the scenario the policy "
                             "was trained on")
        if is_family_file(scenario_path):
            raise ValueError(f"{scenario_path}: the policy was trained on the site family "
                             f"{read_yaml(scenario_path).get('id')!r}: pass --scenario ID_OR_YAML, the site to export "
                             "it for (its parameters and safety filter go into policy.json)")
        scenario = str(scenario_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # SB3's small MLP runs several times slower with threads competing for cores
    try:
        return _export(run_dir, out, scenario, n_obs, seed, tolerance, shield)
    finally:
        torch.set_num_threads(threads)


def _export(run_dir: Path, out: Path, scenario: str, n_obs: int, seed: int, tolerance: float,
            shield: bool | None) -> dict:
    venv = make_vec(scenario, PARITY_ENVS, seed=seed)
    controller = PPOController(run_dir, venv.site)
    options = env_options(controller.manifest)
    battery_action = options["battery_action"]
    if battery_action != "power" or options["site_features"]:  # the parity rollouts are in the policy's own env
        venv = CpmVecEnv(venv.config, PARITY_ENVS, battery_action=battery_action,
                         site_features=options["site_features"])
        venv.seed(seed)
    model = onnx_bytes(PolicyGraph(controller, venv.site, battery_action).eval(), venv.site, battery_action,
                       venv.obs_names)
    spec = sidecar(venv.site, run_dir, controller.manifest, model, shield, controller.family)
    obs, expected = rollout(controller, venv, n_obs)
    spec["parity"] = {"observations": len(obs), "rollout_envs": venv.num_envs, "seed": seed,
                      "max_abs_diff": None, "tolerance": tolerance}
    runtime = PolicyController(seal(spec, model), model, shield=False)  # the graph alone
    got = runtime.act_batch(obs)
    if runtime.last_fallback_reason is not None:
        raise ParityError(f"parity: the runtime rejected rollout observations of {venv.config.id} "
                          f"({runtime.last_fallback_reason}); nothing written")
    diff = np.abs(got - expected)
    row, col = np.unravel_index(int(np.argmax(diff)), diff.shape)
    max_diff = float(diff[row, col])
    if not max_diff < tolerance:
        raise ParityError(f"parity failed: max abs difference {max_diff:.3g} ({venv.site.action_names[col]}, "
                          f"observation {row}) is not below {tolerance:g} over {len(obs)} observations of "
                          f"{venv.config.id}; nothing written")
    spec["parity"]["max_abs_diff"] = max_diff
    spec = seal(spec, model)
    example = example_telemetry(controller, venv, runtime)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / ONNX_FILE, model)
    write_atomic(out / SIDECAR_FILE, (json.dumps(spec, indent=2, allow_nan=False) + "\n").encode())
    write_atomic(out / EXAMPLE_FILE, example.encode())
    return spec


def example_telemetry(controller: PPOController, venv: CpmVecEnv, runtime: PolicyController,
                      n_lines: int = EXAMPLE_LINES) -> str:
    """JSON lines for the runtime's telemetry mode from the first steps of a seeded episode under the policy:
    each ``{"telemetry": {name: entry}, "schedule_mw": [...]}`` with the fields a live site sends
    (``policy.json``'s observations without the forecast entries and site parameters) and the scheduled
    facility demand (MW) over the forecast's horizon."""
    horizon = max(runtime.forecast.get("horizons_steps") or [0])
    obs, lines = venv.reset(), []
    for t in range(n_lines):
        row = dict(zip(venv.obs_names, obs[0].tolist()))
        schedule = venv.episode.scheduled_mw[t:t + horizon + 1, 0].tolist()
        lines.append(json.dumps({"telemetry": {name: row[name] for name in runtime.telemetry_names},
                                 "schedule_mw": schedule}, allow_nan=False))
        obs, _, _, _ = venv.step(controller.predict(obs)[0])
    return "\n".join(lines) + "\n"
