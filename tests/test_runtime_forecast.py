"""The exported controller computes its own forecast entries (issue 13): telemetry + schedule in, set-points out.

Tiny policies trained here (one per ``forecast.kind``, a 2 h DataCenter-v0) are exported; the
runtime's :meth:`PolicyController.observation` from telemetry and the episode's schedule must
reproduce the env's observation at every step, the end of the episode included.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import cpm_env
import train
from agents.learning.export import export_policy, forecast_section
from agents.runtime import PolicyController
from conftest import TINY_TRAINING
from cpm_env.config import ForecastConfig, resolve_scenario
from cpm_env.env import CpmEnv
from cpm_env.forecast import STEP_FORECASTERS, ForecastInputs, forecast_step_mw, make_forecaster

ROOT = Path(__file__).resolve().parents[1]
DURATION_H = 2.0  # 120 steps: half of them within the longest horizon (60) of the end


@pytest.fixture(scope="module")
def export_of(tmp_path_factory):
    """``export_of(kind)``: (export folder, scenario YAML) of a tiny policy trained on a 2 h DataCenter-v0
    whose forecast is ``kind`` ("disabled": no forecast); trained and exported once per kind."""
    done: dict[str, tuple[Path, Path]] = {}

    def get(kind: str) -> tuple[Path, Path]:
        if kind not in done:
            root = tmp_path_factory.mktemp(kind)
            data = yaml.safe_load(cpm_env.DEFAULT_SCENARIO.read_text())
            data.update({"id": "Short-v0", "duration_h": DURATION_H})
            data["forecast"] = {"enabled": False} if kind == "disabled" else {**data["forecast"], "kind": kind}
            scenario = root / "short.yml"
            scenario.write_text(yaml.safe_dump(data))
            assert train.main(["--scenario", str(scenario), "--run-dir", str(root / "run")] + TINY_TRAINING) == 0
            export_policy(root / "run", root / "export")
            done[kind] = root / "export", scenario
        return done[kind]

    return get


def telemetry_of(ctrl: PolicyController, obs: np.ndarray) -> list[float]:
    """The observation's entries but the forecast ones, in policy.json order."""
    return [float(v) for v, name in zip(obs, ctrl.obs_names) if name in ctrl.telemetry_names]


def schedule_window(env: CpmEnv, t: int, horizon: int) -> list[float]:
    """The episode's scheduled facility demand (MW) at steps t..t+horizon (fewer at the end)."""
    assert env.episode is not None
    return env.episode.scheduled_mw[t:t + horizon + 1, 0].tolist()


@pytest.mark.parametrize("kind", [k for k in STEP_FORECASTERS] + ["disabled"])
def test_runtime_reproduces_the_env_observation_from_telemetry(export_of, kind, one_torch_thread):
    folder, scenario = export_of(kind)
    ctrl = PolicyController.load(folder)
    horizon = max(ctrl.forecast.get("horizons_steps", [0]))
    env = CpmEnv(str(scenario))
    for seed in (7, 8):
        obs, _ = env.reset(seed=seed)
        for t in range(env.config.n_steps):
            window = schedule_window(env, t, horizon)
            got = ctrl.observation(telemetry_of(ctrl, obs), window)
            np.testing.assert_allclose(got, obs, rtol=1e-6, atol=1e-7, err_msg=f"step {t}")
            named = dict(zip(ctrl.telemetry_names, telemetry_of(ctrl, obs)))
            expected = ctrl.act(obs)
            np.testing.assert_allclose(ctrl.act_telemetry(named, window), expected, rtol=1e-5, atol=1e-6)
            assert ctrl.last_fallback_reason is None
            obs, *_ = env.step(ctrl.predict(obs)[0])


@given(st.sampled_from(list(STEP_FORECASTERS)), st.integers(1, 40), st.integers(0, 39),
       st.lists(st.integers(1, 50), min_size=1, max_size=4), st.integers(0, 2**32 - 1))
def test_one_step_forecast_equals_the_episode_forecaster(kind, n_steps, t, horizons, seed):
    t = t % n_steps
    rng = np.random.default_rng(seed)
    demand = rng.uniform(0, 150, (n_steps, 1))
    scheduled = rng.uniform(-50, 150, (n_steps, 1))
    cfg = ForecastConfig(kind=kind, horizons_steps=tuple(horizons))  # type: ignore[arg-type]
    whole = make_forecaster(cfg).forecast_mw(ForecastInputs(demand, scheduled, 1 / 60), [rng])
    window = scheduled[t:, 0]  # to the episode's end: longer or shorter than max(h) + 1
    np.testing.assert_array_equal(forecast_step_mw(kind, demand[t, 0], window, horizons), whole[t, 0])
    np.testing.assert_array_equal(forecast_step_mw(kind, demand[t, 0], window[:max(horizons) + 1], horizons),
                                  whole[t, 0])


def test_oracle_noisy_cannot_be_forecast_in_one_step():
    with pytest.raises(ValueError, match="forecast.kind = 'oracle_noisy': reads the realized future") as err:
        forecast_step_mw("oracle_noisy", 50.0, [0.0], [1])
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def controller(export_of):
    return PolicyController.load(export_of("schedule_persistence")[0])


@pytest.fixture(scope="module")
def good(controller, export_of):
    """A real (observation, telemetry dict, schedule window) of the schedule_persistence site."""
    env = CpmEnv(str(export_of("schedule_persistence")[1]))
    obs, _ = env.reset(seed=3)
    return obs, dict(zip(controller.telemetry_names, telemetry_of(controller, obs))), schedule_window(env, 0, 60)


def _assert_safe(ctrl: PolicyController, setpoints, *reason_parts: str):
    np.testing.assert_array_equal(setpoints, ctrl.safe_setpoints)
    reason = ctrl.last_fallback_reason
    assert reason is not None and "\n" not in reason and all(p in reason for p in reason_parts), reason


@pytest.mark.parametrize("bad, reason", [
    ("missing_name", "telemetry: 'soc' missing"),
    ("unknown_name", "telemetry: unknown name 'sock'"),
    ("forecast_name", "unknown name 'forecast_1' (forecast entries are computed from schedule_mw)"),
    ("short_list", "telemetry: shape"),
    ("long_list", "telemetry: shape"),
    ("string_value", "telemetry: shape"),
    ("nan_value", "(soc) = nan: not finite"),
    ("no_schedule", "schedule_mw: missing: forecast.kind = 'schedule_persistence' needs"),
    ("string_schedule", "schedule_mw: shape"),
    ("nested_schedule", "schedule_mw: shape (1, 61)"),
    ("ragged_schedule", "schedule_mw: not a list of numbers"),
    ("empty_schedule", "schedule_mw: shape (0,)"),
    ("nan_schedule", "schedule_mw[3] = nan: not finite"),
    ("inf_schedule", "schedule_mw[0] = inf: not finite"),
])
def test_bad_telemetry_falls_back_naming_the_field(controller, good, bad, reason):
    obs, named, window = good
    values = list(named.values())
    telemetry, schedule = {
        "missing_name": ({k: v for k, v in named.items() if k != "soc"}, window),
        "unknown_name": ({**named, "sock": 0.5}, window),
        "forecast_name": ({**named, "forecast_1": 0.5}, window),
        "short_list": (values[:-1], window),
        "long_list": (values + [0.0], window),
        "string_value": ({**named, "soc": "full"}, window),
        "nan_value": ({**named, "soc": float("nan")}, window),
        "no_schedule": (named, None),
        "string_schedule": (named, "soon"),
        "nested_schedule": (named, [window]),
        "ragged_schedule": (named, [window, [1.0]]),
        "empty_schedule": (named, []),
        "nan_schedule": (named, window[:3] + [float("nan")] + window[4:]),
        "inf_schedule": (named, [float("inf")] + window[1:]),
    }[bad]
    _assert_safe(controller, controller.act_telemetry(telemetry, schedule), reason)
    controller.act_telemetry(named, window)
    assert controller.last_fallback_reason is None
    np.testing.assert_allclose(controller.act_telemetry(values, window), controller.act(obs), rtol=1e-5, atol=1e-6)


def test_persistence_needs_no_schedule_and_zeros_stand_for_none(export_of):
    ctrl = PolicyController.load(export_of("persistence")[0])
    obs, _ = CpmEnv(str(export_of("persistence")[1])).reset(seed=4)
    telemetry = telemetry_of(ctrl, obs)
    np.testing.assert_array_equal(ctrl.observation(telemetry), ctrl.observation(telemetry, [1.0, 2.0]))
    sp = PolicyController.load(export_of("schedule_persistence")[0])  # zeros: the schedule foretells no change
    sp_telemetry = telemetry_of(sp, CpmEnv(str(export_of("schedule_persistence")[1])).reset(seed=4)[0])
    got = sp.observation(sp_telemetry, [0.0])
    np.testing.assert_array_equal(got[sp._forecast_idx], np.repeat(got[sp.obs_names.index("facility_demand")], 4))


def test_an_oracle_noisy_policy_is_refused_in_telemetry_mode(export_of):
    folder, scenario = export_of("oracle_noisy")
    ctrl = PolicyController.load(folder)
    assert ctrl.forecast["kind"] == "oracle_noisy" and ctrl.forecast["causal"] is False
    obs, _ = CpmEnv(str(scenario)).reset(seed=5)
    _assert_safe(ctrl, ctrl.act_telemetry(telemetry_of(ctrl, obs), [0.0] * 61), "forecast.kind = 'oracle_noisy'",
                 "realized future")
    ctrl.act(obs)  # whole observations still work
    assert ctrl.last_fallback_reason is None


@pytest.mark.parametrize("kind", ["schedule_persistence", "persistence", "oracle_noisy"])
def test_the_forecast_section_matches_the_scenario(export_of, kind):
    folder, scenario = export_of(kind)
    spec = json.loads((folder / "policy.json").read_text())
    cfg = resolve_scenario(str(scenario))
    section = spec["forecast"]
    assert section == forecast_section(cfg)
    assert (section["enabled"], section["kind"], section["causal"]) == (True, kind, kind != "oracle_noisy")
    assert section["horizons_steps"] == list(cfg.forecast.horizons_steps) == [1, 5, 15, 60]
    names = [o["name"] for o in spec["observations"]]
    assert section["entries"] == [n for n in names if n.startswith("forecast_")] == ["forecast_1", "forecast_5",
                                                                                    "forecast_15", "forecast_60"]
    assert section["demand_entry"] == "facility_demand" in names
    assert (section["limit_mw"], section["oversubscription"]) == (cfg.grid.limit_mw, cfg.site.oversubscription)
    assert ("t+60" in section["schedule_mw"]) == (kind != "oracle_noisy")
    assert ("required" in section["schedule_mw"]) == (kind == "schedule_persistence")


def test_a_scenario_without_forecast_has_a_disabled_section(export_of):
    folder, _ = export_of("disabled")
    assert json.loads((folder / "policy.json").read_text())["forecast"] == {"enabled": False, "entries": []}
    ctrl = PolicyController.load(folder)
    assert ctrl.telemetry_names == ctrl.obs_names


@pytest.mark.parametrize("old", [2, 3, 4, 5, 6])  # before: 3 the shield, 4 battery_action, 5 site_parameters,
def test_an_export_of_an_older_schema_is_refused(controller, old):  # 6 the observations' sources
    spec = {**controller.spec, "schema_version": old}
    with pytest.raises(ValueError, match=f"schema_version = {old}: this runtime reads 7: re-export") as err:
        PolicyController(spec, b"")
    assert "\n" not in str(err.value)


def test_json_lines_with_telemetry_and_schedule(export_of, controller, good):
    obs, named, window = good
    telemetry = list(named.values())
    lines = [{"telemetry": telemetry, "schedule_mw": window}, {"telemetry": named, "schedule_mw": window},
             {"obs": obs.tolist()}, {"telemetry": named}, {"obs": obs.tolist(), "telemetry": named},
             {"telemetry": named, "schedule_mw": window[:5] + ["x"]}]
    done = subprocess.run([sys.executable, "-m", "agents.runtime", str(export_of("schedule_persistence")[0])],
                          cwd=ROOT, text=True, input="".join(json.dumps(line) + "\n" for line in lines),
                          capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    expected = controller.setpoint_dict(controller.act_telemetry(telemetry, window))
    assert answers[0] == answers[1] == {"setpoints": expected, "fallback": None}
    assert answers[2]["fallback"] is None
    np.testing.assert_allclose(list(answers[2]["setpoints"].values()), list(expected.values()), rtol=1e-5, atol=1e-6)
    safe = controller.setpoint_dict(controller.safe_setpoints)
    for answer, reason in zip(answers[3:], ["schedule_mw: missing", "one of the fields 'obs' or 'telemetry'",
                                            "schedule_mw: shape"]):
        assert answer["setpoints"] == safe and reason in answer["fallback"]


def test_without_gymnasium_the_runtime_loads_only_its_modules(controller, good, export_of):
    """As on a controller host (tests/test_runtime_install.py does it for real): gymnasium and PyYAML absent."""
    _, named, window = good
    code = (
        "import json, sys\n"
        "sys.modules['gymnasium'] = sys.modules['yaml'] = None\n"
        "from agents.runtime import PolicyController\n"
        f"c = PolicyController.load({str(export_of('schedule_persistence')[0])!r})\n"
        f"y = c.act_telemetry({named!r}, {window!r})\n"
        "import cpm_env\n"
        "try:\n"
        "    cpm_env.env\n"
        "except AttributeError as err:\n"
        "    missing = str(err)\n"
        "print(json.dumps({'setpoints': y.tolist(), 'fallback': c.last_fallback_reason, 'missing': missing,\n"
        "                  'modules': sorted(m for m in sys.modules if m.split('.')[0] in ('agents', 'cpm_env')),\n"
        "                  'heavy': [m for m in ('torch', 'stable_baselines3') if m in sys.modules]}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["fallback"] is None and got["heavy"] == []
    assert got["modules"] == ["agents", "agents.runtime", "cpm_env", "cpm_env.forecast", "cpm_env.ops",
                              "cpm_env.physics", "cpm_env.shield", "cpm_env.site"]
    assert got["missing"].startswith("cpm_env.env: needs gymnasium and PyYAML, not installed")
    np.testing.assert_array_equal(got["setpoints"], controller.act_telemetry(named, window))
