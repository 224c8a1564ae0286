"""PPO training throughput with the default config, and where the time goes.

    python benchmarks/train_throughput.py [--scenario ID] [--timesteps 500000]

Runs ``model.learn`` as train.py does (configs/ppo.yml's hyperparameters for the scenario,
VecNormalize, one torch thread, the per-step KPI logger) and splits its wall time into the
rollouts' simulator steps, normalizer, policy forward passes and the rest of SB3's rollout
loop (tensors, buffer, GAE, callbacks), and the gradient updates. Periodic evaluations and
checkpoints are left out: every 500 k steps they add about one second.
"""

from __future__ import annotations

import argparse
import time

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize

from agents.learning.train import PPO_KEYS, KpiLogger, load_hyperparams
from cpm_env.config import resolve_scenario
from cpm_env.vec_env import make_vec


class Stopwatch:
    """Adds up the wall time (s) of every call to ``obj.<name>`` by patching it on the instance."""

    def __init__(self, obj, name: str):
        self.seconds = 0.0
        inner = getattr(obj, name)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        setattr(obj, name, timed)


class RolloutTimer(BaseCallback):
    """Wall time (s) inside rollout collection; the rest of ``learn`` is the gradient updates."""

    def __init__(self):
        super().__init__()
        self.seconds = 0.0
        self._start = 0.0

    def _on_rollout_start(self) -> None:
        self._start = time.perf_counter()

    def _on_rollout_end(self) -> None:
        self.seconds += time.perf_counter() - self._start

    def _on_step(self) -> bool:
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="cpm_env/DataCenter-v0", help="registered id or scenario YAML")
    parser.add_argument("--timesteps", type=int, default=500_000, help="env steps to train")
    args = parser.parse_args()
    torch.set_num_threads(1)
    hp = load_hyperparams(resolve_scenario(args.scenario).id)
    venv = make_vec(args.scenario, int(hp["n_envs"]), seed=0)
    env = VecNormalize(venv, gamma=hp["gamma"])
    model = PPO(hp["policy"], env, seed=0, device="cpu", **{k: v for k, v in hp.items() if k in PPO_KEYS})
    simulator, normalized = Stopwatch(venv, "step_wait"), Stopwatch(env, "step_wait")
    forward, rollouts = Stopwatch(model.policy, "forward"), RolloutTimer()
    start, cpu_start = time.perf_counter(), time.process_time()
    model.learn(args.timesteps, callback=[KpiLogger(), rollouts], progress_bar=False)
    total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    rows = [
        ("rollouts: simulator (CpmVecEnv.step)", simulator.seconds),
        ("rollouts: normalizer (VecNormalize)", normalized.seconds - simulator.seconds),
        ("rollouts: policy forward (actions, values)", forward.seconds),
        ("rollouts: SB3 loop (tensors, buffer, GAE, callbacks)",
         rollouts.seconds - normalized.seconds - forward.seconds),
        ("gradient updates (n_epochs x minibatches)", total - rollouts.seconds),
    ]
    steps = model.num_timesteps
    print(f"{venv.config.id}: {steps:,} env steps, {hp['n_envs']} envs, n_steps {hp['n_steps']}, "
          f"batch {hp['batch_size']}, {hp['n_epochs']} epochs, torch threads {torch.get_num_threads()}")
    print("| part | seconds | share |\n|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {100 * seconds / total:.0f}% |")
    print(f"| **total** | {total:.1f} | **{steps / total:,.0f} env-steps/s** |")
    # on a shared machine the wall rate drops; the rate per CPU second is what an idle core gives
    print(f"CPU time {cpu:.1f} s ({100 * cpu / total:.0f}% of a core): {steps / cpu:,.0f} env-steps per CPU second")


if __name__ == "__main__":
    main()
