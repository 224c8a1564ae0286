"""Environment throughput: steps/s of CpmEnv, the batched env (SB3's and Gymnasium's vector API) and
Gymnasium's sync vectorization, beside Gymnasium's Pendulum-v1.

    python benchmarks/env_throughput.py [--seconds 3]

Random actions. "with resets" runs whole episodes, so it includes drawing each episode's
exogenous trajectories (``make_vec`` draws the next ones in a background thread while it steps);
"steps only" times the steps between resets, with that thread idle.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import cpm_env
from cpm_env.batch import SiteBatch


def single_env_rate(env_id: str, seconds: float) -> float:
    env = gym.make(env_id)
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (4096,) + env.action_space.shape).astype(np.float32)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for i in range(1000):
            _, _, term, trunc, _ = env.step(actions[i % 4096])
            if term or trunc:
                env.reset()
        n += 1000
    return n / (time.perf_counter() - start)


def batch_rates(envs, n_envs: int, n_steps: int, seconds: float, batch: SiteBatch | None = None,
                reset_step: int = 0, whole: bool = True, chunk: int | None = None) -> tuple[float, float]:
    """Env-steps/s of a vector env (any ``reset()`` / ``step(actions)``): between resets, with ``batch``'s
    background draw finished first, over at most ``chunk`` steps an episode; and over whole episodes of
    ``n_steps`` (+ ``reset_step``: the step Gymnasium's next-step autoreset spends on a reset), nan unless
    ``whole``."""
    actions = np.random.default_rng(0).uniform(-1, 1, (8, n_envs, envs.action_space.shape[-1])).astype(np.float32)
    chunk = min(n_steps - 1, chunk or n_steps)
    steps, elapsed = 0, 0.0
    while elapsed < seconds:
        envs.reset()
        if batch is not None:
            batch.wait_for_next_episodes()
        start = time.perf_counter()
        for i in range(chunk):
            envs.step(actions[i % 8])
        elapsed += time.perf_counter() - start
        steps += chunk
    steps_only = steps * n_envs / elapsed
    if not whole:
        return steps_only, float("nan")
    envs.reset()
    episodes, start = 0, time.perf_counter()
    while episodes == 0 or time.perf_counter() - start < seconds:
        for i in range(n_steps + reset_step):
            envs.step(actions[i % 8])
        episodes += 1
    return steps_only, episodes * n_steps * n_envs / (time.perf_counter() - start)


def vec_rates(env_id: str, n_envs: int, seconds: float) -> tuple[float, float]:
    """``make_vec`` (SB3's VecEnv): steps/s between resets and with resets."""
    venv = cpm_env.make_vec(env_id, n_envs, seed=0)
    return batch_rates(venv, n_envs, venv.config.n_steps, seconds, batch=venv)


def gymnasium_rates(env_id: str, n_envs: int, seconds: float, mode: str, **kwargs) -> tuple[float, float]:
    """Steps/s of ``gym.make_vec`` in ``mode`` ("vector_entry_point": the batched physics, Gymnasium's
    next-step autoreset; "sync": N copies of the single env, between resets only, part episodes)."""
    envs = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode=mode, **kwargs)
    envs.reset(seed=0)
    if mode == "vector_entry_point":
        batch = envs.unwrapped
        return batch_rates(envs, n_envs, batch.config.n_steps, seconds, batch=batch, reset_step=1)
    n_steps = envs.unwrapped.envs[0].unwrapped.config.n_steps
    return batch_rates(envs, n_envs, n_steps, seconds, whole=False, chunk=max(1, int(2e5 // n_envs)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--env-id", default="cpm_env/DataCenter-v0")
    args = parser.parse_args()
    pendulum = single_env_rate("Pendulum-v1", args.seconds)
    single = single_env_rate(args.env_id, args.seconds)
    print("| env | N | env-steps/s (steps only) | env-steps/s (with resets) |\n|---|---|---|---|")
    print(f"| Pendulum-v1 (gym.make) | 1 | | {pendulum:,.0f} |")
    print(f"| {args.env_id} (gym.make) | 1 | | {single:,.0f} ({single / pendulum:.2f}x Pendulum) |")
    for n in (1, 64, 1024):
        steps_only, with_resets = vec_rates(args.env_id, n, args.seconds)
        print(f"| {args.env_id} make_vec (SB3 VecEnv) | {n} | {steps_only:,.0f} | {with_resets:,.0f} |")
    for n in (64, 1024):
        for label, kwargs in (("KPIs in info", {}), ("info empty", {"kpis_in_info": False})):
            steps_only, with_resets = gymnasium_rates(args.env_id, n, args.seconds, "vector_entry_point", **kwargs)
            print(f"| {args.env_id} gym.make_vec vector_entry_point, {label} | {n} | {steps_only:,.0f} | "
                  f"{with_resets:,.0f} |")
    steps_only, _ = gymnasium_rates(args.env_id, 64, args.seconds, "sync")
    print(f"| {args.env_id} gym.make_vec sync (64 single envs) | 64 | {steps_only:,.0f} | |")


if __name__ == "__main__":
    main()
