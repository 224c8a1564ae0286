"""Seal a run dir saved before manifests: write its pickle-free policy files and manifest.json.

    python -m agents.learning.convert DIR

Loads ``DIR/model.zip`` and ``DIR/vecnormalize.pkl`` with SB3 and pickle, which can execute
code: run it only on a folder you trust (see docs/SECURITY.md). Writes ``policy.npz``,
``policy_spec.json``, ``normalizer.json`` and, last, ``manifest.json`` over them, ``model.zip``
and the ``config.yml``/``args.yml``/``scenario.yml`` there (the scenario the policy trained on).
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

from agents.learning.artifacts import MANIFEST, begin_set, write_manifest
from agents.learning.policy_files import save_policy_files
from cpm_env.config import ConfigError, read_yaml

RUN_FILES = ("config.yml", "args.yml", "scenario.yml")


def convert(directory: Path) -> dict:
    """Write the pickle-free files and the manifest of the legacy run dir ``directory``; returns the manifest."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecNormalize

    for name in ("model.zip", "scenario.yml"):
        if not (directory / name).is_file():
            raise ValueError(f"{directory / name}: missing: not a run dir of train.py")
    if (directory / MANIFEST).is_file():
        raise ValueError(f"{directory / MANIFEST}: already there: the folder is sealed")
    scenario = read_yaml(directory / "scenario.yml")
    model = PPO.load(directory / "model.zip", device="cpu")
    norm = None
    if (directory / "vecnormalize.pkl").is_file():
        with open(directory / "vecnormalize.pkl", "rb") as f:  # VecNormalize.load without an env to attach
            norm = pickle.load(f)
        if not isinstance(norm, VecNormalize):
            raise ValueError(f"{directory / 'vecnormalize.pkl'}: holds a {type(norm).__name__}, not a VecNormalize")
    begin_set(directory)
    names = save_policy_files(model, norm, directory)
    names += ["model.zip"] + [n for n in RUN_FILES if (directory / n).is_file()]
    return write_manifest(directory, names, model.num_timesteps, scenario)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path, help="run dir of train.py saved before manifests")
    args = parser.parse_args(argv)
    try:
        manifest = convert(args.directory)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"sealed {args.directory}: {', '.join(manifest['files'])} ({manifest['num_timesteps']} steps, "
          f"scenario {manifest['scenario']['id']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
