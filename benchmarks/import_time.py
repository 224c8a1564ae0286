"""Wall time of ``import cpm_env`` and of a first ``gym.make`` + step, in a fresh interpreter.

    python benchmarks/import_time.py [--repeats 7]

Prints the median over fresh processes (seconds) and a JSON line. Target: < 0.5 s for the
import here (2 cores), i.e. neither torch nor Stable-Baselines3 is loaded by it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

CASES = {
    "python -c pass": "pass",
    "import cpm_env": "import cpm_env",
    "import cpm_env + gym.make + step": ("import gymnasium as gym, cpm_env\n"
                                         "e = gym.make('cpm_env/DataCenter-v0'); e.reset(seed=0)\n"
                                         "e.step(e.action_space.sample())"),
}


def wall_s(code: str) -> float:
    """Seconds one fresh interpreter takes to run ``code``."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    result = {}
    for label, code in CASES.items():
        wall_s(code)  # warm the file cache
        result[label] = statistics.median(wall_s(code) for _ in range(args.repeats))
        print(f"{label:36s} {result[label]:.3f} s (median of {args.repeats})")
    print(json.dumps({"import_time_s": result}))


if __name__ == "__main__":
    main()
