"""Real workloads: request logs turned into power, traces on any class, the shipped Azure trace, bad data."""

import hashlib
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cpm_env
from cpm_env.config import ConfigError, RequestsWorkload, resolve_scenario
from cpm_env.episode import EpisodeGenerator
from cpm_env.workloads import RequestsGenerator, Timing, _request_power

ROOT = Path(__file__).resolve().parents[1]
AZURE = ROOT / "data" / "AzureLLMInferenceTrace_code.csv"
AZURE_SHA256 = "54e9a6d2a4bd06ba1e060304b900abbc74cbea53de96506e60fe5bb4f2277fb6"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def requests_scenario(path: Path, **workload) -> dict:
    """A one-hour default site whose inference class replays the request log at ``path``."""
    wl = {"kind": "requests", "path": str(path), **workload}
    return {"duration_h": 0.25, "dt_s": 10.0,
            "site": {"gpu_classes": [{"name": "training", "share": 0.6}, {"name": "serving", "share": 0.4,
                                                                          "workload": wl}]}}


def log_text(rows) -> str:
    return "timestamp,prompt_tokens,generated_tokens\n" + "".join(f"{t},{p},{g}\n" for t, p, g in rows)


def test_the_shipped_trace_is_the_published_file():
    assert hashlib.sha256(AZURE.read_bytes()).hexdigest() == AZURE_SHA256
    assert (ROOT / "data" / "LICENSE-AzurePublicDataset").read_text().lstrip("\ufeff").startswith(
        "Attribution 4.0 International")


def test_one_request_gives_a_prefill_second_then_decode_seconds():
    """1 request of 8,000 prompt tokens and 100 generated ones: prefill near TDP in its second, then 2.5 s of
    decoding at the decode power (a full slot share), then idle; the class is sized by peak_load."""
    cfg = RequestsWorkload(path="x.csv", prefill_tokens_per_s_per_gpu=4000.0, decode_tokens_per_s=40.0,
                           decode_batch_per_gpu=1.0, scale_quantile=1.0, peak_load=1.0)
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = write(Path(d), "log.csv", log_text([(0.2, 8000, 100), (30.0, 0, 0)]))
        t_s, mw = _request_power(cfg, 10.0, path)
    frac = mw / 10.0
    idle, pre, dec = cfg.idle_fraction, cfg.prefill_power_fraction, cfg.decode_power_fraction
    # load: 2 GPU-s of prefill in second 0, then 1 slot for 2.5 s; the class has max(load) = 2 GPUs
    np.testing.assert_allclose(frac[:5], [pre, idle + (dec - idle) * 0.5, idle + (dec - idle) * 0.5,
                                          idle + (dec - idle) * 0.25, idle])
    assert np.all(frac[5:] == idle) and t_s[1] - t_s[0] == 1.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 600), st.integers(0, 9000), st.integers(0, 900)), min_size=2, max_size=60))
def test_request_power_stays_between_idle_and_the_prefill_power(tmp_path_factory, rows):
    rows = sorted(rows)
    if not any(p + g for _, p, g in rows):
        rows[0] = (rows[0][0], 1, 1)
    path = write(tmp_path_factory.mktemp("log"), "log.csv", log_text(rows))
    cfg = RequestsWorkload(path=str(path), max_gap_s=1e6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, mw = _request_power(cfg, 20.0, path)
    frac = mw / 20.0
    assert np.isfinite(frac).all()
    assert frac.min() >= cfg.idle_fraction - 1e-12
    assert frac.max() <= max(cfg.prefill_power_fraction, cfg.decode_power_fraction) + 1e-12


def test_the_azure_scenario_runs_with_two_swinging_classes():
    env = gym.make("cpm_env/InferenceTrace-v0").unwrapped
    env.reset(seed=1)
    ep = env.episode
    assert {"duty_training", "duty_inference"} <= set(env.obs_names)
    assert (ep.class_duty[1] < 1).mean() > 0.5  # the requests swing within most 10-s steps
    inference_mean = ep.class_duty[1] * ep.high_mw[1] + (1 - ep.class_duty[1]) * ep.low_mw[1]
    peak = env.params.peak_mw[1]
    assert 0.14 * peak - 1e-9 <= inference_mean.min() and inference_mean.max() <= 0.95 * peak + 1e-9
    from gymnasium.utils.env_checker import check_env
    check_env(env)


def test_a_long_trace_is_read_once_and_shared_read_only():
    cfg = resolve_scenario("InferenceTrace-v0")
    a, b = EpisodeGenerator(cfg), EpisodeGenerator(cfg)
    ga, gb = a.generators[1], b.generators[1]
    assert ga._high is gb._high and not ga._high.flags.writeable
    venv = cpm_env.make_vec("cpm_env/InferenceTrace-v0", 4)
    assert venv.site.episodes.generators[1]._high is ga._high


def test_offsets_are_seeded_and_a_long_trace_never_wraps():
    cfg = resolve_scenario("InferenceTrace-v0")
    gen = RequestsGenerator(cfg.site.gpu_classes[1].workload, 40.0, Timing(cfg.n_steps, cfg.dt_s, 0.0))
    n_trace = len(gen._high)
    one = gen.sample([np.random.default_rng(s) for s in range(50)])
    again = gen.sample([np.random.default_rng(s) for s in range(50)])
    np.testing.assert_array_equal(one.high_mw, again.high_mw)
    assert n_trace >= cfg.n_steps
    # every episode is a contiguous window of the trace
    for i in range(50):
        starts = [s for s in range(n_trace - cfg.n_steps + 1) if np.array_equal(gen._high[s:s + cfg.n_steps],
                                                                                   one.high_mw[:, i])]
        assert starts


def test_a_short_trace_wraps_and_says_so_once(tmp_path):
    path = write(tmp_path, "log.csv", log_text([(t, 500, 50) for t in range(0, 300, 3)]))
    with pytest.warns(UserWarning, match="fewer than an episode's") as record:
        cpm_env.CpmEnv(requests_scenario(path, max_gap_s=10))
        cpm_env.CpmEnv(requests_scenario(path, max_gap_s=10))
    assert sum("fewer than an episode's" in str(w.message) for w in record) == 1


def test_any_number_of_classes_may_replay_traces(tmp_path):
    t = np.arange(0, 7200, 0.5)
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        power = 5 + 5 * (np.sin(t / 3) > rng.uniform(-0.5, 0.5)) + rng.uniform(0, 1, len(t))
        write(tmp_path, f"{name}.csv", "timestamp,power_mw\n" + "".join(f"{x},{y}\n" for x, y in zip(t, power)))
    classes = [{"name": n, "share": 0.5, "workload": {"kind": "trace", "path": str(tmp_path / f"{n}.csv")}}
               for n in ("a", "b")]
    env = cpm_env.CpmEnv({"duration_h": 1.0, "site": {"gpu_classes": classes}})
    env.reset(seed=0)
    assert (env.episode.class_duty < 1).all(axis=0).mean() > 0.9  # both swing
    for _ in range(5):
        obs, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)


# ---------------------------------------------------------------- bad data: one line naming file, line, column

@pytest.mark.parametrize("text, where", [
    ("timestamp,prompt,generated_tokens\n0,1,1\n1,1,1\n", "column 'prompt_tokens' missing: columns are "
                                                          "['timestamp', 'prompt', 'generated_tokens']"),
    (log_text([(0, 10, 1), (1, "x", 1)]), "line 3, column prompt_tokens = 'x': must be a whole number of tokens"),
    (log_text([(0, 10, 1), (1, 10, -4)]), "line 3, column generated_tokens = -4"),
    (log_text([(0, 10, 1), (1, 10.5, 4)]), "line 3, column prompt_tokens = 10.5"),
    (log_text([(5, 10, 1), (1, 10, 4)]), "line 3, column timestamp: timestamps must not decrease"),
    (log_text([(0, 10, 1), (5000, 10, 4)]), "line 3, column timestamp: 5000 s after the previous request, more "
                                            "than workload.max_gap_s = 3600"),
    (log_text([(0, 0, 0), (1, 0, 0)]), "columns prompt_tokens, generated_tokens: every request has 0 tokens"),
    (log_text([(0, 10, 1), ("noon", 10, 4)]), "line 3, column timestamp = 'noon': must be seconds or an ISO "
                                              "date-time"),
])
def test_bad_request_logs_are_one_line_errors(tmp_path, text, where):
    path = write(tmp_path, "log.csv", text)
    with pytest.raises(ConfigError) as err:
        cpm_env.CpmEnv(requests_scenario(path))
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}: ") and where in msg, msg


def test_an_all_zero_trace_is_an_error(tmp_path):
    path = write(tmp_path, "t.csv", "timestamp,power_mw\n0,0\n60,0\n120,0\n")
    scenario = {"duration_h": 1.0, "site": {"gpu_classes": [{"name": "g", "workload": {"kind": "trace",
                                                                                        "path": str(path)}}]}}
    with pytest.raises(ConfigError, match=r"column power_mw: every value is 0"):
        cpm_env.CpmEnv(scenario)


def test_interpolated_trace_values_are_counted(tmp_path):
    path = write(tmp_path, "t.csv", "timestamp,power_mw\n0,1\n60,\n120,2\n180,nan\n240,3\n")
    scenario = {"duration_h": 0.05, "site": {"gpu_classes": [
        {"name": "g", "workload": {"kind": "trace", "path": str(path), "fill": "interpolate"}}]}}
    with pytest.warns(UserWarning, match="2 bad values interpolated"):
        cpm_env.CpmEnv(scenario)


def test_a_trace_gap_is_an_error_or_counted_when_filled(tmp_path):
    path = write(tmp_path, "t.csv", "timestamp,power_mw\n0,1\n60,2\n9000,3\n9060,2\n")
    scenario = {"duration_h": 1.0, "site": {"gpu_classes": [{"name": "g", "workload": {"kind": "trace",
                                                                                        "path": str(path)}}]}}
    with pytest.raises(ConfigError, match=r"t.csv: line 4, column timestamp: 8940 s after the previous sample, "
                                          r"more than workload.max_gap_s = 3600"):
        cpm_env.CpmEnv(scenario)
    scenario["site"]["gpu_classes"][0]["workload"]["fill"] = "interpolate"
    with pytest.warns(UserWarning, match="1 gaps longer than workload.max_gap_s = 3600 interpolated"):
        cpm_env.CpmEnv(scenario)


def test_the_shipped_inference_trace_policy_exports_with_the_class_duties(tmp_path, one_torch_thread):
    """The exported controller of a two-swinging-class site reads each class's duty, its filter decodes them, its
    example telemetry is answered without fallback, and it reproduces ppo+shield."""
    import json

    import pandas as pd

    from agents.evaluation.runner import make_controller, run_controller
    from agents.learning.export import export_policy
    from agents.runtime import PolicyController
    from cpm_env.vec_env import make_vec

    out = tmp_path / "export"
    spec = export_policy(ROOT / "models" / "InferenceTrace-v0", out, shield=True)
    assert {"duty_training", "duty_inference"} <= set(spec["shield"]["entries"])
    ctrl = PolicyController.load(out)
    for line in (out / "obs.jsonl").read_text().splitlines():
        row = json.loads(line)
        ctrl.act_telemetry(row["telemetry"], row["schedule_mw"])
        assert ctrl.last_fallback_reason is None
    venv = make_vec("cpm_env/InferenceTrace-v0", 1)
    a = run_controller(make_controller(f"ppo:{ROOT / 'models' / 'InferenceTrace-v0'}+shield", venv.site), venv, [100],
                       "x")
    b = run_controller(make_controller(f"onnx:{out}", venv.site), venv, [100], "x")
    pd.testing.assert_frame_equal(a.drop(columns="controller"), b.drop(columns="controller"), check_exact=False,
                                  rtol=1e-6, atol=1e-5)
