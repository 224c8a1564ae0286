"""Hyperparameter search for PPO with Optuna (TPE sampler, median pruning on evaluation reward).

Any Optuna storage URL works (``sqlite:///file.db`` locally; ``postgresql://...`` or
``mysql://...`` shared by several machines that run ``train.py --optimize`` with the same
``--study-name``: each process adds its trials to the one study).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna
import yaml
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from agents.learning.artifacts import options_in
from agents.learning.rundir import is_empty_dir
from agents.learning.train import train
from cpm_env.config import read_yaml
from cpm_env.vec_env import make_vec

STUDY_FILE = "study.yml"  # the study a study dir belongs to: its name and scenario


def check_storage(storage: str) -> None:
    """One-line ValueError unless ``storage`` is an SQLAlchemy URL of a known database kind (Optuna's RDB storage)."""
    try:
        make_url(storage).get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as err:
        raise ValueError(f"--storage {storage!r}: not a usable Optuna storage URL ({type(err).__name__}): use "
                         "sqlite:///FILE.db, postgresql://USER@HOST/DB or mysql://USER@HOST/DB") from None


def check_study_dir(study_dir: Path, study_name: str, scenario_id: str) -> None:
    """One-line ValueError unless ``study_dir`` is empty or holds this study (same name and scenario):
    processes that share a study share its folder; another study's folder is never mixed in."""
    if is_empty_dir(study_dir):
        return
    saved = read_yaml(study_dir / STUDY_FILE, "study") if (study_dir / STUDY_FILE).is_file() else None
    if saved != {"study_name": study_name, "scenario_id": scenario_id}:
        raise ValueError(f"--run-dir {study_dir}: not empty and not the folder of study {study_name!r} on "
                         f"{scenario_id} ({STUDY_FILE}: {saved}): pass a new --run-dir or the same --study-name")


def sample_hyperparams(trial: optuna.Trial, n_envs: int) -> dict[str, Any]:
    """An RL Zoo-like PPO search space for a run of ``n_envs`` envs. The minibatch is the largest divisor of the
    rollout (``n_steps * n_envs`` steps) that divides the sampled batch size, so no minibatch is cut short
    (SB3 warns and trains on a remainder otherwise; the sampled size itself on 8 envs or more)."""
    width = trial.suggest_categorical("net_width", [64, 128, 256])
    n_steps = trial.suggest_categorical("n_steps", [128, 256, 512])
    return {
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True),
        "n_steps": n_steps,
        "batch_size": math.gcd(trial.suggest_categorical("batch_size", [256, 512, 1024]), n_steps * n_envs),
        "n_epochs": trial.suggest_categorical("n_epochs", [3, 5, 10]),
        "gamma": trial.suggest_categorical("gamma", [0.98, 0.99, 0.995, 0.999]),
        "gae_lambda": trial.suggest_categorical("gae_lambda", [0.9, 0.95, 0.98]),
        "clip_range": trial.suggest_categorical("clip_range", [0.1, 0.2, 0.3]),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 1e-2, log=True),
        "policy_kwargs": {"net_arch": [width, width],
                          "log_std_init": trial.suggest_float("log_std_init", -3.0, -0.5)},
    }


def optimize(scenario: str, scenario_id: str, hp: dict[str, Any], n_trials: int, timesteps: int, seed: int,
             study_dir: Path, storage: str | None, study_name: str) -> optuna.Study:
    """Run ``n_trials`` trials of ``timesteps`` env steps each (4 evaluations per trial, pruned
    by the median rule; the env options are ``hp``'s, as train.py's); trials' run dirs go under
    ``study_dir``; the best hyperparameters are written to ``study_dir/best_hyperparams.yml``
    as a block for configs/ppo.yml."""
    check_study_dir(study_dir, study_name, scenario_id)
    study_dir.mkdir(parents=True, exist_ok=True)
    (study_dir / STUDY_FILE).write_text(yaml.safe_dump({"study_name": study_name, "scenario_id": scenario_id}))
    storage = storage or f"sqlite:///{study_dir / 'optuna.db'}"
    # an unseeded sampler: processes sharing a study with one seed would otherwise sample the
    # same points (``seed`` still seeds each trial's training)
    study = optuna.create_study(study_name=study_name, storage=storage, load_if_exists=True, direction="maximize",
                                sampler=optuna.samplers.TPESampler(),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1))

    def objective(trial: optuna.Trial) -> float:
        trial_hp = {**hp, **sample_hyperparams(trial, int(hp["n_envs"])), "n_timesteps": timesteps,
                    "eval_freq": max(timesteps // 4, 1)}
        rewards: list[float] = []

        def report(step: int, reward: float) -> bool:
            rewards.append(reward)
            trial.report(reward, step)
            return not trial.should_prune()

        venv = make_vec(scenario, int(trial_hp["n_envs"]), seed=seed, **options_in(trial_hp))
        train(venv, trial_hp, timesteps, seed, study_dir / f"trial_{trial.number}", on_eval=report,
              progress_bar=False)
        if trial.should_prune():
            raise optuna.TrialPruned()
        return rewards[-1]

    study.optimize(objective, n_trials=n_trials, show_progress_bar=True)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if done:
        best = study.best_trial
        block = sample_hyperparams(optuna.trial.FixedTrial(best.params), int(hp["n_envs"]))
        text = yaml.safe_dump({scenario_id: block}, sort_keys=False)
        (study_dir / "best_hyperparams.yml").write_text(
            f"# trial {best.number}: evaluation reward {best.value:.2f}; paste into configs/ppo.yml\n{text}")
    return study

