"""Decision latency of an exported policy in agents.runtime, without and with its safety filter.

    python benchmarks/controller_latency.py [--policy MODEL_DIR] [--calls 20000] [--sites 1024] [--behind-filter]
                                            [--clock wall|cpu]

It exports the shipped policy of MODEL_DIR (default models/DataCenter-v0) to a temporary folder
with the safety filter on, and loads it twice: the bare policy (``shield=False``) and behind the
filter. Observations are real: 1024 sites of the policy's scenario, driven by the bare policy for
an hour (half the episode if that is shorter; ``--behind-filter``: by the policy behind its filter,
as it runs deployed, where the filter has more to do). Single-observation rows time one call each
(validation, onnxruntime on one thread, output check, and with the filter its decoding and
cpm_env.shield), after a warm-up; "JSON line" adds parsing and writing one line of the stdin
loop; "act_telemetry" adds what a site's loop does instead of passing whole observations:
building the observation from telemetry and a schedule window (flat: a site without a
schedule), with the policy's own forecaster. The batched rows are set-points per second for
batches of all the sites' observations. ``--clock cpu`` times each call by the thread's CPU time
instead of the wall clock: on a core shared with other processes, the wall clock's tail is the
scheduler's time slices, not the controller's.

The filter's fast path judges the proposal with the scalar physics; where it breaks the contract,
the scalar search answers where it can (the proposal's caps kept, the whole contract met), and only
otherwise does the numpy search run. The last lines say how often each path runs on these
observations, and what a decision costs on each (timed among the others, as in a loop).
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
from cpm_env import shield as safety
from cpm_env.config import scenario_from_dict
from cpm_env.vec_env import CpmVecEnv

BATCH = 1024
WARMUP_CALLS = 2000
ROOT = Path(__file__).resolve().parents[1]


def observations(controller: PolicyController, n_envs: int = BATCH) -> np.ndarray:
    """(n_envs, n_obs) float32 observations after an hour (at most half the episode) of ``controller``'s control."""
    venv = CpmVecEnv(scenario_from_dict(controller.spec["scenario"]["config"]), n_envs)
    venv.seed(1000)
    obs = venv.reset()
    for _ in range(min(int(3600 / venv.config.dt_s), venv.config.n_steps // 2)):
        obs, _, _, _ = venv.step(controller.predict(obs)[0])
    return obs


CLOCKS = {"wall": time.perf_counter_ns, "cpu": time.thread_time_ns}


def per_call_us(call, inputs: list, calls: int, clock=time.perf_counter_ns) -> np.ndarray:
    """Time by ``clock`` (ns) of each of ``calls`` calls in µs, cycling through ``inputs``, after a warm-up."""
    for i in range(WARMUP_CALLS):
        call(inputs[i % len(inputs)])
    times = np.empty(calls)
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


PATHS = ("fast path", "scalar search", "numpy search")


def filter_paths(filtered: PolicyController, rows: list[np.ndarray]) -> np.ndarray:
    """Per observation, the index into :data:`PATHS` of the filter's path for the policy's proposal: it
    passed unchanged (``shield_site``'s shared report), the scalar search answered, or the numpy one ran."""
    arrays, numpy_runs = safety._shield_arrays, []

    def counted(*args):
        numpy_runs.append(1)
        return arrays(*args)

    out = []
    safety._shield_arrays = counted
    try:
        for obs in rows:
            before = len(numpy_runs)
            filtered.act(obs)
            report = filtered.last_shield_report
            passed = report is not None and report is safety._NO_CHANGE.get(len(report.cap_delta))
            out.append(0 if passed else 2 if len(numpy_runs) > before else 1)
    finally:
        safety._shield_arrays = arrays
    return np.array(out)


def row(name: str, us: np.ndarray) -> str:
    p50, p99 = np.percentile(us, [50, 99])
    return f"| {name} | {p50:.1f} | {p99:.1f} | {us.max():.0f} | {1e6 / us.mean():,.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", type=Path, default=ROOT / "models" / "DataCenter-v0",
                        help="a shipped policy or run dir (default: models/DataCenter-v0)")
    parser.add_argument("--calls", type=int, default=20_000, help="timed single-observation calls per row")
    parser.add_argument("--sites", type=int, default=BATCH, help="sites, so distinct observations (and the batch)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall time, or the thread's CPU time (leaves out time the scheduler gives other "
                             "processes on a shared core; adds ~0.3 µs a call)")
    parser.add_argument("--behind-filter", action="store_true",
                        help="drive the sites with the policy behind its filter (default: the bare policy)")
    args = parser.parse_args()
    clock = CLOCKS[args.clock]
    from agents.learning.export import export_policy  # torch only to write the export

    with tempfile.TemporaryDirectory() as tmp:
        export_policy(args.policy, tmp, shield=True)
        bare = PolicyController.load(tmp, threads=1, shield=False)
        filtered = PolicyController.load(tmp, threads=1)
        obs = observations(filtered if args.behind_filter else bare, args.sites)
        rows = list(obs)
        lines = [json.dumps(r.tolist()) for r in rows]
        keep = [i for i, name in enumerate(bare.obs_names) if name in bare.telemetry_names]
        schedule = [0.0] * (max(bare.forecast.get("horizons_steps") or [0]) + 1)  # a site without a schedule
        table, checks = [], []
        for label, c in (("", bare), (" + filter", filtered)):
            c.act_batch(obs)
            checks.append(c.last_fallback_reason or "none fell back")
            table.append(row(f"act(obs), one observation{label}", per_call_us(c.act, rows, args.calls, clock)))
            table.append(row(f"respond(JSON line){label}",
                             per_call_us(lambda line, c=c: json.dumps(c.respond(line)), lines, args.calls, clock)))
            table.append(row(f"act_telemetry(telemetry, schedule_mw){label}",
                             per_call_us(lambda r, c=c: c.act_telemetry(r[keep], schedule), rows, args.calls, clock)))
        path = filter_paths(filtered, rows)
        order = [i % len(rows) for i in range(args.calls)]
        act_us = per_call_us(filtered.act, [rows[i] for i in order], args.calls, clock)
        on_path = path[order]
        rates = [(label, t, batched_rate(PolicyController.load(tmp, threads=t, shield=label != ""), obs))
                 for label in ("", " + filter") for t in sorted({1, os.cpu_count() or 1})]
    driver = "the policy behind its filter" if args.behind_filter else "the bare policy"
    print(f"policy: {args.policy}; {len(rows)} distinct real observations, sites driven by {driver} "
          f"({'; '.join(checks)}); {args.clock} clock\n")
    print("| path | p50 µs | p99 µs | max µs | decisions/s |\n|---|---|---|---|---|")
    print("\n".join(table))
    for label, threads, rate in rates:
        print(f"| act_batch, batch {len(rows)}, {threads} thread(s){label} | | | | {rate:,.0f} |")
    print(f"\nsearch: {(path > 0).mean():.2%} of these observations ({(path > 0).sum()} of {len(path)}); "
          "act + filter on each path (timed among the others):")
    for k, name in enumerate(PATHS):
        us = act_us[on_path == k]
        cost = f"p50 {np.percentile(us, 50):.1f} µs, p99 {np.percentile(us, 99):.1f} µs" if len(us) else "-"
        print(f"- {name}: {(path == k).sum()} observations ({(path == k).mean():.2%}); {cost}")


if __name__ == "__main__":
    main()
