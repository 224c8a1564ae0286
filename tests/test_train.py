"""train.py: hyperparameter handling, run dir, seeded determinism, evaluation, resume, Optuna."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
import yaml
from stable_baselines3 import PPO
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import cpm_env
import train
from agents.learning.artifacts import check_artifacts
from agents.learning.train import latest_checkpoint, load_hyperparams

ROOT = Path(__file__).resolve().parents[1]

SHORT = ["--scenario", "cpm_env/DataCenter-v0", "--n-envs", "4", "--hyperparams", "n_steps:64", "batch_size:128",
         "n_epochs:1", "eval_seeds:1-2"]
TINY = ["--n-envs", "2", "--hyperparams", "n_steps:64", "batch_size:64", "n_epochs:1", "eval_seeds:1-2"]


@pytest.fixture
def short_yml(short_scenario):
    """A one-hour variant of the default scenario (60 steps per episode)."""
    return str(short_scenario(hours=1.0))


def test_hyperparams_merge_default_scenario_and_overrides():
    hp = load_hyperparams("cpm_env/FastRamp-v0", ["learning_rate:0.001", "policy_kwargs:{'net_arch': [32]}"])
    assert hp["gamma"] == 0.999  # the scenario's block
    assert hp["learning_rate"] == 0.001 and hp["policy_kwargs"] == {"net_arch": [32]}
    with pytest.raises(ValueError, match="valid keys are .*learning_rate"):
        load_hyperparams("cpm_env/DataCenter-v0", ["lr:0.1"])
    # written as configs/ppo.yml writes them (YAML), or as Python literals
    hp = load_hyperparams("cpm_env/DataCenter-v0", ["eval_shield:true", "policy_kwargs:{net_arch: [256, 256]}",
                                                    "learning_rate:3e-4", "eval_seeds:10000-10004"])
    assert hp["eval_shield"] is True and hp["policy_kwargs"] == {"net_arch": [256, 256]}
    assert hp["learning_rate"] == 3e-4 and hp["eval_seeds"] == "10000-10004"


def test_unknown_hyperparameter_is_a_one_line_cli_error(capsys):
    assert train.main(["--hyperparams", "lr:0.1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "valid keys" in err


def test_same_seed_same_parameters(tmp_path):
    params = []
    for name in ("a", "b"):
        run = tmp_path / name
        assert train.main(SHORT + ["--timesteps", "512", "--seed", "3", "--run-dir", str(run)]) == 0
        params.append(PPO.load(run / "model.zip", device="cpu").policy.state_dict())
    for key in params[0]:
        assert torch.equal(params[0][key], params[1][key]), key
    run = tmp_path / "a"
    for name in ("config.yml", "args.yml", "scenario.yml", "model.zip", "vecnormalize.pkl", "evaluations.csv",
                 "policy.npz", "policy_spec.json", "normalizer.json", "manifest.json", "best/model.zip",
                 "best/vecnormalize.pkl", "best/policy.npz", "best/normalizer.json", "best/manifest.json"):
        assert (run / name).is_file(), name
    assert yaml.safe_load((run / "config.yml").read_text())["n_steps"] == 64
    saved_args = yaml.safe_load((run / "args.yml").read_text())  # what --resume rebuilds the run from
    assert (saved_args["seed"], saved_args["scenario"], saved_args["run_dir"]) == (3, "cpm_env/DataCenter-v0", str(run))
    evals = pd.read_csv(run / "evaluations.csv")
    assert evals.timesteps.iloc[-1] == 512 and evals.best_rule_reward.iloc[0] > 0
    assert evals.pct_best_rule.iloc[-1] == pytest.approx(100 * evals.reward.iloc[-1] / evals.best_rule_reward.iloc[-1])


def test_periodic_evaluation_rows(tmp_path, short_yml, capsys):
    run = tmp_path / "run"
    assert train.main(["--scenario", short_yml, "--timesteps", "1024", "--run-dir", str(run)] + TINY
                      + ["eval_freq:256"]) == 0
    evals = pd.read_csv(run / "evaluations.csv")
    assert list(evals.timesteps) == [256, 512, 768, 1024]
    last = evals.iloc[-1]  # train.py ends by printing the final evaluation and where the run went
    out = capsys.readouterr().out
    assert (f"final evaluation at 1,024 steps (tuning seeds, eval_seeds): reward {last.reward:.1f} "
            f"± {last.reward_std:.1f} "
            f"compute units per episode, {last.pct_best_rule:.1f}% of greedy's") in out
    assert f"saved {run}" in out
    assert evals.best_rule_reward.nunique() == 1 and evals.violation_mwh.ge(0).all()
    (events,) = (run / "tb").rglob("events.out.tfevents.*")
    tags = set(EventAccumulator(str(events)).Reload().Tags()["scalars"])
    assert tags >= {"train/value_loss", "site/compute_delivered", "site/compute_fraction", "site/over_limit_mwh",
                    "site/soc", "site/pct_best_rule", "eval/reward", "eval/pct_best_rule", "eval/violation_mwh"}
    assert any(tag.startswith("site/cap_") for tag in tags)


def test_shielded_run_trains_evaluates_and_deploys_behind_the_filter(tmp_path, short_yml, monkeypatch):
    from agents.controllers.shielded import Shielded
    from agents.evaluation.runner import make_controller
    from agents.learning import train as training
    from cpm_env.scenario import Site

    built = []
    real = training.CpmVecEnv
    monkeypatch.setattr(training, "CpmVecEnv", lambda *a, **k: built.append(k) or real(*a, **k))
    run = tmp_path / "run"
    assert train.main(["--scenario", short_yml, "--shield", "--timesteps", "256", "--run-dir", str(run)] + TINY
                      + ["checkpoint_freq:128"]) == 0
    shielded = {"shield": True, "battery_action": "power", "site_features": False}
    assert built == [shielded]  # the evaluations run behind the filter too
    for where in (run, run / "best", next((run / "checkpoints").glob("model_*_steps"))):
        assert check_artifacts(where)["env_options"] == shielded, where
    assert yaml.safe_load((run / "args.yml").read_text())["shield"] is True  # --resume rebuilds it
    site = Site(short_yml)
    controller = make_controller(f"ppo:{run}", site)  # the policy acts behind the filter it was trained behind
    assert isinstance(controller, Shielded) and not isinstance(controller.inner, Shielded)
    again = make_controller(f"ppo:{run}+shield", site)  # +shield adds nothing: filtered once
    assert isinstance(again, Shielded) and not isinstance(again.inner, Shielded)
    plain = tmp_path / "plain"
    assert train.main(["--scenario", short_yml, "--timesteps", "128", "--run-dir", str(plain)] + TINY) == 0
    assert check_artifacts(plain)["env_options"] == {**shielded, "shield": False}
    assert not isinstance(make_controller(f"ppo:{plain}", site), Shielded)


def test_linear_schedules_as_rl_zoo_writes_them(tmp_path, short_yml):
    from agents.learning.train import ppo_arguments

    hp = load_hyperparams("cpm_env/DataCenter-v0", ["learning_rate:lin_3e-4", "clip_range:lin_0.2"])
    kwargs = ppo_arguments(hp)
    rate = kwargs["learning_rate"]
    assert rate(1.0) == pytest.approx(3e-4) and rate(0.25) == pytest.approx(7.5e-5)
    assert kwargs["clip_range"](0.5) == pytest.approx(0.1)
    for bad in ("lin_", "lin_x", "lin_-1e-4", "lin_nan", "exp_3e-4"):
        with pytest.raises(ValueError, match=rf"learning_rate = '{re.escape(bad)}': must be a number or lin_<start>"):
            load_hyperparams("cpm_env/DataCenter-v0", [f"learning_rate:{bad}"])
    run = tmp_path / "run"
    assert train.main(["--scenario", short_yml, "--timesteps", "256", "--run-dir", str(run)] + TINY
                      + ["learning_rate:lin_1e-3"]) == 0
    model = PPO.load(run / "model.zip", device="cpu")
    assert model.policy.optimizer.param_groups[0]["lr"] < 1e-3 / 2  # the rate fell over the run


def test_eval_shield_chooses_best_behind_the_filter_while_training_without(tmp_path, short_yml, monkeypatch):
    from agents.controllers.shielded import Shielded
    from agents.evaluation.runner import make_controller
    from agents.learning import train as training
    from cpm_env.scenario import Site

    built = []
    real = training.CpmVecEnv
    monkeypatch.setattr(training, "CpmVecEnv", lambda *a, **k: built.append(k) or real(*a, **k))
    run = tmp_path / "run"
    assert train.main(["--scenario", short_yml, "--timesteps", "128", "--run-dir", str(run)] + TINY
                      + ["eval_shield:True"]) == 0
    assert [b["shield"] for b in built] == [True]  # the evaluation env filters ...
    assert check_artifacts(run / "best")["env_options"]["shield"] is False  # ... the policy learned without
    assert not isinstance(make_controller(f"ppo:{run}", Site(short_yml)), Shielded)  # runs as it learned
    assert train.main(["--scenario", short_yml, "--run-dir", str(tmp_path / "bad")] + TINY + ["eval_shield:1"]) == 2
    assert not (tmp_path / "bad").exists()


def test_killed_run_resumes_to_its_total(tmp_path, short_yml):
    run, total = tmp_path / "run", 10_000
    cmd = [sys.executable, str(ROOT / "train.py"), "--scenario", short_yml, "--timesteps", str(total),
           "--run-dir", str(run)] + TINY + ["checkpoint_freq:1000", "eval_freq:100000"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not list((run / "checkpoints").glob("model_*_steps/manifest.json")) and time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before its first checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # the manifest is written last: that checkpoint is complete
    proc.wait()
    assert not (run / "model.zip").is_file(), "the run finished before it was killed"
    assert train.main(["--resume", str(run)]) == 0
    assert check_artifacts(run)["num_timesteps"] == PPO.load(run / "model.zip", device="cpu").num_timesteps
    model = PPO.load(run / "model.zip", device="cpu")
    assert total <= model.num_timesteps < total + 2 * 64
    assert pd.read_csv(run / "evaluations.csv").timesteps.iloc[-1] == model.num_timesteps
    assert train.main(["--resume", str(run)]) == 2  # finished: nothing left to resume


def test_ctrl_c_saves_a_checkpoint_says_so_in_one_line_and_resumes(tmp_path, short_yml, capsys, monkeypatch):
    run, total, updates = tmp_path / "run", 1024, []
    learn = PPO.train

    def interrupted_on_the_third_update(self):
        updates.append(self.num_timesteps)
        if len(updates) == 3:
            raise KeyboardInterrupt  # as Ctrl-C in the middle of the gradient steps
        learn(self)

    monkeypatch.setattr(PPO, "train", interrupted_on_the_third_update)
    assert train.main(["--scenario", short_yml, "--timesteps", str(total), "--run-dir", str(run)] + TINY
                      + ["checkpoint_freq:100000", "eval_freq:100000"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"interrupted at 384 env steps: a checkpoint is in {run / 'checkpoints'}; continue with  "
                       f"python train.py --resume {run}") and "Traceback" not in "".join(err)
    assert latest_checkpoint(run)[2] == updates[-1] == 384 and not (run / "model.zip").exists()
    monkeypatch.setattr(PPO, "train", learn)
    assert train.main(["--resume", str(run)]) == 0
    assert total <= check_artifacts(run)["num_timesteps"] < total + 128


def test_resuming_another_scenario_is_refused_and_changes_nothing(tmp_path, short_yml, capsys):
    run = tmp_path / "run"
    assert train.main(["--scenario", short_yml, "--timesteps", "512", "--run-dir", str(run)] + TINY
                      + ["checkpoint_freq:256"]) == 0
    (run / "manifest.json").unlink()  # as if killed after its last checkpoint
    (run / "checkpoints" / "model_512_steps" / "vecnormalize.pkl").unlink()  # ... while writing the newest one
    assert latest_checkpoint(run)[2] == 256
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    capsys.readouterr()
    assert train.main(["--resume", str(run), "--scenario", "cpm_env/FastRamp-v0"]) == 2
    note, err = capsys.readouterr().err.strip().splitlines()  # the incomplete checkpoint is skipped with a note
    assert note.startswith("note: skipping checkpoint model_512_steps: ") and "vecnormalize.pkl: missing" in note
    assert "Short-v0" in err and "FastRamp-v0" in err
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == before


@pytest.mark.filterwarnings("error:You have specified a mini-batch size")  # every sampled minibatch divides
def test_optimize_shares_a_study_in_any_storage(tmp_path, short_yml):
    storage = f"sqlite:///{tmp_path / 'study.db'}"

    def tune(n_trials):
        return train.main(["--optimize", "--scenario", short_yml, "--timesteps", "1024", "--n-trials", str(n_trials),
                           "--storage", storage, "--study-name", "s", "--run-dir", str(tmp_path / "study"),
                           "--n-envs", "2"])

    assert tune(2) == 0
    assert tune(1) == 0  # another process (or machine) joins the same study
    study = optuna.load_study(study_name="s", storage=storage)
    assert len(study.trials) == 3
    assert len({t.params["learning_rate"] for t in study.trials}) == 3  # the joining process samples afresh
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in study.trials)
    best = yaml.safe_load((tmp_path / "study" / "best_hyperparams.yml").read_text())
    assert set(best["Short-v0"]) >= {"learning_rate", "n_steps", "gamma", "policy_kwargs"}


@pytest.mark.parametrize("n_envs", [1, 2, 3, 6, 16, 64])
def test_tuned_minibatches_divide_the_rollout(n_envs):
    from agents.learning.tune import sample_hyperparams

    for n_steps in (128, 256, 512):
        for batch in (256, 512, 1024):
            params = {"net_width": 64, "learning_rate": 3e-4, "n_steps": n_steps, "batch_size": batch, "n_epochs": 5,
                      "gamma": 0.99, "gae_lambda": 0.95, "clip_range": 0.2, "ent_coef": 1e-3, "log_std_init": -1.0}
            hp = sample_hyperparams(optuna.trial.FixedTrial(params), n_envs)
            rollout = n_steps * n_envs
            assert rollout % hp["batch_size"] == 0 and batch % hp["batch_size"] == 0
            assert hp["batch_size"] == batch or rollout % batch != 0  # the sampled size wherever it divides
            assert hp["batch_size"] >= min(batch, rollout) // 4  # never a needlessly tiny minibatch


def test_init_action_starts_the_policy_at_the_rule(one_torch_thread, capsys):
    from agents.evaluation.runner import make_controller
    from agents.learning.train import start_at_rule
    from cpm_env.vec_env import make_vec

    venv = make_vec("cpm_env/DataCenter-v0", 4, seed=0)
    model = PPO("MlpPolicy", venv, policy_kwargs={"net_arch": [16]}, device="cpu", seed=0)
    obs = venv.reset()
    bias = start_at_rule(model, venv, "static_cap", seed=0)
    rule, _ = make_controller("static_cap", venv.site).predict(obs)
    assert np.abs(bias - rule.mean(axis=0)).max() < 1e-6 and abs(bias[1]) > 0.3  # the static cap is not mid-range
    assert np.abs(model.predict(obs, deterministic=True)[0] - rule).max() < 0.05
    assert train.main(["--hyperparams", "init_action:nonsense"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "init_action = 'nonsense'" in err and "static_cap" in err


def test_the_progress_bar_counts_the_runs_steps_and_stops_at_the_requested_total():
    from agents.learning.callbacks import StepProgressBar

    venv = cpm_env.make_vec("cpm_env/DataCenter-v0", 2, seed=0, scenario={"duration_h": 1.0})
    model = PPO("MlpPolicy", venv, n_steps=8, batch_size=16, n_epochs=1, device="cpu")
    bar = StepProgressBar()
    model.learn(20, callback=bar)  # rollouts of 16 steps: SB3 runs 32
    assert model.num_timesteps == 32 and bar.pbar.n == bar.pbar.total == 20
    again = StepProgressBar()
    model.learn(20, callback=again, reset_num_timesteps=False)  # as a resume: the bar goes on from 32
    assert again.pbar.total == 52 and again.pbar.n == 52 and model.num_timesteps == 64


@pytest.mark.parametrize("config, rule", [({"shield": True}, "greedy+shield"), ({"eval_shield": True}, "greedy+shield"),
                                          ({"shield": False}, "greedy")])
def test_the_final_line_names_the_rule_as_the_evaluation_ran_it(tmp_path, config, rule):
    from agents.learning.callbacks import EVAL_COLUMNS, final_evaluation_line

    (tmp_path / "config.yml").write_text(yaml.safe_dump(config))
    pd.DataFrame([dict.fromkeys(EVAL_COLUMNS, 1.0)]).to_csv(tmp_path / "evaluations.csv", index=False)
    assert f"% of {rule}'s 1.0;" in final_evaluation_line(tmp_path)


def test_the_final_line_says_n_a_for_a_share_of_a_negative_rule(tmp_path):
    from agents.learning.callbacks import EVAL_COLUMNS, final_evaluation_line

    row = {**dict.fromkeys(EVAL_COLUMNS, 1.0), "best_rule_reward": -11.5, "pct_best_rule": float("nan")}
    pd.DataFrame([row]).to_csv(tmp_path / "evaluations.csv", index=False, na_rep="nan")  # as the callback writes it
    line = final_evaluation_line(tmp_path)
    assert "greedy's -11.5 (% of it: n/a, it is not positive);" in line and "nan" not in line


def test_imitate_clones_the_mpc_into_the_policy_and_its_normalizer(one_torch_thread, short_yml):
    from stable_baselines3.common.vec_env import VecNormalize

    from agents.learning.imitate import DEMO_SEED_OFFSET, demonstrations, imitate
    from cpm_env.vec_env import CpmVecEnv

    venv = CpmVecEnv(short_yml, 2)
    model = PPO("MlpPolicy", VecNormalize(venv), policy_kwargs={"net_arch": [32, 32]}, device="cpu", seed=0)
    obs, actions, _ = demonstrations("mpc", venv, 3, seed=0, progress=False)
    norm = model.get_vec_normalize_env()

    def action_error() -> float:
        inputs = norm.normalize_obs(obs.reshape(-1, obs.shape[-1]))
        mean, _ = model.predict(inputs, deterministic=True)
        return float(np.mean((mean - actions.reshape(len(inputs), -1)) ** 2))

    before = action_error()
    fit = imitate(model, venv, "mpc", 3, seed=0, epochs=60, batch_size=64, progress=False)
    assert fit["samples"] == obs.shape[0] * obs.shape[1] and norm.obs_rms.count > obs.shape[0] * obs.shape[1]
    assert action_error() < 0.2 * before and action_error() < 0.02  # the same demonstrations (seeded)
    # under battery_action import_change the first action is the import's change the MPC made, in ramp limits
    moved, changes, _ = demonstrations("mpc", CpmVecEnv(short_yml, 3, battery_action="import_change"), 3, seed=0,
                                       progress=False)
    assert np.array_equal(moved, obs) and np.array_equal(changes[:, :, 1:], actions[:, :, 1:])
    assert np.abs(changes[:, :, 0]).max() > 0.1
    replay = CpmVecEnv(short_yml, 3, battery_action="import_change")  # the changes replay the MPC's steps
    replay.seed(DEMO_SEED_OFFSET)
    seen = replay.reset()
    for t in range(len(changes)):
        assert np.allclose(seen, moved[t], atol=1e-4), t
        if np.abs(changes[t, :, 0]).max() > 1 - 1e-6:  # beyond the ramp limit: the change is clipped
            break
        seen, _, _, _ = replay.step(changes[t])
    assert t > 5


def test_imitate_is_checked_before_anything_is_written(tmp_path, capsys):
    assert train.main(["--hyperparams", "imitate:greedy", "--run-dir", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "imitate = 'greedy'" in err and "mpc" in err
    assert train.main(["--hyperparams", "imitate:mpc", "init_action:static_cap", "--run-dir", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "choose one start" in err
    dagger_under_import_change = ["imitate:mpc", "imitate_rounds:1", "battery_action:import_change"]
    for bad, expected in ((["imitate_rounds:-1"], "imitate_rounds = -1"), (["imitate_rounds:2"], "without imitate"),
                          (dagger_under_import_change, "needs battery_action"),
                          (["imitate:oracle", "imitate_rounds:1"], "answers any state")):
        assert train.main(["--hyperparams", *bad, "--run-dir", str(tmp_path / "c")]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and expected in err, err
    assert not any((tmp_path / name).exists() for name in "abc")


def test_the_oracle_teaches_the_plan_it_made_for_each_demonstration(short_yml):
    from agents.controllers.oracle import actions_from_plan, episode_series, episode_start
    from agents.controllers.site_lp import plan
    from agents.learning.imitate import DEMO_SEED_OFFSET, demonstrations
    from cpm_env.vec_env import CpmVecEnv

    venv = CpmVecEnv(short_yml, 2)
    obs, actions, rewards = demonstrations("oracle", venv, 2, seed=0, progress=False)
    replay = CpmVecEnv(short_yml, 2)  # the same demonstration episodes, planned here from the whole of each
    replay.seed(DEMO_SEED_OFFSET)
    assert np.array_equal(replay.reset(), obs[0])
    for i in range(2):
        ep = replay.episode
        expected = actions_from_plan(replay.site, plan(replay.params, episode_series(ep, i),
                                                       episode_start(replay.site, ep, i)))
        assert np.allclose(actions[:, i], np.clip(expected, -1, 1), atol=1e-6), i
    _, _, greedy = demonstrations("greedy", venv, 2, seed=0, progress=False)  # the plan is worth more than a rule
    assert rewards.sum() > greedy.sum()
    n_act = venv.action_space.shape[0]
    with pytest.raises(ValueError, match="plans each episode at its start"):  # DAgger: its plan is not the actor's
        demonstrations("oracle", venv, 2, seed=0, progress=False, actor=lambda o: np.zeros((len(o), n_act)))


def test_dagger_rounds_label_the_states_the_clone_reaches(one_torch_thread, short_yml):
    from stable_baselines3.common.vec_env import VecNormalize

    from agents.evaluation.runner import make_controller
    from agents.learning.imitate import demonstrations, imitate
    from cpm_env.vec_env import CpmVecEnv

    venv = CpmVecEnv(short_yml, 2)
    obs, _, _ = demonstrations("mpc", venv, 2, seed=0, progress=False)
    n_act = venv.action_space.shape[0]
    driven, labels, _ = demonstrations("mpc", venv, 2, seed=0, progress=False,
                                       actor=lambda o: np.full((len(o), n_act), 0.9))
    assert np.array_equal(driven[0], obs[0]) and not np.allclose(driven[-1], obs[-1])  # the actor drove
    labeller = make_controller("mpc", venv.site)  # the controller's answer on each state the actor reached
    for t in range(len(driven)):
        expected = np.clip(labeller.predict(driven[t], deterministic=True)[0], -1, 1)
        assert np.allclose(labels[t], expected, atol=1e-6), t
    model = PPO("MlpPolicy", VecNormalize(venv), policy_kwargs={"net_arch": [32, 32]}, device="cpu", seed=0)
    fit = imitate(model, venv, "mpc", 2, seed=0, rounds=1, epochs=10, batch_size=64, progress=False)
    assert fit["samples"] == 2 * obs.shape[0] * obs.shape[1]


def test_a_cloned_start_is_evaluated_before_its_first_update(tmp_path, short_yml):
    run = tmp_path / "run"
    assert train.main(["--scenario", short_yml, "--timesteps", "128", "--run-dir", str(run)] + TINY
                      + ["imitate:mpc", "imitate_episodes:2"]) == 0
    steps = pd.read_csv(run / "evaluations.csv").timesteps.tolist()
    assert steps[0] == 0 and steps[-1] == 128
