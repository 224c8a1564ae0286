"""Building and training SB3 PPO on the batched env from configs/ppo.yml (RL Zoo conventions)."""

from __future__ import annotations

import ast
import math
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize

from agents.evaluation.seeds import parse_seeds
from agents.files import write_atomic
from agents.learning.artifacts import MANIFEST, check_artifacts, options_in, scenario_sha256
from agents.learning.callbacks import (
    CheckpointSetCallback,
    PolicyEvalCallback,
    StepProgressBar,
    save_checkpoint,
    save_policy,
)
from agents.learning.imitate import imitate
from cpm_env.config import YamlLoader, read_yaml
from cpm_env.family import resolve, source_dict
from cpm_env.vec_env import EPISODE_KPIS, CpmVecEnv

PPO_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "ppo.yml"
# keys of configs/ppo.yml that are not PPO constructor arguments: RL Zoo's (in the default and
# scenario blocks) and train.py's own (in the ``train.py`` block, which RL Zoo never reads)
ZOO_KEYS = {"n_envs", "n_timesteps", "policy", "normalize"}
TRAIN_KEYS = {"eval_freq", "eval_seeds", "eval_shield", "checkpoint_freq", "init_action", "imitate", "imitate_episodes",
              "imitate_rounds", "battery_action", "shield", "site_features"}
TRAIN_BLOCK = "train.py"
RUN_KEYS = ZOO_KEYS | TRAIN_KEYS
RUN_FILES = ("config.yml", "args.yml", "scenario.yml")  # sealed with the run dir's final model
PPO_KEYS = {"learning_rate", "n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda", "clip_range", "ent_coef",
            "vf_coef", "max_grad_norm", "target_kl", "policy_kwargs", "use_sde", "sde_sample_freq",
            "normalize_advantage"}


def override_value(raw: str) -> Any:
    """A ``--hyperparams KEY:VALUE`` value as configs/ppo.yml would hold it (YAML: ``true``, ``1e-3``,
    ``{net_arch: [256, 256]}``), else as a Python literal (``None``, ``(64, 64)``), else the plain string
    (``MlpPolicy``, ``lin_3e-4``)."""
    try:
        value = yaml.load(raw, Loader=YamlLoader)  # noqa: S506 (YamlLoader is a SafeLoader)
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str):
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            pass
    return value


def load_hyperparams(scenario_id: str, overrides: list[str] | None = None, path: Path = PPO_CONFIG) -> dict[str, Any]:
    """configs/ppo.yml's default block, then the scenario's block (keyed by the full id, e.g.
    ``cpm_env/DataCenter-v0``, as RL Zoo reads it; matched on the part after the last ``/``),
    then the ``train.py`` block (train.py's own settings, and its sub-block keyed by the scenario's full
    id, matched the same way: that scenario's own settings, e.g. its env options), then ``key:value``
    overrides.

    Raises ValueError naming the key and the valid ones for an unknown or malformed override,
    for a key in the file's blocks that RL Zoo (default and scenario blocks) or train.py (its
    block) would not accept, and naming the key, its value and what is allowed for a value of
    the wrong type or range.
    """
    table = read_yaml(path, "hyperparameter blocks")
    blocks = {str(key).split("/")[-1]: block or {} for key, block in table.items() if key != TRAIN_BLOCK}
    hp: dict[str, Any] = {}
    own = table.get(TRAIN_BLOCK) or {}
    own_general = {key: value for key, value in own.items() if "/" not in str(key)}
    own_scenario = {str(key).split("/")[-1]: block or {} for key, block in own.items() if "/" in str(key)}
    for name, block, allowed in (("default", blocks.get("default", {}), ZOO_KEYS | PPO_KEYS),
                                 (scenario_id, blocks.get(scenario_id.split("/")[-1], {}), ZOO_KEYS | PPO_KEYS),
                                 (TRAIN_BLOCK, own_general, TRAIN_KEYS),
                                 (f"{TRAIN_BLOCK}: {scenario_id}", own_scenario.get(scenario_id.split("/")[-1], {}),
                                  TRAIN_KEYS)):
        unknown = sorted(set(block) - allowed)
        if unknown:
            raise ValueError(f"{path.name}: {name}: unknown key {unknown[0]!r}; valid keys there are "
                             f"{', '.join(sorted(allowed))}")
        hp.update(block)
    for item in overrides or []:
        key, sep, raw = item.partition(":")
        if not sep or key not in RUN_KEYS | PPO_KEYS:
            raise ValueError(f"--hyperparams {item!r}: unknown key {key!r}; valid keys are "
                             f"{', '.join(sorted(RUN_KEYS | PPO_KEYS))}")
        hp[key] = override_value(raw)
        check_hyperparam(key, hp[key], f"--hyperparams {item!r}")
    for key, value in hp.items():
        check_hyperparam(key, value, f"{path.name}: {key}")
    return hp


# the typed hyperparameters: integers >= 1, numbers in [lowest, highest] (None: no highest), booleans
INT_KEYS = {"n_envs", "n_timesteps", "n_steps", "batch_size", "n_epochs", "eval_freq", "checkpoint_freq",
            "imitate_episodes"}
# controllers a policy can be behaviour-cloned from (imitate:): the MPC reads only the observation; the oracle
# is a privileged teacher (it plans each demonstration from the whole episode; DAgger rounds refuse it)
IMITABLE = ("mpc", "oracle")
FLOAT_RANGES = {"learning_rate": (0.0, None), "gamma": (0.0, 1.0), "gae_lambda": (0.0, 1.0), "clip_range": (0.0, None),
                "ent_coef": (0.0, None), "vf_coef": (0.0, None), "max_grad_norm": (0.0, None),
                "target_kl": (0.0, None)}
BOOL_KEYS = {"normalize", "use_sde", "normalize_advantage"}
SCHEDULE_KEYS = {"learning_rate", "clip_range"}  # also RL Zoo's "lin_<start>": linear from start to 0
# ActorCriticPolicy's arguments that plain values can set (and policy_spec.json can store)
POLICY_KWARGS = {"net_arch", "ortho_init", "log_std_init", "full_std", "use_expln", "share_features_extractor",
                 "optimizer_kwargs"}


def check_hyperparam(key: str, value: Any, where: str) -> None:
    """One-line ValueError (starting with ``where``) if ``value`` is not allowed for hyperparameter ``key``."""
    if key in INT_KEYS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{where}: {key} = {value!r}: must be an integer >= 1")
    elif key in SCHEDULE_KEYS and isinstance(value, str):
        start = _linear_start(value)
        if start is None or not math.isfinite(start) or start <= 0:
            raise ValueError(f"{where}: {key} = {value!r}: must be a number or lin_<start> (RL Zoo's linear "
                             "schedule to 0, e.g. lin_3e-4), start > 0")
    elif key in FLOAT_RANGES:
        low, high = FLOAT_RANGES[key]
        if key == "target_kl" and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value < low or (high is not None and value > high):
            allowed = f"in [{low:g}, {high:g}]" if high is not None else f"a finite number >= {low:g}"
            raise ValueError(f"{where}: {key} = {value!r}: must be {allowed}")
    elif key in BOOL_KEYS:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: {key} = {value!r}: must be True or False")
    elif key == "policy_kwargs":
        if not isinstance(value, dict) or not set(value) <= POLICY_KWARGS:
            raise ValueError(f"{where}: {key} = {value!r}: must be a dict with keys among "
                             f"{', '.join(sorted(POLICY_KWARGS))}, e.g. {{'net_arch': [64, 64]}}")
    elif key == "eval_seeds":
        parse_seeds(str(value), f"{where}: eval_seeds")
    elif key == "init_action":
        from agents.controllers.rules import RULES

        if value is not None and value not in RULES:
            raise ValueError(f"{where}: {key} = {value!r}: must be null or a rule: {', '.join(sorted(RULES))}")
    elif key == "imitate_rounds":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{where}: {key} = {value!r}: must be an integer >= 0 (DAgger rounds after the cloning)")
    elif key == "imitate":
        if value is not None and value not in IMITABLE:
            raise ValueError(f"{where}: {key} = {value!r}: must be null or a controller to clone: "
                             f"{', '.join(IMITABLE)}")
    elif key == "battery_action":
        from cpm_env.spaces import check_battery_action

        try:
            check_battery_action(value)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    elif key in ("shield", "eval_shield", "site_features"):
        if not isinstance(value, bool):
            raise ValueError(f"{where}: {key} = {value!r}: must be true or false")
    elif key == "policy":
        if value != "MlpPolicy":
            raise ValueError(f"{where}: {key} = {value!r}: only 'MlpPolicy' is supported")


def _linear_start(text: str) -> float | None:
    """The start of RL Zoo's ``lin_<start>`` schedule, or None if ``text`` is not one."""
    if not text.startswith("lin_"):
        return None
    try:
        return float(text[4:])
    except ValueError:
        return None


def ppo_arguments(hp: dict[str, Any]) -> dict[str, Any]:
    """PPO's constructor arguments from ``hp``: RL Zoo's ``lin_<start>`` (learning rate, clip range) becomes
    SB3's schedule, ``start x progress_remaining`` (1 at the start of training, 0 at its end)."""
    kwargs = {k: v for k, v in hp.items() if k in PPO_KEYS}
    for key in SCHEDULE_KEYS & kwargs.keys():
        start = _linear_start(kwargs[key]) if isinstance(kwargs[key], str) else None
        if start is not None:
            kwargs[key] = _LinearSchedule(start)
    return kwargs


class _LinearSchedule:
    """``start`` times SB3's ``progress_remaining`` (1 -> 0 over training); a class, so it pickles by reference."""

    def __init__(self, start: float):
        self.start = start

    def __call__(self, progress_remaining: float) -> float:
        return self.start * progress_remaining


def run_hyperparams(scenario_id: str, overrides: list[str] | None, n_envs: int | None, timesteps: int | None,
                    optimize: bool = False, n_trials: int = 1) -> dict[str, Any]:
    """:func:`load_hyperparams` with this run's batch and budget: ``n_envs`` envs (None: the
    file's) and ``n_timesteps`` env steps (None: the file's; when tuning, per trial, a fifth of it).

    Raises ValueError (one line, naming the option) if the envs, the env steps or ``n_trials``
    (Optuna trials) are below 1: zero is an error, never "the default".
    """
    for option, value in (("--n-envs", n_envs), ("--timesteps", timesteps), ("--n-trials", n_trials)):
        if value is not None and value < 1:
            raise ValueError(f"{option} = {value}: must be an integer >= 1 (leave it out for the default)")
    hp = load_hyperparams(scenario_id, overrides)
    n_envs = int(hp["n_envs"]) if n_envs is None else n_envs
    timesteps = max(int(hp["n_timesteps"]) // (5 if optimize else 1), 1) if timesteps is None else timesteps
    if n_envs * int(hp["n_steps"]) < 2:
        raise ValueError(f"n_steps x --n-envs = {n_envs * int(hp['n_steps'])}: a rollout needs at least 2 steps")
    return {**hp, "n_envs": n_envs, "n_timesteps": timesteps}


class KpiLogger(BaseCallback):
    """Logs the site's KPIs to TensorBoard under ``site/``: each finished episode's totals (from
    ``info["episode"]``: compute delivered, violation energy in MWh, ...) and, averaged over the
    rollout's steps and envs, the battery's state of charge (fraction of capacity) and each GPU
    class's power cap (fraction of TDP)."""

    def _on_step(self) -> bool:
        venv = self.training_env.unwrapped
        if np.any(np.asarray(venv.params.capacity_mwh) > 0):  # a family's batch: any site with a battery
            self.logger.record_mean("site/soc", float(venv.last_outputs.soc.mean()))
        for name, cap in zip(venv.site.class_names, venv.state.caps):
            self.logger.record_mean(f"site/cap_{name}", float(cap.mean()))
        for info in self.locals.get("infos", []):
            ep = info.get("episode")
            if ep is None:
                continue
            demanded = max(ep.get("compute_demanded", 0.0), 1e-12)
            self.logger.record_mean("site/compute_fraction", ep["compute_delivered"] / demanded)
            for key in EPISODE_KPIS:
                if key in ep:
                    self.logger.record_mean(f"site/{key}", ep[key])
        return True


def train(venv: CpmVecEnv, hp: dict[str, Any], timesteps: int, seed: int, run_dir: Path,
          on_eval: Callable[[int, float], bool] | None = None, progress_bar: bool = True,
          run_args: dict[str, Any] | None = None) -> PPO:
    """Train PPO (VecNormalize if ``hp['normalize']``) for ``timesteps`` env steps and write the run dir.

    The run dir gets ``args.yml`` (``run_args``, the command line's, if given; ``--resume``
    needs them), ``config.yml`` (hyperparameters), ``scenario.yml``, the final model as a
    sealed set (:func:`save_policy`), ``checkpoints/`` (sealed model + normalizer every
    ``checkpoint_freq`` steps), ``evaluations.csv`` and ``best/`` (every ``eval_freq`` steps
    and at the end, on the held-out ``eval_seeds``) and ``tb/`` (TensorBoard). ``on_eval``
    sees each evaluation's mean reward and may stop training by returning False. The model is
    built before anything is written, so a constructor error leaves no run dir.
    """
    torch.set_num_threads(1)  # SB3's small MLPs run slower with more threads than this machine's cores
    kwargs = ppo_arguments(hp)
    env = VecNormalize(venv, gamma=kwargs.get("gamma", 0.99)) if hp.get("normalize", True) else venv
    model = PPO(hp.get("policy", "MlpPolicy"), env, seed=seed, device="cpu", verbose=0,
                tensorboard_log=str(run_dir / "tb"), **kwargs)
    started = time.perf_counter()  # time to quality counts the demonstrations too
    check_start(hp)
    if hp.get("init_action"):
        start_at_rule(model, venv, hp["init_action"], seed)
    if hp.get("imitate"):
        fit = imitate(model, venv, hp["imitate"], int(hp.get("imitate_episodes", 64)), seed,
                      rounds=int(hp.get("imitate_rounds", 0)), progress=progress_bar)
        print(f"imitate: {hp['imitate']} on {fit['samples']:,} steps, action error (MSE) {fit['action_mse']:.4f}")
    run_dir.mkdir(parents=True, exist_ok=True)
    if run_args is not None:
        write_atomic(run_dir / "args.yml", yaml.safe_dump(run_args, sort_keys=False).encode())
    write_atomic(run_dir / "config.yml", yaml.safe_dump(hp, sort_keys=False).encode())
    write_atomic(run_dir / "scenario.yml", yaml.safe_dump(source_dict(venv.source), sort_keys=False).encode())
    return _learn(model, hp, timesteps, run_dir, on_eval, progress_bar, reset=True, started=started,
                  evaluate_first=bool(hp.get("imitate")))


def check_start(hp: dict[str, Any]) -> None:
    """One-line ValueError if the run's start settings conflict: ``imitate`` (behaviour cloning) with
    ``init_action`` (a rule's mean action); DAgger rounds without ``imitate`` or under
    ``battery_action = import_change`` (where a label needs the controller's own step)."""
    if hp.get("imitate") and hp.get("init_action"):
        raise ValueError(f"imitate = {hp['imitate']!r} and init_action = {hp['init_action']!r}: choose one start")
    rounds = hp.get("imitate_rounds", 0)
    if rounds and not hp.get("imitate"):
        raise ValueError(f"imitate_rounds = {rounds!r} without imitate: DAgger rounds refine a cloned start "
                         "(set imitate: mpc)")
    if rounds and hp.get("imitate") == "oracle":
        raise ValueError(f"imitate_rounds = {rounds!r} with imitate = 'oracle': DAgger needs a teacher that answers "
                         "any state, and the oracle plans each episode at its start (use imitate: mpc)")
    if rounds and hp.get("battery_action", "power") != "power":
        raise ValueError(f"imitate_rounds = {rounds!r} with battery_action = {hp['battery_action']!r}: DAgger "
                         "needs battery_action = 'power' (under import_change a label is the import change the "
                         "controller's own step made)")


def start_at_rule(model: PPO, venv: CpmVecEnv, rule: str, seed: int, n_probe: int = 64) -> np.ndarray:
    """Set the policy's action-layer bias to ``rule``'s mean action on the first observations of
    ``n_probe`` fresh episodes (seeded ``seed``), so that the freshly built policy, whose action-layer
    weights are ~0 (SB3's orthogonal init, gain 0.01), starts at that rule's set-points rather than at
    the middle of every action range. Returns the bias (actions in [-1, 1], clipped to +-0.95)."""
    from agents.evaluation.runner import make_controller

    probe = CpmVecEnv(venv.config, n_probe)
    probe.seed(seed)
    actions, _ = make_controller(rule, venv.site).predict(probe.reset())
    bias = np.clip(np.mean(np.atleast_2d(actions), axis=0), -0.95, 0.95)
    with torch.no_grad():
        model.policy.action_net.bias.copy_(torch.as_tensor(bias, dtype=model.policy.action_net.bias.dtype))
    return bias


def _learn(model: PPO, hp: dict[str, Any], timesteps: int, run_dir: Path, on_eval, progress_bar: bool,
           reset: bool, started: float | None = None, evaluate_first: bool = False) -> PPO:
    """Learn ``timesteps`` more steps with KPI logging, checkpoints and evaluations; save the result.

    ``evaluate_first``: evaluate (and so maybe keep as ``best/``) the policy before its first update, as
    after behaviour cloning; ``started``: the perf_counter time the run's wall clock counts from."""
    venv = model.get_env().unwrapped
    seeds = parse_seeds(str(hp.get("eval_seeds", "10000-10004")), "eval_seeds")
    # eval_shield: evaluate (and so choose best/) behind the filter the policy will be deployed behind
    options = options_in(vars(venv))
    options["shield"] = options["shield"] or bool(hp.get("eval_shield"))
    evaluator = PolicyEvalCallback(CpmVecEnv(venv.source, len(seeds), **options), seeds,
                                   int(hp.get("eval_freq", 500_000)), run_dir, on_eval, started, evaluate_first)
    checkpoints = CheckpointSetCallback(int(hp.get("checkpoint_freq", 100_000)), run_dir / "checkpoints")
    bar = [StepProgressBar()] if progress_bar else []
    try:
        model.learn(timesteps, callback=[KpiLogger(), checkpoints, evaluator, *bar], tb_log_name="ppo",
                    reset_num_timesteps=reset)
    except KeyboardInterrupt:
        for b in bar:
            b.on_training_end()  # close the bar now, not at the interpreter's shutdown
        # a checkpoint of where it stands (the last updates' weights; a rollout cut short is not trained on)
        if model.num_timesteps > checkpoints.last_saved:
            save_checkpoint(model, run_dir / "checkpoints")
        raise TrainingInterrupted(run_dir, model.num_timesteps) from None
    if evaluator.last_eval < model.num_timesteps and evaluator.evaluate() is False:
        return model
    save_policy(model, run_dir, extra=tuple(n for n in RUN_FILES if (run_dir / n).is_file()))
    return model


class TrainingInterrupted(Exception):
    """Training stopped by Ctrl-C (KeyboardInterrupt) at ``steps`` env steps, after a checkpoint of the
    model and normalizer there was saved in ``run_dir/checkpoints`` (what ``train.py --resume`` continues)."""

    def __init__(self, run_dir: Path, steps: int):
        super().__init__(f"interrupted at {steps:,} env steps: a checkpoint is in {Path(run_dir) / 'checkpoints'}; "
                         f"continue with  python train.py --resume {run_dir}")
        self.run_dir, self.steps = Path(run_dir), steps


Checkpoint = tuple[Path, Path | None, int]  # model.zip, vecnormalize.pkl (None: not normalized), env steps


def latest_checkpoint(run_dir: Path) -> Checkpoint:
    """The newest complete checkpoint: ``checkpoints/model_<steps>_steps/model.zip``, its normalizer
    (None if the run does not normalize) and <steps>, the env steps it was taken at.

    A checkpoint is complete when its manifest checks (:func:`check_artifacts`: every file there
    with its hash) and it was trained on the run's scenario; an incomplete one (a kill while it
    was written, a missing or truncated normalizer) is skipped with a printed note.
    """
    normalize = read_yaml(run_dir / "config.yml", "hyperparameters").get("normalize", True)
    required = ("model.zip", "vecnormalize.pkl") if normalize else ("model.zip",)
    run_scenario = scenario_sha256(read_yaml(run_dir / "scenario.yml"), run_dir)
    found = []
    for path in (run_dir / "checkpoints").glob("model_*_steps"):
        match = re.fullmatch(r"model_(\d+)_steps", path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    for steps, path in sorted(found, reverse=True):
        try:
            manifest = check_artifacts(path, required)
            if manifest["scenario"].get("sha256") != run_scenario:
                raise ValueError(f"{path / MANIFEST}: trained on scenario {manifest['scenario'].get('id')!r}, not the "
                                 "run's scenario.yml")
        except ValueError as err:
            print(f"note: skipping checkpoint {path.name}: {err}", file=sys.stderr)
            continue
        return path / "model.zip", (path / "vecnormalize.pkl") if normalize else None, steps
    raise ValueError(f"--resume {run_dir}: no complete checkpoint (model + normalizer + manifest) in checkpoints/: "
                     "nothing to resume")


def check_resumable(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any], Checkpoint]:
    """The run's args (``args.yml``), hyperparameters (``config.yml``) and its newest complete
    checkpoint; ValueError if it is not a train.py run dir, already finished or has no checkpoint."""
    for name in ("args.yml", "config.yml", "scenario.yml"):
        if not (run_dir / name).is_file():
            raise ValueError(f"--resume {run_dir}: {name} missing: not a train.py run dir")
    if (run_dir / MANIFEST).is_file():
        raise ValueError(f"--resume {run_dir}: the run already finished ({MANIFEST} is there)")
    checkpoint = latest_checkpoint(run_dir)
    run_args = read_yaml(run_dir / "args.yml", "train.py arguments")
    return run_args, read_yaml(run_dir / "config.yml", "hyperparameters"), checkpoint


def check_same_scenario(run_dir: Path, scenario: str) -> None:
    """ValueError unless ``scenario`` (an id or YAML path, as given) is the scenario the run trained on."""
    saved = read_yaml(run_dir / "scenario.yml")
    given = source_dict(resolve(scenario))
    if given != saved:
        run_args = read_yaml(run_dir / "args.yml", "train.py arguments")
        raise ValueError(f"--resume {run_dir}: the run trained on scenario {saved.get('id')!r} "
                         f"({run_args.get('scenario')}), not --scenario {scenario} ({given.get('id')!r}); "
                         "resume without --scenario or start a new run")


def resume(run_dir: Path, venv: CpmVecEnv, checkpoint: Checkpoint, progress_bar: bool = True) -> PPO:
    """Continue a killed run from ``checkpoint`` (:func:`check_resumable`'s) up to its ``n_timesteps``.

    Loads the checkpoint's SB3 pickles: the user hands them over knowingly (docs/SECURITY.md).
    The env draws fresh episodes (its generator state is not in the checkpoint), so a resumed
    run is a valid continuation, not a bitwise replay of the uninterrupted one.
    """
    hp = read_yaml(run_dir / "config.yml", "hyperparameters")
    model_path, norm_path, _ = checkpoint
    torch.set_num_threads(1)
    env = VecNormalize.load(str(norm_path), venv) if norm_path is not None else venv
    model = PPO.load(model_path, env=env, device="cpu", tensorboard_log=str(run_dir / "tb"))
    remaining = int(hp["n_timesteps"]) - model.num_timesteps
    return _learn(model, hp, max(remaining, 0), run_dir, None, progress_bar, reset=False)
