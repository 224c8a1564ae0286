"""PPO on the batched env through Gymnasium's vector API, in one file (CleanRL's ppo_continuous_action, trimmed).

    python examples/ppo_gymnasium.py --env-id cpm_env/DataCenter-v0 --num-envs 64 --total-timesteps 2000000

(about 65 s on 2 cores; the training episodes' mean return climbs from -638 to ~1,358 compute units a day)

Uses only gymnasium, numpy and torch: ``gym.make_vec`` gives the batched physics
(:class:`cpm_env.vector.CpmVectorEnv`), Gymnasium's vector wrappers record the episodes and normalize
the observations. Autoreset is Gymnasium's default (next step): the step after the episodes' end only
starts the new ones, so the loop takes it at once and stores nothing for it. The episodes end by their
time limit (truncation), so the last step's return is bootstrapped from the value of its observation.
Prints the mean episode return as it goes.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch
from gymnasium.wrappers.vector import ClipAction, NormalizeObservation, RecordEpisodeStatistics
from torch import nn

import cpm_env  # noqa: F401  (registers the cpm_env/ ids)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env-id", default="cpm_env/DataCenter-v0")
    p.add_argument("--duration-h", type=float, default=None, help="episode length (h); default: the scenario's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--num-steps", type=int, default=64, help="steps per env per rollout")
    p.add_argument("--total-timesteps", type=int, default=2_000_000)
    p.add_argument("--learning-rate", type=float, default=3e-4)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--gae-lambda", type=float, default=0.95)
    p.add_argument("--num-minibatches", type=int, default=4)
    p.add_argument("--update-epochs", type=int, default=5)
    p.add_argument("--clip-coef", type=float, default=0.2)
    p.add_argument("--ent-coef", type=float, default=0.0)
    p.add_argument("--vf-coef", type=float, default=0.5)
    p.add_argument("--max-grad-norm", type=float, default=0.5)
    p.add_argument("--reward-scale", type=float, default=0.1, help="rewards x this in the loss (compute units)")
    p.add_argument("--log-std-init", type=float, default=-1.5, help="initial log std of the Gaussian policy "
                   "(actions in [-1, 1]; configs/ppo.yml's)")
    return p.parse_args(argv)


def layer(n_in: int, n_out: int, std: float = np.sqrt(2)) -> nn.Linear:
    lin = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(lin.weight, std)
    nn.init.constant_(lin.bias, 0.0)
    return lin


class Agent(nn.Module):
    """Gaussian policy (a state-independent log std) and value function, two tanh layers of 64 each."""

    def __init__(self, n_obs: int, n_act: int, log_std_init: float):
        super().__init__()
        self.critic = nn.Sequential(layer(n_obs, 64), nn.Tanh(), layer(64, 64), nn.Tanh(), layer(64, 1, 1.0))
        self.actor = nn.Sequential(layer(n_obs, 64), nn.Tanh(), layer(64, 64), nn.Tanh(), layer(64, n_act, 0.01))
        self.log_std = nn.Parameter(torch.full((1, n_act), log_std_init))

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x).squeeze(-1)

    def act(self, x: torch.Tensor, action: torch.Tensor | None = None):
        dist = torch.distributions.Normal(self.actor(x), self.log_std.exp().expand(len(x), -1))
        action = dist.sample() if action is None else action
        return action, dist.log_prob(action).sum(1), dist.entropy().sum(1), self.value(x)


def main(argv=None) -> list[float]:
    """Train; returns the mean episode return of each rollout that finished episodes."""
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # small MLPs: more threads than cores only slows them
    scenario = None if args.duration_h is None else {"duration_h": args.duration_h}
    envs = gym.make_vec(args.env_id, num_envs=args.num_envs, vectorization_mode="vector_entry_point",
                        scenario=scenario)
    envs = ClipAction(NormalizeObservation(RecordEpisodeStatistics(envs)))
    n_obs, n_act = envs.single_observation_space.shape[0], envs.single_action_space.shape[0]
    agent = Agent(n_obs, n_act, args.log_std_init)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)
    shape = (args.num_steps, args.num_envs)
    obs_buf, act_buf = torch.zeros(shape + (n_obs,)), torch.zeros(shape + (n_act,))
    logp_buf, rew_buf, val_buf, end_buf = (torch.zeros(shape) for _ in range(4))
    batch = args.num_steps * args.num_envs
    minibatch = batch // args.num_minibatches
    obs, _ = envs.reset(seed=args.seed)
    obs = torch.as_tensor(obs, dtype=torch.float32)
    steps, start, history = 0, time.perf_counter(), []
    for update in range(1, args.total_timesteps // batch + 1):
        returns = []
        for t in range(args.num_steps):
            with torch.no_grad():
                action, logp, _, value = agent.act(obs)
            next_obs, reward, terminated, truncated, info = envs.step(action.numpy())
            steps += args.num_envs
            ended = np.logical_or(terminated, truncated)
            obs_buf[t], act_buf[t], logp_buf[t], val_buf[t] = obs, action, logp, value
            rew_buf[t] = torch.as_tensor(reward * args.reward_scale, dtype=torch.float32)
            end_buf[t] = torch.as_tensor(ended, dtype=torch.float32)
            next_obs = torch.as_tensor(next_obs, dtype=torch.float32)
            if ended.any():
                with torch.no_grad():  # truncated by the time limit: bootstrap from the last observation's value
                    rew_buf[t] += args.gamma * agent.value(next_obs) * torch.as_tensor(truncated & ~terminated)
                returns += info["episode"]["r"][info["_episode"]].tolist()
                next_obs, _, _, _, _ = envs.step(action.numpy())  # the reset step (next-step autoreset)
                next_obs = torch.as_tensor(next_obs, dtype=torch.float32)
            obs = next_obs
        with torch.no_grad():  # generalized advantage estimation
            advantages, last = torch.zeros(shape), torch.zeros(args.num_envs)
            next_value = agent.value(obs)
            for t in reversed(range(args.num_steps)):
                keep = 1.0 - end_buf[t]
                nv = next_value if t == args.num_steps - 1 else val_buf[t + 1]
                delta = rew_buf[t] + args.gamma * nv * keep - val_buf[t]
                last = delta + args.gamma * args.gae_lambda * keep * last
                advantages[t] = last
            targets = advantages + val_buf
        b_obs, b_act = obs_buf.reshape(batch, n_obs), act_buf.reshape(batch, n_act)
        b_logp, b_adv, b_tgt = logp_buf.reshape(-1), advantages.reshape(-1), targets.reshape(-1)
        for _ in range(args.update_epochs):
            for idx in torch.randperm(batch).split(minibatch):
                _, logp, entropy, value = agent.act(b_obs[idx], b_act[idx])
                ratio = (logp - b_logp[idx]).exp()
                adv = (b_adv[idx] - b_adv[idx].mean()) / (b_adv[idx].std() + 1e-8)
                policy_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef)).mean()
                loss = policy_loss + args.vf_coef * 0.5 * ((value - b_tgt[idx]) ** 2).mean() \
                    - args.ent_coef * entropy.mean()
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()
        if returns:
            history.append(float(np.mean(returns)))
            print(f"update {update}: {steps:,} env steps, mean episode return {history[-1]:.1f} compute units "
                  f"({steps / (time.perf_counter() - start):,.0f} env steps/s)", flush=True)
    envs.close()
    return history


if __name__ == "__main__":
    main()
