"""Periodic evaluation of a policy in training on held-out seeds, against the best rule."""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, ProgressBarCallback

from agents.evaluation.runner import run_controller, run_named
from agents.learning.artifacts import begin_set, options_in, write_manifest, write_set_folder
from agents.learning.policy_files import save_policy_files
from cpm_env.config import read_yaml
from cpm_env.family import source_dict
from cpm_env.vec_env import CpmVecEnv

BEST_RULE = "greedy"  # the strongest rule-based controller on every scenario (README results)
EVAL_COLUMNS = ("timesteps", "reward", "reward_std", "best_rule_reward", "pct_best_rule", "compute_fraction",
                "violation_mwh", "ramp_violations", "wall_s")


class StepProgressBar(ProgressBarCallback):
    """SB3's progress bar in env steps of the whole run: a resumed run starts at its checkpoint's steps,
    and the bar stops at the requested total (the last rollout may run past it)."""

    def _on_training_start(self) -> None:
        from tqdm.rich import tqdm  # what SB3's bar uses

        self.total = int(self.locals["total_timesteps"])  # SB3 adds the steps already done on a resume
        self.pbar = tqdm(total=self.total, initial=min(self.model.num_timesteps, self.total), unit="step")

    def _on_step(self) -> bool:
        self.pbar.update(max(0, min(self.training_env.num_envs, self.total - self.pbar.n)))
        return True


class TrainingPolicy:
    """The model in training as a controller: observations normalized with the training
    normalizer's current statistics (not updated), deterministic actions."""

    reads_observation_only = True  # runs on a site family's batch: the observation tells it the site

    def __init__(self, model):
        self.model = model

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        norm = self.model.get_vec_normalize_env()
        obs = norm.normalize_obs(observation) if norm is not None else observation
        return self.model.predict(obs, deterministic=deterministic)


class PolicyEvalCallback(BaseCallback):
    """Every ``eval_freq`` env steps (and at the end of training) run the policy on one
    episode per held-out seed and log ``eval/*`` to TensorBoard, a row to
    ``RUN_DIR/evaluations.csv`` and the best model so far to ``RUN_DIR/best/``.

    ``on_eval(timesteps, mean_reward)`` may return False to stop training (Optuna pruning).
    """

    def __init__(self, venv: CpmVecEnv, seeds: list[int], eval_freq: int, run_dir: Path,
                 on_eval: Callable[[int, float], bool] | None = None, started: float | None = None,
                 evaluate_first: bool = False):
        super().__init__()
        self.venv, self.seeds, self.eval_freq = venv, seeds, eval_freq
        self.run_dir = Path(run_dir)
        self.on_eval = on_eval
        self.csv_path = self.run_dir / "evaluations.csv"
        self.best_reward = -np.inf
        self.last_eval = 0
        self.rule_reward = float("nan")
        self.started = time.perf_counter() if started is None else started
        self.evaluate_first = evaluate_first  # evaluate before the first update too (a cloned start)

    def _init_callback(self) -> None:
        # rules set the battery's power: under another battery_action they run in a plain twin
        rule_env = self.venv if self.venv.battery_action == "power" else CpmVecEnv(
            self.venv.source, self.venv.num_envs, shield=self.venv.shield)
        self.rule_reward = float(run_named(BEST_RULE, rule_env, self.seeds, BEST_RULE).reward.mean())
        self.last_eval = self.model.num_timesteps  # a resumed run starts at its checkpoint
        if self.csv_path.is_file():  # a resumed run: keep its history and its best reward
            with self.csv_path.open() as f:
                rewards = [float(r["reward"]) for r in csv.DictReader(f)]
            self.best_reward = max(rewards, default=-np.inf)
        else:
            with self.csv_path.open("w", newline="") as f:
                csv.writer(f).writerow(EVAL_COLUMNS)
            if self.evaluate_first:
                self.evaluate()

    def _on_step(self) -> bool:
        if self.num_timesteps - self.last_eval < self.eval_freq:
            return True
        return self.evaluate()

    def evaluate(self) -> bool:
        """Evaluate now; returns False if ``on_eval`` asks to stop."""
        self.last_eval = self.num_timesteps
        rows = run_controller(TrainingPolicy(self.model), self.venv, self.seeds, "ppo")
        reward = float(rows.reward.mean())
        pct_rule = 100.0 * reward / self.rule_reward if self.rule_reward > 0 else float("nan")
        values = {
            "timesteps": self.num_timesteps,
            "reward": reward,
            "reward_std": float(rows.reward.std(ddof=0)),
            "best_rule_reward": self.rule_reward,
            "pct_best_rule": pct_rule,
            "compute_fraction": float(rows.compute_fraction.mean()),
            "violation_mwh": float(rows.violation_mwh.mean()),
            "ramp_violations": float(rows.ramp_violations.mean()),
            "wall_s": time.perf_counter() - self.started,
        }
        for key in ("reward", "pct_best_rule", "compute_fraction", "violation_mwh", "ramp_violations"):
            self.logger.record(f"eval/{key}", values[key])
        self.logger.record("site/pct_best_rule", pct_rule)
        self.logger.dump(self.num_timesteps)
        with self.csv_path.open("a", newline="") as f:
            csv.writer(f).writerow([values[c] for c in EVAL_COLUMNS])
        if reward > self.best_reward:
            self.best_reward = reward
            write_set_folder(self.run_dir / "best", lambda tmp: save_policy(self.model, tmp))
        return self.on_eval(self.num_timesteps, reward) if self.on_eval else True


def _scenario(model) -> dict:
    return source_dict(model.get_env().unwrapped.source)


def _env_options(model) -> dict:
    """The training env's options, recorded in the manifest (``env_options``)."""
    venv = model.get_env().unwrapped
    return options_in(vars(venv))


def save_policy(model, directory: Path, extra: tuple[str, ...] = ()) -> dict:
    """A final model or ``best/`` as a sealed set: SB3's ``model.zip`` and (if the model trains on a
    VecNormalize) ``vecnormalize.pkl``, the pickle-free ``policy.npz``, ``policy_spec.json`` and
    ``normalizer.json``, and ``manifest.json`` (also covering the ``extra`` files already in
    ``directory``, e.g. config.yml), each written atomically, the manifest last. Returns the manifest."""
    begin_set(directory)
    names = [*extra, *save_policy_files(model, model.get_vec_normalize_env(), directory)]
    names += _save_sb3_files(model, directory)
    return write_manifest(directory, names, model.num_timesteps, _scenario(model), _env_options(model))


def save_checkpoint(model, checkpoints: Path) -> Path:
    """``checkpoints/model_<steps>_steps/``: ``model.zip``, ``vecnormalize.pkl`` (if normalized) and
    ``manifest.json`` (last), written beside and renamed into place; what ``--resume`` loads."""
    directory = checkpoints / f"model_{model.num_timesteps}_steps"
    write_set_folder(directory, lambda tmp: write_manifest(tmp, _save_sb3_files(model, tmp), model.num_timesteps,
                                                           _scenario(model), _env_options(model)))
    return directory


def _save_sb3_files(model, directory: Path) -> list[str]:
    """SB3's ``model.zip`` and (if normalized) ``vecnormalize.pkl`` in ``directory``; returns their names."""
    _save_sb3(model, directory / "model.zip")
    norm = model.get_vec_normalize_env()
    if norm is None:
        return ["model.zip"]
    _save_sb3(norm, directory / "vecnormalize.pkl")
    return ["model.zip", "vecnormalize.pkl"]


def _save_sb3(obj, path: Path) -> None:
    """SB3's own save (a model's zip or a VecNormalize's pickle) to a temporary name, then moved into place."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    obj.save(tmp if path.suffix == ".zip" else str(tmp))
    os.replace(tmp, path)


class CheckpointSetCallback(BaseCallback):
    """Every ``freq_steps`` env steps, a sealed checkpoint set in ``checkpoints`` (:func:`save_checkpoint`)."""

    def __init__(self, freq_steps: int, checkpoints: Path):
        super().__init__()
        self.freq_steps, self.checkpoints = freq_steps, Path(checkpoints)
        self.last_saved = 0

    def _init_callback(self) -> None:
        self.last_saved = self.model.num_timesteps  # a resumed run starts at its checkpoint

    def _on_step(self) -> bool:
        if self.num_timesteps - self.last_saved >= self.freq_steps:
            self.last_saved = self.num_timesteps
            save_checkpoint(self.model, self.checkpoints)
        return True


def final_evaluation_line(run_dir: Path) -> str | None:
    """The last row of ``RUN_DIR/evaluations.csv`` in one line (reward in compute units per episode, % of
    the best rule, behind the filter where the evaluation ran behind it, compute fraction, violations), or
    None if the run has no evaluation."""
    path = Path(run_dir) / "evaluations.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return None
    r = {k: float(v) for k, v in rows[-1].items()}
    hp = read_yaml(Path(run_dir) / "config.yml") if (Path(run_dir) / "config.yml").is_file() else {}
    rule = BEST_RULE + ("+shield" if hp.get("shield") or hp.get("eval_shield") else "")  # as the evaluation ran it
    against = f"{rule}'s {r['best_rule_reward']:.1f}"
    share = (f"{r['pct_best_rule']:.1f}% of {against}" if math.isfinite(r["pct_best_rule"])
             else f"{against} (% of it: n/a, it is not positive)")
    return (f"final evaluation at {int(r['timesteps']):,} steps (tuning seeds, eval_seeds): reward "
            f"{r['reward']:.1f} ± {r['reward_std']:.1f} compute units per episode, {share}; "
            f"compute fraction {r['compute_fraction']:.3f}, "
            f"{r['violation_mwh']:.3f} MWh over the limit, {r['ramp_violations']:.1f} ramp violations per episode")
