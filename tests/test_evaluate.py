"""evaluate.py end to end on a short scenario file: CSV, summary, plots, table."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cpm_env
import evaluate
import train
from agents.evaluation.runner import DEFAULT_CONTROLLERS, controller_names, make_controller, run_controller
from agents.evaluation.seeds import parse_seeds

COLUMNS = {"controller", "scenario", "seed", "reward", "compute_delivered", "compute_per_mw", "violation_mwh",
           "max_overshoot_mw", "ramp_violations", "battery_throughput_mwh", "battery_cycles", "degradation_cost",
           "grid_energy_mwh"}


def test_evaluate_writes_csv_summary_and_plots(tmp_path, short_scenario, capsys):
    out = tmp_path / "out"
    rc = evaluate.main(["--scenario", str(short_scenario()), "--controllers", "static_cap,greedy,mpc,oracle",
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


def test_evaluate_rows_match_single_env_runs(short_scenario):
    """A batched evaluation row equals stepping one CpmEnv with the same controller and seed."""
    path = short_scenario(hours=1.0)
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


def test_train_then_evaluate_ppo_run_dir(tmp_path, short_scenario):
    path = short_scenario(hours=1.0)
    run = tmp_path / "run"
    assert train.main(["--scenario", str(path), "--timesteps", "1024", "--n-envs", "4", "--run-dir", str(run)]) == 0
    assert (run / "model.zip").is_file() and (run / "vecnormalize.pkl").is_file()
    out = tmp_path / "out"
    assert evaluate.main(["--scenario", str(path), "--controllers", f"static_cap,ppo:{run}", "--seeds", "1",
                          "--out", str(out)]) == 0
    assert set(pd.read_csv(out / "episodes.csv").controller) == {"static_cap", f"ppo:{run}"}


def test_missing_ppo_model_is_a_one_line_error(tmp_path, capsys):
    assert evaluate.main(["--controllers", f"ppo:{tmp_path / 'nope'}", "--seeds", "1",
                          "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "model.zip" in err
    assert not (tmp_path / "out").exists()


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


def test_parse_seeds_ranges_lists_and_one_line_errors():
    assert parse_seeds("100-103") == [100, 101, 102, 103]
    assert parse_seeds("1,5, 9-10") == [1, 5, 9, 10]
    for bad in ("9-3", "a", "", "1,,2", "-1", "1,1", "3,1-4"):
        with pytest.raises(ValueError, match=re.escape(f"--seeds = {bad!r}: ")) as err:
            parse_seeds(bad)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="^eval_seeds = "):
        parse_seeds("x", "eval_seeds")


def test_default_controllers_include_ppo_only_where_a_policy_is_shipped():
    assert "ppo" in controller_names(None, "DataCenter-v0") and "ppo" in controller_names(None, "NoBattery-v0")
    no_policy = "DataCenter-Foresight-v0"  # configs/studies/foresight/DataCenter-v0.yml: no models/ folder
    assert not {"ppo", "ppo+shield"} & set(controller_names(None, no_policy))
    assert "oracle" in controller_names(None, no_policy)
    names = controller_names(None, "DataCenter-v0")
    rules = [n for n in names if n not in ("mpc", "oracle") and "ppo" not in n]
    assert {f"{n}+shield" for n in rules if "+" not in n} <= set(rules)  # every rule also behind the filter
    assert {"mpc", "mpc+shield"} <= set(names)  # and the MPC
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()  # make demo: the defaults less mpc+shield
    demo = re.search(r"^DEMO_CONTROLLERS := (.+)$", makefile, re.M).group(1).split(",")
    assert demo == [n for n in DEFAULT_CONTROLLERS.split(",") if n != "mpc+shield"]
    assert controller_names(" greedy, ppo ", no_policy) == ["greedy", "ppo"]  # asked for: kept


def test_ppo_from_another_scenario_needs_allow_other_scenario(tmp_path, short_scenario, capsys):
    """The shipped DataCenter-v0 policy on a shortened copy of the scenario: refused in one line,
    run only with --allow-other-scenario."""
    args = ["--scenario", str(short_scenario(hours=0.5)), "--controllers", "ppo:models/DataCenter-v0",
            "--seeds", "1"]
    assert evaluate.main(args + ["--out", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err.strip()
    assert re.fullmatch(r"error: ppo:models/DataCenter-v0: trained on scenario 'DataCenter-v0', not 'Short-v0': .*"
                        r"evaluate.py --allow-other-scenario\)", err), err
    assert not (tmp_path / "refused").exists()
    assert evaluate.main(args + ["--out", str(tmp_path / "allowed"), "--allow-other-scenario"]) == 0
    assert len(pd.read_csv(tmp_path / "allowed" / "episodes.csv")) == 1


def test_table_has_a_legend_and_says_n_a_not_nan(tmp_path, short_scenario, capsys):
    """One seed and no oracle: the interval and the % of oracle are undefined, printed n/a."""
    rc = evaluate.main(["--scenario", str(short_scenario(hours=0.5)), "--controllers", "static_cap",
                        "--seeds", "1", "--out", str(tmp_path / "out")])
    assert rc == 0
    printed = capsys.readouterr().out
    summary = (tmp_path / "out" / "summary.md").read_text()
    for text in (printed, summary):
        row = next(line for line in text.splitlines() if line.startswith("| Short-v0 | static_cap |"))
        assert "nan" not in row and row.count("n/a") == 3, row
        assert "reward: compute units per episode" in text and "lower is better" in text
