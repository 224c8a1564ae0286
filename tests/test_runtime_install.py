"""The standalone runtime installs and runs on a controller host without the training stack.

A fresh virtual environment gets only numpy and onnxruntime (with their own dependencies)
and the project without its dependencies, the documented minimal install:

    pip install "numpy>=1.26,<3" "onnxruntime>=1.18,<2"
    pip install --no-deps .

It then loads an export of the shipped DataCenter-v0 policy with
``agents.runtime.PolicyController`` and answers one observation, and the same telemetry with a
schedule (the runtime computing the forecast entries with ``cpm_env.forecast``), in Python and
through the JSON-lines loop, with the set-points the full install gives; and an export of it behind
the safety filter (``cpm_env.shield`` with the site model of its ``policy.json``), on an observation
where the filter moves the set-points. Of the project, only ``agents.runtime`` and the numpy-only
modules of ``cpm_env`` load. Needs the package index (about 30 s); deselect with ``-m "not install"``.
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
telemetry_fallback = c.last_fallback_reason
filtered = PolicyController.load(sys.argv[3])
shielded = filtered.act(obs).tolist()
import cpm_env
try:
    cpm_env.config
except AttributeError as err:
    missing = str(err)
print(json.dumps({
    "setpoints": setpoints,
    "fallback": fallback,
    "from_telemetry": from_telemetry,
    "telemetry_fallback": telemetry_fallback,
    "shielded": shielded,
    "shielded_fallback": filtered.last_fallback_reason,
    "shield": filtered.shield_summary(),
    "missing": missing,
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
    """(python of a venv with only the runtime's packages, an export of the shipped policy, one behind the filter)."""
    tmp = tmp_path_factory.mktemp("runtime_host")
    export_dir = tmp / "policy"
    export_policy(MODEL, export_dir)
    export_policy(MODEL, tmp / "shielded", shield=True)
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
    return python, export_dir, tmp / "shielded"


def inputs(reference: PolicyController) -> tuple[list[float], list[float], list[float]]:
    """A mid-range observation, its telemetry (all but the forecast entries) and a schedule window (MW)."""
    obs = ((reference.obs_low + reference.obs_high) / 2).tolist()
    telemetry = [v for v, name in zip(obs, reference.obs_names) if name in reference.telemetry_names]
    return obs, telemetry, np.linspace(60.0, 70.0, 61).tolist()


def test_runtime_runs_with_numpy_and_onnxruntime_only(runtime_host):
    python, export_dir, shielded_dir = runtime_host
    reference = PolicyController.load(export_dir)
    obs, telemetry, schedule = inputs(reference)
    expected = reference.act(obs)
    assert reference.last_fallback_reason is None
    expected_from_telemetry = reference.act_telemetry(telemetry, schedule)
    assert reference.last_fallback_reason is None
    shielded = PolicyController.load(shielded_dir)
    expected_shielded = shielded.act(obs)
    assert shielded.last_fallback_reason is None and shielded.last_shield_report.intervened  # the filter acts here

    # -I: no PYTHONPATH, no user site, not the checkout: only what the venv has installed.
    done = subprocess.run([str(python), "-I", "-c", CHECK, str(export_dir), json.dumps([obs, telemetry, schedule]),
                           str(shielded_dir)],
                          cwd=python.parents[2], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["fallback"] is None and got["telemetry_fallback"] is None and got["shielded_fallback"] is None
    np.testing.assert_allclose(got["setpoints"], expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got["from_telemetry"], expected_from_telemetry, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got["shielded"], expected_shielded, rtol=1e-6, atol=1e-9)
    assert got["shield"] == shielded.shield_summary() and got["shield"]["intervened"]
    assert not np.allclose(got["shielded"], expected)  # the filter moved the policy's set-points
    assert got["missing"].startswith("cpm_env.config: needs gymnasium and PyYAML, not installed")
    assert Path(got["runtime_file"]).is_relative_to(python.parents[1])  # the installed copy, not the checkout
    # agents/__init__ imports nothing else; cpm_env without gymnasium loads only its numpy-only modules
    assert got["project_modules"] == ["agents", "agents.runtime", "cpm_env", "cpm_env.forecast", "cpm_env.ops",
                                      "cpm_env.physics", "cpm_env.shield", "cpm_env.site"]
    assert not TRAINING_STACK & set(got["installed"]), got["installed"]
    assert {"numpy", "onnxruntime", "cpm"} <= set(got["installed"])
    assert not {"torch", "gymnasium", "stable_baselines3", "scipy", "pandas", "yaml"} & set(got["modules"])


@pytest.mark.parametrize("behind_filter", [False, True])
def test_runtime_json_lines_loop_on_the_host(runtime_host, behind_filter):
    python, export_dir, shielded_dir = runtime_host
    folder = shielded_dir if behind_filter else export_dir
    reference = PolicyController.load(folder)
    obs, telemetry, schedule = inputs(reference)
    lines = [{"obs": obs}, {"telemetry": dict(zip(reference.telemetry_names, telemetry)), "schedule_mw": schedule}]
    done = subprocess.run([str(python), "-I", "-m", "agents.runtime", str(folder)], cwd=python.parents[2],
                          input="".join(json.dumps(line) + "\n" for line in lines), capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    expected_answers = []
    for act in (lambda: reference.act(obs), lambda: reference.act_telemetry(telemetry, schedule)):
        expected_answers.append((act(), reference.shield_summary()))
    for answer, (setpoints, report) in zip(answers, expected_answers, strict=True):
        assert answer["fallback"] is None
        assert ("shield" in answer) == behind_filter and answer.get("shield") == report
        expected = reference.setpoint_dict(setpoints)
        assert answer["setpoints"].keys() == expected.keys()
        np.testing.assert_allclose(list(answer["setpoints"].values()), list(expected.values()), rtol=1e-6, atol=1e-9)
