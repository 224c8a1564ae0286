"""Export a trained PPO policy to a standalone controller: DIR/policy.onnx + DIR/policy.json.

    python export.py MODEL_OR_RUN_DIR --out DIR [--scenario ID_OR_YAML] [--shield | --no-shield]
                     [--parity-obs 10240] [--seed 0]

MODEL_OR_RUN_DIR is a sealed set (a run dir, its best/, or a shipped models/<id>/): its
manifest.json must check, and only its pickle-free files (policy.npz, policy_spec.json,
normalizer.json) are read. The ONNX graph maps scaled observations to physical set-points
(battery MW, caps and floors as fractions of TDP); policy.json is its contract, sealed by a
checksum over the ONNX bytes and every other field. Nothing is written unless the graph
reproduces the trained model on observations of real rollouts (max abs difference < 1e-5).
A policy trained with --battery-action import_change outputs the change of the grid import (MW)
first; policy.json's battery_action section says so, and the runtime answers battery MW all the same.
--shield makes the runtime pass the graph's set-points through the safety filter (cpm_env.shield;
policy.json's shield section carries the site model it judges by); the default is what the policy
was trained with (its manifest's env_options). Run it with agents/runtime.py (numpy + onnxruntime
only): python -m agents.runtime DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agents.learning.export import PARITY_OBSERVATIONS, PARITY_TOLERANCE, export_policy
from cpm_env.config import ConfigError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, metavar="MODEL_OR_RUN_DIR",
                        help="a sealed set: a run dir of train.py, its best/, or models/<id>/")
    parser.add_argument("--out", type=Path, required=True, help="folder for policy.onnx and policy.json")
    parser.add_argument("--scenario", default=None,
                        help="registered id or scenario YAML (default: the run dir's scenario.yml)")
    parser.add_argument("--parity-obs", type=int, default=PARITY_OBSERVATIONS,
                        help=f"rollout observations for the parity check (default {PARITY_OBSERVATIONS}, min 10000)")
    parser.add_argument("--shield", action=argparse.BooleanOptionalAction, default=None,
                        help="the runtime passes the set-points through the safety filter (default: as the policy "
                             "was trained, its manifest's env_options.shield)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the parity rollouts (>= 0)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        spec = export_policy(args.source, args.out, args.scenario, args.parity_obs, args.seed, shield=args.shield)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    parity = spec["parity"]
    print(f"wrote {args.out / spec['onnx']['file']} (sha256 {spec['onnx']['sha256'][:16]}...) and "
          f"{args.out / 'policy.json'} for {spec['scenario']['id']}")
    print(f"parity: max abs difference {parity['max_abs_diff']:.2g} (< {PARITY_TOLERANCE:g}) over "
          f"{parity['observations']} rollout observations")
    filt = spec["shield"]
    trained = "behind it" if filt["trained_behind_filter"] else "without it"
    print(f"safety filter: {'on' if filt['enabled'] else 'off'} (the policy was trained {trained})")
    if spec["battery_action"]["kind"] == "import_change":
        print("battery action: import_change (the graph's first output is the change of the grid import, MW; the "
              "runtime answers the battery set-point)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
