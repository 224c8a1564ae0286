"""Bad inputs (issue 12): each is refused with one exact line naming the input, and nothing on disk changes.

Every test that reads a file snapshots its folder (names and bytes) before and checks it after.
"""

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

import cpm_env
from cpm_env import config
from cpm_env.config import ConfigError, load_scenario, read_yaml, resolve_scenario
from cpm_env.workloads import Timing, TraceGenerator

DEFAULT = str(cpm_env.DEFAULT_SCENARIO)
ID_RULE = ("must be a name like Name-v0 (up to 100 letters, digits and - _ . inside; it becomes a folder name, "
           "so no path separators, no '..', no leading dot)")
KINDS = "['inference', 'mixed', 'requests', 'trace', 'training']"
BUDGET = "over the 2 GB memory budget (cpm_env.config.MEMORY_BUDGET_BYTES)"


def raises_one_line(exc: type[Exception], pattern: str, fn, *args, **kwargs) -> str:
    """The message of the ``exc`` that ``fn`` raises: one line, and ``pattern`` matches all of it."""
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    assert re.fullmatch(pattern, msg), msg
    return msg


def exactly(text: str) -> str:
    """A pattern matching ``text`` literally."""
    return re.escape(text)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative name -> bytes): what a refusal must leave as it was."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def unchanged(tmp_path):
    """``tmp_path``; after the test, its files' names and bytes are those it had when first checked."""
    before: dict[str, dict[str, bytes]] = {}

    def check() -> None:
        before.setdefault("files", snapshot(tmp_path))
        assert snapshot(tmp_path) == before["files"]

    yield check
    check()


def write(folder: Path, name: str, text: str | bytes) -> Path:
    """Write ``text`` to ``folder/name``; return the path."""
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def trace_scenario(path: Path, **workload) -> dict:
    """Overrides of a one-hour default site whose only class replays the CSV at ``path``."""
    wl = {"kind": "trace", "path": str(path), **workload}
    return {"duration_h": 1.0, "site": {"gpu_classes": [{"name": "gpus", "workload": wl}]}}


# ---------------------------------------------------------------- 1. scenario ids become folder names


@pytest.mark.parametrize("bad_id", ["../../x", "a/b", "a\\b", "..", ".hidden", "x..y", "", "trailing."])
def test_unsafe_scenario_id(tmp_path, unchanged, bad_id):
    path = write(tmp_path, "s.yml", f"id: {json.dumps(bad_id)}\nextends: DataCenter-v0\n")
    unchanged()
    raises_one_line(ConfigError, exactly(f"{path}: id = {bad_id!r}: {ID_RULE}"), load_scenario, path)
    raises_one_line(ConfigError, exactly(f"scenario override id = {bad_id!r}: {ID_RULE} (base {DEFAULT})"),
                    resolve_scenario, None, {"id": bad_id})


def test_safe_scenario_ids_load():
    for good in ("DataCenter-v0", "my_site.v2", "A"):
        assert resolve_scenario(None, {"id": good}).id == good


# ---------------------------------------------------------------- 2. tracebacks that are one-line errors now


def test_empty_forecast_horizons_only_when_enabled():
    raises_one_line(ConfigError, exactly(
        "scenario override forecast.horizons_steps = []: must list at least one step when the forecast is enabled "
        f"(or set enabled: false) (base {DEFAULT})"), resolve_scenario, None, {"forecast": {"horizons_steps": []}})
    assert resolve_scenario(None, {"forecast": {"enabled": False, "horizons_steps": []}}).forecast.horizons_steps == ()


@pytest.mark.parametrize("kind", ["[training]", "{a: 1}"])
def test_list_or_mapping_as_workload_kind(tmp_path, unchanged, kind):
    path = write(tmp_path, "s.yml", f"id: K-v0\nsite:\n  gpu_classes:\n  - {{name: a, workload: {{kind: {kind}}}}}\n")
    unchanged()
    shown = repr(yaml.safe_load(kind))
    expected = f"{path}: site.gpu_classes[0].workload.kind = {shown}: must be one of {KINDS}"
    raises_one_line(ConfigError, exactly(expected), load_scenario, path)


def test_400_digit_numbers(tmp_path, unchanged):
    huge = "7" * 400
    shown = "777777...(400-digit integer)"
    floats = write(tmp_path, "f.yml", f"id: Huge-v0\nbattery: {{capacity_mwh: {huge}}}\n")
    ints = write(tmp_path, "i.yml", f"id: Huge-v0\ngrid: {{demand_response: {{events_per_episode: -{huge}}}}}\n")
    horizons = write(tmp_path, "h.yml", f"id: Huge-v0\nforecast: {{horizons_steps: [1, {huge}]}}\n")
    trace = write(tmp_path, "t.csv", f"timestamp,power_mw\n0,1\n60,{huge}\n120,2\n")
    unchanged()
    raises_one_line(ConfigError, exactly(f"{floats}: battery.capacity_mwh = {shown}: must be a finite number"),
                    load_scenario, floats)
    raises_one_line(ConfigError, exactly(f"{ints}: grid.demand_response.events_per_episode = -{shown}: "
                                         "must be >= 0 and <= 100"), load_scenario, ints)
    raises_one_line(ConfigError, exactly(f"{horizons}: forecast.horizons_steps = [1, {shown}]: "
                                         "must be whole steps >= 1 and <= 1e+06"), load_scenario, horizons)
    raises_one_line(ConfigError, exactly(f"{trace}: line 3, column power_mw = {shown}: must be a finite number >= 0 "
                                         "(or set workload.fill: interpolate)"), cpm_env.CpmEnv, trace_scenario(trace))


def test_non_utf8_scenario_names_file_and_byte(tmp_path, unchanged):
    path = write(tmp_path, "latin1.yml", "id: Cafe-v0\ndescription: caf\xe9\n".encode("latin-1"))
    unchanged()
    raises_one_line(ConfigError, exactly(f"{path}: byte 28 (line 2) = b'\\xe9': not UTF-8: must be a UTF-8 text file"),
                    load_scenario, path)


def test_yaml_12_floats_are_numbers(tmp_path, unchanged):
    path = write(tmp_path, "s.yml", "id: Sci-v0\nextends: DataCenter-v0\nbattery: {capacity_mwh: 1e3, power_mw: .5e2}\n"
                 "reward: {burn_per_mwh: 2E-2}\n")
    plain = write(tmp_path, "v.yml", "a: 1e3\nb: -1.5e3\nc: 1e\nd: e3\ne: '1e3'\n")
    unchanged()
    cfg = load_scenario(path)
    assert (cfg.battery.capacity_mwh, cfg.battery.power_mw, cfg.reward.burn_per_mwh) == (1000.0, 50.0, 0.02)
    assert read_yaml(plain) == {
        "a": 1000.0, "b": -1500.0, "c": "1e", "d": "e3", "e": "1e3"}
    assert yaml.safe_load("a: 1e3") == {"a": "1e3"}  # PyYAML's own loader is left as it was


@pytest.mark.parametrize("stamps, zone", [
    (["2024-01-01T00:00:00Z", "2024-01-01T00:01:00+00:00", "2024-01-01T00:02:00+01:00"], "UTC offset +00:00"),
    (["2024-01-01T00:00:00", "2024-01-01T00:01:00", "2024-01-01T00:02:00-05:30"], "no time zone"),
])
def test_mixed_time_zones_in_a_trace(tmp_path, unchanged, stamps, zone):
    path = write(tmp_path, "t.csv", "timestamp,power_mw\n" + "".join(f"{s},{i + 1}\n" for i, s in enumerate(stamps)))
    unchanged()
    raises_one_line(ConfigError, exactly(
        f"{path}: line 4, column timestamp = {stamps[2]!r}: must have the time zone of line 2 ({zone}): "
        "a trace's timestamps must share one (e.g. all in UTC, with Z)"), cpm_env.CpmEnv, trace_scenario(path))


# ---------------------------------------------------------------- 3. trace outliers


def test_one_outlier_row_does_not_rescale_the_trace(tmp_path, unchanged):
    t = np.arange(2000) * 10.0
    clean = 5.0 + np.sin(t / 700.0)
    spiked = clean.copy()
    spiked[1234] = 5000.0  # a meter glitch, in data line 1236
    paths = [write(tmp_path, name, "timestamp,power_mw\n" + "".join(f"{a:g},{float(b)!r}\n" for a, b in zip(t, v)))
             for name, v in (("clean.csv", clean), ("spiked.csv", spiked))]
    unchanged()
    timing = Timing(300, 60.0, 0.0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gens = [TraceGenerator(config.TraceWorkload(path=str(p), random_offset=False), 100.0, timing) for p in paths]
    refs = [np.quantile(v, 0.999, method="inverted_cdf") for v in (clean, spiked)]
    assert [str(w.message) for w in caught] == [
        f"{paths[0]}: column power_mw: 2 of 2000 samples above the 99.9th percentile ({refs[0]:.6g}, "
        f"workload.scale_quantile) clipped to it, the highest {clean.max():.6g} at line {np.argmax(clean) + 2}",
        f"{paths[1]}: column power_mw: 2 of 2000 samples above the 99.9th percentile ({refs[1]:.6g}, "
        "workload.scale_quantile) clipped to it, the highest 5000 at line 1236"]
    clean_tr, spiked_tr = (g.sample([np.random.default_rng(0)]) for g in gens)
    others = np.arange(300) != 1234 * 10 // 60  # every step but the spike's
    # the spike moves the quantile by one rank, between two samples near the sine's top
    np.testing.assert_allclose(spiked_tr.high_mw[others], clean_tr.high_mw[others], rtol=1e-4)
    assert clean_tr.high_mw.max() == pytest.approx(100.0, rel=1e-3)
    by_max = TraceGenerator(config.TraceWorkload(path=str(paths[1]), random_offset=False, scale_quantile=1.0),
                            100.0, timing).sample([np.random.default_rng(0)])
    assert by_max.high_mw[others].max() < 0.2  # what scaling by the maximum did to every other sample


# ---------------------------------------------------------------- 4. demand-response windows


def test_dr_window_past_the_episode_end(tmp_path, unchanged):
    raises_one_line(ConfigError, exactly(
        "scenario override grid.demand_response.latest_start_h = 23.0: a window starting then ends at 25 h "
        f"(latest_start_h + duration_h): must end by the episode's end at duration_h = 24 h (base {DEFAULT})"),
        resolve_scenario, None, {"grid": {"demand_response": {"events_per_episode": 1, "latest_start_h": 23.0}}})
    short = write(tmp_path, "short_dr.yml", "id: ShortDR-v0\nextends: DemandResponse-v0\nduration_h: 2\n")
    unchanged()
    raises_one_line(ConfigError, exactly(
        f"{short}: grid.demand_response.latest_start_h = 20.0: a window starting then ends at 22 h "
        "(latest_start_h + duration_h): must end by the episode's end at duration_h = 2 h"), load_scenario, short)
    assert resolve_scenario(None, {"duration_h": 2.0}).grid.demand_response.events_per_episode == 0  # no events: ok


# ---------------------------------------------------------------- 5. bounded resources


def test_episode_arrays_over_the_memory_budget():
    raises_one_line(ConfigError, exactly(
        "scenario DataCenter-v0: episodes of 288000000 steps (duration_h = 8000 at dt_s = 0.1) x 1 env "
        f"would need 183 GB: {BUDGET}"), cpm_env.CpmEnv, {"dt_s": 0.1, "duration_h": 8000.0})
    raises_one_line(ConfigError, exactly(
        "scenario DataCenter-v0: episodes of 1440 steps (duration_h = 24 at dt_s = 60) x 10000 envs "
        f"would need 9.16 GB: {BUDGET}"), cpm_env.make_vec, "cpm_env/DataCenter-v0", 10_000)


def test_trace_over_the_memory_budget(tmp_path, unchanged, monkeypatch):
    sparse = write(tmp_path, "sparse.csv", "timestamp,power_mw\n0,1\n60,2\n1e13,3\n")
    unchanged()
    raises_one_line(ConfigError, exactly(
        f"{sparse}: line 4, column timestamp: a trace spanning 1e+13 s resampled to dt_s = 60 s (2.5e+11 steps) "
        f"would need 2.4e+04 GB: {BUDGET}"), cpm_env.CpmEnv, trace_scenario(sparse, max_gap_s=1e14))
    monkeypatch.setattr(config, "MEMORY_BUDGET_BYTES", 100)  # a 35-byte file stands in for one of gigabytes
    raises_one_line(ConfigError, exactly(
        f"{sparse}: reading this 3.5e-05 MB trace would need 1.4e-07 GB: "
        "over the 1e-07 GB memory budget (cpm_env.config.MEMORY_BUDGET_BYTES)"),
        TraceGenerator, config.TraceWorkload(path=str(sparse), max_gap_s=1e14), 100.0, Timing(60, 60.0, 0.0))


# ---------------------------------------------------------------- 6. stepping out of order


def test_vec_env_step_before_reset():
    venv = cpm_env.make_vec("cpm_env/DataCenter-v0", 2, seed=0, scenario={"duration_h": 0.05})
    raises_one_line(RuntimeError, exactly("call reset() before step()"), venv.step, np.zeros((2, 3)))


def test_env_step_past_truncation():
    env = cpm_env.CpmEnv({"duration_h": 0.05})
    env.reset(seed=0)
    action = np.zeros(3, dtype=np.float32)
    truncated = [env.step(action)[3] for _ in range(3)]
    assert truncated == [False, False, True]
    raises_one_line(RuntimeError, exactly("the episode was truncated after 3 steps: call reset() before step()"),
                    env.step, action)
    env.reset(seed=1)
    env.step(action)  # a reset starts the next episode
