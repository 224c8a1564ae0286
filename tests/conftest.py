"""Shared test setup: the repository root on sys.path (so ``import evaluate, train, export``
works from any test module run alone), hypothesis profiles and the fixtures several modules use."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
if sys.path[:1] != [str(ROOT)]:  # ahead of any installed copy of cpm_env or agents
    sys.path.insert(0, str(ROOT))

import cpm_env  # noqa: E402  (after the path setup, so the checkout's package is the one tested)

settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def one_site(scenario_id: str):
    """The config of a registered scenario; of a site family, the site seed 0 draws."""
    from cpm_env.family import SiteFamily, is_family_file

    path = cpm_env.scenario_ids()[scenario_id]
    return SiteFamily(path).site(0) if is_family_file(path) else cpm_env.load_scenario(path)


@pytest.fixture
def tmp_yaml(tmp_path):
    """A writer of text files in ``tmp_path``: ``tmp_yaml(text, name="scenario.yml")`` -> the path."""

    def write(text: str, name: str = "scenario.yml"):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def write_short_scenario(folder: Path, hours: float) -> Path:
    """``folder/short.yml``, a copy of the default scenario ``hours`` long (id Short-v0, the default 60 s step)."""
    data = yaml.safe_load(cpm_env.DEFAULT_SCENARIO.read_text())
    data.update({"id": "Short-v0", "duration_h": hours})
    path = folder / "short.yml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def short_scenario(tmp_path):
    """A writer of short copies of the default scenario: ``short_scenario(hours=2.0)`` writes
    ``tmp_path/short.yml`` (id Short-v0, ``hours`` long at the default 60 s step) and returns its path."""
    return lambda hours=2.0: write_short_scenario(tmp_path, hours)


TINY_TRAINING = ["--timesteps", "256", "--n-envs", "2", "--hyperparams", "n_steps:64", "batch_size:64", "n_epochs:1",
                 "eval_seeds:1-2"]  # train.py arguments for a policy in about two seconds


@pytest.fixture(scope="session")
def import_change_run(tmp_path_factory):
    """(run dir, scenario YAML) of a tiny policy trained with ``--battery-action import_change`` on a 1 h
    copy of the default scenario; trained once per session."""
    import torch  # only the tests that train pay for torch here

    import train

    root = tmp_path_factory.mktemp("import_change")
    scenario, run = write_short_scenario(root, hours=1.0), root / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert train.main(["--scenario", str(scenario), "--battery-action", "import_change", "--run-dir", str(run)]
                          + TINY_TRAINING) == 0
    finally:
        torch.set_num_threads(threads)
    return run, scenario


@pytest.fixture
def one_torch_thread():
    """SB3's small MLPs run several times slower with torch threads competing for the cores."""
    import torch  # only the tests that train or run a policy pay for torch here

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def run_python(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter of this venv (for what a process does at start-up); it must
    exit 0. Returns the finished process with its captured text output."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="session")
def import_change_exports(import_change_run, tmp_path_factory):
    """(folder without the safety filter, folder behind it) of :func:`import_change_run`'s policy, exported by
    export.py once per session."""
    import export as export_cli

    root = tmp_path_factory.mktemp("import_change_export")
    run, _ = import_change_run
    for name, flag in (("plain", "--no-shield"), ("shield", "--shield")):
        assert export_cli.main([str(run), "--out", str(root / name), flag, "--parity-obs", "10000"]) == 0
    return root / "plain", root / "shield"
