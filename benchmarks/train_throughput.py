"""PPO training throughput with the default config, and where the time goes.

    python benchmarks/train_throughput.py [--scenario ID] [--timesteps 500000]

Times SB3's rollout collection (split into env stepping, normalizer and the policy's forward
pass) and its gradient updates, and prints env-steps/s overall.
"""

from __future__ import annotations

import argparse
import time

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize

from agents.ppo_train import PPO_KEYS, load_hyperparams
from cpm_env.vec_env import make_vec


class Timer(BaseCallback):
    """Wall time inside rollouts (the rest of ``learn`` is gradient updates and logging)."""

    def __init__(self):
        super().__init__()
        self.rollout_s = 0.0
        self._start = 0.0

    def _on_rollout_start(self) -> None:
        self._start = time.perf_counter()

    def _on_rollout_end(self) -> None:
        self.rollout_s += time.perf_counter() - self._start

    def _on_step(self) -> bool:
        return True


class TimedEnv:
    """Wraps ``venv.step_wait`` to add up the time spent in the simulator."""

    def __init__(self, venv):
        self.seconds = 0.0
        inner = venv.step_wait

        def step_wait():
            t0 = time.perf_counter()
            out = inner()
            self.seconds += time.perf_counter() - t0
            return out

        venv.step_wait = step_wait


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="cpm_env/DataCenter-v0")
    parser.add_argument("--timesteps", type=int, default=500_000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    venv = make_vec(args.scenario, 1)
    hp = load_hyperparams(venv.config.id)
    venv = make_vec(args.scenario, int(hp["n_envs"]), seed=0)
    env_timer = TimedEnv(venv)
    env = VecNormalize(venv, gamma=hp["gamma"])
    model = PPO(hp["policy"], env, seed=0, device="cpu", **{k: v for k, v in hp.items() if k in PPO_KEYS})
    timer = Timer()
    start = time.perf_counter()
    model.learn(args.timesteps, callback=timer, progress_bar=True)
    total = time.perf_counter() - start
    steps = model.num_timesteps
    rows = [
        ("env stepping (simulator)", env_timer.seconds),
        ("policy forward + normalizer + buffer", timer.rollout_s - env_timer.seconds),
        ("gradient updates (n_epochs x minibatches)", total - timer.rollout_s),
    ]
    print(f"\n{venv.config.id}: {steps:,} env steps, {hp['n_envs']} envs, n_steps {hp['n_steps']}, "
          f"batch {hp['batch_size']}, {hp['n_epochs']} epochs, torch threads {torch.get_num_threads()}")
    print("| part | seconds | share |\n|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {100 * seconds / total:.0f}% |")
    print(f"| **total** | {total:.1f} | **{steps / total:,.0f} env-steps/s** |")


if __name__ == "__main__":
    main()
