"""The standalone runtime installs and runs on a controller host without the training stack.

A fresh virtual environment gets only numpy and onnxruntime (with their own dependencies)
and the project without its dependencies, the documented minimal install:

    pip install "numpy>=1.26,<3" "onnxruntime>=1.18,<2"
    pip install --no-deps .

It then loads an export of the shipped DataCenter-v0 policy with
``agents.runtime.PolicyController`` and answers one observation, and the same telemetry with a
schedule (the runtime computing the forecast entries with ``cpm_env.forecast``), in Python and
through the JSON-lines loop, with the set-points the full install gives. Needs the package index (about
30 s); deselect with ``-m "not install"``.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agents.learning.export import export_policy
from agents.runtime import PolicyController

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "DataCenter-v0"
RUNTIME_REQUIREMENTS = ["numpy>=1.26,<3", "onnxruntime>=1.18,<2"]  # as in pyproject.toml's dependencies
PACKAGE_FILES = ["pyproject.toml", "README.md", "LICENSE", "cpm_env", "agents"]  # what setuptools builds from
TRAINING_STACK = {"torch", "gymnasium", "stable-baselines3", "scipy", "pandas", "onnx", "optuna"}

pytestmark = pytest.mark.install

CHECK = """
import importlib.metadata, json, sys
from agents.runtime import PolicyController
c = PolicyController.load(sys.argv[1])
obs, telemetry, schedule = json.loads(sys.argv[2])
setpoints = c.act(obs).tolist()
fallback = c.last_fallback_reason
from_telemetry = c.act_telemetry(telemetry, schedule).tolist()
print(json.dumps({
    "setpoints": setpoints,
    "fallback": fallback,
    "from_telemetry": from_telemetry,
    "telemetry_fallback": c.last_fallback_reason,
    "runtime_file": sys.modules["agents.runtime"].__file__,
    "project_modules": sorted(m for m in sys.modules if m.split(".")[0] in ("agents", "cpm_env")),
    "modules": sorted({m.split(".")[0] for m in sys.modules} - set(sys.stdlib_module_names)),
    "installed": sorted(d.metadata["Name"].lower().replace("_", "-") for d in importlib.metadata.distributions()),
}))
"""


def _pip(venv_python: Path, *args: str) -> None:
    """pip of the running interpreter, installing into ``venv_python``'s environment."""
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(venv_python), "install",
                           "--quiet", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def runtime_host(tmp_path_factory):
    """(python of a venv with only the runtime's packages, an export of the shipped policy)."""
    tmp = tmp_path_factory.mktemp("runtime_host")
    export_dir = tmp / "policy"
    export_policy(MODEL, export_dir)
    src = tmp / "src"  # a clean source tree: building in the checkout would leave build/ behind
    for name in PACKAGE_FILES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(path, src / name)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    _pip(python, *RUNTIME_REQUIREMENTS)
    _pip(python, "--no-deps", str(src))
    return python, export_dir


def inputs(reference: PolicyController) -> tuple[list[float], list[float], list[float]]:
    """A mid-range observation, its telemetry (all but the forecast entries) and a schedule window (MW)."""
    obs = ((reference.obs_low + reference.obs_high) / 2).tolist()
    telemetry = [v for v, name in zip(obs, reference.obs_names) if name in reference.telemetry_names]
    return obs, telemetry, np.linspace(60.0, 70.0, 61).tolist()


def test_runtime_runs_with_numpy_and_onnxruntime_only(runtime_host):
    python, export_dir = runtime_host
    reference = PolicyController.load(export_dir)
    obs, telemetry, schedule = inputs(reference)
    expected = reference.act(obs)
    assert reference.last_fallback_reason is None
    expected_from_telemetry = reference.act_telemetry(telemetry, schedule)
    assert reference.last_fallback_reason is None

    # -I: no PYTHONPATH, no user site, not the checkout: only what the venv has installed.
    done = subprocess.run([str(python), "-I", "-c", CHECK, str(export_dir), json.dumps([obs, telemetry, schedule])],
                          cwd=python.parents[2], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["fallback"] is None and got["telemetry_fallback"] is None
    np.testing.assert_allclose(got["setpoints"], expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got["from_telemetry"], expected_from_telemetry, rtol=1e-6, atol=1e-9)
    assert Path(got["runtime_file"]).is_relative_to(python.parents[1])  # the installed copy, not the checkout
    # agents/__init__ imports nothing else; cpm_env without gymnasium loads only its numpy-only forecast module
    assert got["project_modules"] == ["agents", "agents.runtime", "cpm_env", "cpm_env.forecast"]
    assert not TRAINING_STACK & set(got["installed"]), got["installed"]
    assert {"numpy", "onnxruntime", "cpm"} <= set(got["installed"])
    assert not {"torch", "gymnasium", "stable_baselines3", "scipy", "pandas", "yaml"} & set(got["modules"])


def test_runtime_json_lines_loop_on_the_host(runtime_host):
    python, export_dir = runtime_host
    reference = PolicyController.load(export_dir)
    obs, telemetry, schedule = inputs(reference)
    lines = [{"obs": obs}, {"telemetry": dict(zip(reference.telemetry_names, telemetry)), "schedule_mw": schedule}]
    done = subprocess.run([str(python), "-I", "-m", "agents.runtime", str(export_dir)], cwd=python.parents[2],
                          input="".join(json.dumps(line) + "\n" for line in lines), capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    for answer, setpoints in zip(answers, [reference.act(obs), reference.act_telemetry(telemetry, schedule)],
                                 strict=True):
        assert answer["fallback"] is None
        expected = reference.setpoint_dict(setpoints)
        assert answer["setpoints"].keys() == expected.keys()
        np.testing.assert_allclose(list(answer["setpoints"].values()), list(expected.values()), rtol=1e-6, atol=1e-9)
