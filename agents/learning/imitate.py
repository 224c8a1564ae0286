"""Start PPO from a controller's behaviour: behaviour cloning of its actions before learning.

:func:`imitate` runs a controller (e.g. the MPC) on fresh episodes of the training env, feeds what it
saw to the run's normalizer (observation statistics, and the return statistics that scale the
reward), then fits the policy's action mean to the controller's actions and its value head to the
discounted returns the controller earned (both on the normalized observations the policy will
see). PPO then starts from the controller's decisions instead of from the middle of every action
range, with a critic that already knows what those decisions are worth, so its first updates do
not undo them.
"""

from __future__ import annotations

import numpy as np
import torch
from stable_baselines3 import PPO
from tqdm import tqdm

from cpm_env.vec_env import CpmVecEnv

DEMO_SEED_OFFSET = 500_000  # demonstration episodes: seeds far from training (seed, seed+1, ...) and tuning (10000-)


def demonstrations(rule: str, venv: CpmVecEnv, episodes: int, seed: int, progress: bool = True
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``episodes`` episodes of controller ``rule`` on ``venv``'s scenario and filter: observations
    (steps, envs, obs), the controller's actions in ``venv``'s action units (steps, envs, act; in the
    action space) and rewards (steps, envs). Seeds ``seed + DEMO_SEED_OFFSET + i``.

    The controller sets the battery's power; under ``battery_action = "import_change"`` the first
    action is the change of the step-mean import its step made, over the ramp limit per step (what
    the site did, so behind the filter the filtered change), clipped to [-1, 1]."""
    from agents.evaluation.runner import make_controller

    demo = CpmVecEnv(venv.source, episodes, shield=venv.shield, site_features=venv.site_features)
    demo.seed(seed + DEMO_SEED_OFFSET)
    controller = make_controller(rule, demo.site)
    low, high = demo.action_space.low, demo.action_space.high
    ramp_step_mw = demo.params.ramp_step_mw
    obs = demo.reset()
    observations, actions, rewards = [], [], []
    for _ in tqdm(range(demo.config.n_steps), desc=f"imitate: {rule} on {episodes} episodes", unit="step",
                  disable=not progress, leave=False):
        action, _ = controller.predict(obs, deterministic=True)
        action = np.clip(np.asarray(action, dtype=np.float32).reshape(episodes, -1), low, high)
        last_import_mw = np.broadcast_to(np.asarray(demo.state.import_mw, dtype=np.float64), (episodes,))
        observations.append(obs)
        obs, reward, _, _ = demo.step(action)
        if venv.battery_action == "import_change":
            change = (np.asarray(demo.last_outputs.grid_import_mw) - last_import_mw) / ramp_step_mw
            action = action.copy()
            action[:, 0] = np.clip(change, -1.0, 1.0)
        actions.append(action)
        rewards.append(reward)
    demo.close()
    return np.stack(observations), np.stack(actions), np.stack(rewards).astype(np.float64)


def _discounted_returns(rewards: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Per step: the running discounted return VecNormalize tracks (forward) and the return to go (backward)."""
    running = np.zeros_like(rewards)
    acc = np.zeros(rewards.shape[1])
    for t in range(len(rewards)):
        acc = acc * gamma + rewards[t]
        running[t] = acc
    to_go = np.zeros_like(rewards)
    acc = np.zeros(rewards.shape[1])
    for t in range(len(rewards) - 1, -1, -1):
        acc = rewards[t] + gamma * acc
        to_go[t] = acc
    return running, to_go


def imitate(model: PPO, venv: CpmVecEnv, rule: str, episodes: int, seed: int, epochs: int = 60,
            batch_size: int = 1024, learning_rate: float = 1e-3, progress: bool = True) -> dict[str, float]:
    """Behaviour-clone controller ``rule`` into ``model`` (see the module docstring); returns the
    fit's final mean squared action error (action units) and value error (normalized returns)."""
    observations, actions, rewards = demonstrations(rule, venv, episodes, seed, progress)
    gamma = float(model.gamma)
    running, to_go = _discounted_returns(rewards, gamma)
    flat_obs = observations.reshape(-1, observations.shape[-1])
    norm = model.get_vec_normalize_env()
    if norm is not None:
        if norm.norm_obs:
            norm.obs_rms.update(flat_obs)
        if norm.norm_reward:
            norm.ret_rms.update(running.reshape(-1))
        inputs = norm.normalize_obs(flat_obs)
        targets_v = np.clip(to_go / np.sqrt(norm.ret_rms.var + norm.epsilon), -norm.clip_reward / (1 - gamma),
                            norm.clip_reward / (1 - gamma)) if norm.norm_reward else to_go
    else:
        inputs, targets_v = flat_obs, to_go
    x = torch.as_tensor(inputs, dtype=torch.float32)
    a = torch.as_tensor(actions.reshape(len(x), -1), dtype=torch.float32)
    v = torch.as_tensor(targets_v.reshape(-1, 1), dtype=torch.float32)
    policy = model.policy
    optimizer = torch.optim.Adam(policy.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    action_mse = value_mse = float("nan")
    for _ in tqdm(range(epochs), desc="imitate: fit", unit="epoch", disable=not progress, leave=False):
        order = torch.randperm(len(x), generator=generator)
        sums = np.zeros(2)
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            features = policy.extract_features(x[idx])
            latent_pi, latent_vf = policy.mlp_extractor(features)
            mean = policy.action_net(latent_pi)
            value = policy.value_net(latent_vf)
            loss_a = torch.mean((mean - a[idx]) ** 2)
            loss_v = torch.mean((value - v[idx]) ** 2)
            optimizer.zero_grad()
            (loss_a + 0.01 * loss_v).backward()
            optimizer.step()
            sums += [loss_a.item() * len(idx), loss_v.item() * len(idx)]
        action_mse, value_mse = sums / len(x)
    return {"action_mse": float(action_mse), "value_mse": float(value_mse), "samples": int(len(x))}
