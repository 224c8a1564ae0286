"""configs/ppo.yml is one file for train.py and for RL Zoo (without needing rl_zoo3 installed).

RL Zoo (``python -m rl_zoo3.train --algo ppo --env cpm_env/DataCenter-v0 --gym-packages cpm_env
-conf configs/ppo.yml``) reads the file with ``yaml.safe_load``, takes the block keyed by the env
id (or ``default``), removes the keys it handles itself and passes the rest to ``PPO(...)``: a
key it does not know, such as train.py's ``eval_freq``, fails there.
"""

from __future__ import annotations

import inspect

import gymnasium as gym
import pytest
import yaml
from stable_baselines3 import PPO

import cpm_env  # noqa: F401  (registers the cpm_env/... ids)
from agents.learning.train import PPO_CONFIG, TRAIN_BLOCK, TRAIN_KEYS, load_hyperparams

# the keys RL Zoo (rl_zoo3 2.x, ExperimentManager._preprocess_hyperparams) takes out of a block
# before PPO(**rest): the run's settings and its env, wrapper and callback options
RL_ZOO_KEYS = {"n_envs", "n_timesteps", "normalize", "monitor_kwargs", "env_kwargs", "frame_stack", "env_wrapper",
               "vec_env_wrapper", "callback"}
PPO_ARGS = set(inspect.signature(PPO.__init__).parameters) - {"self", "env"}
REGISTERED = sorted(env_id for env_id in gym.registry if env_id.startswith("cpm_env/"))


def zoo_table() -> dict:
    with open(PPO_CONFIG, encoding="utf-8") as f:
        return yaml.safe_load(f)  # as RL Zoo reads it


def zoo_block(env_id: str) -> dict:
    """The block RL Zoo trains ``env_id`` with: the id's own, else ``default``."""
    table = zoo_table()
    return dict(table[env_id] if env_id in table else table["default"])


def test_top_level_keys_are_registered_ids_default_and_train_block():
    table = zoo_table()
    assert REGISTERED, "no cpm_env/... id registered"
    assert TRAIN_BLOCK not in gym.registry  # so RL Zoo never reads train.py's settings
    others = set(table) - {"default", TRAIN_BLOCK}
    assert others <= set(REGISTERED), f"blocks for unregistered ids: {sorted(others - set(REGISTERED))}"
    # every scenario has its block under the full id RL Zoo looks up (older rl_zoo3 has no default)
    assert set(REGISTERED) <= others, f"scenarios without a block: {sorted(set(REGISTERED) - others)}"


@pytest.mark.parametrize("env_id", [*REGISTERED, "default"])
def test_zoo_blocks_hold_only_keys_rl_zoo_and_ppo_accept(env_id):
    block = zoo_table()[env_id]
    unknown = set(block) - RL_ZOO_KEYS - PPO_ARGS
    assert not unknown, f"{env_id}: RL Zoo would pass {sorted(unknown)} to PPO.__init__"
    # what RL Zoo then does: PPO(policy=..., env=env, **rest) must bind
    rest = {k: v for k, v in block.items() if k not in RL_ZOO_KEYS}
    inspect.signature(PPO.__init__).bind(None, env=None, **rest)
    assert isinstance(block["n_timesteps"], int) and block["policy"] == "MlpPolicy"
    assert isinstance(block["policy_kwargs"], (dict, str))  # RL Zoo evaluates a string, takes a dict as is


@pytest.mark.parametrize("env_id", REGISTERED)
def test_rl_zoo_and_train_py_use_the_same_hyperparameters(env_id):
    """RL Zoo's block (YAML merge keys, read by yaml.safe_load) is train.py's, less train.py's own keys."""
    train_hp = load_hyperparams(env_id)
    assert zoo_block(env_id) == {k: v for k, v in train_hp.items() if k not in TRAIN_KEYS}


# train.py's hyperparameters as configs/ppo.yml gave them before it became RL Zoo's layout (FastRamp-v0's
# since issue 14: the action as an import change)
BASE = {"n_envs": 16, "n_timesteps": 2_000_000, "policy": "MlpPolicy", "n_steps": 256, "batch_size": 1024,
        "n_epochs": 5, "learning_rate": 0.0003, "gamma": 0.99, "gae_lambda": 0.95, "clip_range": 0.2,
        "ent_coef": 0.0, "normalize": True, "eval_freq": 500_000, "eval_seeds": "10000-10004",
        "eval_shield": False, "checkpoint_freq": 100_000,
        "policy_kwargs": {"net_arch": [64, 64], "log_std_init": -1.5}}
EXPECTED = {
    "cpm_env/DataCenter-v0": {**BASE, "n_timesteps": 10_000_000},
    "cpm_env/DemandResponse-v0": {**BASE, "n_timesteps": 10_000_000},
    "cpm_env/FastRamp-v0": {**BASE, "n_timesteps": 1_500_000, "gamma": 0.999, "eval_freq": 250_000,
                            "policy_kwargs": {"net_arch": [64, 64], "log_std_init": -2.0},
                            "battery_action": "import_change", "imitate": "mpc", "imitate_episodes": 32,
                            "eval_shield": True, "eval_seeds": "10000-10019"},
    "cpm_env/NoBattery-v0": {**BASE, "n_timesteps": 3_000_000, "n_envs": 64, "n_steps": 64, "eval_freq": 250_000,
                             "shield": True},
    "my-scenario": BASE,  # a scenario file's id without a block: the default block
}


@pytest.mark.parametrize("scenario_id", EXPECTED)
def test_train_py_hyperparameters_are_unchanged(scenario_id):
    assert load_hyperparams(scenario_id) == EXPECTED[scenario_id]
    assert load_hyperparams(scenario_id.split("/")[-1]) == EXPECTED[scenario_id]  # the short id too


def test_a_train_py_key_in_a_scenario_block_is_refused(tmp_path):
    """train.py refuses a file that RL Zoo would fail on, naming the block and the key."""
    text = PPO_CONFIG.read_text(encoding="utf-8").replace(
        "cpm_env/NoBattery-v0:\n  <<: *default\n", "cpm_env/NoBattery-v0:\n  <<: *default\n  eval_freq: 1000\n")
    assert "eval_freq: 1000" in text
    path = tmp_path / "ppo.yml"
    path.write_text(text, encoding="utf-8")
    assert load_hyperparams("cpm_env/DataCenter-v0", path=path) == EXPECTED["cpm_env/DataCenter-v0"]
    with pytest.raises(ValueError, match=r"ppo.yml: cpm_env/NoBattery-v0: unknown key 'eval_freq'"):
        load_hyperparams("cpm_env/NoBattery-v0", path=path)
