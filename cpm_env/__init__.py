"""cpm_env: Compute per Megawatt, an AI data center behind a grid limit as an RL environment.

Importing the package registers ``cpm_env/<id>`` for every scenario file in
``cpm_env/scenarios/`` (also reachable as ``configs/scenarios/``); ``DataCenter-v0`` is
the default site.

On a controller host with only the runtime's packages (numpy and onnxruntime, no gymnasium or
PyYAML) the package registers nothing and offers only its numpy-only modules
(:data:`NUMPY_ONLY_MODULES`: the forecasters, the site model, the physics and its backends, and the
safety filter, which ``agents/runtime.py`` uses); any other ``cpm_env.<name>`` raises a one-line
AttributeError naming the missing package.
"""

from __future__ import annotations

from importlib.util import find_spec

__version__ = "0.1.0"

NUMPY_ONLY_MODULES = ("forecast", "ops", "physics", "shield", "site")  # usable without gymnasium and PyYAML
_MISSING = [pip for module, pip in (("gymnasium", "gymnasium"), ("yaml", "PyYAML")) if find_spec(module) is None]

if not _MISSING:
    from gymnasium.envs.registration import register, registry

    from cpm_env.config import DEFAULT_SCENARIO, SCENARIO_DIR, ConfigError, ScenarioConfig, load_scenario, scenario_ids

    for _env_id, _path in scenario_ids().items():
        if _env_id not in registry:
            register(id=_env_id, entry_point="cpm_env.env:CpmEnv", vector_entry_point="cpm_env.vector:make_vector",
                     kwargs={"base": _path})

    from cpm_env.env import CpmEnv


def __getattr__(name: str):
    """``CpmVecEnv`` and ``make_vec`` subclass Stable-Baselines3's VecEnv: import it (and torch) on first use.

    Without gymnasium or PyYAML: the numpy-only modules, else a one-line error naming what is missing.
    """
    if _MISSING and not name.startswith("__"):
        if name in NUMPY_ONLY_MODULES:
            # each by name, so tools see them; ``import cpm_env.x`` binds the attribute without calling
            # this function again (``from cpm_env import x`` would, endlessly)
            import cpm_env.forecast
            import cpm_env.ops
            import cpm_env.physics
            import cpm_env.shield
            import cpm_env.site

            return getattr(cpm_env, name)
        raise AttributeError(f"cpm_env.{name}: needs {' and '.join(_MISSING)}, not installed: this install offers only "
                             f"cpm_env.{', cpm_env.'.join(NUMPY_ONLY_MODULES)} (the runtime's); install the project "
                             "with its dependencies for the rest")
    if name in ("CpmVecEnv", "make_vec"):
        from cpm_env import vec_env

        return getattr(vec_env, name)
    raise AttributeError(f"module 'cpm_env' has no attribute {name!r}")

__all__ = ["CpmEnv", "CpmVecEnv", "ConfigError", "ScenarioConfig", "load_scenario", "make_vec", "scenario_ids",
           "DEFAULT_SCENARIO", "SCENARIO_DIR"]
