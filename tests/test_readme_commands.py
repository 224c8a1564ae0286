"""The README's commands run as written, so they cannot rot.

Every fenced ```bash block of README.md is split into commands (backslash continuations joined,
``# comments`` dropped). Each command is classified by what it runs; an unknown kind fails the test,
so a new kind of command in the README needs a line here. Every command of a kind we run is run,
in README order, with the interpreter of this test (``sys.executable``, the venv that ``make``
builds: what ``source .venv/bin/activate`` gives) in a copy of the tracked files under
``tmp_path``, so the README's relative paths (``runs/dc0``, ``results/dr``, ``export/...``,
``export/DataCenter-v0/obs.jsonl``) are used verbatim and nothing is written into the repository. Budgets are shrunk
as follows, and only as follows:

- ``train.py``: ``--timesteps 512 --n-envs 2 --hyperparams n_steps:256 batch_size:256
  checkpoint_freq:256 eval_seeds:10000`` (with ``--optimize``: ``--n-trials 1 --timesteps 512
  --n-envs 2``).
- ``train.py --resume DIR``: the run is first made to look killed (its final ``manifest.json``
  and its newest checkpoint removed), so the resume really continues from a checkpoint.
- ``evaluate.py``: ``--seeds 100``; ``mpc`` and ``oracle`` are dropped from ``--controllers``
  (the MPC costs ~7 s per episode, the oracle a second; ``static_cap,greedy`` if
  nothing is left).
- ``evaluate.py --sweep FILE``: FILE (in the copy) is replaced by the same sweep at one point
  (its default site: 1.3x, 0.5 h), ``static_cap`` and ``greedy``, seed 100 and no economics.
- ``python examples/...``: ``--duration-h 0.5 --num-envs 4 --num-steps 32 --total-timesteps 256``.
- ``export.py`` and ``python -m agents.runtime``: as written (``<`` and ``>`` redirections honoured).
- ``tensorboard --logdir DIR``: not started (a server); DIR must exist and ``tensorboard`` be installed.
- ``python -c CODE``: as written.  The ```python block: run as written.
- Not run: ``make ...`` and ``source .venv/bin/activate`` (the setup this test stands on), and the
  controller host's install (``python3 -m venv``, ``/opt/cpm-runtime/bin/pip``: built from the
  package index by tests/test_runtime_install.py); its ``/opt/cpm-runtime/bin/python -m
  agents.runtime`` line runs with this interpreter.

The commands run in three independent chains, each in its own copy (training with its evaluation
and resume; ``--optimize``; the rest), two at a time. Separately, every ``--flag`` the README
gives to ``train.py``, ``evaluate.py`` or ``export.py`` (fenced blocks and inline code) must
appear in that CLI's ``--help``, and every repo path the README names in inline code
(``agents/...``, ``benchmarks/...``) must exist.
"""

from __future__ import annotations

import functools
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CLIS = ("train.py", "evaluate.py", "export.py")
SLOW_CONTROLLERS = {"mpc", "oracle"}


def fenced(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README, flags=re.S | re.M)


def commands() -> list[list[str]]:
    """Every command of every ```bash block, as argv tokens (comments dropped)."""
    out = []
    for block in fenced("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv:
                out.append(argv)
    return out


def kind(argv: list[str]) -> str:
    head = argv[0]
    if head == "make":
        return "setup"
    if head == "source" and argv[1:] == [".venv/bin/activate"]:
        return "setup"
    if head == "tensorboard":
        return "tensorboard"
    if head == "python3" and argv[1:3] == ["-m", "venv"] or head.endswith("/bin/pip"):
        return "host-install"
    if head == "python" or (head.endswith("/bin/python") and argv[1:3] == ["-m", "agents.runtime"]):
        if argv[1:3] == ["-m", "agents.runtime"]:
            return "runtime"
        if argv[1] == "-c":
            return "python-c"
        if argv[1] in CLIS:
            return argv[1]
        if argv[1].startswith("examples/"):
            return "example"
    raise AssertionError(f"README command of no known kind (teach tests/test_readme_commands.py): {shlex.join(argv)}")


def set_opt(argv: list[str], flag: str, *values: str) -> list[str]:
    """``argv`` with ``flag`` (and its values, up to the next ``--``) replaced by ``flag values``."""
    if flag in argv:
        i = argv.index(flag)
        j = i + 1
        while j < len(argv) and not argv[j].startswith("--") and argv[j] not in "<>":
            j += 1
        argv = argv[:i] + argv[j:]
    return [*argv, flag, *values]


def shrink(argv: list[str], cwd: Path) -> list[str]:
    """The command with the tiny budgets of the module docstring."""
    what = kind(argv)
    if what == "train.py" and "--optimize" in argv:
        for flag, value in (("--n-trials", "1"), ("--timesteps", "512"), ("--n-envs", "2")):
            argv = set_opt(argv, flag, value)
    elif what == "train.py" and "--resume" in argv:
        run = cwd / argv[argv.index("--resume") + 1]
        (run / "manifest.json").unlink()  # a killed run: no sealed final set, the last checkpoint lost
        newest = max((run / "checkpoints").iterdir(), key=lambda p: int(p.name.split("_")[1]))
        shutil.rmtree(newest)
    elif what == "train.py":
        argv = set_opt(argv, "--timesteps", "512")
        argv = set_opt(argv, "--n-envs", "2")
        argv = set_opt(argv, "--hyperparams", "n_steps:256", "batch_size:256", "checkpoint_freq:256",
                       "eval_seeds:10000")
    elif what == "example":
        for flag, value in (("--duration-h", "0.5"), ("--num-envs", "4"), ("--num-steps", "32"),
                            ("--total-timesteps", "256")):
            argv = set_opt(argv, flag, value)
    elif what == "evaluate.py" and "--sweep" in argv:
        path = cwd / argv[argv.index("--sweep") + 1]
        sweep = yaml.safe_load(path.read_text())
        sweep.update(oversubscription=[1.3], battery_hours=[0.5], controllers=["static_cap", "greedy"], seeds="100")
        sweep.pop("economics", None)
        path.write_text(yaml.safe_dump(sweep))
    elif what == "evaluate.py":
        argv = set_opt(argv, "--seeds", "100")
        if "--controllers" in argv:
            names = [c for c in argv[argv.index("--controllers") + 1].split(",") if c not in SLOW_CONTROLLERS]
            argv = set_opt(argv, "--controllers", ",".join(names or ["static_cap", "greedy"]))
    return argv


def run(argv: list[str], cwd: Path) -> None:
    argv = shrink(argv, cwd)
    stdin = stdout = None
    for op in ("<", ">"):
        if op in argv:
            i = argv.index(op)
            target = cwd / argv[i + 1]
            argv = argv[:i] + argv[i + 2:]
            if op == "<":
                stdin = target.open("rb")
            else:
                stdout = target.open("wb")
    try:
        done = subprocess.run([sys.executable, *argv[1:]], cwd=cwd, stdin=stdin or subprocess.DEVNULL,
                              stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    finally:
        for f in (stdin, stdout):
            if f is not None:
                f.close()
    out = (done.stdout or b"").decode(errors="replace")
    err = done.stderr.decode(errors="replace")
    assert done.returncode == 0, f"{shlex.join(argv)} exited {done.returncode}:\n{out[-2000:]}\n{err[-3000:]}"
    if kind(argv) == "runtime":
        assert '"setpoints"' in out and '"fallback": null' in out, out


def checkout(dest: Path) -> Path:
    """A copy of the repository's tracked files (what a fresh clone holds; symlinks kept)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    names = [n for n in files.decode().split("\0") if n and not n.startswith("tests/") and (ROOT / n).exists()]
    buf = BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in names:
            tar.add(ROOT / name, arcname=name, recursive=False)
    buf.seek(0)
    dest.mkdir()
    with tarfile.open(fileobj=buf) as tar:
        tar.extractall(dest, filter="tar")
    return dest


def test_readme_commands_run(tmp_path):
    chains: dict[str, list[list[str]]] = {"train": [], "rest": [], "optimize": []}
    tensorboard_dirs = []
    for argv in commands():
        what = kind(argv)
        if what in ("setup", "host-install"):
            continue
        if what == "tensorboard":
            tensorboard_dirs.append(argv[argv.index("--logdir") + 1])
            continue
        if what == "runtime" and argv[0] != "python":
            argv = ["python", *argv[1:]]  # the controller host's interpreter: this one
        if "--optimize" in argv:  # its own fresh copy: its sqlite storage must work without a runs/ folder
            chains["optimize"].append(argv)
        elif what == "train.py" or any(t.startswith("runs/") or ":runs/" in t for t in argv):
            chains["train"].append(argv)
        else:
            chains["rest"].append(argv)
    assert chains["train"] and tensorboard_dirs, "the README lost its training commands"
    kinds = {kind(a) for chain in chains.values() for a in chain}
    assert {"train.py", "evaluate.py", "export.py", "runtime", "python-c", "example"} <= kinds, kinds

    def run_chain(name: str) -> None:
        cwd = checkout(tmp_path / name)
        if name == "rest":
            for code in fenced("python"):  # the README's Python snippets
                done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                                      timeout=300)
                assert done.returncode == 0, f"README python block failed:\n{code}\n{done.stderr[-3000:]}"
        for argv in chains[name]:
            run(argv, cwd)
        if name == "train":
            for logdir in tensorboard_dirs:
                assert (cwd / logdir).is_dir(), f"tensorboard --logdir {logdir}: no such folder after training"

    before = written_outputs()
    with ThreadPoolExecutor(2) as pool:
        for job in [pool.submit(run_chain, name) for name in chains]:
            job.result()
    assert (Path(sys.executable).parent / "tensorboard").exists(), "tensorboard is not installed in the venv"
    assert written_outputs() == before, "a README command wrote into the repository"


def written_outputs() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored", "--", "runs", "results", "export"],
                          cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_readme_evaluations_do_not_share_a_folder():
    """Run one after another on one clone, two README evaluations into the same folder would be
    refused (another configuration needs --overwrite): each has its own ``--out``."""
    outs = []
    for argv in commands():
        if kind(argv) == "evaluate.py" and "--sweep" not in argv:
            scenario = argv[argv.index("--scenario") + 1] if "--scenario" in argv else "cpm_env/DataCenter-v0"
            outs.append(argv[argv.index("--out") + 1] if "--out" in argv else f"results/{scenario.split('/')[-1]}")
    assert len(outs) >= 2 and len(set(outs)) == len(outs), outs


def inline_commands() -> list[list[str]]:
    """Inline code spans that call one of the CLIs (``python train.py ...``, ``evaluate.py --flag``)."""
    out = []
    for span in re.findall(r"`([^`\n]+)`", README):
        argv = span.split()
        for i, token in enumerate(argv):
            if token in CLIS:
                out.append(["python", *argv[i:]])
                break
    return out


@functools.cache
def helptexts() -> dict[str, str]:
    """Each CLI's ``--help``, the three started at once."""
    procs = {cli: subprocess.Popen([sys.executable, cli, "--help"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
             for cli in CLIS}
    return {cli: proc.communicate(timeout=120)[0] for cli, proc in procs.items()}


@pytest.mark.parametrize("cli", CLIS)
def test_readme_flags_exist(cli):
    helptext = helptexts()[cli]
    known = set(re.findall(r"(--[a-z][a-z0-9-]*)", helptext))
    used = {t.split("=")[0] for argv in [*commands(), *inline_commands()] if cli in argv
            for t in argv[argv.index(cli):] if t.startswith("--")}
    assert used, f"the README shows no {cli} flag"
    assert used <= known, f"README flags that {cli} --help does not know: {sorted(used - known)}"


def test_readme_paths_exist():
    tops = ("cpm_env/", "agents/", "configs/", "benchmarks/", "tests/", "docs/", "models/")
    paths = {m for m in re.findall(r"`([\w./-]+)`", README)
             if m.startswith(tops) and not re.search(r"-v\d+$", m)}  # cpm_env/DataCenter-v0 is an env id
    paths |= {m for m in re.findall(r"\bpython (benchmarks/\w+\.py)", README)}
    assert len(paths) > 10, paths
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"README names paths that do not exist: {missing}"


def test_readme_says_where_a_live_controller_gets_every_observation_entry():
    from cpm_env.spaces import LIVE_SOURCES

    table = README[README.index("**Where a live controller gets each observation entry**"):]
    table = table[:table.index("\n\n", table.index("| entries |"))]
    missing = [name for name, _, _ in LIVE_SOURCES if f"`{name}" not in table]
    assert not missing, f"README's table of live sources lacks {missing}"
