"""Oracle LP solve time: one episode of the default site, a day and a week at dt_s = 60, per LP backend.

    python benchmarks/oracle_solve.py [--days 1 7] [--backends clarabel highs]
"""

from __future__ import annotations

import argparse
import time

import cpm_env
from agents.controllers.lp import BACKENDS
from agents.controllers.oracle import episode_series, episode_start
from agents.controllers.site_lp import plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, nargs="+", default=[1.0, 7.0])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    args = parser.parse_args()
    print("| horizon | steps | backend | LP solve (s) | objective |\n|---|---|---|---|---|")
    for days in args.days:
        env = cpm_env.CpmEnv({"duration_h": 24.0 * days})
        env.reset(seed=100)
        for backend in args.backends:
            start = time.perf_counter()
            sp = plan(env.params, episode_series(env.episode), episode_start(env.site, env.episode),
                      backend=backend)
            print(f"| {days:g} day(s) | {env.config.n_steps} | {backend} | {time.perf_counter() - start:.2f} "
                  f"| {sp.objective:.6f} |", flush=True)


if __name__ == "__main__":
    main()
