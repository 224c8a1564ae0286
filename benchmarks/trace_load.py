"""Loading a week-long 1-second trace (604,800 rows): the first env pays the read, the others share it.

    python benchmarks/trace_load.py [--days 7]

Writes the trace (ISO date-times in UTC, and seconds) to a temporary folder, then times building
an env that replays it (read, check, resample to 60-s steps), a second env (the shared copy), and
a 64-env batch. Target: under 2 s for the first read.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import cpm_env
import cpm_env.vec_env  # noqa: F401  (imports SB3 and torch up front, outside the timings)


def write_trace(folder: Path, days: float, iso: bool) -> Path:
    """A synthetic 1-s power trace of ``days`` days (MW): a training-like square wave with noise."""
    n = int(days * 86400)
    t = np.arange(n)
    rng = np.random.default_rng(0)
    power = 20.0 + 60.0 * ((t % 2) == 0) + rng.normal(0, 1, n)
    stamps = (pd.Timestamp("2026-01-05T00:00:00Z") + pd.to_timedelta(t, unit="s")).strftime(
        "%Y-%m-%dT%H:%M:%SZ") if iso else t
    path = folder / f"week_{'iso' if iso else 'seconds'}.csv"
    pd.DataFrame({"timestamp": stamps, "power_mw": np.abs(power).round(3)}).to_csv(path, index=False)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=7.0)
    args = parser.parse_args()
    print("| timestamps | rows | file (MB) | first env (s) | second env (s) | 64-env batch (s) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for iso in (True, False):
            path = write_trace(Path(folder), args.days, iso)
            scenario = {"duration_h": 24.0, "site": {"gpu_classes": [
                {"name": "gpus", "workload": {"kind": "trace", "path": str(path)}}]}}
            times = []
            for n_envs in (0, 0, 64):  # 0: a single env
                start = time.perf_counter()
                if n_envs:
                    cpm_env.make_vec("cpm_env/DataCenter-v0", n_envs, scenario=scenario)
                else:
                    cpm_env.CpmEnv(scenario)
                times.append(time.perf_counter() - start)
            print(f"| {'ISO (UTC)' if iso else 'seconds'} | {int(args.days * 86400):,} | "
                  f"{path.stat().st_size / 1e6:.1f} | {times[0]:.2f} | {times[1]:.3f} | {times[2]:.3f} |")


if __name__ == "__main__":
    main()
