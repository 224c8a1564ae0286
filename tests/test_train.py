"""train.py: hyperparameter handling, run dir, seeded determinism."""

import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import train  # noqa: E402
from agents.ppo_train import load_hyperparams  # noqa: E402

SHORT = ["--scenario", "cpm_env/DataCenter-v0", "--n-envs", "4", "--hyperparams", "n_steps:64", "batch_size:128",
         "n_epochs:1"]


def test_hyperparams_merge_default_scenario_and_overrides():
    hp = load_hyperparams("cpm_env/FastRamp-v0", ["learning_rate:0.001", "policy_kwargs:{'net_arch': [32]}"])
    assert hp["gamma"] == 0.995  # the scenario's block
    assert hp["learning_rate"] == 0.001 and hp["policy_kwargs"] == {"net_arch": [32]}
    with pytest.raises(ValueError, match="valid keys are .*learning_rate"):
        load_hyperparams("cpm_env/DataCenter-v0", ["lr:0.1"])


def test_unknown_hyperparameter_is_a_one_line_cli_error(capsys):
    assert train.main(["--hyperparams", "lr:0.1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "valid keys" in err


def test_same_seed_same_parameters(tmp_path):
    params = []
    for name in ("a", "b"):
        run = tmp_path / name
        assert train.main(SHORT + ["--timesteps", "512", "--seed", "3", "--run-dir", str(run)]) == 0
        from stable_baselines3 import PPO

        params.append(PPO.load(run / "model.zip", device="cpu").policy.state_dict())
    for key in params[0]:
        assert torch.equal(params[0][key], params[1][key]), key
    run = tmp_path / "a"
    for name in ("config.yml", "args.yml", "scenario.yml", "model.zip", "vecnormalize.pkl"):
        assert (run / name).is_file(), name
    assert yaml.safe_load((run / "config.yml").read_text())["n_steps"] == 64
