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


@pytest.fixture
def tmp_yaml(tmp_path):
    """A writer of text files in ``tmp_path``: ``tmp_yaml(text, name="scenario.yml")`` -> the path."""

    def write(text: str, name: str = "scenario.yml"):
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def short_scenario(tmp_path):
    """A writer of short copies of the default scenario: ``short_scenario(hours=2.0)`` writes
    ``tmp_path/short.yml`` (id Short-v0, ``hours`` long at the default 60 s step) and returns its path."""

    def write(hours: float = 2.0) -> Path:
        data = yaml.safe_load(cpm_env.DEFAULT_SCENARIO.read_text())
        data.update({"id": "Short-v0", "duration_h": hours})
        path = tmp_path / "short.yml"
        path.write_text(yaml.safe_dump(data))
        return path

    return write


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
