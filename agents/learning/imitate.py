"""Start PPO from a controller's behaviour: behaviour cloning of its actions before learning.

:func:`imitate` runs a controller (e.g. the MPC) on fresh episodes of the training env, feeds what it
saw to the run's normalizer (observation statistics, and the return statistics that scale the
reward), then fits the policy's action mean to the controller's actions and its value head to the
discounted returns the controller earned (both on the normalized observations the policy will
see). PPO then starts from the controller's decisions instead of from the middle of every action
range, with a critic that already knows what those decisions are worth, so its first updates do
not undo them.

The teacher is the MPC (it reads only the observation) or the perfect-foresight oracle, a
privileged teacher: it plans each demonstration episode from the whole episode (training time only,
as in "learning by cheating", Chen et al., 2019), while the clone sees only the observation, so it
learns the oracle's action averaged over what the observation cannot tell apart.

With ``rounds`` > 0 it goes on as DAgger (Ross, Gordon and Bagnell, 2011): each round runs the cloned
policy itself on fresh episodes, asks the controller what it would have done in every state the
policy reached, and refits on all the pairs so far, so the clone also learns to recover from its own
mistakes rather than only to follow the controller's trajectories.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from stable_baselines3 import PPO
from tqdm import tqdm

from cpm_env.vec_env import CpmVecEnv

DEMO_SEED_OFFSET = 500_000  # demonstration episodes: seeds far from training (seed, seed+1, ...) and tuning (10000-)


def demonstrations(rule: str, venv: CpmVecEnv, episodes: int, seed: int, progress: bool = True,
                   actor: Callable[[np.ndarray], np.ndarray] | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``episodes`` episodes of controller ``rule`` on ``venv``'s scenario and filter: observations
    (steps, envs, obs), the controller's actions in ``venv``'s action units (steps, envs, act; in the
    action space) and rewards (steps, envs). Seeds ``seed + DEMO_SEED_OFFSET + i``.

    With ``actor`` (observations -> actions) the actor drives the episodes and the controller only
    labels the states it reaches (DAgger); the rewards are then the actor's.

    The controller sets the battery's power; under ``battery_action = "import_change"`` the first
    action is the change of the step-mean import its step made, over the ramp limit per step (what
    the site did, so behind the filter the filtered change), clipped to [-1, 1]. That needs the
    controller's own step, so an ``actor`` there is a ValueError; so it is with a controller that plans
    the whole episode at its start (the oracle: its plan is for its own trajectory, not the actor's)."""
    from agents.evaluation.runner import make_controller

    if actor is not None and venv.battery_action == "import_change":
        raise ValueError("imitate_rounds needs battery_action = 'power': under 'import_change' a label is the "
                         "import change the controller's own step made")
    demo = CpmVecEnv(venv.source, episodes, shield=venv.shield, site_features=venv.site_features)
    demo.seed(seed + DEMO_SEED_OFFSET)
    controller = make_controller(rule, demo.site)
    plans = hasattr(controller, "start_episode")  # the oracle: plans each episode from the whole of it
    if actor is not None and plans:
        raise ValueError(f"imitate_rounds needs a teacher that answers any state: {rule!r} plans each episode at "
                         "its start (use imitate: mpc)")
    low, high = demo.action_space.low, demo.action_space.high
    ramp_step_mw = demo.params.ramp_step_mw
    obs = demo.reset()
    if plans:
        controller.start_episode(demo.episode)
    observations, actions, rewards = [], [], []
    for _ in tqdm(range(demo.config.n_steps), desc=f"imitate: {rule} on {episodes} episodes", unit="step",
                  disable=not progress, leave=False):
        action, _ = controller.predict(obs, deterministic=True)
        action = np.clip(np.asarray(action, dtype=np.float32).reshape(episodes, -1), low, high)
        last_import_mw = np.broadcast_to(np.asarray(demo.state.import_mw, dtype=np.float64), (episodes,))
        observations.append(obs)
        drive = action if actor is None else np.clip(np.asarray(actor(obs), dtype=np.float32), low, high)
        obs, reward, _, _ = demo.step(drive)
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


def imitate(model: PPO, venv: CpmVecEnv, rule: str, episodes: int, seed: int, rounds: int = 0, epochs: int = 60,
            batch_size: int = 1024, learning_rate: float = 1e-3, progress: bool = True) -> dict[str, float]:
    """Behaviour-clone controller ``rule`` into ``model`` (see the module docstring), then ``rounds``
    DAgger rounds of ``episodes`` episodes each (seeds after the demonstrations'); returns the last
    fit's mean squared action error (action units), value error (normalized returns) and sample count."""
    gamma = float(model.gamma)
    norm = model.get_vec_normalize_env()
    optimizer = torch.optim.Adam(model.policy.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    observations, actions, to_go = [], [], []

    def policy_actions(obs: np.ndarray) -> np.ndarray:
        inputs = norm.normalize_obs(obs) if norm is not None else obs
        return model.policy.predict(inputs, deterministic=True)[0]

    fit: dict[str, float] = {}
    for r in range(rounds + 1):
        obs, act, rewards = demonstrations(rule, venv, episodes, seed + r * episodes, progress,
                                           actor=policy_actions if r else None)
        running, returns = _discounted_returns(rewards, gamma)
        flat_obs = obs.reshape(-1, obs.shape[-1])
        if norm is not None and norm.norm_obs:
            norm.obs_rms.update(flat_obs)
        if norm is not None and norm.norm_reward:
            norm.ret_rms.update(running.reshape(-1))
        observations.append(flat_obs)
        actions.append(act.reshape(len(flat_obs), -1))
        to_go.append(returns.reshape(-1))
        fit = _fit(model, np.concatenate(observations), np.concatenate(actions), np.concatenate(to_go), optimizer,
                   generator, epochs, batch_size, progress)
    return fit


def _fit(model: PPO, obs: np.ndarray, actions: np.ndarray, to_go: np.ndarray, optimizer: torch.optim.Optimizer,
         generator: torch.Generator, epochs: int, batch_size: int, progress: bool) -> dict[str, float]:
    """Fit the policy's action mean to ``actions`` and its value head to the returns ``to_go`` (scaled
    as the normalizer scales rewards), on the normalized ``obs``."""
    gamma = float(model.gamma)
    norm = model.get_vec_normalize_env()
    inputs, targets_v = obs, to_go
    if norm is not None:
        inputs = norm.normalize_obs(obs)
        if norm.norm_reward:
            bound = norm.clip_reward / (1 - gamma)
            targets_v = np.clip(to_go / np.sqrt(norm.ret_rms.var + norm.epsilon), -bound, bound)
    x = torch.as_tensor(inputs, dtype=torch.float32)
    a = torch.as_tensor(actions, dtype=torch.float32)
    v = torch.as_tensor(targets_v.reshape(-1, 1), dtype=torch.float32)
    policy = model.policy
    action_mse = value_mse = float("nan")
    for _ in tqdm(range(epochs), desc="imitate: fit", unit="epoch", disable=not progress, leave=False):
        order = torch.randperm(len(x), generator=generator)
        sums = np.zeros(2)
        for start in range(0, len(x), batch_size):
            idx = order[start:start + batch_size]
            features = policy.extract_features(x[idx])
            latent_pi, latent_vf = policy.mlp_extractor(features)
            loss_a = torch.mean((policy.action_net(latent_pi) - a[idx]) ** 2)
            loss_v = torch.mean((policy.value_net(latent_vf) - v[idx]) ** 2)
            optimizer.zero_grad()
            (loss_a + 0.01 * loss_v).backward()
            optimizer.step()
            sums += [loss_a.item() * len(idx), loss_v.item() * len(idx)]
        action_mse, value_mse = sums / len(x)
    return {"action_mse": float(action_mse), "value_mse": float(value_mse), "samples": int(len(x))}
