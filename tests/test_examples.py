"""examples/: the Gymnasium-native PPO trains a handful of updates on the vector entry point."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def test_the_gymnasium_ppo_example_trains_and_improves_on_a_short_scenario():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "ppo_gymnasium.py"), "--duration-h", "0.5",
                          "--num-envs", "8", "--num-steps", "32", "--total-timesteps", "6144"],
                         capture_output=True, text=True, check=True, timeout=300, cwd=ROOT).stdout
    returns = [float(r) for r in re.findall(r"mean episode return (-?[\d.]+)", out)]
    assert len(returns) == 24  # every update of 256 steps ends 8 episodes of 30 steps
    assert np.mean(returns[-5:]) > np.mean(returns[:5]) + 25  # it learns (seed 0 here: -60 to -11)
