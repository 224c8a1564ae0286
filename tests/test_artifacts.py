"""Issue 12, run dirs and artifacts: bad input is a one-line error and nothing is written or lost.

Each test asserts the whole error line (a regex) and compares the folder's listing and file
hashes before and after.
"""

import hashlib
import re
from pathlib import Path

import pytest

import train
from agents.learning.rundir import default_run_dir

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--timesteps", "256", "--n-envs", "2", "--hyperparams", "n_steps:64", "batch_size:64", "n_epochs:1",
        "eval_seeds:1-2", "checkpoint_freq:128"]


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` (relative) -> the SHA-256 of its bytes ('dir' for folders)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def one_error_line(capsys) -> str:
    """The captured stderr, asserted to be exactly one line."""
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def short_yml(short_scenario):
    return str(short_scenario(hours=1.0))


@pytest.mark.parametrize("args, line", [
    (["--hyperparams", "n_steps:abc"], r"error: --hyperparams 'n_steps:abc': n_steps = 'abc': must be an integer >= 1"),
    (["--hyperparams", "gamma:1.5"], r"error: --hyperparams 'gamma:1.5': gamma = 1.5: must be in \[0, 1\]"),
    (["--timesteps", "0"], r"error: --timesteps = 0: must be an integer >= 1 \(leave it out for the default\)"),
    (["--n-envs", "0"], r"error: --n-envs = 0: must be an integer >= 1 \(leave it out for the default\)"),
    (["--seed", "-1"], r"error: --seed = -1: must be >= 0"),
    (["--optimize", "--n-trials", "0"],
     r"error: --n-trials = 0: must be an integer >= 1 \(leave it out for the default\)"),
    (["--optimize", "--storage", "foo://x"], r"error: --storage 'foo://x': not a usable Optuna storage URL "
     r"\(NoSuchModuleError\): use sqlite:///FILE\.db, postgresql://USER@HOST/DB or mysql://USER@HOST/DB"),
])
@pytest.mark.parametrize("run_dir", [True, False])
def test_bad_train_arguments_create_nothing(tmp_path, monkeypatch, capsys, short_yml, args, line, run_dir):
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    where = ["--run-dir", str(tmp_path / "run")] if run_dir else []
    assert train.main(["--scenario", short_yml] + where + args) == 2
    assert re.fullmatch(line, one_error_line(capsys))
    assert snapshot(tmp_path) == before


def test_a_non_empty_run_dir_is_refused_and_overwrite_moves_it_aside(tmp_path, capsys, short_yml):
    run = tmp_path / "run"
    run.mkdir()
    (run / "evaluations.csv").write_text("another run's history\n")
    before = snapshot(tmp_path)
    assert train.main(["--scenario", short_yml, "--run-dir", str(run)] + TINY) == 2
    assert re.fullmatch(rf"error: --run-dir {re.escape(str(run))}: not empty \(another run's files\): pass a new "
                        rf"--run-dir, --resume {re.escape(str(run))} to continue that run, or --overwrite to move it "
                        rf"aside to {re.escape(str(run))}\.old-<UTC time> and start fresh", one_error_line(capsys))
    assert snapshot(tmp_path) == before
    assert train.main(["--scenario", short_yml, "--run-dir", str(run), "--overwrite"] + TINY) == 0
    (old,) = tmp_path.glob("run.old-*")
    assert re.fullmatch(r"run\.old-\d{8}T\d{6}Z", old.name)
    assert snapshot(old) == {k[len("run/"):]: v for k, v in before.items() if k.startswith("run/")}
    assert "another run" not in (run / "evaluations.csv").read_text()


def test_default_run_dirs_are_unique(tmp_path):
    first = default_run_dir("cpm_env/DataCenter-v0", 3, tmp_path)
    assert re.fullmatch(r"DataCenter-v0_seed3_\d{8}T\d{6}Z", first.name)
    first.mkdir()
    second = default_run_dir("cpm_env/DataCenter-v0", 3, tmp_path)
    assert second != first and not second.exists()
    with pytest.raises(ValueError, match=r"^scenario id '\.\.': not usable in a folder name"):
        default_run_dir("..", 0, tmp_path)
