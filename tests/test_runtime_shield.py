"""The safety filter on the runtime side (issue 14): the site model as JSON, policy.json's ``shield``
section, the exported controller applying the filter (the same KPIs as ``ppo+shield``), its fail-safe
under fuzzing, and the numpy-only import path a controller host uses."""

import json
import re

import pytest

from cpm_env.config import resolve_scenario, scenario_ids
from cpm_env.site import SiteParams, make_params, params_from_json, params_to_json
from tests.conftest import run_python


@pytest.mark.parametrize("scenario", sorted(scenario_ids()))
def test_site_params_round_trip_through_json_exactly(scenario):
    p = make_params(resolve_scenario(scenario))
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
