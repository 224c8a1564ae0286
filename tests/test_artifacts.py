"""Issue 12, run dirs and artifacts: bad input is a one-line error and nothing is written or lost.

Each test asserts the whole error line (a regex) and compares the folder's listing and file
hashes before and after.
"""

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import train
from agents.learning.artifacts import check_artifacts
from agents.learning.rundir import default_run_dir

ROOT = Path(__file__).resolve().parents[1]
POLICY_FILES = {"model.zip", "vecnormalize.pkl", "policy.npz", "policy_spec.json", "normalizer.json"}
FINAL_FILES = POLICY_FILES | {"config.yml", "args.yml", "scenario.yml"}
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
    (["--hyperparams", "policy_kwargs:{'foo':1}"], r"error: --hyperparams \"policy_kwargs:{'foo':1}\": policy_kwargs "
     r"= {'foo': 1}: must be a dict with keys among full_std, log_std_init, net_arch, optimizer_kwargs, ortho_init, "
     r"share_features_extractor, use_expln, e\.g\. {'net_arch': \[64, 64\]}"),
    (["--n-envs", "1", "--hyperparams", "n_steps:1"], r"error: n_steps x --n-envs = 1: a rollout needs at least 2 "
     r"steps"),
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
    assert check_artifacts(run) and "another run" not in (run / "evaluations.csv").read_text()


def test_default_run_dirs_are_unique(tmp_path):
    first = default_run_dir("cpm_env/DataCenter-v0", 3, tmp_path)
    assert re.fullmatch(r"DataCenter-v0_seed3_\d{8}T\d{6}Z", first.name)
    first.mkdir()
    second = default_run_dir("cpm_env/DataCenter-v0", 3, tmp_path)
    assert second != first and not second.exists()
    with pytest.raises(ValueError, match=r"^scenario id '\.\.': not usable in a folder name"):
        default_run_dir("..", 0, tmp_path)


# ---------------------------------------------------------------- 2. sealed artifact sets


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny finished run (Short-v0, 256 steps, checkpoints at 128 and 256): (run dir, scenario YAML)."""
    import yaml

    import cpm_env

    root = tmp_path_factory.mktemp("trained")
    data = yaml.safe_load(cpm_env.DEFAULT_SCENARIO.read_text())
    data.update({"id": "Short-v0", "duration_h": 1.0})
    scenario = root / "short.yml"
    scenario.write_text(yaml.safe_dump(data))
    run = root / "run"
    assert train.main(["--scenario", str(scenario), "--run-dir", str(run)] + TINY) == 0
    return run, scenario


def copy_run(trained, tmp_path) -> Path:
    return Path(shutil.copytree(trained[0], tmp_path / "run"))


def test_every_set_is_sealed_by_its_manifest(trained):
    run, _ = trained
    for folder, files in ((run, FINAL_FILES), (run / "best", POLICY_FILES),
                          (run / "checkpoints" / "model_256_steps", {"model.zip", "vecnormalize.pkl"})):
        manifest = check_artifacts(folder)
        assert set(manifest["files"]) == files and manifest["scenario"]["id"] == "Short-v0"
        assert {name: e["sha256"] for name, e in manifest["files"].items()} == \
            {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in files}
    assert check_artifacts(run)["num_timesteps"] == 256
    assert not list(run.rglob(".*.tmp*"))  # no temporary file left behind


@pytest.mark.parametrize("target, damage, line", [
    ("normalizer.json", "truncate", r"ppo:{run}: {run}/normalizer\.json: \d+ bytes, sha256 [0-9a-f]{{16}}\.\.\. do not "
     r"match manifest\.json \(\d+ bytes, sha256 [0-9a-f]{{16}}\.\.\.\): the file was changed or truncated"),
    ("policy.npz", "delete", r"ppo:{run}: {run}/policy\.npz: missing \(listed in manifest\.json\): the set is "
     r"incomplete"),
    ("manifest.json", "delete", r"ppo:{run}: {run}/manifest\.json: missing: not a complete artifact set \(interrupted "
     r"while saving, or saved before manifests: convert a run dir you trust with python -m agents\.learning\.convert "
     r"{run}\)"),
])
def test_ppo_and_export_refuse_an_incomplete_set(trained, tmp_path, capsys, target, damage, line):
    import export as export_cli
    from agents.learning.ppo import PPOController
    from cpm_env.vec_env import make_vec

    run = copy_run(trained, tmp_path)
    if damage == "truncate":
        (run / target).write_bytes((run / target).read_bytes()[:-10])
    else:
        (run / target).unlink()
    before = snapshot(tmp_path)
    pattern = line.format(run=re.escape(str(run)))
    with pytest.raises(ValueError) as err:
        PPOController(run, make_vec(str(trained[1]), 1).site)
    assert re.fullmatch(pattern, str(err.value))
    assert export_cli.main([str(run), "--out", str(tmp_path / "out")]) == 2
    assert re.fullmatch("error: " + pattern, one_error_line(capsys))
    assert snapshot(tmp_path) == before


def test_ppo_refuses_another_scenario_unless_allowed(trained):
    from agents.learning.ppo import PPOController
    from cpm_env.vec_env import make_vec

    run, _ = trained
    site = make_vec("cpm_env/DataCenter-v0", 1).site
    with pytest.raises(ValueError) as err:
        PPOController(run, site)
    assert re.fullmatch(rf"ppo:{re.escape(str(run))}: trained on scenario 'Short-v0', not 'DataCenter-v0': train a "
                        r"policy on this scenario, or allow it explicitly \(allow_other_scenario=True; evaluate.py "
                        r"--allow-other-scenario\)", str(err.value))
    assert PPOController(run, site, allow_other_scenario=True).predict(np.zeros(26, np.float32))[0].shape == (3,)


def test_resume_falls_back_to_the_newest_complete_checkpoint(trained, tmp_path, capsys):
    run = copy_run(trained, tmp_path)
    (run / "manifest.json").unlink()  # killed after its last checkpoint ...
    newest = run / "checkpoints" / "model_256_steps"
    (newest / "vecnormalize.pkl").write_bytes((newest / "vecnormalize.pkl").read_bytes()[:100])  # ... truncated
    kept = snapshot(run / "checkpoints")
    assert train.main(["--resume", str(run)]) == 0
    (note,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]  # said once
    assert re.fullmatch(rf"note: skipping checkpoint model_256_steps: {re.escape(str(newest))}/vecnormalize\.pkl: "
                        r"100 bytes, sha256 [0-9a-f]{16}\.\.\. do not match manifest\.json \(\d+ bytes, sha256 "
                        r"[0-9a-f]{16}\.\.\.\): the file was changed or truncated", note)
    assert check_artifacts(run)["num_timesteps"] == 256
    after = snapshot(run / "checkpoints")
    assert {k: v for k, v in after.items() if k.startswith("model_128_steps")} == \
        {k: v for k, v in kept.items() if k.startswith("model_128_steps")}  # the complete checkpoint is kept
    assert check_artifacts(newest)["num_timesteps"] == 256  # the broken one is written again, complete


def test_a_run_dir_from_before_manifests_is_converted_once(trained, tmp_path, capsys):
    from agents.learning.convert import main as convert
    from agents.learning.ppo import PPOController
    from cpm_env.vec_env import make_vec

    run, scenario = trained
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for name in ("model.zip", "vecnormalize.pkl", "config.yml", "scenario.yml"):  # what train.py used to write
        shutil.copy(run / name, legacy / name)
    site = make_vec(str(scenario), 1).site
    with pytest.raises(ValueError, match=r"manifest\.json: missing: .* python -m agents\.learning\.convert"):
        PPOController(legacy, site)
    assert convert([str(legacy)]) == 0
    obs = np.random.default_rng(0).uniform(-0.01, 1.0, (8, 26)).astype(np.float32)
    np.testing.assert_array_equal(PPOController(legacy, site).predict(obs)[0], PPOController(run, site).predict(obs)[0])
    capsys.readouterr()
    before = snapshot(tmp_path)
    assert convert([str(legacy)]) == 2
    assert one_error_line(capsys) == f"error: {legacy}/manifest.json: already there: the folder is sealed"
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------- 3. no pickle in shipped or exported policies

# deterministic actions of the SB3-loaded model.zip + vecnormalize.pkl of the training run (before the conversion) on
# np.random.default_rng(12).uniform(low, high, (4, n_obs)) observations inside the observation space
SB3_ACTIONS = {
    "DataCenter-v0": [[-0.16348771750926971, 0.05168149620294571, 0.22545306384563446],
                      [-0.08944345265626907, 0.09533872455358505, 0.0234106183052063],
                      [-0.029274970293045044, -0.01881810650229454, -0.08139142394065857],
                      [0.04865846782922745, 0.09356731921434402, -0.17369520664215088]],
    "FastRamp-v0": [[-1.0, -0.6319906711578369, 0.339852899312973],  # the policy of 2026-12-06 (imitation)
                    [1.0, -0.22483472526073456, 0.27108854055404663],
                    [1.0, -0.4398585259914398, -0.17783397436141968],
                    [0.9081554412841797, -0.582383394241333, -0.3797445297241211]],
    "DemandResponse-v0": [[-0.30587610602378845, -0.1357121467590332, 0.22308942675590515],
                          [0.2974587082862854, 0.015257205814123154, 0.13897190988063812],
                          [-0.32005590200424194, 0.11609312891960144, 0.24588167667388916],
                          [-0.15717855095863342, 0.2063145637512207, 0.017444010823965073]],
    "NoBattery-v0": [[0.1909148395061493, -0.002106543630361557, 0.5197281837463379],  # the policy of 2026-12-03
                     [0.04580951854586601, -0.08356808125972748, 0.3602805435657501],
                     [0.004314257763326168, -0.21474389731884003, 0.6282546520233154],
                     [-0.2138684093952179, -0.25624018907546997, 0.2859758734703064]],
}


def test_shipped_policies_load_no_pickle_and_act_as_before(monkeypatch):
    import pickle

    import cloudpickle

    from agents.learning.ppo import PPOController, shipped_model_dir
    from cpm_env.vec_env import make_vec

    def refuse(*args, **kwargs):
        raise AssertionError("pickle loaded")

    class RefusingUnpickler(pickle.Unpickler):  # a class still: modules imported later may subclass it
        def __init__(self, *args, **kwargs):
            refuse()

    for module, name in ((pickle, "load"), (pickle, "loads"), (cloudpickle, "load"), (cloudpickle, "loads")):
        monkeypatch.setattr(module, name, refuse)
    monkeypatch.setattr(pickle, "Unpickler", RefusingUnpickler)
    for scenario_id, expected in SB3_ACTIONS.items():
        site = make_vec(f"cpm_env/{scenario_id}", 1).site
        ctrl = PPOController(shipped_model_dir(site), site)
        space = ctrl.policy.observation_space
        obs = np.random.default_rng(12).uniform(space.low, space.high, (4,) + space.shape).astype(np.float32)
        np.testing.assert_allclose(ctrl.predict(obs)[0], expected, rtol=0, atol=1e-6)
        assert not list((ROOT / "models" / scenario_id).glob("*.pkl"))


# ---------------------------------------------------------------- 4. the sealed export contract


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from agents.learning.export import export_policy

    out = tmp_path_factory.mktemp("export") / "policy"
    export_policy(ROOT / "models" / "DataCenter-v0", out)
    return out


def tampered(exported, tmp_path, change, reseal: bool) -> Path:
    """A copy of the export with ``change(spec)`` applied to policy.json (re-sealed if ``reseal``)."""
    from agents.runtime import seal

    path = Path(shutil.copytree(exported, tmp_path / "export"))
    spec = json.loads((path / "policy.json").read_text())
    change(spec)
    if reseal:  # a consistent checksum: the content checks must catch it
        spec = seal(spec, (path / "policy.onnx").read_bytes())
    (path / "policy.json").write_text(json.dumps(spec))
    return path


def _set(section, i, key, value):
    def change(spec):
        spec[section][i][key] = value
    return change


@pytest.mark.parametrize("change, reseal, line", [
    (_set("actions", 0, "safe", 5.0), False, r"policy\.json: checksum [0-9a-f]{16}\.\.\. does not match "
     r"checksum\.sha256 [0-9a-f]{16}\.\.\.: a field or policy\.onnx was changed after export; re-export with "
     r"export\.py"),
    (_set("actions", 0, "safe", float("nan")), False, r"policy\.json: holds NaN or Infinity, which export\.py never "
     r"writes: the file was changed after export; re-export with export\.py"),
    (_set("actions", 2, "name", "battery"), True, r"policy\.json: actions\[2\] name 'battery' appears twice: names "
     r"must be unique"),
    (_set("observations", 23, "name", "soc"), True, r"policy\.json: observations\[23\] name 'soc' appears twice: "
     r"names must be unique"),
    (_set("actions", 0, "safe", 30.0), True, r"policy\.json: actions\[0\] \(battery\) safe = 30\.0: outside its "
     r"bounds \[-25\.0, 25\.0\]"),
    (_set("observations", 1, "scale", 0.0), True, r"policy\.json: observations\[1\] \(\w+\) scale = 0\.0: must be a "
     r"positive finite number"),
    (_set("observations", 1, "scale", -2.0), True, r"policy\.json: observations\[1\] \(\w+\) scale = -2\.0: must be "
     r"a positive finite number"),
])
def test_runtime_refuses_a_changed_contract(exported, tmp_path, change, reseal, line):
    from agents.runtime import PolicyController

    path = tampered(exported, tmp_path, change, reseal)
    before = snapshot(tmp_path)
    with pytest.raises(ValueError) as err:
        PolicyController.load(path)
    assert re.fullmatch(line, str(err.value)), str(err.value)
    assert snapshot(tmp_path) == before


def test_onnx_pointing_at_a_file_is_a_one_line_error(exported):
    from agents.evaluation.runner import make_controller
    from cpm_env.vec_env import make_vec

    site = make_vec("cpm_env/DataCenter-v0", 1).site
    file = exported / "policy.onnx"
    with pytest.raises(ValueError) as err:
        make_controller(f"onnx:{file}", site)
    assert re.fullmatch(rf"onnx:{re.escape(str(file))}: {re.escape(str(file))}: is a file, not a folder: pass the "
                        r"folder export\.py wrote \(policy\.onnx and policy\.json\)", str(err.value))


@pytest.mark.parametrize("args, line", [
    (["--seed", "-1"], r"error: --seed = -1: must be >= 0 \(the parity rollouts' seed\)"),
    (["--out", "{tmp}/file.txt"], r"error: --out {tmp}/file\.txt: is a file, not a folder: pass a folder for "
     r"policy\.onnx and policy\.json"),
])
def test_export_refuses_bad_arguments_and_writes_nothing(tmp_path, capsys, args, line):
    import export as export_cli

    (tmp_path / "file.txt").write_text("not a folder")
    before = snapshot(tmp_path)
    argv = [str(ROOT / "models" / "DataCenter-v0"), "--out", str(tmp_path / "out")]
    assert export_cli.main(argv + [a.format(tmp=tmp_path) for a in args]) == 2
    assert re.fullmatch(line.format(tmp=re.escape(str(tmp_path))), one_error_line(capsys))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("sink", ["closed pipe", "/dev/full"])
def test_runtime_exits_quietly_on_a_closed_stdout(exported, sink):
    obs = json.dumps([0.0] * 26) + "\n"
    cmd = [sys.executable, "-m", "agents.runtime", str(exported)]
    if sink == "/dev/full":
        with open("/dev/full", "w") as full:
            done = subprocess.run(cmd, cwd=ROOT, input=obs * 50, stdout=full, stderr=subprocess.PIPE, text=True,
                                  timeout=60, check=False)
        assert done.returncode == 1
        assert re.fullmatch(r"error: stdout: \[Errno 28\] No space left on device: stopped answering\n", done.stderr)
        return
    proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    proc.stdout.close()  # the reader goes away before the answers
    _, err = proc.communicate(obs * 50, timeout=60)
    assert proc.returncode == 0 and err == ""


def test_a_scenarios_data_files_count_by_content_not_location(tmp_path):
    """A shipped policy's scenario.yml names its trace relative to itself, a checkout elsewhere absolutely: the
    same scenario. Another file's content is another scenario."""
    from agents.learning.artifacts import scenario_sha256

    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "t.csv").write_text("timestamp,power_mw\n0,1\n60,2\n")
    scenario = lambda path: {"id": "X-v0", "site": {"gpu_classes": [{"workload": {"kind": "trace", "path": path}}]}}  # noqa: E731
    a, b = str(tmp_path / "a" / "t.csv"), str(tmp_path / "b" / "t.csv")
    assert scenario_sha256(scenario(a)) == scenario_sha256(scenario(b))
    assert scenario_sha256(scenario("t.csv"), tmp_path / "a") == scenario_sha256(scenario(a))
    (tmp_path / "b" / "t.csv").write_text("timestamp,power_mw\n0,1\n60,3\n")
    assert scenario_sha256(scenario(a)) != scenario_sha256(scenario(b))
    assert scenario_sha256({"id": "Y-v0"}) == scenario_sha256({"id": "Y-v0"}, tmp_path)  # no data file: as before
