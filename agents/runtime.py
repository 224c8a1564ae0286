"""Standalone controller for an exported policy: numpy + onnxruntime only, fail-safe.

    python -m agents.runtime DIR  < observations.jsonl  > setpoints.jsonl

``DIR`` holds ``policy.onnx`` and its contract ``policy.json`` (written by ``export.py``).
The contract is sealed: ``checksum.sha256`` is the SHA-256 of the ONNX file's bytes followed by
the canonical JSON (sorted keys, no spaces) of every other field of ``policy.json``
(:func:`sidecar_checksum`). :meth:`PolicyController.load` refuses (one-line ``ValueError``) a
sidecar whose checksum does not match (a changed field or ONNX file), duplicate observation or
action names, an observation scale that is not a positive finite number, bounds that are not
``low < high`` (an action may have ``low == high``, its one set-point: the battery of a site without
one), a safe action outside its action bounds, or ONNX input/output names and shapes that differ
from the sidecar. It never loads a pickle and imports neither torch, Stable-Baselines3 nor the
simulator: of the project it imports only the numpy-only ``cpm_env.forecast``, ``physics``,
``shield`` and ``site`` (on a host without gymnasium the ``cpm_env`` package loads nothing else).

Observations are the env's vector: entry ``i`` is ``physical_value / scale`` of the
sidecar's ``observations[i]`` (float, inside its ``[low, high]``, which already include
slack). :meth:`PolicyController.act` returns physical set-points in the order of the
sidecar's ``actions`` (MW for ``battery``, + discharging; fractions of TDP for caps and
floors), float64.

Battery action: ``policy.json``'s ``battery_action.kind`` says what the graph's first output is. ``power``:
the battery set-point itself. ``import_change`` (a policy trained with that env option): the change of the
step-mean grid import from last step's, MW, inside ``battery_action.graph_output``'s bounds (+- the ramp
limit per step); the runtime decodes the observation (:func:`cpm_env.shield.decode_observation`, the
filter's decoder, with the site model of ``shield.site_params``, whether or not the filter is enabled) and
answers the battery set-point that puts the import there at the graph's caps and floors
(:func:`cpm_env.physics.battery_for_import`), clipped to the battery's bounds, as ``ppo:DIR`` does in
evaluation; the safety filter, where enabled, comes after. Every output (``act``, ``act_batch``,
``act_telemetry``, the JSON lines, ``predict``) is battery MW and caps for every policy.

Fail-safe: ``act`` never raises. An observation of the wrong shape, not numeric, NaN or
infinite, or outside its bounds, an onnxruntime error, a graph output outside its bounds (the
action bounds; ``graph_output``'s for the first under ``import_change``), or a conversion that fails
yields the sidecar's safe action instead (each action entry's ``safe`` value: battery idle at
0 MW, caps at the safe cap documented in ``safe_action_rule``, floors off) and sets
``last_fallback_reason`` to a one-line reason (also logged as a warning on the ``agents.runtime``
logger); it is ``None`` after a good step.

Site parameters: a policy trained with ``site_features`` observes the site's static parameters
(``policy.json``'s ``site_parameters``: entries, values, the range it was trained on). In telemetry
mode the runtime fills them from the values; in an observation passed whole, one outside the
training range does not stop the decision but sets ``last_site_warning`` (logged once per parameter,
and ``"site_warning"`` in a JSON-lines answer): the policy acts off the sites it learned on.

Safety filter: where ``policy.json``'s ``shield`` section is enabled, every set-point the policy
gives passes through :func:`cpm_env.shield.shield` (one decision through its single-site entry
:func:`cpm_env.shield.shield_site`, the same answer), on the state and step the observation describes
(decoded by :func:`cpm_env.shield.decode_observation`, as ``NAME+shield`` in evaluation does, with the
site model of ``shield.site_params``): the nearest set-points that keep the coming step inside the
grid contract. ``last_shield_report`` holds its :class:`cpm_env.shield.Report` (``intervened``,
``delta_mw`` in MW, ``gave_up`` as an index into ``shield.gave_up``); ``None`` when the filter did
not run (disabled, or the step fell back). If the filter raises, or returns set-points that are not
finite or outside the action bounds (telemetry the physics does not reach, e.g. a SoC above its
maximum), the step gets the safe action, unfiltered, with a one-line reason.

Telemetry mode: :meth:`PolicyController.act_telemetry` (``telemetry, schedule_mw=None``) takes
every observation entry except the ``forecast_<h>`` ones (a list in ``policy.json`` order, or a
dict ``{name: value}``, same scaled units) and computes the forecast entries itself with the
forecaster named in ``policy.json``'s ``forecast`` section (:mod:`cpm_env.forecast`, numpy only):
from the ``facility_demand`` entry and ``schedule_mw``, the scheduled facility demand (MW) at
steps t, t+1, ..., t+max(h) (only its changes from entry 0 matter; a shorter list is held at its
last value). ``schedule_persistence`` needs it (a site without a schedule passes zeros);
``persistence`` ignores it. Like ``act`` it never raises: a missing or unknown name, a wrong
length, a missing, non-numeric or non-finite schedule, or a policy trained with
``oracle_noisy`` (which reads the realized future, so no controller can compute its entries)
gives the safe action and a one-line reason. :meth:`PolicyController.observation` builds the
observation vector the same way (and raises a one-line ValueError instead).

JSON-lines loop: each stdin line is a JSON list of numbers, an object ``{"obs": [...]}``, or
``{"telemetry": [...] or {name: value}, "schedule_mw": [...]}`` (telemetry mode); each gives one
stdout line ``{"setpoints": {name: value}, "fallback": reason or null}`` (with the filter enabled
also ``"shield": {"intervened": bool, "delta_mw": MW, "gave_up": "none" | "band" | "ramp" | "limit"}``,
null on a fallback), flushed at once. Malformed lines get the safe action; blank lines are skipped;
fallbacks are also logged to stderr with a timestamp. A reader that closes the pipe ends the loop quietly
(exit 0); an unwritable stdout (closed, disk full) ends it with one line on stderr (exit 1).

``act_batch`` does the same for a batch, row by row, and ``predict`` offers SB3's interface
(actions in [-1, 1]) so ``evaluate.py --controllers onnx:DIR`` runs the exported policy (behind its
filter where enabled: the same as ``ppo+shield``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import sys
from operator import le
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnxruntime as ort

from cpm_env.forecast import forecast_entries, forecast_step_mw
from cpm_env.ops import NUMPY, SCALAR
from cpm_env.physics import BATTERY_ACTIONS, Exo, action_from_setpoints, battery_for_import, setpoint_columns
from cpm_env.shield import CONSTRAINTS, GAVE_UP, Report, decode_observation, required_entries, shield, shield_site
from cpm_env.site import SiteParams, State, battery_less_soc, params_from_json

SCHEMA_VERSION = 7  # 2: sealed by checksum.sha256; 3: forecast section; 4: shield section; 5: battery_action section;
# 6: site_parameters section; 7: each observation's source and when_not_applicable, example_telemetry (obs.jsonl)
ONNX_FILE = "policy.onnx"
SIDECAR_FILE = "policy.json"
INPUT_DTYPE = "tensor(float)"
OUTPUT_DTYPE = "tensor(double)"

log = logging.getLogger("agents.runtime")  # the same name when run as __main__


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` as 64 hex digits."""
    return hashlib.sha256(data).hexdigest()


def canonical_json(data) -> bytes:
    """``data`` as canonical JSON bytes: sorted keys, no spaces, no NaN (JSON floats round-trip exactly)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def sidecar_checksum(spec: dict, model: bytes) -> str:
    """SHA-256 of the ONNX file's bytes followed by the canonical JSON of every sidecar field but ``checksum``."""
    digest = hashlib.sha256(model)
    digest.update(canonical_json({k: v for k, v in spec.items() if k != "checksum"}))
    return digest.hexdigest()


def seal(spec: dict, model: bytes) -> dict:
    """``spec`` with its ``checksum`` over ``model`` (the ONNX bytes) and every other field."""
    return {**{k: v for k, v in spec.items() if k != "checksum"},
            "checksum": {"sha256": sidecar_checksum(spec, model),
                         "covers": f"{ONNX_FILE} bytes, then the canonical JSON of every other field"}}


def _field(spec: dict, path: str):
    """``spec``'s field at a dotted ``path``; one-line error naming the field if it is missing."""
    value = spec
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            raise ValueError(f"{SIDECAR_FILE}: field {path!r} missing: re-export the policy with export.py")
        value = value[key]
    return value


def _one_line(err: Exception) -> str:
    """An exception as one line: its type and the first line of its message."""
    lines = str(err).splitlines()
    return f"{type(err).__name__}: {lines[0] if lines else ''}"


def _columns(entries: list[dict], keys: tuple[str, ...], where: str) -> list[np.ndarray]:
    try:
        return [np.array([float(e[k]) for e in entries]) for k in keys]
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{SIDECAR_FILE}: {where} entries need numeric {', '.join(keys)} ({err!r})") from None


def _check_names(names: list, section: str) -> None:
    """One-line ValueError for a name that is not a non-empty string or appears twice in ``section``."""
    seen: set[str] = set()
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise ValueError(f"{SIDECAR_FILE}: {section}[{i}] name = {name!r}: must be a non-empty string")
        if name in seen:
            raise ValueError(f"{SIDECAR_FILE}: {section}[{i}] name {name!r} appears twice: names must be unique")
        seen.add(name)


def _check_bounds(names: list[str], low: np.ndarray, high: np.ndarray, section: str, fixed: bool) -> None:
    """One-line ValueError for an entry of ``section`` whose bounds are not ``low < high``, or ``low <= high``
    where ``fixed`` entries are allowed (actions: ``low == high`` is an entry with one set-point, e.g. the
    battery of a site without one, 0 MW to 0 MW)."""
    for i, name in enumerate(names):
        if not (low[i] <= high[i] if fixed else low[i] < high[i]):
            allowed = "low <= high (low == high: one set-point)" if fixed else "low < high"
            raise ValueError(f"{SIDECAR_FILE}: {section}[{i}] ({name}) low = {float(low[i])!r}, high = "
                             f"{float(high[i])!r}: must have {allowed}")


FORECAST_FIELDS = ("kind", "horizons_steps", "demand_entry", "limit_mw", "oversubscription")  # when enabled


class SiteParameters(NamedTuple):
    """The sidecar's ``site_parameters``: observation entries holding the site's static parameters (a policy
    trained with ``site_features``; none otherwise), the values the runtime fills in telemetry mode, and the
    range of each it was trained on (one site: the values themselves)."""

    names: list[str]
    values: np.ndarray
    trained_low: list[float]
    trained_high: list[float]


def _numbers(spec: dict, key: str, n: int) -> list[float]:
    values = _field(spec, f"site_parameters.{key}")
    if not isinstance(values, list) or len(values) != n or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        raise ValueError(f"{SIDECAR_FILE}: site_parameters.{key} = {values!r}: must be one finite number per entry")
    return [float(v) for v in values]


def _site_parameters(spec: dict, obs_names: list[str], low: np.ndarray, high: np.ndarray) -> SiteParameters:
    """The sidecar's ``site_parameters``; one-line ValueError for names that are not observations, values outside
    the observation's bounds or a training range that is empty or leaves out the values."""
    names = _field(spec, "site_parameters.entries")
    if not isinstance(names, list) or not all(n in obs_names for n in names) or len(set(names)) != len(names):
        raise ValueError(f"{SIDECAR_FILE}: site_parameters.entries = {names!r}: must be distinct observation names")
    values = _numbers(spec, "values", len(names))
    trained_low, trained_high = _numbers(spec, "trained_low", len(names)), _numbers(spec, "trained_high", len(names))
    for name, value, lo, hi in zip(names, values, trained_low, trained_high):
        i = obs_names.index(name)
        if not low[i] <= value <= high[i]:
            raise ValueError(f"{SIDECAR_FILE}: site_parameters: {name} = {value!r}: outside the observation's bounds "
                             f"[{low[i]:g}, {high[i]:g}]")
        if not lo <= value <= hi:
            raise ValueError(f"{SIDECAR_FILE}: site_parameters: {name}: training range [{lo!r}, {hi!r}] must hold "
                             f"its value {value!r}")
    return SiteParameters(names, np.array(values, dtype=float), trained_low, trained_high)


def _telemetry_layout(spec: dict, obs_names: list[str], constant: list[str]
                      ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(telemetry names, their observation indices, the forecast entries' indices) of the sidecar's ``forecast``;
    the ``constant`` entries (the site's parameters, which the runtime fills) are no telemetry either.

    One-line ValueError naming the field for a missing one (:data:`FORECAST_FIELDS` when enabled),
    entries that are not observations, a demand entry that is not a telemetry name, or horizons
    that do not match the entries.
    """
    entries = _field(spec, "forecast.entries")
    if not isinstance(entries, list) or not all(e in obs_names for e in entries):
        raise ValueError(f"{SIDECAR_FILE}: forecast.entries = {entries!r}: must be observation names")
    if _field(spec, "forecast.enabled"):
        fields = {key: _field(spec, f"forecast.{key}") for key in FORECAST_FIELDS}
        demand, horizons = fields["demand_entry"], fields["horizons_steps"]
        if demand not in obs_names or demand in entries:
            raise ValueError(f"{SIDECAR_FILE}: forecast.demand_entry = {demand!r}: must be an observation name, "
                             "not a forecast entry")
        if not isinstance(horizons, list) or len(horizons) != len(entries):
            raise ValueError(f"{SIDECAR_FILE}: forecast.horizons_steps = {horizons!r}: needs one horizon per entry of "
                             "forecast.entries")
    names = [n for n in obs_names if n not in entries and n not in constant]
    return names, np.array([obs_names.index(n) for n in names]), np.array([obs_names.index(n) for n in entries], int)


class SiteModel(NamedTuple):
    """The site model and the decoded observation entries of the sidecar's ``shield`` section, which the safety
    filter and the ``import_change`` conversion read (:func:`cpm_env.shield.decode_observation`'s arguments)."""

    params: SiteParams
    floor_idx: list[int]  # GPU classes whose floor is an action
    index: list[int]  # observation positions of the entries decoded (required_entries order)
    scale: list[float]  # their scales


class SafetyFilter(NamedTuple):
    """The sidecar's ``shield`` section as the runtime applies it."""

    params: SiteParams
    margin_mw: float
    floor_idx: list[int]  # GPU classes whose floor is an action
    index: list[int]  # observation positions of the entries the filter decodes (required_entries order)
    scale: list[float]  # their scales


def _site_model(spec: dict, obs_names: list[str], obs_scale: np.ndarray, n_actions: int, reader: str) -> SiteModel:
    """The sidecar's ``shield.site_params``, ``class_names``, ``floor_classes`` and ``entries``, checked against the
    observations and actions; one-line ValueError naming the field (``reader``: who reads them, for the message)."""
    p = params_from_json(_field(spec, "shield.site_params"), f"{SIDECAR_FILE}: shield.site_params")
    n = len(p.peak_mw)
    names, floor_idx = _field(spec, "shield.class_names"), _field(spec, "shield.floor_classes")
    if not (isinstance(names, list) and len(names) == n and all(isinstance(c, str) and c for c in names)):
        raise ValueError(f"{SIDECAR_FILE}: shield.class_names = {names!r}: must be {n} names (one per GPU class "
                         "of shield.site_params)")
    if not (isinstance(floor_idx, list) and all(type(k) is int for k in floor_idx)
            and floor_idx == sorted(set(floor_idx)) and all(0 <= k < n for k in floor_idx)):
        raise ValueError(f"{SIDECAR_FILE}: shield.floor_classes = {floor_idx!r}: must be increasing class indices "
                         f"in [0, {n})")
    if n_actions != 1 + n + len(floor_idx):
        raise ValueError(f"{SIDECAR_FILE}: actions has {n_actions} entries: {reader} (shield.class_names, "
                         f"shield.floor_classes) reads battery, {n} caps and {len(floor_idx)} floors")
    entries = _field(spec, "shield.entries")
    expected = required_entries(names, floor_idx, any(e.startswith("duty_") for e in obs_names))
    if entries != expected or not all(e in obs_names for e in entries):
        raise ValueError(f"{SIDECAR_FILE}: shield.entries = {entries!r}: must be the observation entries "
                         f"{expected}")
    index = [obs_names.index(e) for e in entries]
    return SiteModel(p, floor_idx, index, [float(obs_scale[i]) for i in index])


def _safety_filter(spec: dict, model: SiteModel) -> SafetyFilter:
    """The sidecar's enabled ``shield`` section on ``model``, checked; one-line ValueError naming the field."""
    margin = _field(spec, "shield.margin_mw")
    if not (type(margin) in (int, float) and 0 <= margin < float("inf")):
        raise ValueError(f"{SIDECAR_FILE}: shield.margin_mw = {margin!r}: must be a finite number >= 0 (MW)")
    for key, ours in (("constraints", list(CONSTRAINTS)), ("gave_up", list(GAVE_UP))):
        theirs = _field(spec, f"shield.{key}")
        if theirs != ours:
            raise ValueError(f"{SIDECAR_FILE}: shield.{key} = {theirs!r}: this runtime's filter has {ours}, in that "
                             "order")
    return SafetyFilter(model.params, float(margin), model.floor_idx, model.index, model.scale)


def _graph_output_bounds(spec: dict, kind: str, low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of the graph's outputs: the actions', but under ``import_change`` those of
    ``battery_action.graph_output`` (the import's change, MW) for the first; one-line ValueError naming the field."""
    if kind == "power":
        return low, high
    entry = _field(spec, "battery_action.graph_output")
    if not isinstance(entry, dict):
        raise ValueError(f"{SIDECAR_FILE}: battery_action.graph_output = {entry!r}: must be an entry with a name, "
                         "unit, scale, low and high")
    first_low, first_high = _columns([entry], ("low", "high"), "battery_action.graph_output")
    _check_bounds([entry.get("name")], first_low, first_high, "battery_action.graph_output", fixed=True)
    return np.concatenate([first_low, low[1:]]), np.concatenate([first_high, high[1:]])


class PolicyController:
    """An exported policy behind input validation, its safety filter and a fail-safe action."""

    def __init__(self, spec: dict, model: bytes, threads: int = 1, shield: bool = True):
        """Check ``model`` (the ONNX file's bytes) against the sidecar ``spec`` and open it.

        ``threads`` is onnxruntime's intra-op thread count; 1 is fastest for single observations.
        ``shield=False`` runs the bare policy even where ``policy.json`` enables the safety filter (the
        section is still checked): export.py's parity check compares the graph alone.
        """
        version = _field(spec, "schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"{SIDECAR_FILE}: schema_version = {version!r}: this runtime reads {SCHEMA_VERSION}: "
                             "re-export the policy with export.py")
        sealed = _field(spec, "checksum.sha256")
        try:
            computed = sidecar_checksum(spec, model)
        except ValueError:  # NaN or infinity, which export.py never writes
            raise ValueError(f"{SIDECAR_FILE}: holds NaN or Infinity, which export.py never writes: the file was "
                             "changed after export; re-export with export.py") from None
        if sealed != computed:
            raise ValueError(f"{SIDECAR_FILE}: checksum {computed[:16]}... does not match checksum.sha256 "
                             f"{str(sealed)[:16]}...: a field or {ONNX_FILE} was changed after export; re-export "
                             "with export.py")
        expected, actual = _field(spec, "onnx.sha256"), sha256_hex(model)
        if actual != expected:
            raise ValueError(f"{ONNX_FILE}: sha256 {actual} does not match {SIDECAR_FILE} onnx.sha256 {expected}: "
                             "the file was changed or belongs to another export")
        self.spec = spec
        obs, actions = _field(spec, "observations"), _field(spec, "actions")
        self.obs_names = [e.get("name") for e in obs]
        self.action_names = [e.get("name") for e in actions]
        _check_names(self.obs_names, "observations")
        _check_names(self.action_names, "actions")
        self.obs_low, self.obs_high, self.obs_scale = _columns(obs, ("low", "high", "scale"), "observations")
        self.action_low, self.action_high, safe = _columns(actions, ("low", "high", "safe"), "actions")
        for i, name in enumerate(self.obs_names):
            if not (np.isfinite(self.obs_scale[i]) and self.obs_scale[i] > 0):
                raise ValueError(f"{SIDECAR_FILE}: observations[{i}] ({name}) scale = {float(self.obs_scale[i])!r}: "
                                 "must be a positive finite number")
        _check_bounds(self.obs_names, self.obs_low, self.obs_high, "observations", fixed=False)
        _check_bounds(self.action_names, self.action_low, self.action_high, "actions", fixed=True)
        for i, name in enumerate(self.action_names):
            if not self.action_low[i] <= safe[i] <= self.action_high[i]:
                raise ValueError(f"{SIDECAR_FILE}: actions[{i}] ({name}) safe = {float(safe[i])!r}: outside its "
                                 f"bounds [{float(self.action_low[i])!r}, {float(self.action_high[i])!r}]")
        self.safe_setpoints = safe
        enabled, kind = _field(spec, "shield.enabled"), _field(spec, "battery_action.kind")
        if not isinstance(enabled, bool):
            raise ValueError(f"{SIDECAR_FILE}: shield.enabled = {enabled!r}: must be true or false")
        if kind not in BATTERY_ACTIONS:
            raise ValueError(f"{SIDECAR_FILE}: battery_action.kind = {kind!r}: this runtime converts "
                             f"{', '.join(BATTERY_ACTIONS)}: re-export the policy with export.py")
        self.battery_action, self._converts = kind, kind == "import_change"
        readers = " and ".join(who for who, reads in (("the safety filter", enabled),
                                                      ("the import_change conversion", self._converts)) if reads)
        site = _site_model(spec, self.obs_names, self.obs_scale, len(actions), readers) if readers else None
        safety_filter = _safety_filter(spec, site) if enabled and site is not None else None
        self.safety_filter = safety_filter if shield else None  # None: the bare policy
        # the site model the filter and the conversion read; None where neither runs
        self.site_model = site if self.safety_filter is not None or self._converts else None
        self.last_shield_report: Report | None = None
        # the graph's outputs: the set-points, but the import's change (MW) first under import_change
        self.output_low, self.output_high = _graph_output_bounds(spec, kind, self.action_low, self.action_high)
        self._output_low, self._output_high = self.output_low.tolist(), self.output_high.tolist()
        self._output_where = "the action bounds" if kind == "power" else \
            "the graph's output bounds (battery_action.graph_output, then actions)"
        self.site_parameters = _site_parameters(spec, self.obs_names, self.obs_low, self.obs_high)
        site_names = self.site_parameters.names
        self._site_values = self.site_parameters.values
        self._site_idx = np.array([self.obs_names.index(n) for n in site_names], dtype=int)
        self._site_idx_list = self._site_idx.tolist()
        self._site_trained = (np.array(self.site_parameters.trained_low), np.array(self.site_parameters.trained_high))
        # a site without a battery sends soc 0 (the contract's "no battery"); a policy that reads the site's
        # parameters was trained to see the middle of its SoC bounds there (cpm_env.site.battery_less_soc)
        battery = ("site_battery_energy", "site_battery_power")
        self._battery_idx = [self.obs_names.index(n) for n in battery] if set(battery) <= set(site_names) else []
        self._soc_idx = self.obs_names.index("soc") if self._battery_idx else -1
        self.last_site_warning: str | None = None  # a site parameter outside the training range, last decision
        self._site_warned: set[str] = set()
        self.telemetry_names, self._telemetry_idx, self._forecast_idx = _telemetry_layout(spec, self.obs_names,
                                                                                          site_names)
        self.forecast = spec["forecast"]
        self._demand_idx = self.obs_names.index(self.forecast["demand_entry"]) if self.forecast["enabled"] else -1
        self._obs_low, self._obs_high = self.obs_low.tolist(), self.obs_high.tolist()
        self._action_low, self._action_high = self.action_low.tolist(), self.action_high.tolist()
        self._action_sum = self.action_high + self.action_low
        self._action_span = self.action_high - self.action_low

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own exception types for unreadable models
            raise ValueError(f"{ONNX_FILE}: onnxruntime cannot open it: {_one_line(err)}") from None
        self._check_io(len(obs), len(actions))
        self._input_name = _field(spec, "onnx.input.name")
        self._output_names = [_field(spec, "onnx.output.name")]
        self._feed = np.zeros((1, len(obs)), dtype=np.float32)  # reused by act(): no per-call allocation
        self._inputs = {self._input_name: self._feed}
        self.last_fallback_reason: str | None = None

    def _check_io(self, n_obs: int, n_actions: int) -> None:
        for kind, nodes, n, dtype in (("input", self._session.get_inputs(), n_obs, INPUT_DTYPE),
                                      ("output", self._session.get_outputs(), n_actions, OUTPUT_DTYPE)):
            want = _field(self.spec, f"onnx.{kind}")
            got = [{"name": v.name, "shape": list(v.shape), "dtype": v.type} for v in nodes]
            allowed = [{"name": want.get("name"), "shape": want.get("shape"), "dtype": dtype}]
            if got != allowed or got[0]["shape"][-1] != n:
                raise ValueError(f"{ONNX_FILE}: {kind} {got} does not match {SIDECAR_FILE} onnx.{kind} {want} "
                                 f"with {n} entries of {dtype}")

    @classmethod
    def load(cls, directory: str | Path, threads: int = 1, shield: bool = True) -> PolicyController:
        """Open ``directory/policy.onnx`` after checking it against ``directory/policy.json`` (``shield``: as
        in the constructor)."""
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise ValueError(f"{directory}: is a file, not a folder: pass the folder export.py wrote "
                             f"({ONNX_FILE} and {SIDECAR_FILE})")
        try:
            spec = json.loads((directory / SIDECAR_FILE).read_text())
            model = (directory / ONNX_FILE).read_bytes()
        except FileNotFoundError as err:
            raise ValueError(f"{err.filename}: not found: export a policy there with export.py") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{directory / SIDECAR_FILE}: not valid JSON ({err})") from None
        if not isinstance(spec, dict):
            raise ValueError(f"{directory / SIDECAR_FILE}: must hold a JSON object, not {type(spec).__name__}")
        return cls(spec, model, threads, shield)

    # ------------------------------------------------------------------ control loop
    def act(self, obs) -> np.ndarray:
        """Physical set-points (n_actions,) float64 for one observation (n_obs,); never raises."""
        self.last_site_warning = None
        try:
            x = np.asarray(obs)
        except Exception as err:
            return self._fallback(f"observation is not an array of numbers ({_one_line(err)})")
        try:
            if x.shape != self._feed.shape[1:] or x.dtype.kind not in "fiu":
                return self._fallback(self._shape_reason(x))
            # Plain-float comparisons (NaN fails them): numpy's per-call overhead on arrays this
            # small costs more than the check itself.
            v = x.tolist()
            if not (all(map(le, self._obs_low, v)) and all(map(le, v, self._obs_high))):
                return self._fallback(self._range_reason(x))
            if self._site_idx_list:
                self._check_site([v[i] for i in self._site_idx_list])
            self._feed[0] = x
            # battery_less_soc's own test on plain floats first: a call per decision would cost more than the check
            if self._battery_idx and min(v[i] for i in self._battery_idx) <= 0.0:
                self._feed[0, self._soc_idx] = battery_less_soc(self._feed[0, self._site_idx],
                                                                self.site_parameters.names)
            y = self._session.run(self._output_names, self._inputs)[0][0]
            w = y.tolist()
            if not (all(map(le, self._output_low, w)) and all(map(le, w, self._output_high))):
                return self._fallback(f"policy output {w} outside {self._output_where}")
        except Exception as err:  # the control loop must get an action whatever went wrong
            return self._fallback(_one_line(err))
        decoded = None
        if self._converts:
            try:
                decoded = self._decode_feed()
                w = self._battery_from_import(w, *decoded)
            except Exception as err:  # the control loop must get an action whatever went wrong
                return self._fallback(f"import_change conversion: {_one_line(err)}")
            y = np.array(w)
        if self.safety_filter is not None:
            return self._filtered(w, y, decoded)
        self.last_fallback_reason = None
        return y

    def _check_site(self, entries: list[float] | None) -> None:
        """Set :attr:`last_site_warning` when a site-parameter entry (``entries``, in ``site_parameters`` order;
        None: all inside) lies outside the range the policy was trained on, and log each parameter's first time.
        The decision goes ahead: the policy still acts, but off the sites it learned on."""
        self.last_site_warning = None
        if entries is None:
            return
        sp = self.site_parameters
        for name, value, lo, hi in zip(sp.names, entries, sp.trained_low, sp.trained_high):
            if not lo <= value <= hi:
                self.last_site_warning = (f"site parameter {name} = {value:g} outside the range the policy was "
                                          f"trained on [{lo:g}, {hi:g}] (scaled entries): it acts off its training "
                                          "sites")
                if name not in self._site_warned:
                    self._site_warned.add(name)
                    log.warning("%s", self.last_site_warning)
                return

    def _decode_feed(self) -> tuple[State, Exo]:
        """The state and step (plain floats) the observation in the feed describes, by the site model."""
        m = self.site_model
        assert m is not None
        return decode_observation(m.params, self._feed[0], m.index, m.scale, m.floor_idx)

    def _battery_from_import(self, w: list[float], s: State, x: Exo) -> list[float]:
        """Graph outputs ``w`` (the import's change in MW, then caps and floors) on the decoded state ``s`` and
        step ``x`` -> set-points: the battery MW that puts the step-mean import at last step's plus ``w[0]`` at
        these caps and floors (:func:`cpm_env.physics.battery_for_import`), clipped to the battery's bounds;
        ValueError if it is not finite."""
        m = self.site_model
        assert m is not None
        a = action_from_setpoints(w, len(m.params.peak_mw), m.floor_idx)
        battery_mw = battery_for_import(m.params, s, a, x, s.import_mw + w[0], SCALAR).battery_mw
        if not math.isfinite(battery_mw):
            raise ValueError(f"battery set-point {battery_mw!r} MW is not finite")
        return [min(max(battery_mw, self._action_low[0]), self._action_high[0]), *w[1:]]

    def _filtered(self, w: list[float], y: np.ndarray, decoded: tuple[State, Exo] | None) -> np.ndarray:
        """The set-points ``w`` (== ``y``) for the observation in the feed (``decoded`` already, or None),
        through the safety filter."""
        f = self.safety_filter
        assert f is not None
        try:  # validated observation and set-points: plain finite floats, as shield_site requires
            s, x = decode_observation(f.params, self._feed[0], f.index, f.scale, f.floor_idx) if decoded is None \
                else decoded
            safe, report = shield_site(f.params, s, x, action_from_setpoints(w, len(f.params.peak_mw), f.floor_idx),
                                       f.margin_mw)
            if safe is not None and report.intervened:
                y = np.array(setpoint_columns(safe, f.floor_idx), dtype=np.float64)
                v = y.tolist()
                if not (all(map(le, self._action_low, v)) and all(map(le, v, self._action_high))):
                    return self._fallback(f"safety filter output {v} not finite or outside the action bounds")
        except Exception as err:  # the control loop must get an action whatever went wrong
            return self._fallback(f"safety filter: {_one_line(err)}")
        self.last_shield_report = report
        self.last_fallback_reason = None
        return y

    def observation(self, telemetry, schedule_mw=None) -> np.ndarray:
        """The observation vector (n_obs,) float64 from ``telemetry`` and the schedule; one-line ValueError if bad.

        ``telemetry``: every observation entry but the forecast ones and the site's parameters
        (``site_parameters``, filled from policy.json; scaled as in the observation), a list in
        :attr:`telemetry_names` order or a dict ``{name: value}``.
        ``schedule_mw``: the scheduled facility demand (MW) at steps t, t+1, ..., t+max(h), as
        :func:`cpm_env.forecast.forecast_step_mw` reads it. The forecast entries are computed
        from the ``forecast.demand_entry`` value (x its scale = MW) by ``forecast.kind``.
        """
        obs = np.zeros(len(self.obs_names))
        obs[self._telemetry_idx] = self._telemetry_values(telemetry)
        obs[self._site_idx] = self._site_values
        fc = self.forecast
        if fc["enabled"]:
            i = self._demand_idx
            demand_mw = obs[i] * self.obs_scale[i]
            forecast_mw = forecast_step_mw(fc["kind"], demand_mw, schedule_mw, fc["horizons_steps"])
            obs[self._forecast_idx] = forecast_entries(forecast_mw, fc["limit_mw"], fc["oversubscription"])
        return obs

    def act_telemetry(self, telemetry, schedule_mw=None) -> np.ndarray:
        """:meth:`act` on :meth:`observation` (``telemetry``, ``schedule_mw``); never raises: a malformed
        input or a forecaster no controller can compute gives the safe action and a one-line reason."""
        try:
            obs = self.observation(telemetry, schedule_mw)
        except Exception as err:  # the control loop must get an action whatever went wrong
            return self._fallback(f"telemetry mode: {_one_line(err)}")
        return self.act(obs)

    def _telemetry_values(self, telemetry) -> np.ndarray:
        """``telemetry`` (list or dict) as (n_telemetry,) numbers in :attr:`telemetry_names` order, or ValueError."""
        if isinstance(telemetry, dict):
            unknown = [k for k in telemetry if k not in self.telemetry_names]
            if unknown:
                computed = " (forecast entries are computed from schedule_mw)" if unknown[0] in self.obs_names else ""
                raise ValueError(f"telemetry: unknown name {unknown[0]!r}{computed}")
            missing = [n for n in self.telemetry_names if n not in telemetry]
            if missing:
                raise ValueError(f"telemetry: {missing[0]!r} missing ({len(missing)} of {len(self.telemetry_names)} "
                                 "names)")
            telemetry = [telemetry[n] for n in self.telemetry_names]
        try:
            x = np.asarray(telemetry)
        except (TypeError, ValueError) as err:
            raise ValueError(f"telemetry: not a list of numbers ({type(err).__name__})") from None
        if x.shape != (len(self.telemetry_names),) or x.dtype.kind not in "fiu":
            raise ValueError(f"telemetry: shape {x.shape}, dtype {x.dtype}: expected {len(self.telemetry_names)} "
                             "numbers (policy.json's observations but the forecast entries)")
        return x

    def act_batch(self, obs) -> np.ndarray:
        """Physical set-points (N, n_actions) for observations (N, n_obs); bad rows get the safe
        action, and ``last_fallback_reason`` counts them and names the first. Never raises."""
        try:
            x = np.asarray(obs)
        except Exception as err:
            return self._fallback_rows(len(obs) if hasattr(obs, "__len__") else 1,
                                       f"observations are not an array of numbers ({_one_line(err)})")
        try:
            if x.ndim != 2 or x.shape[1] != len(self.obs_names) or x.dtype.kind not in "fiu":
                return self._fallback_rows(len(x) if x.ndim else 1, f"observations have shape {x.shape}, dtype "
                                           f"{x.dtype}: expected (N, {len(self.obs_names)}) numbers")
            ok = ((x >= self.obs_low) & (x <= self.obs_high)).all(axis=1)
            if self._site_idx_list:
                site = x[:, self._site_idx]
                lo, hi = self._site_trained
                outside = ok & ((site < lo) | (site > hi)).any(axis=1)
                self._check_site(site[np.argmax(outside)].tolist() if outside.any() else None)
            y = np.tile(self.safe_setpoints, (len(x), 1))
            if ok.any():
                feed = x[ok].astype(np.float32)
                if self._battery_idx:
                    soc = battery_less_soc(feed[:, self._site_idx], self.site_parameters.names)
                    feed[~np.isnan(soc), self._soc_idx] = soc[~np.isnan(soc)]
                y[ok] = self._session.run(self._output_names, {self._input_name: feed})[0]
            good = ((y >= self.output_low) & (y <= self.output_high)).all(axis=1)
            y[~good] = self.safe_setpoints
        except Exception as err:
            return self._fallback_rows(len(x), _one_line(err))
        self.last_shield_report = None
        converted, convert_why = self._convert_batch(x, y, ok & good) if self._converts else (ok, "")
        rows = ok & good & converted
        kept, filter_why = self._filter_batch(x, y, rows) if self.safety_filter is not None else (ok, "")
        bad = np.flatnonzero(~(rows & kept))
        self.last_fallback_reason = None
        if len(bad):
            first = bad[0]
            why = (self._range_reason(x[first]) if not ok[first] else
                   f"policy output outside {self._output_where}" if not good[first] else
                   convert_why if not converted[first] else filter_why)
            self.last_fallback_reason = f"{len(bad)} of {len(x)} rows fell back; row {first}: {why}"
            log.warning("fail-safe action: %s", self.last_fallback_reason)
        return y

    def _convert_batch(self, obs: np.ndarray, y: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, str]:
        """Turn the graph outputs ``y`` (N, n_actions) of the ``rows`` (mask) into set-points, in place, as
        :meth:`_battery_from_import` does one; rows whose battery set-point is not finite (every row, if it
        raises) get the safe action. Returns the mask of rows kept and, for the others, a one-line reason."""
        m, kept = self.site_model, np.ones(len(y), dtype=bool)
        assert m is not None
        idx = np.flatnonzero(rows)
        if not len(idx):
            return kept, ""
        try:
            s, x = decode_observation(m.params, obs[idx], m.index, m.scale, m.floor_idx)
            a = action_from_setpoints([y[idx, j] for j in range(y.shape[1])], len(m.params.peak_mw), m.floor_idx)
            battery_mw = np.asarray(battery_for_import(m.params, s, a, x, s.import_mw + y[idx, 0], NUMPY).battery_mw)
        except Exception as err:  # the control loop must get an action whatever went wrong
            kept[idx] = False
            y[idx] = self.safe_setpoints
            return kept, f"import_change conversion: {_one_line(err)}"
        finite = np.isfinite(battery_mw)
        y[idx, 0] = np.clip(battery_mw, self.action_low[0], self.action_high[0])
        y[idx[~finite]] = self.safe_setpoints
        kept[idx] = finite
        return kept, "import_change conversion: battery set-point not finite"

    def _filter_batch(self, obs: np.ndarray, y: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, str]:
        """Pass the set-points ``y`` (N, n_actions) of the ``rows`` (mask) through the safety filter, in place;
        rows whose filtered set-points are not finite or outside the action bounds (every row, if it raises)
        get the safe action. Returns the mask of rows kept and, for the others, a one-line reason. Sets
        ``last_shield_report`` over all N rows (rows not filtered: ``intervened`` False, deltas 0)."""
        f, n = self.safety_filter, len(y)
        assert f is not None
        idx = np.flatnonzero(rows)
        kept, why = np.ones(n, dtype=bool), "safety filter output not finite or outside the action bounds"
        if not len(idx):
            return kept, why
        try:
            s, x = decode_observation(f.params, obs[idx], f.index, f.scale, f.floor_idx)
            proposal = action_from_setpoints([y[idx, j] for j in range(y.shape[1])], len(f.params.peak_mw),
                                             f.floor_idx)
            safe, report = shield(f.params, s, x, proposal, f.margin_mw)
            z = np.stack(setpoint_columns(safe, f.floor_idx), axis=1)
            inside = ((z >= self.action_low) & (z <= self.action_high)).all(axis=1)
        except Exception as err:  # the control loop must get an action whatever went wrong
            kept[idx], why = False, f"safety filter: {_one_line(err)}"
            y[idx] = self.safe_setpoints
            return kept, why
        y[idx] = np.where(inside[:, None], z, self.safe_setpoints)
        kept[idx] = inside
        used = idx[inside]

        def spread(values: np.ndarray, fill) -> np.ndarray:
            full = np.full(n, fill, dtype=values.dtype)
            full[used] = values[inside]
            return full

        self.last_shield_report = Report(spread(report.intervened, False), spread(report.battery_delta_mw, 0.0),
                                         tuple(spread(c, 0.0) for c in report.cap_delta),
                                         spread(report.delta_mw, 0.0), spread(report.gave_up, 0))
        return kept, why

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """SB3's interface (see agents/base.py): actions in [-1, 1], the inverse of the action
        mapping, for one observation or a batch. The policy is deterministic either way. float32;
        float64 with the safety filter enabled, where it changed the set-points exactly so (float32
        would round them by up to ~1e-6 MW, across the boundaries it aims at; as ``NAME+shield``)."""
        x = np.asarray(observation)
        y = self.act_batch(x) if x.ndim == 2 else self.act(x)
        # a fixed entry (low == high: a site without a battery) has the one action 0
        a = np.clip(np.divide(2.0 * y - self._action_sum, self._action_span, out=np.zeros_like(y),
                              where=self._action_span > 0), -1.0, 1.0)
        out = a.astype(np.float32)
        report = self.last_shield_report
        if self.safety_filter is None:
            return out, state
        if report is None:
            return out.astype(np.float64), state
        return np.where(np.asarray(report.intervened)[..., None], a, out.astype(np.float64)), state

    def setpoint_dict(self, setpoints: np.ndarray) -> dict[str, float]:
        """``{action name: physical value}`` of one row of set-points."""
        return dict(zip(self.action_names, setpoints.tolist()))

    def respond(self, line: str) -> dict:
        """One JSON-lines answer ``{"setpoints": {...}, "fallback": reason or None}`` to one input line
        (and ``"shield": {...} or None`` with the safety filter enabled: :meth:`shield_summary`; ``"site_warning"``:
        :attr:`last_site_warning`, for a policy whose observations carry the site's parameters)."""
        self.last_site_warning = None
        try:
            data = json.loads(line)
        except Exception as err:  # ValueError, or RecursionError for absurdly nested input
            setpoints = self._fallback(f"line is not JSON: {_one_line(err)}")
        else:
            setpoints = self._answer(data)
        answer = {"setpoints": self.setpoint_dict(setpoints), "fallback": self.last_fallback_reason}
        if self.safety_filter is not None:
            answer["shield"] = self.shield_summary()
        if self._site_idx_list:
            answer["site_warning"] = self.last_site_warning
        return answer

    def shield_summary(self) -> dict | None:
        """The last single decision's :attr:`last_shield_report` as JSON: ``{"intervened": bool, "delta_mw":
        MW, "gave_up": "none" | "band" | "ramp" | "limit"}``; None where the filter did not run."""
        r = self.last_shield_report
        if r is None:
            return None
        return {"intervened": bool(r.intervened), "delta_mw": float(r.delta_mw), "gave_up": GAVE_UP[int(r.gave_up)]}

    def _answer(self, data) -> np.ndarray:
        """The set-points for one parsed JSON line."""
        if not isinstance(data, dict):
            return self.act(data)
        if ("obs" in data) == ("telemetry" in data):
            return self._fallback("JSON object needs one of the fields 'obs' or 'telemetry' (with 'schedule_mw')")
        if "obs" in data:
            return self.act(data["obs"])
        return self.act_telemetry(data["telemetry"], data.get("schedule_mw"))

    # ------------------------------------------------------------------ failure paths
    def _fallback(self, reason: str) -> np.ndarray:
        self.last_fallback_reason = reason
        self.last_shield_report = None
        log.warning("fail-safe action: %s", reason)
        return self.safe_setpoints.copy()

    def _fallback_rows(self, n: int, reason: str) -> np.ndarray:
        self.last_fallback_reason = f"all {n} rows fell back: {reason}"
        self.last_shield_report = None
        log.warning("fail-safe action: %s", self.last_fallback_reason)
        return np.tile(self.safe_setpoints, (n, 1))

    def _shape_reason(self, x: np.ndarray) -> str:
        if x.dtype.kind not in "fiu":
            return f"observation is not numeric (dtype {x.dtype}): expected {len(self.obs_names)} numbers"
        return f"observation has shape {x.shape}: expected ({len(self.obs_names)},)"

    def _range_reason(self, x: np.ndarray) -> str:
        x = x.astype(np.float64)
        i = int(np.flatnonzero(~((x >= self.obs_low) & (x <= self.obs_high)))[0])
        what = "not finite" if not np.isfinite(x[i]) else f"outside [{self.obs_low[i]:.6g}, {self.obs_high[i]:.6g}]"
        return f"observation entry {i} ({self.obs_names[i]}) = {float(x[i])!r}: {what}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path, help="folder with policy.onnx and policy.json (from export.py)")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        controller = PolicyController.load(args.directory)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    sys.stdin.reconfigure(errors="replace")  # undecodable bytes make a malformed line, not a crash
    return _serve(controller, sys.stdin, sys.stdout)


def _serve(controller: PolicyController, lines, out) -> int:
    """Answer each non-blank line of ``lines`` on ``out``; 0 when the input ends or the reader closed
    the pipe, 1 (one line on stderr) when ``out`` cannot be written."""
    try:
        if out is None:
            raise OSError("stdout is closed")
        for line in lines:
            if line.strip():
                out.write(json.dumps(controller.respond(line)) + "\n")
                out.flush()
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except (OSError, ValueError) as err:  # ValueError: a closed file object
        _silence_stdout()
        print(f"error: stdout: {err}: stopped answering", file=sys.stderr)
        return 1
    return 0


def _silence_stdout() -> None:
    """Point stdout at the null device, so the interpreter's final flush of unwritten answers cannot fail."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # no stdout at all: nothing to flush
        pass


if __name__ == "__main__":
    sys.exit(main())
