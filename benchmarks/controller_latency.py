"""Decision latency of an exported policy in agents.runtime, without and with its safety filter.

    python benchmarks/controller_latency.py [--policy MODEL_DIR] [--calls 20000] [--sites 1024]

It exports the shipped policy of MODEL_DIR (default models/DataCenter-v0) to a temporary folder
with the safety filter on, and loads it twice: the bare policy (``shield=False``) and behind the
filter. Observations are real: 1024 sites of the policy's scenario, driven by the bare policy for
an hour (half the episode if that is shorter). Single-observation rows time one call each
(validation, onnxruntime on one thread, output check, and with the filter its decoding and
cpm_env.shield), after a warm-up; "JSON line" adds parsing and writing one line of the stdin
loop; "act_telemetry" adds what a site's loop does instead of passing whole observations:
building the observation from telemetry and a schedule window (flat: a site without a
schedule), with the policy's own forecaster. The batched rows are set-points per second for
batches of all the sites' observations.

The filter's fast path judges the proposal with the scalar physics; only where it breaks the
contract does the numpy search run. The "search path" line says how often that is on these
observations, and what a decision costs on each path (timed among the others, as in a loop).
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
from cpm_env.physics import action_from_setpoints
from cpm_env.shield import decode_observation, proposal_meets_contract
from cpm_env.vec_env import CpmVecEnv

BATCH = 1024
WARMUP_CALLS = 2000
ROOT = Path(__file__).resolve().parents[1]


def observations(controller: PolicyController, n_envs: int = BATCH) -> np.ndarray:
    """(n_envs, n_obs) float32 observations after an hour (at most half the episode) of the policy's own control."""
    venv = CpmVecEnv(scenario_from_dict(controller.spec["scenario"]["config"]), n_envs)
    venv.seed(1000)
    obs = venv.reset()
    for _ in range(min(int(3600 / venv.config.dt_s), venv.config.n_steps // 2)):
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


def searched(bare: PolicyController, filtered: PolicyController, rows: list[np.ndarray]) -> np.ndarray:
    """Per observation, whether the filter's search runs: the bare policy's proposal breaks the contract."""
    f = filtered.safety_filter
    assert f is not None
    out = []
    for obs in rows:
        s, x = decode_observation(f.params, obs, f.index, f.scale, f.floor_idx)
        a = action_from_setpoints(bare.act(obs).tolist(), len(f.params.peak_mw), f.floor_idx)
        out.append(not proposal_meets_contract(f.params, s, x, a, f.margin_mw))
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
    args = parser.parse_args()
    from agents.learning.export import export_policy  # torch only to write the export

    with tempfile.TemporaryDirectory() as tmp:
        export_policy(args.policy, tmp, shield=True)
        bare = PolicyController.load(tmp, threads=1, shield=False)
        filtered = PolicyController.load(tmp, threads=1)
        obs = observations(bare, args.sites)
        rows = list(obs)
        lines = [json.dumps(r.tolist()) for r in rows]
        keep = [i for i, name in enumerate(bare.obs_names) if name in bare.telemetry_names]
        schedule = [0.0] * (max(bare.forecast.get("horizons_steps") or [0]) + 1)  # a site without a schedule
        table, checks = [], []
        for label, c in (("", bare), (" + filter", filtered)):
            c.act_batch(obs)
            checks.append(c.last_fallback_reason or "none fell back")
            table.append(row(f"act(obs), one observation{label}", per_call_us(c.act, rows, args.calls)))
            table.append(row(f"respond(JSON line){label}",
                             per_call_us(lambda line, c=c: json.dumps(c.respond(line)), lines, args.calls)))
            table.append(row(f"act_telemetry(telemetry, schedule_mw){label}",
                             per_call_us(lambda r, c=c: c.act_telemetry(r[keep], schedule), rows, args.calls)))
        search = searched(bare, filtered, rows)
        order = [i % len(rows) for i in range(args.calls)]
        act_us = per_call_us(filtered.act, [rows[i] for i in order], args.calls)
        is_search = search[order]
        rates = [(label, t, batched_rate(PolicyController.load(tmp, threads=t, shield=label != ""), obs))
                 for label in ("", " + filter") for t in sorted({1, os.cpu_count() or 1})]
    print(f"policy: {args.policy}; {len(rows)} distinct real observations ({'; '.join(checks)})\n")
    print("| path | p50 µs | p99 µs | max µs | decisions/s |\n|---|---|---|---|---|")
    print("\n".join(table))
    for label, threads, rate in rates:
        print(f"| act_batch, batch {len(rows)}, {threads} thread(s){label} | | | | {rate:,.0f} |")
    fast, slow = act_us[~is_search], act_us[is_search]
    print(f"\nsearch path: {search.mean():.2%} of these observations ({search.sum()} of {len(search)}); "
          f"act + filter on the fast path p50 {np.percentile(fast, 50):.1f} µs, p99 {np.percentile(fast, 99):.1f} µs"
          + (f"; on the search path p50 {np.percentile(slow, 50) / 1e3:.2f} ms, p99 "
             f"{np.percentile(slow, 99) / 1e3:.2f} ms" if len(slow) else ""))


if __name__ == "__main__":
    main()
