"""Bad inputs and interruptions of evaluate.py and its --sweep form: each bad input is one exact
error line, checked before any work, and writes nothing; an interrupted run keeps its finished
rows, and rerunning the same command continues it without recomputing them."""

import re
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

import evaluate
from agents.evaluation import runfolder
from agents.sizing import sweep as sweep_module

SEEDS_RULE = "must be a range like 100-119 or a list like 1,5,9"
NAMES_RULE = "must be comma-separated controller names, e.g. static_cap,greedy"
SAFE_RULE = re.escape("must be a single folder name: not empty, no '/' or '\\', not '.' or '..', no leading '.'")


def listing(root: Path) -> list[str]:
    """Every path under ``root``, relative, sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def error_line(capsys) -> str:
    """The single line the command wrote to stderr."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.rstrip("\n")


@pytest.fixture
def workdir(tmp_path, monkeypatch, short_scenario):
    """``tmp_path`` as the working directory (so default outputs land there) with a one-hour scenario."""
    monkeypatch.chdir(tmp_path)
    short_scenario(hours=1.0)
    return tmp_path


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if any controller or sweep point is run."""
    def refuse(*args, **kwargs):
        raise AssertionError("computed something")

    monkeypatch.setattr(evaluate, "run_controller", refuse)
    monkeypatch.setattr(sweep_module, "run_point", refuse)


def write_sweep(folder: Path, **fields) -> Path:
    """A tiny sweep file over the short scenario, with ``fields`` replacing its own."""
    data = {"name": "tiny", "scenario": str(folder / "short.yml"), "oversubscription": [1.1, 1.4],
            "battery_hours": [0, 0.5], "controllers": ["static_cap", "greedy"], "seeds": "3-4", **fields}
    path = folder / "sweep.yml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("flag, value, message", [
    ("--seeds", "", f"--seeds = '': {SEEDS_RULE}"),
    ("--seeds", "1,1", "--seeds = '1,1': seed 1 given twice"),
    ("--seeds", "5-3", f"--seeds = '5-3': {SEEDS_RULE}"),
    ("--controllers", "", f"--controllers = '': name 1 is empty: {NAMES_RULE}"),
    ("--controllers", ",", f"--controllers = ',': name 1 is empty: {NAMES_RULE}"),
    ("--controllers", "greedy,greedy", "--controllers = 'greedy,greedy': controller greedy given twice"),
])
def test_empty_or_duplicate_flag_values_are_one_line_errors(workdir, capsys, no_work, flag, value, message):
    before = listing(workdir)
    args = {"--scenario": "short.yml", "--controllers": "greedy", "--seeds": "1", "--out": "out", flag: value}
    assert evaluate.main([x for kv in args.items() for x in kv]) == 2
    assert error_line(capsys) == f"error: {message}"
    assert listing(workdir) == before


@pytest.mark.parametrize("field, value, message", [
    ("oversubscription", [], r"oversubscription = \[\]: must be a non-empty list of numbers in \[0\.1, 10\]"),
    ("oversubscription", [1.1, 1.1], r"oversubscription = \[1\.1, 1\.1\]: 1\.1 given twice"),
    ("battery_hours", [0, 0], r"battery_hours = \[0\.0, 0\.0\]: 0\.0 given twice"),
    ("battery_hours", [-1], r"battery_hours = \[-1\.0\]: must be a non-empty list of numbers in \[0, 100\]"),
    ("controllers", [], r"controllers = \[\]: must be a non-empty list of controller names"),
    ("controllers", ["greedy", "greedy"], r"controllers = \['greedy', 'greedy'\]: 'greedy' given twice"),
    ("seeds", "1,1", "seeds = '1,1': seed 1 given twice"),
    ("seeds", [3, 3], "seeds = '3,3': seed 3 given twice"),
    ("seeds", "", f"seeds = '': {SEEDS_RULE}"),
    ("name", "../x", f"name = '../x': {SAFE_RULE}"),
])
def test_bad_sweep_points_are_one_line_errors(workdir, capsys, no_work, field, value, message):
    path = write_sweep(workdir, **{field: value})
    before = listing(workdir)
    assert evaluate.main(["--sweep", str(path)]) == 2  # default --out: results/sweeps/<name>
    assert re.fullmatch(rf"error: {re.escape(str(path))}: {message}", error_line(capsys))
    assert listing(workdir) == before


def test_sweep_seeds_flag_duplicate_names_the_flag(workdir, capsys, no_work):
    path = write_sweep(workdir)
    before = listing(workdir)
    assert evaluate.main(["--sweep", str(path), "--seeds", "3,3"]) == 2
    assert error_line(capsys) == "error: --seeds = '3,3': seed 3 given twice"
    assert listing(workdir) == before


@pytest.mark.parametrize("sweep", [False, True])
@pytest.mark.parametrize("out, problem", [
    ("short.yml", "is a file: must be a folder"),
    ("short.yml/sub", "cannot create it: {root}/short.yml is a file"),
])
def test_bad_out_is_refused_at_once_and_computes_nothing(workdir, capsys, no_work, sweep, out, problem):
    args = (["--sweep", str(write_sweep(workdir))] if sweep else
            ["--scenario", "short.yml", "--controllers", "static_cap,greedy,mpc,oracle", "--seeds", "1-3"])
    before = listing(workdir)
    t0 = time.perf_counter()
    assert evaluate.main([*args, "--out", out]) == 2
    assert time.perf_counter() - t0 < 1.0
    assert error_line(capsys) == f"error: --out = '{out}': {problem.format(root=workdir)}"
    assert listing(workdir) == before


def test_scenario_id_that_escapes_results_is_refused(workdir, capsys, no_work):
    data = yaml.safe_load((workdir / "short.yml").read_text())
    (workdir / "short.yml").write_text(yaml.safe_dump({**data, "id": "../../x"}))
    before = listing(workdir)
    assert evaluate.main(["--scenario", "short.yml", "--controllers", "greedy", "--seeds", "1"]) == 2
    line = error_line(capsys)  # ours, or the scenario loader's once it checks ids itself
    assert re.fullmatch(r"error: (scenario id|.*\bid) = '\.\./\.\./x': .+", line), line
    assert listing(workdir) == before


def test_another_configuration_needs_overwrite_which_moves_the_old_run_aside(workdir, capsys):
    base = ["--scenario", "short.yml", "--controllers", "static_cap", "--out", "out"]
    assert evaluate.main([*base, "--seeds", "1"]) == 0
    before = listing(workdir)
    capsys.readouterr()
    assert evaluate.main([*base, "--seeds", "2"]) == 2
    assert error_line(capsys) == ("error: --out = 'out': holds a run of another configuration: pass --overwrite to "
                                  "move it aside, or choose another folder")
    assert listing(workdir) == before
    (workdir / "mine").mkdir()
    (workdir / "mine" / "notes.txt").write_text("keep")
    assert evaluate.main([*base[:-1], "mine", "--seeds", "2", "--overwrite"]) == 2
    assert error_line(capsys) == ("error: --out = 'mine': not empty and not a run's output folder (no run.json): "
                                  "choose an empty or new folder")
    assert evaluate.main([*base, "--seeds", "2", "--overwrite"]) == 0
    aside = [p for p in workdir.iterdir() if p.name.startswith("out.old-")]
    assert len(aside) == 1 and set(pd.read_csv(aside[0] / "episodes.csv").seed) == {1}
    assert set(pd.read_csv(workdir / "out" / "episodes.csv").seed) == {2}


def test_interrupted_evaluation_keeps_finished_rows_and_resumes(workdir, monkeypatch, capsys):
    args = ["--scenario", "short.yml", "--controllers", "static_cap,greedy", "--seeds", "1-2"]
    assert evaluate.main([*args, "--out", "whole"]) == 0
    real = evaluate.run_controller
    runs: list[str] = []

    def interrupted(controller, venv, seeds, label, *rest, **kwargs):
        runs.append(label)
        if label == "greedy":
            raise KeyboardInterrupt
        return real(controller, venv, seeds, label, *rest, **kwargs)

    monkeypatch.setattr(evaluate, "run_controller", interrupted)
    assert evaluate.main([*args, "--out", "out"]) == 130
    assert error_line(capsys) == ("interrupted: the finished controllers' rows are kept in out/rows; rerun the same "
                                  "command to continue")
    out = workdir / "out"
    assert listing(out) == ["rows", "rows/0.csv", "rows/0.json", "run.json"]  # static_cap's rows, no final files
    kept = (out / "rows" / "0.csv").stat()
    runs.clear()
    monkeypatch.setattr(evaluate, "run_controller", lambda ctrl, venv, seeds, label, *rest, **kwargs: (
        runs.append(label) or real(ctrl, venv, seeds, label, *rest, **kwargs)))
    assert evaluate.main([*args, "--out", "out"]) == 0
    assert runs == ["greedy"]  # static_cap was not recomputed
    assert (out / "rows" / "0.csv").stat().st_mtime_ns == kept.st_mtime_ns
    for name in ("episodes.csv", "summary.md", "episode.png", "kpis.png"):
        assert (out / name).read_bytes() == (workdir / "whole" / name).read_bytes(), name
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no staging or temp files left


def test_interrupted_sweep_keeps_finished_points_and_resumes(workdir, monkeypatch, capsys):
    path = write_sweep(workdir)
    assert evaluate.main(["--sweep", str(path), "--out", "whole", "--workers", "1"]) == 0
    real_save = runfolder.RunFolder.save

    def save_then_interrupt(self, key, rows, extra=None):
        real_save(self, key, rows, extra)
        raise KeyboardInterrupt

    monkeypatch.setattr(runfolder.RunFolder, "save", save_then_interrupt)
    assert evaluate.main(["--sweep", str(path), "--out", "out", "--workers", "1"]) == 130
    assert error_line(capsys) == ("interrupted: the finished points' rows are kept in out/rows; rerun the same "
                                  "command to continue")
    out = workdir / "out"
    done = [p.name for p in (out / "rows").glob("*.json")]
    assert len(done) == 1 and not (out / "sweep.csv").exists()
    kept = (out / "rows" / done[0]).stat()
    monkeypatch.setattr(runfolder.RunFolder, "save", real_save)
    assert evaluate.main(["--sweep", str(path), "--out", "out", "--workers", "1"]) == 0
    assert (out / "rows" / done[0]).stat().st_mtime_ns == kept.st_mtime_ns  # that point was not rerun
    assert len(list((out / "rows").glob("*.json"))) == 4
    for name in ("sweep.csv", "episodes.csv", "sizing.md", "frontier.png", "heatmap.png"):
        assert (out / name).read_bytes() == (workdir / "whole" / name).read_bytes(), name


def test_a_retrained_policy_under_the_same_name_is_another_run_not_a_resume(workdir, capsys):
    """Rows of one policy are never reused for another one saved at the same path."""
    import json
    import shutil

    policy = workdir / "policy"
    shutil.copytree(Path(evaluate.__file__).parent / "models" / "DataCenter-v0", policy)
    args = ["--scenario", "short.yml", "--controllers", "static_cap,ppo:policy", "--seeds", "1",
            "--allow-other-scenario", "--out", "out"]
    assert evaluate.main(args) == 0
    manifest = policy / "manifest.json"  # the same files, resealed: as a retrained run would be
    manifest.write_text(json.dumps(json.loads(manifest.read_text()), indent=1))
    assert evaluate.main(args) == 2
    assert error_line(capsys).startswith("error: --out = 'out': holds a run of another configuration")
