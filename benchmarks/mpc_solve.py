"""MPC decision time: the receding-horizon LP re-solved warm (the default) and, with ``--cold``, rebuilt and
solved from scratch as before, on one held-out episode per scenario.

    python benchmarks/mpc_solve.py [--scenarios cpm_env/DataCenter-v0,...] [--seed 100] [--cold]

Prints per scenario the mean, median and p95 time per decision (ms) and the episode's reward.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

import cpm_env  # noqa: F401  (registers the ids)
from agents.controllers.mpc import MPC

DAY_SCENARIOS = "cpm_env/DataCenter-v0,cpm_env/DemandResponse-v0,cpm_env/NoBattery-v0"


def episode(env_id: str, seed: int, warm_start: bool) -> tuple[np.ndarray, float]:
    """Decision times (s) and reward of one episode under the MPC, re-solved warm or (as before) cold."""
    env = gym.make(env_id)
    mpc = MPC(env.unwrapped.site, warm_start=warm_start)
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        action, _ = mpc.predict(obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += float(reward)
        done = terminated or truncated
    return np.array(mpc.solve_seconds), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default=DAY_SCENARIOS, help="comma-separated scenario ids")
    parser.add_argument("--seed", type=int, default=100, help="the episode's seed (held-out: 100-104)")
    parser.add_argument("--cold", action="store_true", help="also time the cold re-solve (about 35 ms a decision)")
    args = parser.parse_args()
    print("| scenario | MPC | decisions | mean ms | median ms | p95 ms | reward |\n|---|---|---|---|---|---|---|")
    for env_id in args.scenarios.split(","):
        for label, warm in [("warm (default)", True)] + ([("cold", False)] if args.cold else []):
            seconds, reward = episode(env_id, args.seed, warm)
            ms = 1e3 * seconds
            print(f"| {env_id} | {label} | {len(ms)} | {ms.mean():.2f} | {np.median(ms):.2f} | "
                  f"{np.percentile(ms, 95):.2f} | {reward:.1f} |", flush=True)


if __name__ == "__main__":
    main()
