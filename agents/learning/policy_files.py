"""A trained policy without pickle: weights in ``policy.npz``, its construction in ``policy_spec.json``,
the observation normalizer's statistics in ``normalizer.json``.

These three files are all :class:`agents.learning.ppo.PPOController` and ``export.py`` read:
``numpy.load(..., allow_pickle=False)`` and JSON cannot execute code, unlike SB3's
``model.zip`` (cloudpickle) and ``vecnormalize.pkl`` (pickle), which training keeps only for
``--resume``.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy

from agents.files import write_atomic
from agents.learning.artifacts import write_json_atomic

WEIGHTS_FILE, SPEC_FILE, NORMALIZER_FILE = "policy.npz", "policy_spec.json", "normalizer.json"
SPEC_VERSION = 1


@dataclass(frozen=True)
class Normalizer:
    """VecNormalize's observation normalization, frozen: ``clip((obs - mean) / sqrt(var + epsilon),
    -clip_obs, clip_obs)`` as float32 (``norm_obs`` False: observations pass unchanged)."""

    mean: np.ndarray
    var: np.ndarray
    count: float
    clip_obs: float
    epsilon: float
    norm_obs: bool = True

    @classmethod
    def from_vecnormalize(cls, norm) -> Normalizer:
        """The statistics of an SB3 ``VecNormalize`` (flat observations only)."""
        return cls(np.asarray(norm.obs_rms.mean, dtype=np.float64), np.asarray(norm.obs_rms.var, dtype=np.float64),
                   float(norm.obs_rms.count), float(norm.clip_obs), float(norm.epsilon), bool(norm.norm_obs))

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        """Observations as the policy saw them in training (float32), exactly as VecNormalize.normalize_obs."""
        if not self.norm_obs:
            return obs
        return np.clip((obs - self.mean) / np.sqrt(self.var + self.epsilon), -self.clip_obs,
                       self.clip_obs).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        """The JSON form of ``normalizer.json`` (floats round-trip exactly)."""
        return {"norm_obs": self.norm_obs, "obs_mean": self.mean.tolist(), "obs_var": self.var.tolist(),
                "obs_count": self.count, "clip_obs": self.clip_obs, "epsilon": self.epsilon}

    @classmethod
    def from_json(cls, data: Any, where: str, n_obs: int) -> Normalizer:
        """Read ``normalizer.json``'s content; one-line ValueError (starting with ``where``) naming a bad field."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: must hold a JSON object")
        try:
            mean = np.array(data["obs_mean"], dtype=np.float64)
            var = np.array(data["obs_var"], dtype=np.float64)
            scalars = {k: float(data[k]) for k in ("obs_count", "clip_obs", "epsilon")}
            norm_obs = data["norm_obs"]
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{where}: needs norm_obs, obs_mean, obs_var (lists of numbers), obs_count, clip_obs "
                             f"and epsilon ({type(err).__name__}: {err})") from None
        if mean.shape != (n_obs,) or var.shape != (n_obs,):
            raise ValueError(f"{where}: obs_mean and obs_var have shapes {mean.shape} and {var.shape}: the policy "
                             f"observes {n_obs} entries")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var)) and np.all(var >= 0)):
            raise ValueError(f"{where}: obs_mean must be finite and obs_var finite and >= 0")
        if not all(math.isfinite(v) and v > 0 for v in scalars.values()) or not isinstance(norm_obs, bool):
            raise ValueError(f"{where}: obs_count, clip_obs and epsilon must be finite and > 0, norm_obs true or false "
                             f"(got {scalars}, norm_obs = {norm_obs!r})")
        return cls(mean, var, scalars["obs_count"], scalars["clip_obs"], scalars["epsilon"], norm_obs)


def _box(space: spaces.Box) -> dict[str, Any]:
    return {"shape": list(space.shape), "dtype": str(space.dtype), "low": space.low.tolist(),
            "high": space.high.tolist()}


def save_policy_files(model, norm, directory: Path) -> list[str]:
    """Write the pickle-free pair of an SB3 PPO model (and ``normalizer.json`` if ``norm``, its VecNormalize,
    is not None) into ``directory``, each atomically; returns the names written."""
    constructor = {"use_sde": bool(model.use_sde), **(model.policy_kwargs or {})}
    spec = {"spec_version": SPEC_VERSION, "policy_class": type(model.policy).__name__,
            "constructor": constructor, "observation_space": _box(model.observation_space),
            "action_space": _box(model.action_space), "normalizer": None}
    names = [WEIGHTS_FILE, SPEC_FILE]
    if norm is not None:
        write_json_atomic(directory / NORMALIZER_FILE, Normalizer.from_vecnormalize(norm).to_json())
        spec["normalizer"] = NORMALIZER_FILE
        names.append(NORMALIZER_FILE)
    buffer = io.BytesIO()
    np.savez(buffer, **{k: v.detach().cpu().numpy() for k, v in model.policy.state_dict().items()})
    write_atomic(directory / WEIGHTS_FILE, buffer.getvalue())
    try:
        write_json_atomic(directory / SPEC_FILE, spec)
    except TypeError as err:
        raise ValueError(f"{directory / SPEC_FILE}: policy_kwargs {model.policy_kwargs!r} are not plain JSON "
                         f"({err}): use numbers, strings, lists and dicts") from None
    return sorted(names)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: missing") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({str(err).splitlines()[0]})") from None


def _space(data: Any, where: str) -> spaces.Box:
    try:
        return spaces.Box(np.array(data["low"], dtype=data["dtype"]), np.array(data["high"], dtype=data["dtype"]),
                          shape=tuple(data["shape"]), dtype=data["dtype"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{where}: needs shape, dtype, low and high of a Box ({type(err).__name__}: {err})") from None


def load_policy_files(directory: Path) -> tuple[ActorCriticPolicy, Normalizer | None]:
    """The policy (eval mode, CPU) and normalizer written by :func:`save_policy_files`; loads no pickle.

    One-line ValueError naming the file for a missing, malformed or mismatched part.
    """
    spec = _read_json(directory / SPEC_FILE)
    where = str(directory / SPEC_FILE)
    if not isinstance(spec, dict) or spec.get("spec_version") != SPEC_VERSION:
        raise ValueError(f"{where}: spec_version must be {SPEC_VERSION}")
    if spec.get("policy_class") != ActorCriticPolicy.__name__ or not isinstance(spec.get("constructor"), dict):
        raise ValueError(f"{where}: policy_class = {spec.get('policy_class')!r}: only {ActorCriticPolicy.__name__} "
                         "with a constructor mapping is supported")
    obs_space = _space(spec.get("observation_space"), f"{where}: observation_space")
    action_space = _space(spec.get("action_space"), f"{where}: action_space")
    try:
        policy = ActorCriticPolicy(obs_space, action_space, lambda _: 0.0, **spec["constructor"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: constructor {spec['constructor']}: {type(err).__name__}: {err}") from None
    try:
        with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as npz:
            weights = {k: torch.from_numpy(npz[k]) for k in npz.files}
    except FileNotFoundError:
        raise ValueError(f"{directory / WEIGHTS_FILE}: missing") from None
    except (OSError, ValueError, EOFError) as err:
        raise ValueError(f"{directory / WEIGHTS_FILE}: not a readable .npz of arrays ({type(err).__name__})") from None
    try:
        policy.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{directory / WEIGHTS_FILE}: does not fit {SPEC_FILE} "
                         f"({str(err).splitlines()[0]})") from None
    policy.set_training_mode(False)
    normalizer = None
    if spec.get("normalizer") is not None:
        if spec["normalizer"] != NORMALIZER_FILE:
            raise ValueError(f"{where}: normalizer = {spec['normalizer']!r}: must be {NORMALIZER_FILE!r} or null")
        path = directory / NORMALIZER_FILE
        normalizer = Normalizer.from_json(_read_json(path), str(path), int(np.prod(obs_space.shape)))
    return policy, normalizer
