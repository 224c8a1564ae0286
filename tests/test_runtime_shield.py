"""The safety filter on the runtime side (issue 14): the site model as JSON, policy.json's ``shield``
section, the exported controller applying the filter (the same KPIs as ``ppo+shield``), its fail-safe
under fuzzing, and the numpy-only import path a controller host uses."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import export as export_cli
from agents.evaluation.runner import make_controller, run_controller
from agents.learning.export import export_policy
from agents.runtime import PolicyController, seal
from conftest import one_site, run_python
from cpm_env.config import resolve_scenario, scenario_ids
from cpm_env.scenario import Site
from cpm_env.shield import GAVE_UP, MARGIN_MW, shield
from cpm_env.site import SiteParams, make_params, params_from_json, params_to_json
from cpm_env.vec_env import make_vec


@pytest.mark.parametrize("scenario", sorted(scenario_ids()))
def test_site_params_round_trip_through_json_exactly(scenario):
    p = make_params(one_site(scenario))
    data = json.loads(json.dumps(params_to_json(p), allow_nan=False))
    back = params_from_json(data)
    assert back == p and repr(back) == repr(p)  # the same values, and floats stay floats (not ints)
    assert all(type(v) is type(w) for v, w in zip(back, p))


def _params_json() -> dict:
    return params_to_json(make_params(resolve_scenario("DataCenter-v0")))


FIELDS = ", ".join(SiteParams._fields)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("pue"), f"x.pue: missing: the fields are {FIELDS}"),
    (lambda d: d.update(volts=1.0), f"x.volts: unknown field: the fields are {FIELDS}"),
    (lambda d: d.update(pue="1.2"), "x.pue = '1.2': must be a finite number"),
    (lambda d: d.update(pue=float("nan")), "x.pue = nan: must be a finite number"),
    (lambda d: d.update(pue=True), "x.pue = True: must be a finite number"),
    (lambda d: d.update(allow_export=0), "x.allow_export = 0: must be true or false"),
    (lambda d: d.update(peak_mw=[]), "x.peak_mw = []: must be a non-empty list, one entry per GPU class"),
    (lambda d: d.update(cap_min=[0.3]),
     "x.cap_min = [0.3]: must be a list of one per GPU class (2, as peak_mw), each a finite number"),
    (lambda d: d.update(serving=[True, 1]),
     "x.serving = [True, 1]: must be a list of one per GPU class (2, as peak_mw), each true or false"),
    (lambda d: d.update(curve_y=[[0.0, 1.0], [1.0]]),
     "x.curve_y = [[0.0, 1.0], [1.0]]: must be a list of one per GPU class (2, as peak_mw), each a list of at "
     "least 2 points, each a finite number"),
    (lambda d: d["curve_x"].__setitem__(1, d["curve_x"][1][::-1]),
     lambda d: f"x.curve_x[1] = {d['curve_x'][1]!r}, curve_y[1] = {d['curve_y'][1]!r}: must be as many points "
               "each, curve_x strictly increasing"),
    (lambda d: d.update(dt_h=0.0), "x.dt_h = 0.0: must be > 0"),
    (lambda d: d.update(peak_mw=[81.25, -1.0]), "x.peak_mw = [81.25, -1.0]: must be > 0"),
])
def test_bad_site_params_are_one_line_errors_naming_the_field(change, message):
    data = _params_json()
    change(data)
    with pytest.raises(ValueError) as err:
        params_from_json(data, "x")
    assert str(err.value) == (message(data) if callable(message) else message)
    with pytest.raises(ValueError, match=re.escape("x = [1]: must be a JSON object of the SiteParams fields")):
        params_from_json([1], "x")


def test_without_gymnasium_the_package_offers_the_filters_modules():
    """The numpy-only fallback of cpm_env/__init__: the site model, the physics, its backends and the filter,
    by attribute too (before this, ``cpm_env.forecast`` on such a host recursed without end)."""
    done = run_python(
        "import json, sys\n"
        "sys.modules['gymnasium'] = sys.modules['yaml'] = None\n"
        "import cpm_env\n"
        "got = [cpm_env.shield.__name__, cpm_env.site.__name__, cpm_env.forecast.__name__]\n"
        "try:\n"
        "    cpm_env.config\n"
        "except AttributeError as err:\n"
        "    missing = str(err)\n"
        "print(json.dumps({'got': got, 'missing': missing, 'NUMPY_ONLY_MODULES': cpm_env.NUMPY_ONLY_MODULES,\n"
        "                  'modules': sorted(m for m in sys.modules if m.split('.')[0] == 'cpm_env')}))\n")
    got = json.loads(done.stdout)
    assert got["got"] == ["cpm_env.shield", "cpm_env.site", "cpm_env.forecast"]
    assert got["NUMPY_ONLY_MODULES"] == ["forecast", "ops", "physics", "shield", "site"]
    assert got["modules"] == ["cpm_env", "cpm_env.forecast", "cpm_env.ops", "cpm_env.physics", "cpm_env.shield",
                              "cpm_env.site"]
    assert got["missing"] == ("cpm_env.config: needs gymnasium and PyYAML, not installed: this install offers only "
                              "cpm_env.forecast, cpm_env.ops, cpm_env.physics, cpm_env.shield, cpm_env.site (the "
                              "runtime's); install the project with its dependencies for the rest")


# ---------------------------------------------------------------- policy.json's shield section and the runtime

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """``exports(model_id, shield)``: (folder, sidecar) of the shipped policy, exported once per pair."""
    done: dict = {}

    def get(model_id: str = "DataCenter-v0", shield: bool | None = True):
        if (model_id, shield) not in done:
            out = tmp_path_factory.mktemp("export") / "policy"
            done[model_id, shield] = out, export_policy(MODELS / model_id, out, shield=shield)
        return done[model_id, shield]

    return get


@pytest.fixture(scope="module")
def filtered(exports):
    return PolicyController.load(exports()[0])


def test_policy_json_records_the_filter(exports):
    out, spec = exports()
    site = Site(str(MODELS / "DataCenter-v0" / "scenario.yml"))
    section = spec["shield"]
    assert section["enabled"] is True and section["trained_behind_filter"] is False  # the shipped policy: without
    assert params_from_json(section["site_params"]) == site.params  # the one source: site.params, exactly
    assert section["margin_mw"] == MARGIN_MW and section["constraints"] == ["limit", "ramp", "band"]
    assert section["class_names"] == ["training", "inference"] and section["floor_classes"] == []
    assert section["entries"] == ["demand_training", "demand_inference", "swing_training", "swing_inference", "duty",
                                  "grid_limit", "grid_import_prev", "soc", "cap_training_prev", "cap_inference_prev"]
    assert spec["schema_version"] == 7 and json.loads((out / "policy.json").read_text()) == spec
    default = exports(shield=None)[1]["shield"]  # the default: as trained (no env_options: off)
    assert default["enabled"] is False and default["site_params"] == section["site_params"]
    assert PolicyController.load(exports(shield=None)[0]).safety_filter is None


def test_the_default_follows_the_manifests_env_options(tmp_path, capsys):
    model = Path(shutil.copytree(MODELS / "DataCenter-v0", tmp_path / "model"))
    manifest = json.loads((model / "manifest.json").read_text())
    (model / "manifest.json").write_text(json.dumps({**manifest, "env_options": {"shield": True}}))
    assert export_cli.main([str(model), "--out", str(tmp_path / "on"), "--parity-obs", "10000"]) == 0
    assert export_cli.main([str(model), "--out", str(tmp_path / "off"), "--no-shield", "--parity-obs", "10000"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("safety filter")]
    assert lines == ["safety filter: on (the policy was trained behind it)",
                     "safety filter: off (the policy was trained behind it)"]
    assert PolicyController.load(tmp_path / "on").safety_filter is not None
    assert PolicyController.load(tmp_path / "off").safety_filter is None


def _resealed(exports, tmp_path, change) -> Path:
    path = Path(shutil.copytree(exports()[0], tmp_path / "copy"))
    spec = json.loads((path / "policy.json").read_text())
    change(spec["shield"])
    (path / "policy.json").write_text(json.dumps(seal(spec, (path / "policy.onnx").read_bytes())))
    return path


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update(enabled="yes"), "policy.json: shield.enabled = 'yes': must be true or false"),
    (lambda s: s.pop("site_params"), "policy.json: field 'shield.site_params' missing: re-export the policy with "
                                     "export.py"),
    (lambda s: s["site_params"].update(pue=None),
     "policy.json: shield.site_params.pue = None: must be a finite number"),
    (lambda s: s.update(margin_mw=-1.0), "policy.json: shield.margin_mw = -1.0: must be a finite number >= 0 (MW)"),
    (lambda s: s.update(constraints=["ramp", "limit", "band"]),
     "policy.json: shield.constraints = ['ramp', 'limit', 'band']: this runtime's filter has ['limit', 'ramp', "
     "'band'], in that order"),
    (lambda s: s.update(class_names=["training"]),
     "policy.json: shield.class_names = ['training']: must be 2 names (one per GPU class of shield.site_params)"),
    (lambda s: s.update(floor_classes=[0]),
     "policy.json: actions has 3 entries: the safety filter (shield.class_names, shield.floor_classes) reads "
     "battery, 2 caps and 1 floors"),
    (lambda s: s["entries"].reverse(), "policy.json: shield.entries = ['cap_inference_prev', 'cap_training_prev', "
     "'soc', 'grid_import_prev', 'grid_limit', 'duty', 'swing_inference', 'swing_training', 'demand_inference', "
     "'demand_training']: must be the observation entries ['demand_training', 'demand_inference', 'swing_training', "
     "'swing_inference', 'duty', 'grid_limit', 'grid_import_prev', 'soc', 'cap_training_prev', 'cap_inference_prev']"),
])
def test_load_refuses_a_shield_section_it_cannot_apply(exports, tmp_path, change, message):
    path = _resealed(exports, tmp_path, change)
    with pytest.raises(ValueError) as err:
        PolicyController.load(path)
    assert str(err.value) == message


def test_a_changed_shield_section_breaks_the_seal(exports, tmp_path):
    path = Path(shutil.copytree(exports()[0], tmp_path / "copy"))
    spec = json.loads((path / "policy.json").read_text())
    spec["shield"]["site_params"]["ramp_step_mw"] = 1e9  # a filter that lets every ramp pass
    (path / "policy.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=r"^policy.json: checksum .* does not match checksum.sha256"):
        PolicyController.load(path)


@pytest.mark.parametrize("model_id, hours, seeds", [("DataCenter-v0", 2.0, [100, 101]), ("FastRamp-v0", 0.1, [100])])
def test_evaluate_onnx_behind_its_filter_equals_ppo_shield(exports, tmp_path, model_id, hours, seeds,
                                                           one_torch_thread):
    """The exported controller with its filter gives the KPIs of ppo+shield (same seeds, a short variant of the
    scenario): the same decoding, the same filter, on set-points within the export's parity of the model's."""
    data = yaml.safe_load((MODELS / model_id / "scenario.yml").read_text())
    data.update({"id": "Short-v0", "duration_h": hours})
    (tmp_path / "short.yml").write_text(yaml.safe_dump(data))
    venv = make_vec(str(tmp_path / "short.yml"), len(seeds))
    ppo = make_controller(f"ppo:{MODELS / model_id}+shield", venv.site, allow_other_scenario=True)
    onnx = make_controller(f"onnx:{exports(model_id)[0]}", venv.site)
    assert isinstance(make_controller(f"onnx:{exports(model_id)[0]}+shield", venv.site), PolicyController)  # once
    a = run_controller(ppo, venv, seeds, "x")
    b = run_controller(onnx, venv, seeds, "x")
    assert a.shield_interventions.sum() > 0 and "shield_interventions" in b  # the filter acted
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-6, atol=1e-5)


def test_evaluate_refuses_a_filter_of_another_site_model(exports):
    site = Site(resolve_scenario(str(MODELS / "DataCenter-v0" / "scenario.yml"),
                                 {"reward": {"burn_per_mwh": 0.03}}))
    with pytest.raises(ValueError) as err:
        make_controller(f"onnx:{exports()[0]}", site)
    assert str(err.value) == (f"onnx:{exports()[0]}: its safety filter's site model (policy.json "
                              "shield.site_params) differs from DataCenter-v0's in w_burn: export the policy "
                              "for this scenario")


def test_single_batch_json_and_predict_agree(filtered, exports):
    """act (the fast path and the search), act_batch, the JSON line and predict give the same set-points and
    reports; the filter moved some, and what it returns keeps the contract on the decoded step."""
    bare = PolicyController.load(exports()[0], shield=False)
    obs = np.concatenate([bench_observations(bare, 32), [(filtered.obs_low + filtered.obs_high) / 2]])
    batch = filtered.act_batch(obs)
    assert filtered.last_fallback_reason is None
    report = filtered.last_shield_report
    assert report.intervened.any() and not report.intervened.all()
    actions, _ = filtered.predict(obs)
    assert actions.dtype == np.float64
    for i, row in enumerate(obs):
        y = filtered.act(row)
        np.testing.assert_array_equal(y, batch[i])
        one = filtered.last_shield_report
        assert bool(one.intervened) == report.intervened[i] and float(one.delta_mw) == report.delta_mw[i]
        assert int(one.gave_up) == report.gave_up[i]
        answer = filtered.respond(json.dumps(row.tolist()))
        assert answer["setpoints"] == filtered.setpoint_dict(y)
        assert answer["shield"] == {"intervened": bool(one.intervened), "delta_mw": float(one.delta_mw),
                                    "gave_up": GAVE_UP[int(one.gave_up)]}
        np.testing.assert_array_equal(filtered.predict(row)[0], actions[i])
        if not one.intervened:
            np.testing.assert_array_equal(y, bare.act(row))  # passed unchanged, bit for bit
            assert filtered.predict(row)[0].tobytes() == bare.predict(row)[0].astype(np.float64).tobytes()
    assert filtered.respond("not json")["shield"] is None and "shield" not in bare.respond("not json")


def bench_observations(controller: PolicyController, n: int) -> np.ndarray:
    """(n, n_obs) observations of DataCenter-v0 sites an hour into a day, driven by ``controller``."""
    venv = make_vec(str(MODELS / "DataCenter-v0" / "scenario.yml"), n, seed=1000)
    obs = venv.reset()
    for _ in range(60):
        obs, *_ = venv.step(controller.predict(obs)[0])
    return obs


def test_filter_errors_and_bad_filter_outputs_fall_back(filtered, monkeypatch):
    import agents.runtime as runtime

    mid = (filtered.obs_low + filtered.obs_high) / 2  # the filter acts here (gives up the ramp)
    filtered.act(mid)
    assert filtered.last_shield_report.intervened
    monkeypatch.setattr(runtime, "shield_site", lambda *a: (_ for _ in ()).throw(RuntimeError("bug\nmore")))
    np.testing.assert_array_equal(filtered.act(mid), filtered.safe_setpoints)
    assert filtered.last_fallback_reason == "safety filter: RuntimeError: bug" and filtered.last_shield_report is None
    assert filtered.respond(json.dumps(mid.tolist()))["shield"] is None

    def nan_filter(p, s, x, a, margin):
        safe, report = shield(p, s, x, a, margin)
        return safe._replace(battery_mw=np.array(np.nan)), report._replace(intervened=np.array(True))

    monkeypatch.setattr(runtime, "shield_site", nan_filter)
    np.testing.assert_array_equal(filtered.act(mid), filtered.safe_setpoints)
    assert filtered.last_fallback_reason.startswith("safety filter output [nan, ")
    assert filtered.last_fallback_reason.endswith("not finite or outside the action bounds")
    monkeypatch.setattr(runtime, "shield", lambda *a: (_ for _ in ()).throw(MemoryError()))
    y = filtered.act_batch(np.stack([mid, mid]))
    np.testing.assert_array_equal(y, np.tile(filtered.safe_setpoints, (2, 1)))
    assert filtered.last_fallback_reason == "2 of 2 rows fell back; row 0: safety filter: MemoryError: "


def test_telemetry_the_physics_never_reaches_falls_back(filtered):
    """A SoC above its maximum (inside the observation's bounds) makes the physics discharge beyond the rating:
    the filter's answer is outside the action bounds, so the step gets the safe action."""
    obs = (filtered.obs_low + filtered.obs_high) / 2
    obs[filtered.obs_names.index("soc")] = 1.0
    np.testing.assert_array_equal(filtered.act(obs), filtered.safe_setpoints)
    assert "not finite or outside the action bounds" in filtered.last_fallback_reason
    filtered.act_batch(np.stack([obs, (filtered.obs_low + filtered.obs_high) / 2]))
    assert filtered.last_fallback_reason.startswith("1 of 2 rows fell back; row 0: safety filter output")
    assert not filtered.last_shield_report.intervened[0] and filtered.last_shield_report.intervened[1]


class Proposals:
    """An onnxruntime session stand-in: per observation (float32 bytes), the set-points drawn for it."""

    def __init__(self, n_actions: int):
        self.n_actions, self.table = n_actions, {}

    def run(self, names, inputs):
        x = next(iter(inputs.values()))
        return [np.array([self.table.get(row.astype(np.float32).tobytes(), [np.nan] * self.n_actions) for row in x])]


def fuzz_values(low: float, high: float):
    """Floats anywhere (in-bounds, at the bounds, out of bounds, huge, non-finite) around [low, high]."""
    span = high - low
    return st.one_of(st.floats(low, high), st.sampled_from([low, high]),
                     st.floats(low - 2 * span, high + 2 * span), st.floats(allow_nan=True, allow_infinity=True))


def vectors(data, lows: np.ndarray, highs: np.ndarray) -> list[float]:
    """One vector: inside its bounds (half the time; a third of those at a bound entry by entry), or fuzzed."""
    kind = data.draw(st.sampled_from(["inside", "edges", "fuzz"]))
    values = {"inside": st.floats, "edges": lambda lo, hi: st.one_of(st.floats(lo, hi), st.sampled_from([lo, hi])),
              "fuzz": fuzz_values}[kind]
    return [data.draw(values(lo, hi)) for lo, hi in zip(lows, highs)]


@pytest.fixture(scope="module", params=["DataCenter-v0", "import_change"])
def fuzzed_export(request, exports, import_change_exports) -> Path:
    """An export behind the filter: the shipped DataCenter-v0 policy, or a tiny one trained with
    battery_action = import_change (the runtime converts its first output, then filters)."""
    return exports()[0] if request.param == "DataCenter-v0" else import_change_exports[1]


@settings(max_examples=40)
@given(data=st.data())
def test_fuzzed_observations_and_proposals_never_break_the_runtime(fuzzed_export, data):
    """Whatever the telemetry and the policy's proposal (inside or outside their bounds, at them, non-finite),
    act, act_batch and the JSON line never raise, and every set-point is finite and inside the action bounds;
    the batch gives each row what act gave it."""
    ctrl = PolicyController.load(fuzzed_export)
    session = Proposals(len(ctrl.action_names))
    ctrl._session = session
    rows, answers = [], []
    for _ in range(data.draw(st.integers(1, 3))):
        obs = np.array(vectors(data, ctrl.obs_low, ctrl.obs_high))
        with np.errstate(over="ignore"):  # huge entries: float32 inf, as the runtime's feed would hold them
            session.table[obs.astype(np.float32).tobytes()] = vectors(data, ctrl.output_low, ctrl.output_high)
        y = ctrl.act(obs)
        assert np.all(np.isfinite(y)) and np.all(ctrl.action_low <= y) and np.all(y <= ctrl.action_high)
        fell_back = ctrl.last_fallback_reason is not None
        assert fell_back == (ctrl.last_shield_report is None)  # the filter ran unless the step fell back
        if fell_back:
            np.testing.assert_array_equal(y, ctrl.safe_setpoints)
            assert "\n" not in ctrl.last_fallback_reason
        answer = ctrl.respond(json.dumps(obs.tolist()))
        assert set(answer) == {"setpoints", "fallback", "shield"} and json.dumps(answer, allow_nan=False)
        rows.append(obs)
        answers.append(y)
    y = ctrl.act_batch(np.stack(rows))
    assert np.all(np.isfinite(y)) and np.all(ctrl.action_low <= y) and np.all(y <= ctrl.action_high)
    for got, expected in zip(y, answers):  # row by row what act gave (the fast path is the batch path)
        np.testing.assert_array_equal(got, expected)
