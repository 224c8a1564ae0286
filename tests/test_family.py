"""Site families (cpm_env.family): load-time checks, reproducible draws, and envs that draw a site per episode."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given
from hypothesis import strategies as st
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import cpm_env
from cpm_env import make_vec
from cpm_env.config import ConfigError, load_scenario
from cpm_env.family import SiteFamily

FAMILY_ID = "cpm_env/SiteFamily-v0"
FAMILY_FILE = cpm_env.SCENARIO_DIR / "site_family.yml"
# two hours, with the demand-response window (where a site has one) inside them
SHORT = {"duration_h": 2.0,
         "grid": {"demand_response": {"earliest_start_h": 0.5, "latest_start_h": 0.5, "duration_h": 1.0,
                                      "notice_h": 0.25}}}


def family_file(tmp_yaml, body: str) -> str:
    """A family file extending the default scenario, with ``body`` as its ``family:`` section."""
    return str(tmp_yaml(f"id: Fam-v0\nextends: {cpm_env.DEFAULT_SCENARIO}\nfamily:\n{body}", "fam.yml"))


@pytest.mark.parametrize("body, match", [
    ("  site.oversubscription: {uniform: [1.5, 1.2]}\n", r"family\.site\.oversubscription\.uniform .*inverted range"),
    ("  site.oversubscription: {uniform: [1.2, 1.2]}\n", r"family\.site\.oversubscription\.uniform .*empty range"),
    ("  site.oversubscription: {uniform: [1.2]}\n", r"family\.site\.oversubscription\.uniform .*\[low, high\]"),
    ("  site.oversubscription: {choice: []}\n", r"family\.site\.oversubscription\.choice .*non-empty"),
    ("  site.oversubscription: {gaussian: [1.2, 0.1]}\n", r"family\.site\.oversubscription: distribution 'gaussian'"),
    ("  battery.soc_min: {uniform: [0.1, 0.6]}\n  battery.soc_max: {uniform: [0.5, 0.9]}\n",
     r"family: the draw battery\.soc_min = 0\.6, battery\.soc_max = 0\.5 makes an invalid site: battery\.soc_min"),
    ("  site.oversubscriptions: {uniform: [1.0, 1.5]}\n", r"site\.oversubscriptions = '\(unknown key\)'"),
    ("  site.gpu_classes.storage.share: {uniform: [0.1, 0.5]}\n", r"no GPU class 'storage'"),
    ("  dt_s: {choice: [60, 30]}\n", r"changes the observation or action layout"),
    ("  grid.demand_response.events_per_episode: {uniform: [0, 2]}\n",
     r"events_per_episode = 0\.0: must be an integer"),
    ("  battery: {uniform: [0, 1]}\n", r"names a section, not a field"),
    ("  battery.energy_h: {uniform: [0, 1], p_low: 1.0}\n",
     r"battery\.energy_h\.p_low = 1\.0: must be a number in \[0, 1\)"),
    ("  grid.demand_response.events_per_episode: {choice: [0, 1], p_low: 0.5}\n", r"only a range .* takes p_low"),
    ("  battery.energy_h: {p_low: 0.5}\n", r"must be one distribution"),
])
def test_bad_family_is_one_line_error_at_load_time(tmp_yaml, body, match):
    path = family_file(tmp_yaml, body)
    for build in (lambda: SiteFamily(path), lambda: gym.make("cpm_env/DataCenter-v0", scenario=path),
                  lambda: make_vec("cpm_env/DataCenter-v0", scenario=path)):
        with pytest.raises(ConfigError, match=match) as info:
            build()
        message = str(info.value)
        assert "\n" not in message and "fam.yml" in message


def test_a_family_file_is_not_one_site():
    with pytest.raises(ConfigError, match="site_family.yml: family: a site family, not one site"):
        load_scenario(FAMILY_FILE)


def test_override_of_a_drawn_field_is_refused():
    with pytest.raises(ConfigError, match="scenario override site.oversubscription: the family .* draws it"):
        gym.make(FAMILY_ID, scenario={"site": {"oversubscription": 1.2}})


@given(st.integers(0, 2**32 - 1))
def test_draws_stay_in_the_family_and_repeat_by_seed(seed):
    family = SiteFamily(FAMILY_FILE)
    cfg = family.site(seed)
    assert cfg == family.site(seed) and cfg.id == f"SiteFamily-v0-site{seed}"
    lim, bat, grid = cfg.grid.limit_mw, cfg.battery, cfg.grid
    assert 1.0 <= cfg.site.oversubscription <= 1.7
    shares = {c.name: c.share for c in cfg.site.gpu_classes}
    assert 0.3 <= shares["training"] <= 0.9 and sum(shares.values()) == pytest.approx(1.0)
    assert 0.0 <= bat.capacity_mwh / lim <= 2.0
    assert bat.capacity_mwh == 0 or 0.25 <= bat.power_mw / bat.capacity_mwh <= 1.0 + 1e-12
    assert 0.04 * lim <= grid.ramp_limit_mw_per_min <= 0.20 * lim and 0.1 * lim <= grid.swing_band_mw <= 0.3 * lim
    assert grid.demand_response.events_per_episode in (0, 1) and cfg.dt_s == 60.0


def test_p_low_puts_that_share_of_draws_exactly_at_the_low_end(tmp_yaml):
    family = SiteFamily(family_file(tmp_yaml, "  battery.energy_h: {uniform: [0.0, 2.0], p_low: 0.3}\n"))
    rng = np.random.default_rng(0)
    energy_h = np.array([family.draw(rng).battery.capacity_mwh / family.reference.grid.limit_mw for _ in range(400)])
    assert abs(np.mean(energy_h == 0.0) - 0.3) < 0.08  # binomial sd 0.023
    rest = energy_h[energy_h > 0]
    assert rest.max() <= 2.0 and abs(np.mean(rest) - 1.0) < 0.15  # the rest still uniform over the range
    assert family.to_dict()["family"]["battery.energy_h"] == {"uniform": [0.0, 2.0], "p_low": 0.3}


def test_family_env_draws_its_site_from_the_reset_seed():
    env = gym.make(FAMILY_ID).unwrapped  # a family observes its sites' parameters by default
    assert env.site_features and not gym.make("cpm_env/DataCenter-v0").unwrapped.site_features
    family = SiteFamily(FAMILY_FILE)
    obs, _ = env.reset(seed=1000)
    first = family.site(1000)
    assert env.config.site == first.site and env.config.battery == first.battery and env.config.grid == first.grid
    n_site = len(cpm_env.spaces.site_parameter_features(first))
    np.testing.assert_array_equal(obs[-n_site:], cpm_env.spaces.site_parameter_entries(first))
    env.reset()
    assert env.config.site != first.site  # the next episode, the next site
    again, _ = gym.make(FAMILY_ID).unwrapped.reset(seed=1000)
    np.testing.assert_array_equal(again, obs)


def test_family_env_passes_gymnasium_and_sb3_checks_and_stays_in_its_space():
    env = gym.make(FAMILY_ID, scenario=SHORT)
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(gym.make(FAMILY_ID, scenario=SHORT).unwrapped)
    rng = np.random.default_rng(3)
    for seed in range(6):  # sites with and without a battery, a window, a tight ramp
        obs, _ = env.reset(seed=seed)
        for _ in range(env.unwrapped.config.n_steps):
            assert env.observation_space.contains(obs), seed
            obs, reward, _, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
            assert np.isfinite(reward)
        assert truncated


@pytest.mark.parametrize("shield", [False, True])
def test_batched_family_env_equals_single_envs_across_resets(shield):
    """Each env its own site, the physics (and the safety filter) on the sites' stacked parameters."""
    n = 4
    venv = make_vec(FAMILY_ID, n_envs=n, seed=7, scenario=SHORT, shield=shield)
    envs = [gym.make(FAMILY_ID, scenario=SHORT, shield=shield).unwrapped for _ in range(n)]
    np.testing.assert_array_equal(venv.reset(), np.stack([e.reset(seed=7 + i)[0] for i, e in enumerate(envs)]))
    assert len({s.config.battery.capacity_mwh for s in venv.sites}) == n  # one site per env
    rng = np.random.default_rng(0)
    for t in range(2 * envs[0].config.n_steps + 3):
        actions = rng.uniform(-1.2, 1.2, (n, venv.action_space.shape[0])).astype(np.float32)
        obs, rewards, dones, infos = venv.step(actions)
        for i, env in enumerate(envs):
            o, r, _, truncated, _ = env.step(actions[i])
            assert dones[i] == truncated
            if truncated:
                np.testing.assert_array_equal(infos[i]["terminal_observation"], o)
                o, _ = env.reset()
            np.testing.assert_array_equal(obs[i], o, err_msg=f"step {t}, env {i}")
            assert rewards[i] == np.float32(r)


@pytest.fixture(scope="module")
def family_run(tmp_path_factory):
    """(run dir, family file) of a tiny policy trained by train.py on a two-hour copy of SiteFamily-v0."""
    import torch
    import yaml

    import train as train_cli
    from conftest import TINY_TRAINING

    folder = tmp_path_factory.mktemp("family")
    path = folder / "short_family.yml"
    path.write_text(yaml.safe_dump({"id": "ShortFamily-v0", "extends": str(FAMILY_FILE), **SHORT}))
    run = folder / "run"
    threads = torch.get_num_threads()
    try:
        assert train_cli.main(["--scenario", str(path), "--run-dir", str(run), *TINY_TRAINING]) == 0
    finally:
        torch.set_num_threads(threads)
    return run, path


def test_train_py_trains_a_generalist_on_a_family(family_run):
    import yaml

    import train as train_cli

    run, path = family_run
    saved = yaml.safe_load((run / "scenario.yml").read_text())
    assert saved["family"]["site.oversubscription"] == {"uniform": [1.0, 1.7]}  # the run holds the family itself
    assert SiteFamily(run / "scenario.yml").to_dict() == SiteFamily(path).to_dict()
    manifest = yaml.safe_load((run / "manifest.json").read_text())
    assert manifest["env_options"]["site_features"] is True  # a family's default, without a configs/ppo.yml block
    assert train_cli.main(["--resume", str(run)]) == 2  # finished: nothing to resume, said in one line


def test_a_generalist_runs_on_any_site_and_warns_off_its_family(family_run, capsys):
    from agents.learning.ppo import PPOController
    from cpm_env.scenario import Site

    run, path = family_run
    family = SiteFamily(path)
    inside = PPOController(run, Site(family.site(5)))  # another site than any it trained on: no flag needed
    assert inside.family is not None and inside.outside == [] and "warning" not in capsys.readouterr().err
    far = cpm_env.config.resolve_scenario(family.site(5), {"site": {"oversubscription": 1.9}})
    outside = PPOController(run, Site(far))
    assert outside.outside == ["site.oversubscription = 1.9 (the family's: 1..1.7)"]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "lies outside the site family ShortFamily-v0" in err


def test_export_of_a_generalist_needs_its_site_and_records_the_family_range(family_run, tmp_path, capsys):
    import json

    import yaml

    import export as export_cli
    from cpm_env.config import scenario_to_dict

    run, path = family_run
    assert export_cli.main([str(run), "--out", str(tmp_path / "none")]) == 2
    assert "trained on the site family 'ShortFamily-v0': pass --scenario" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()
    site = tmp_path / "site.yml"
    site.write_text(yaml.safe_dump(scenario_to_dict(SiteFamily(path).site(5))))
    assert export_cli.main([str(run), "--out", str(tmp_path / "export"), "--scenario", str(site)]) == 0
    params = json.loads((tmp_path / "export" / "policy.json").read_text())["site_parameters"]
    bounds = dict(zip(params["entries"], zip(params["trained_low"], params["trained_high"])))
    assert bounds["site_oversubscription"] == pytest.approx((1.0, 1.7), abs=1e-6)
    assert bounds["site_battery_energy"] == pytest.approx((0.0, 2.0), abs=1e-6)


def test_generalization_benchmark_refuses_a_plain_scenario_before_any_work(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("generalization", cpm_env.SCENARIO_DIR.parents[1]
                                                  / "benchmarks" / "generalization.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--family", "cpm_env/DataCenter-v0", "--out", str(tmp_path / "out")]) == 2
    assert "not a site family" in capsys.readouterr().err and not (tmp_path / "out").exists()
    family = SiteFamily(FAMILY_FILE)
    for label, values in module.OUTSIDE.items():  # each outside site is valid and past the family's ranges
        cfg = module.outside_site(family, label, values)
        assert cfg.battery.soc_min == family.reference.battery.soc_min
    assert module.outside_site(family, "x", {"site.oversubscription": 1.9}).site.oversubscription == 1.9


def test_a_generalist_reads_missing_gpu_classes_as_classes_of_share_0(family_run):
    from agents.evaluation.runner import run_controller
    from agents.learning.ppo import PPOController
    from cpm_env.config import resolve_scenario
    from cpm_env.scenario import Site
    from cpm_env.vec_env import CpmVecEnv

    run, path = family_run
    base = SiteFamily(path).site(5)
    one_class = resolve_scenario(base, {"site": {"gpu_classes": [{"name": "training", "share": 1.0}]}})
    policy = PPOController(run, Site(one_class))
    assert policy.padding.classes == ("inference",)
    names = [f.name for f in cpm_env.spaces.observation_features(base, cpm_env.site.make_params(base))
             + cpm_env.spaces.site_parameter_features(base)]
    padded = {name: float(v) for name, i, v in zip(names, policy.padding.source, policy.padding.value) if i < 0}
    assert padded == {"demand_inference": 0.0, "swing_inference": 0.0, "cap_inference_prev": 1.0,
                      "site_share_inference": 0.0, "site_cap_min_inference": pytest.approx(0.2857),
                      "site_cap_slew_inference": 0.5, "site_floor_max_inference": 0.0}
    venv = CpmVecEnv(one_class, 2)
    action, _ = policy.predict(venv.reset())
    assert action.shape == (2, 2)  # battery and the one cap: the padded class's action dropped
    assert np.isfinite(run_controller(policy, venv, [100, 101], "generalist").reward).all()
    extra = resolve_scenario(base, {"site": {"gpu_classes": [
        {"name": "training", "share": 0.5}, {"name": "inference", "share": 0.3, "workload": {"kind": "inference"}},
        {"name": "storage", "share": 0.2, "workload": {"kind": "inference"}}]}})
    with pytest.raises(ValueError, match=r"GPU classes \['training', 'inference', 'storage'\]: a policy built for "
                                         r"\['training', 'inference'\] runs a site with some of those classes"):
        PPOController(run, Site(extra))


def test_evaluating_a_family_as_one_site_is_refused(capsys, tmp_path):
    import evaluate
    from agents.evaluation.runner import make_controller, run_controller

    assert evaluate.main(["--scenario", FAMILY_ID, "--seeds", "100", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "draws a site per seed" in err and not (tmp_path / "out").exists()
    venv = make_vec(FAMILY_ID, n_envs=2, scenario=SHORT)
    with pytest.raises(ValueError, match="greedy: reads one site's model, and the site family"):
        run_controller(make_controller("greedy", venv.site), venv, [1, 2], "greedy")


def test_generalization_benchmark_reports_every_set(family_run, tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("generalization", cpm_env.SCENARIO_DIR.parents[1]
                                                  / "benchmarks" / "generalization.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    run, path = family_run
    out = tmp_path / "out"
    assert module.main(["--family", str(path), "--generalist", str(run), "--sites", "3", "--seeds", "1",
                        "--shipped", "none", "--out", str(out)]) == 0
    frame = __import__("pandas").read_csv(out / "generalization.csv")
    assert set(frame.set) == {"family", "outside"} and np.isfinite(frame.pct_oracle).all()
    assert set(frame[frame.set == "family"].controller) == {*module.RULE_NAMES, "generalist", "generalist+shield"}
    text = (out / "generalization.md").read_text()
    assert "| 3 | " in text and "oversubscription 1.9" in text and "at or above the best rule on" in text
