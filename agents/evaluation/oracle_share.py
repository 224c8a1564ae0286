"""Controllers scored against the oracle on the same episodes: one row per controller x seed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from agents.evaluation.runner import make_controller, run_controller
from agents.files import write_atomic
from cpm_env.config import ScenarioConfig
from cpm_env.vec_env import CpmVecEnv


def oracle_share_rows(cfg: ScenarioConfig, controllers: Mapping[str, str], seeds: list[int],
                      tags: Mapping[str, object] | None = None) -> list[dict]:
    """One row per controller x seed on ``cfg``: reward (compute units), the oracle's reward on that seed's
    episode, compute fraction, violation energy (MWh over the limit) and ``pct_oracle``, plus ``tags``.
    ``controllers`` maps each label to the name that builds it (a policy of another scenario is allowed:
    it runs on ``cfg`` as on any site). Prints one line per controller."""
    venv = CpmVecEnv(cfg, len(seeds))
    oracle = run_controller(make_controller("oracle", venv.site), venv, seeds, "oracle").reward.to_numpy()
    rows = []
    for label, name in controllers.items():
        controller = make_controller(name, venv.site, allow_other_scenario=True)
        episodes = run_controller(controller, venv, seeds, label)
        for seed, reward, compute, over, ref in zip(seeds, episodes.reward, episodes.compute_fraction,
                                                    episodes.violation_mwh, oracle):
            rows.append({"scenario": cfg.id, **(tags or {}), "controller": label, "seed": seed, "reward": reward,
                         "oracle_reward": ref, "compute_fraction": compute, "violation_mwh": over,
                         "pct_oracle": 100.0 * reward / ref})
        print(f"{cfg.id} {' '.join(map(str, (tags or {}).values()))} {label}: "
              f"{100.0 * episodes.reward.sum() / oracle.sum():.1f}% of the oracle", flush=True)
    return rows


def write_rows_and_table(out: Path, stem: str, frame: pd.DataFrame, lines: list[str]) -> None:
    """``out/<stem>.csv`` (the rows) and ``out/<stem>.md`` (the markdown ``lines``), each written atomically;
    prints the table and what was written."""
    write_atomic(out / f"{stem}.csv", frame.to_csv(index=False).encode())
    write_atomic(out / f"{stem}.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    print(f"wrote {out}/{stem}.csv, {stem}.md")
