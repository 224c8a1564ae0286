"""cpm_env: Compute per Megawatt, an AI data center behind a grid limit as an RL environment.

Importing the package registers ``cpm_env/<id>`` for every scenario file in
``cpm_env/scenarios/`` (also reachable as ``configs/scenarios/``); ``DataCenter-v0`` is
the default site.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from cpm_env.config import DEFAULT_SCENARIO, SCENARIO_DIR, ConfigError, ScenarioConfig, load_scenario, scenario_ids

__version__ = "0.1.0"


for _env_id, _path in scenario_ids().items():
    if _env_id not in registry:
        register(id=_env_id, entry_point="cpm_env.env:CpmEnv", kwargs={"base": _path})

from cpm_env.env import CpmEnv  # noqa: E402


def __getattr__(name: str):
    """``CpmVecEnv`` and ``make_vec`` subclass Stable-Baselines3's VecEnv: import it (and torch) on first use."""
    if name in ("CpmVecEnv", "make_vec"):
        from cpm_env import vec_env

        return getattr(vec_env, name)
    raise AttributeError(f"module 'cpm_env' has no attribute {name!r}")

__all__ = ["CpmEnv", "CpmVecEnv", "ConfigError", "ScenarioConfig", "load_scenario", "make_vec", "scenario_ids",
           "DEFAULT_SCENARIO", "SCENARIO_DIR"]
