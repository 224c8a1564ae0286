"""Decision latency of an exported policy in agents.runtime: single observations and batches.

    python benchmarks/controller_latency.py [--policy EXPORT_DIR] [--calls 20000]

Without --policy it exports the shipped DataCenter-v0 policy to a temporary folder first.
Observations are real: 1024 sites of the policy's scenario, driven by the policy for an hour.
Single-observation rows time one call each (validation, onnxruntime on one thread, output
check), after a warm-up; "JSON line" adds parsing and writing one line of the stdin loop;
"act_telemetry" adds what a site's loop does instead of passing whole observations: building the
observation from telemetry and a schedule window, with the policy's own forecaster.
The batched row is set-points per second for batches of 1024 observations.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from agents.runtime import PolicyController
from cpm_env.config import scenario_from_dict
from cpm_env.vec_env import CpmVecEnv

BATCH = 1024
WARMUP_CALLS = 2000


def observations(controller: PolicyController, n_envs: int = BATCH) -> np.ndarray:
    """(n_envs, n_obs) float32 observations after an hour of the policy's own control."""
    venv = CpmVecEnv(scenario_from_dict(controller.spec["scenario"]["config"]), n_envs)
    venv.seed(1000)
    obs = venv.reset()
    for _ in range(int(3600 / venv.config.dt_s)):
        obs, _, _, _ = venv.step(controller.predict(obs)[0])
    return obs


def per_call_us(call, inputs: list, calls: int) -> np.ndarray:
    """Wall time of each of ``calls`` calls in µs, cycling through ``inputs``, after a warm-up."""
    for i in range(WARMUP_CALLS):
        call(inputs[i % len(inputs)])
    times = np.empty(calls)
    clock = time.perf_counter_ns
    for i in range(calls):
        x = inputs[i % len(inputs)]
        start = clock()
        call(x)
        times[i] = clock() - start
    return times / 1e3


def batched_rate(controller: PolicyController, obs: np.ndarray, seconds: float = 2.0) -> float:
    """Observations per second through ``act_batch`` on batches of ``len(obs)``."""
    controller.act_batch(obs)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        controller.act_batch(obs)
        n += len(obs)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", type=Path, default=None,
                        help="folder written by export.py (default: export the shipped policy)")
    parser.add_argument("--calls", type=int, default=20_000, help="timed single-observation calls")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.policy is None:
            from agents.learning.export import export_policy

            args.policy = Path(tmp)
            export_policy(Path(__file__).resolve().parents[1] / "models" / "DataCenter-v0", args.policy)
        single = PolicyController.load(args.policy, threads=1)
        obs = observations(single)
        rows = list(obs)
        lines = [json.dumps(r.tolist()) for r in rows]
        act_us = per_call_us(single.act, rows, args.calls)
        single.act_batch(obs)
        fallback = single.last_fallback_reason or "none fell back"
        line_us = per_call_us(lambda line: json.dumps(single.respond(line)), lines, args.calls)
        keep = [i for i, name in enumerate(single.obs_names) if name in single.telemetry_names]
        schedule = list(np.linspace(90.0, 60.0, max(single.forecast.get("horizons_steps") or [0]) + 1))
        telemetry_us = per_call_us(lambda row: single.act_telemetry(row[keep], schedule), rows, args.calls)
        rates = {t: batched_rate(PolicyController.load(args.policy, threads=t), obs)
                 for t in sorted({1, os.cpu_count() or 1})}
    print(f"policy: {args.policy}; {len(rows)} distinct real observations ({fallback})\n")
    print("| path | p50 µs | p99 µs | max µs | decisions/s |\n|---|---|---|---|---|")
    for name, us in (("act(obs), one observation", act_us), ("respond(JSON line)", line_us),
                     ("act_telemetry(telemetry, schedule_mw)", telemetry_us)):
        p50, p99 = np.percentile(us, [50, 99])
        print(f"| {name} | {p50:.1f} | {p99:.1f} | {us.max():.0f} | {1e6 / us.mean():,.0f} |")
    for threads, rate in rates.items():
        print(f"| act_batch, batch {BATCH}, {threads} thread(s) | | | | {rate:,.0f} |")


if __name__ == "__main__":
    main()
