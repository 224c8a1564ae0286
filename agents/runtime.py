"""Standalone controller for an exported policy: numpy + onnxruntime only, fail-safe.

    python -m agents.runtime DIR  < observations.jsonl  > setpoints.jsonl

``DIR`` holds ``policy.onnx`` and its contract ``policy.json`` (written by ``export.py``).
The contract is sealed: ``checksum.sha256`` is the SHA-256 of the ONNX file's bytes followed by
the canonical JSON (sorted keys, no spaces) of every other field of ``policy.json``
(:func:`sidecar_checksum`). :meth:`PolicyController.load` refuses (one-line ``ValueError``) a
sidecar whose checksum does not match (a changed field or ONNX file), duplicate observation or
action names, an observation scale that is not a positive finite number, a safe action outside
its action bounds, or ONNX input/output names and shapes that differ from the sidecar. It never
loads a pickle and imports neither torch, Stable-Baselines3 nor the simulator: of the project it
imports only ``cpm_env.forecast`` (on a host without gymnasium the ``cpm_env`` package loads
nothing else).

Observations are the env's vector: entry ``i`` is ``physical_value / scale`` of the
sidecar's ``observations[i]`` (float, inside its ``[low, high]``, which already include
slack). :meth:`PolicyController.act` returns physical set-points in the order of the
sidecar's ``actions`` (MW for ``battery``, + discharging; fractions of TDP for caps and
floors), float64.

Fail-safe: ``act`` never raises. An observation of the wrong shape, not numeric, NaN or
infinite, or outside its bounds, an onnxruntime error, or an output outside the action
bounds yields the sidecar's safe action instead (each action entry's ``safe`` value:
battery idle at 0 MW, caps at the safe cap documented in ``safe_action_rule``, floors off)
and sets ``last_fallback_reason`` to a one-line reason (also logged as a warning on the
``agents.runtime`` logger); it is ``None`` after a good step.

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
stdout line ``{"setpoints": {name: value}, "fallback": reason or null}``,
flushed at once. Malformed lines get the safe action; blank lines are skipped; fallbacks are
also logged to stderr with a timestamp. A reader that closes the pipe ends the loop quietly
(exit 0); an unwritable stdout (closed, disk full) ends it with one line on stderr (exit 1).

``act_batch`` does the same for a batch, row by row, and ``predict`` offers SB3's interface
(actions in [-1, 1]) so ``evaluate.py --controllers onnx:DIR`` runs the exported policy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from operator import le
from pathlib import Path

import numpy as np
import onnxruntime as ort

from cpm_env.forecast import forecast_entries, forecast_step_mw

SCHEMA_VERSION = 3  # 2: policy.json sealed by checksum.sha256; 3: its forecast section
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


FORECAST_FIELDS = ("kind", "horizons_steps", "demand_entry", "limit_mw", "oversubscription")  # when enabled


def _telemetry_layout(spec: dict, obs_names: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(telemetry names, their observation indices, the forecast entries' indices) of the sidecar's ``forecast``.

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
    names = [n for n in obs_names if n not in entries]
    return names, np.array([obs_names.index(n) for n in names]), np.array([obs_names.index(n) for n in entries], int)


class PolicyController:
    """An exported policy behind input validation and a fail-safe action."""

    def __init__(self, spec: dict, model: bytes, threads: int = 1):
        """Check ``model`` (the ONNX file's bytes) against the sidecar ``spec`` and open it.

        ``threads`` is onnxruntime's intra-op thread count; 1 is fastest for single observations.
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
        if not (np.all(self.obs_low < self.obs_high) and np.all(self.action_low < self.action_high)):
            raise ValueError(f"{SIDECAR_FILE}: bounds must have low < high")
        for i, name in enumerate(self.action_names):
            if not self.action_low[i] <= safe[i] <= self.action_high[i]:
                raise ValueError(f"{SIDECAR_FILE}: actions[{i}] ({name}) safe = {float(safe[i])!r}: outside its "
                                 f"bounds [{float(self.action_low[i])!r}, {float(self.action_high[i])!r}]")
        self.safe_setpoints = safe
        self.telemetry_names, self._telemetry_idx, self._forecast_idx = _telemetry_layout(spec, self.obs_names)
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
    def load(cls, directory: str | Path, threads: int = 1) -> PolicyController:
        """Open ``directory/policy.onnx`` after checking it against ``directory/policy.json``."""
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
        return cls(spec, model, threads)

    # ------------------------------------------------------------------ control loop
    def act(self, obs) -> np.ndarray:
        """Physical set-points (n_actions,) float64 for one observation (n_obs,); never raises."""
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
            self._feed[0] = x
            y = self._session.run(self._output_names, self._inputs)[0][0]
            w = y.tolist()
            if not (all(map(le, self._action_low, w)) and all(map(le, w, self._action_high))):
                return self._fallback(f"policy output {w} outside the action bounds")
        except Exception as err:  # the control loop must get an action whatever went wrong
            return self._fallback(_one_line(err))
        self.last_fallback_reason = None
        return y

    def observation(self, telemetry, schedule_mw=None) -> np.ndarray:
        """The observation vector (n_obs,) float64 from ``telemetry`` and the schedule; one-line ValueError if bad.

        ``telemetry``: every observation entry but the forecast ones (scaled as in the
        observation), a list in :attr:`telemetry_names` order or a dict ``{name: value}``.
        ``schedule_mw``: the scheduled facility demand (MW) at steps t, t+1, ..., t+max(h), as
        :func:`cpm_env.forecast.forecast_step_mw` reads it. The forecast entries are computed
        from the ``forecast.demand_entry`` value (x its scale = MW) by ``forecast.kind``.
        """
        obs = np.zeros(len(self.obs_names))
        obs[self._telemetry_idx] = self._telemetry_values(telemetry)
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
            y = np.tile(self.safe_setpoints, (len(x), 1))
            if ok.any():
                y[ok] = self._session.run(self._output_names, {self._input_name: x[ok].astype(np.float32)})[0]
            good = ((y >= self.action_low) & (y <= self.action_high)).all(axis=1)
            y[~good] = self.safe_setpoints
        except Exception as err:
            return self._fallback_rows(len(x), _one_line(err))
        bad = np.flatnonzero(~(ok & good))
        self.last_fallback_reason = None
        if len(bad):
            first = bad[0]
            why = self._range_reason(x[first]) if not ok[first] else "policy output outside the action bounds"
            self.last_fallback_reason = f"{len(bad)} of {len(x)} rows fell back; row {first}: {why}"
            log.warning("fail-safe action: %s", self.last_fallback_reason)
        return y

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """SB3's interface (see agents/base.py): actions in [-1, 1], the inverse of the action
        mapping, for one observation or a batch. The policy is deterministic either way."""
        x = np.asarray(observation)
        y = self.act_batch(x) if x.ndim == 2 else self.act(x)
        return np.clip((2.0 * y - self._action_sum) / self._action_span, -1.0, 1.0).astype(np.float32), state

    def setpoint_dict(self, setpoints: np.ndarray) -> dict[str, float]:
        """``{action name: physical value}`` of one row of set-points."""
        return dict(zip(self.action_names, setpoints.tolist()))

    def respond(self, line: str) -> dict:
        """One JSON-lines answer ``{"setpoints": {...}, "fallback": reason or None}`` to one input line."""
        try:
            data = json.loads(line)
        except Exception as err:  # ValueError, or RecursionError for absurdly nested input
            return {"setpoints": self.setpoint_dict(self._fallback(f"line is not JSON: {_one_line(err)}")),
                    "fallback": self.last_fallback_reason}
        if not isinstance(data, dict):
            setpoints = self.act(data)
        elif ("obs" in data) == ("telemetry" in data):
            setpoints = self._fallback("JSON object needs one of the fields 'obs' or 'telemetry' (with 'schedule_mw')")
        elif "obs" in data:
            setpoints = self.act(data["obs"])
        else:
            setpoints = self.act_telemetry(data["telemetry"], data.get("schedule_mw"))
        return {"setpoints": self.setpoint_dict(setpoints), "fallback": self.last_fallback_reason}

    # ------------------------------------------------------------------ failure paths
    def _fallback(self, reason: str) -> np.ndarray:
        self.last_fallback_reason = reason
        log.warning("fail-safe action: %s", reason)
        return self.safe_setpoints.copy()

    def _fallback_rows(self, n: int, reason: str) -> np.ndarray:
        self.last_fallback_reason = f"all {n} rows fell back: {reason}"
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
