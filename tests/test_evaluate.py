"""evaluate.py end to end on a short scenario file: CSV, summary, plots, table."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

import cpm_env
from agents.evaluation.runner import make_controller, run_controller

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import evaluate  # noqa: E402

COLUMNS = {"controller", "scenario", "seed", "reward", "compute_delivered", "compute_per_mw", "violation_mwh",
           "max_overshoot_mw", "ramp_violations", "battery_throughput_mwh", "battery_cycles", "degradation_cost",
           "grid_energy_mwh"}


def short_scenario(tmp_path, hours=2.0):
    data = yaml.safe_load(cpm_env.DEFAULT_SCENARIO.read_text())
    data.update({"id": "Short-v0", "duration_h": hours})
    path = tmp_path / "short.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_evaluate_writes_csv_summary_and_plots(tmp_path, capsys):
    out = tmp_path / "out"
    rc = evaluate.main(["--scenario", str(short_scenario(tmp_path)), "--controllers", "static_cap,greedy,mpc,oracle",
                        "--seeds", "3-4", "--out", str(out)])
    assert rc == 0
    episodes = pd.read_csv(out / "episodes.csv")
    assert COLUMNS <= set(episodes.columns)
    assert len(episodes) == 4 * 2 and set(episodes.seed) == {3, 4}
    summary = (out / "summary.md").read_text()
    assert "% of oracle reward" in summary and "LP solve time" in summary
    for png in ("episode.png", "kpis.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "| Short-v0 | oracle |" in printed
    oracle = episodes[episodes.controller == "oracle"].set_index("seed").reward
    for name, g in episodes.groupby("controller"):
        assert (g.set_index("seed").reward <= oracle + 1e-6).all(), name


def test_evaluate_rows_match_single_env_runs(tmp_path):
    """A batched evaluation row equals stepping one CpmEnv with the same controller and seed."""
    from agents.evaluation.runner import make_controller, run_controller

    path = short_scenario(tmp_path, hours=1.0)
    venv = cpm_env.make_vec(str(path), 2)
    rows = run_controller(make_controller("greedy", venv.site), venv, [7, 8], "greedy")
    env = cpm_env.CpmEnv(str(path))
    ctrl = make_controller("greedy", env.site)
    for seed, expected in zip([7, 8], rows.reward):
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            obs, r, _, done, _ = env.step(ctrl.predict(obs)[0])
            total += r
        assert abs(total - expected) < 1e-6 * max(1.0, abs(total))


def test_train_then_evaluate_ppo_run_dir(tmp_path):
    import train

    path = short_scenario(tmp_path, hours=1.0)
    run = tmp_path / "run"
    assert train.main(["--scenario", str(path), "--timesteps", "1024", "--n-envs", "4", "--run-dir", str(run)]) == 0
    assert (run / "model.zip").is_file() and (run / "vecnormalize.pkl").is_file()
    out = tmp_path / "out"
    assert evaluate.main(["--scenario", str(path), "--controllers", f"static_cap,ppo:{run}", "--seeds", "1",
                          "--out", str(out)]) == 0
    assert set(pd.read_csv(out / "episodes.csv").controller) == {"static_cap", f"ppo:{run}"}


def test_missing_ppo_model_is_a_one_line_error(tmp_path, capsys):
    assert evaluate.main(["--controllers", f"ppo:{tmp_path / 'nope'}", "--seeds", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "model.zip" in err


def test_demand_response_compliance_kpis():
    scenario = {"duration_h": 3.0, "grid": {"demand_response": {
        "earliest_start_h": 1.0, "latest_start_h": 1.5, "duration_h": 1.0, "notice_h": 0.5}}}
    venv = cpm_env.make_vec("cpm_env/DemandResponse-v0", 2, scenario=scenario)
    for name in ("static_cap", "greedy", "oracle", "peak_shaving"):
        rows = run_controller(make_controller(name, venv.site), venv, [11, 12], name)
        assert np.allclose(rows.dr_window_h, 1.0)
        assert (rows.dr_over_limit_mwh <= rows.violation_mwh + 1e-12).all()
        if name != "peak_shaving":  # every controller that honours the limit honours the window's
            assert (rows.dr_compliance_pct == 100).all(), name
    plain_venv = cpm_env.make_vec("cpm_env/DataCenter-v0", 1, scenario={"duration_h": 1.0})
    plain = run_controller(make_controller("greedy", plain_venv.site), plain_venv, [1], "greedy")
    assert plain.dr_window_h.iloc[0] == 0 and np.isnan(plain.dr_compliance_pct.iloc[0])
