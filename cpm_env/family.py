"""Site families: scenario files whose ``family:`` section draws a site per episode.

A family file is a scenario file (``extends:`` a base scenario as usual) with one more key,
``family``, mapping a dotted scenario field to a distribution::

    family:
      site.oversubscription: {uniform: [1.0, 1.7]}
      site.gpu_classes.training.share: {uniform: [0.3, 0.9]}
      battery.energy_h: {uniform: [0.0, 2.0]}
      grid.demand_response.events_per_episode: {choice: [0, 1]}

Keys (:func:`SiteFamily.draw` applies them in file order):

- any scalar scenario field by its dotted path; a GPU class by its name
  (``site.gpu_classes.<name>.<field>``, workload fields under ``.workload.``);
- ``site.gpu_classes.<name>.share``: the other classes keep their proportions and share the rest;
- relative keys, each a fraction of the drawn site's grid limit (or battery energy), which a family
  around sites of any size can state: ``battery.energy_h`` (capacity_mwh = energy_h x limit_mw),
  ``battery.c_rate`` (power_mw = c_rate x capacity_mwh, per hour), ``grid.ramp_limit_fraction_per_min``
  (ramp_limit_mw_per_min = fraction x limit_mw) and ``grid.swing_band_fraction`` (swing_band_mw =
  fraction x limit_mw).

Distributions: ``uniform: [low, high]`` and ``log_uniform: [low, high]`` (``low < high``; log: ``low > 0``)
and ``choice: [v, ...]`` (one or more values, each drawn equally often). A range may add ``p_low: p``
(0 <= p < 1): with probability p the draw is exactly the low end, e.g. ``battery.energy_h: {uniform: [0.0,
2.0], p_low: 0.2}`` gives a fifth of the sites no battery, as many real sites have none.

Everything that fixes the observation and action layout is the same for every draw: the GPU classes
and which of them have a power floor, the step and episode length, the forecast's horizons, export.
A family is checked when it is loaded: every corner of its ranges and a few seeded draws must build a
valid site with that layout, else a one-line :class:`~cpm_env.config.ConfigError` names the file, the
key and the draw. A drawn site is a plain :class:`~cpm_env.config.ScenarioConfig` with id
``<family id>-site<seed>`` when drawn by :meth:`SiteFamily.site`.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cpm_env import config
from cpm_env.config import ConfigError, ScenarioConfig

FAMILY_KEY = "family"
DISTRIBUTIONS = ("uniform", "log_uniform", "choice")
# relative key -> (the field it sets, what it is a fraction of)
RELATIVE_KEYS = {
    "battery.energy_h": ("battery.capacity_mwh", "grid.limit_mw"),
    "battery.c_rate": ("battery.power_mw", "battery.capacity_mwh"),
    "grid.ramp_limit_fraction_per_min": ("grid.ramp_limit_mw_per_min", "grid.limit_mw"),
    "grid.swing_band_fraction": ("grid.swing_band_mw", "grid.limit_mw"),
}
CHECK_DRAWS = 32  # seeded draws checked at load time, besides the corners
MAX_CORNERS = 4096  # more combinations than this: only the seeded draws are checked
# families checked in this process, (file, its mtime, the overrides) -> their observation bounds and the
# range of their site-parameter entries
_CHECKED: dict[tuple, tuple[np.ndarray, ...]] = {}


@dataclass(frozen=True)
class Draw:
    """One family key: a dotted field (or relative key) and its distribution."""

    key: str
    kind: str  # one of DISTRIBUTIONS
    values: tuple  # (low, high) for the ranges, the values for choice
    p_low: float = 0.0  # a range's point mass at its low end

    def sample(self, rng: np.random.Generator) -> Any:
        """One value, from ``rng`` (one uniform number per draw, whatever the kind)."""
        u = rng.random()
        if self.kind == "choice":
            return self.values[min(int(u * len(self.values)), len(self.values) - 1)]
        lo, hi = self.values
        if u < self.p_low:
            return float(lo)
        u = (u - self.p_low) / (1.0 - self.p_low)
        if self.kind == "log_uniform":
            return float(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))
        return float(lo + u * (hi - lo))


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _parse_draw(key: Any, spec: Any, source: str) -> Draw:
    where = f"{source}: {FAMILY_KEY}.{key}"
    if not isinstance(key, str) or not key:
        raise ConfigError(f"{source}: {FAMILY_KEY} key {key!r}: must be a dotted scenario field, e.g. "
                          "site.oversubscription")
    options = {k: v for k, v in spec.items() if k != "p_low"} if isinstance(spec, Mapping) else None
    if not (options is not None and len(options) == 1):
        raise ConfigError(f"{where} = {spec!r}: must be one distribution, e.g. {{uniform: [1.0, 1.7]}} "
                          f"(kinds: {', '.join(DISTRIBUTIONS)}; a range may add p_low)")
    kind, values = next(iter(options.items()))
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{where}: distribution {kind!r} unknown: must be one of {', '.join(DISTRIBUTIONS)}")
    p_low = spec.get("p_low", 0.0)
    if kind == "choice":
        if "p_low" in spec:
            raise ConfigError(f"{where}.p_low = {p_low!r}: only a range (uniform, log_uniform) takes p_low")
        if not (isinstance(values, list) and values):
            raise ConfigError(f"{where}.choice = {values!r}: must be a non-empty list of values")
        return Draw(key, kind, tuple(values))
    if not (_number(p_low) and 0.0 <= p_low < 1.0):
        raise ConfigError(f"{where}.p_low = {p_low!r}: must be a number in [0, 1)")
    if not (isinstance(values, list) and len(values) == 2 and all(_number(v) for v in values)):
        raise ConfigError(f"{where}.{kind} = {values!r}: must be [low, high], two finite numbers")
    lo, hi = float(values[0]), float(values[1])
    if not lo < hi:
        what = "empty" if lo == hi else "inverted"
        raise ConfigError(f"{where}.{kind} = {values!r}: {what} range: must have low < high (to fix a value, set it "
                          "in the scenario instead)")
    if kind == "log_uniform" and lo <= 0:
        raise ConfigError(f"{where}.log_uniform = {values!r}: must have low > 0")
    return Draw(key, kind, (lo, hi), float(p_low))


def _class_index(classes: list, name: str) -> int | None:
    """The position of GPU class ``name`` in a scenario's raw ``gpu_classes`` list (None: not there)."""
    return next((i for i, c in enumerate(classes) if isinstance(c, Mapping) and c.get("name") == name), None)


def _get(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        node = node[part]
    return node


def _set(data: dict, parts: list[str], value: Any, where: str) -> None:
    """Set the field at ``parts`` in the nested dict ``data`` (copying the mappings and lists it passes)."""
    node = data
    for i, part in enumerate(parts[:-1]):
        if part == "gpu_classes" and isinstance(node.get(part), list):
            classes = [dict(c) for c in node[part]]
            node[part] = classes
            k = _class_index(classes, parts[i + 1])
            if k is None:
                names = [c.get("name") for c in classes]
                raise ConfigError(f"{where}: no GPU class {parts[i + 1]!r}: the classes are {names}")
            _set(classes[k], parts[i + 2:], value, where)
            return
        child = node.get(part, {})
        if not isinstance(child, Mapping):
            raise ConfigError(f"{where}: {part!r} is not a section of the scenario")
        node[part] = dict(child)
        node = node[part]
    if isinstance(node.get(parts[-1]), Mapping):
        raise ConfigError(f"{where}: names a section, not a field: name one of its fields")
    node[parts[-1]] = value


def _set_share(data: dict, name: str, share: Any, where: str) -> None:
    """Give class ``name`` ``share`` of the IT peak; the other classes keep their proportions of the rest."""
    classes = data["site"]["gpu_classes"]
    k = _class_index(classes, name)
    if k is None:
        raise ConfigError(f"{where}: no GPU class {name!r}: the classes are {[c.get('name') for c in classes]}")
    rest = sum(float(c.get("share", 0.0)) for i, c in enumerate(classes) if i != k)
    if len(classes) > 1 and rest <= 0:
        raise ConfigError(f"{where}: the other classes' shares sum to 0: nothing to scale to the rest")
    out = []
    for i, c in enumerate(classes):
        c = dict(c)
        c["share"] = share if i == k else float(c.get("share", 0.0)) * (1.0 - share) / rest
        out.append(c)
    data["site"] = {**data["site"], "gpu_classes": out}


def apply_draws(base: Mapping[str, Any], values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The scenario fields ``base`` with each family key in ``values`` set (in order), before validation."""
    data = config.deep_merge(base, {})
    for key, value in values.items():
        where = f"{source}: {FAMILY_KEY}.{key}"
        parts = key.split(".")
        if key in RELATIVE_KEYS:
            target, of = RELATIVE_KEYS[key]
            try:
                total = float(_get(data, of))
            except (KeyError, TypeError, ValueError):
                raise ConfigError(f"{where}: needs {of} in the scenario") from None
            _set(data, target.split("."), value * total, where)
        elif len(parts) == 4 and parts[:2] == ["site", "gpu_classes"] and parts[3] == "share":
            _set_share(data, parts[2], value, where)
        else:
            _set(data, parts, value, where)
    return data


def key_value(data: Mapping[str, Any], key: str) -> Any:
    """The value of family key ``key`` on a site's plain fields ``data`` (:func:`cpm_env.config.scenario_to_dict`):
    the field's, or for a relative key (:data:`RELATIVE_KEYS`) the field over what it is a fraction of (None where
    that is 0: a C-rate without a battery)."""
    if key in RELATIVE_KEYS:
        target, of = RELATIVE_KEYS[key]
        total = float(_get(data, of))
        return float(_get(data, target)) / total if total > 0 else None
    parts = key.split(".")
    if parts[:2] == ["site", "gpu_classes"]:
        classes = data["site"]["gpu_classes"]
        k = _class_index(classes, parts[2])
        return _get(classes[k], ".".join(parts[3:])) if k is not None else None
    return _get(data, key)


def layout(cfg: ScenarioConfig) -> dict[str, Any]:
    """What every site of a family must share, by name: the observation and action layout's inputs."""
    classes = cfg.site.gpu_classes
    return {"GPU classes": [c.name for c in classes], "floors": [c.floor_max > 0 for c in classes], "dt_s": cfg.dt_s,
            "duration_h": cfg.duration_h, "forecast": (cfg.forecast.enabled, cfg.forecast.horizons_steps,
                                                       cfg.forecast.kind),
            "allow_export": cfg.grid.allow_export, "throughput curves": [c.throughput_curve for c in classes]}


class SiteFamily:
    """A family file loaded and checked: ``draw(rng)`` gives one valid site per call."""

    def __init__(self, path: str | Path, overrides: Mapping[str, Any] | None = None):
        self.path = Path(path)
        source = str(self.path)
        data = config.read_scenario_file(self.path)
        spec = data.pop(FAMILY_KEY, None)
        if not isinstance(spec, Mapping) or not spec:
            raise ConfigError(f"{source}: {FAMILY_KEY} = {spec!r}: a family file needs a non-empty mapping of "
                              "dotted scenario fields to distributions")
        self.draws = tuple(_parse_draw(k, v, source) for k, v in spec.items())
        if overrides:
            drawn = [d.key for d in self.draws if config._overrides_state(d.key, overrides)]
            if drawn:
                raise ConfigError(f"scenario override {drawn[0]}: the family {source} draws it: change the "
                                  "family file instead")
            data = config.deep_merge(data, overrides)
        self.base = data
        self.source = source
        self.id = str(data.get("id", self.path.stem))
        self.reference = self._build({})
        key = (str(self.path.resolve()), self.path.stat().st_mtime_ns, repr(overrides))
        if key not in _CHECKED:  # a check takes ~1 s: once per file version and overrides in a process
            _CHECKED[key] = self._check()
        self.obs_low, self.obs_high, self.site_low, self.site_high = _CHECKED[key]

    def _build(self, values: Mapping[str, Any], seed: int | None = None) -> ScenarioConfig:
        data = apply_draws(self.base, values, self.source)
        if seed is not None:
            data["id"] = f"{self.id}-site{seed}"
        return config.scenario_from_dict(data, self.source)

    def _check(self) -> tuple[np.ndarray, ...]:
        """Every corner (up to :data:`MAX_CORNERS`) and :data:`CHECK_DRAWS` seeded draws build a valid site
        with the reference layout; returns, over them, the lowest and highest bound of each observation
        entry (without the site's parameters: the family's observation space) and the lowest and highest
        value of each site-parameter entry (:func:`cpm_env.spaces.site_parameter_entries`: the range the
        family trains a policy on)."""
        from cpm_env import spaces
        from cpm_env.site import make_params

        want = layout(self.reference)
        n_obs = len(spaces.observation_features(self.reference, make_params(self.reference)))
        low, high = np.full(n_obs, np.inf), np.full(n_obs, -np.inf)
        site_low = site_high = spaces.site_parameter_entries(self.reference).astype(float)
        combos = math.prod(len(d.values) for d in self.draws)  # a range's two ends, or every choice
        corners = (dict(zip((d.key for d in self.draws), point))
                   for point in itertools.product(*(d.values for d in self.draws))) if combos <= MAX_CORNERS else ()
        rng = np.random.default_rng(0)
        randoms = (self._sample(rng) for _ in range(CHECK_DRAWS))
        for values in itertools.chain(corners, randoms):
            shown = ", ".join(f"{k} = {v!r}" for k, v in values.items())
            try:
                cfg = self._build(values)
                entries = spaces.site_parameter_entries(cfg).astype(float)
            except (ConfigError, ValueError) as err:
                raise ConfigError(f"{self.source}: {FAMILY_KEY}: the draw {shown} makes an invalid site: "
                                  f"{str(err).removeprefix(self.source + ': ')}") from None
            if layout(cfg) != want:
                raise ConfigError(f"{self.source}: {FAMILY_KEY}: the draw {shown} changes the observation or action "
                                  "layout (GPU classes, floors, step, episode length, forecast, export, throughput "
                                  "curves): a family may vary only what keeps it")
            feats = spaces.observation_features(cfg, make_params(cfg))
            lo, hi = np.array([f.low for f in feats]), np.array([f.high for f in feats])
            low, high = np.minimum(low, lo), np.maximum(high, hi)
            site_low, site_high = np.minimum(site_low, entries), np.maximum(site_high, entries)
        return low, high, site_low, site_high

    def observation_features(self, features: list) -> list:
        """``features`` (a site's :func:`cpm_env.spaces.observation_features`, in its order) with the bounds
        of the whole family, so one observation space holds every site's observations."""
        return [f._replace(low=float(lo), high=float(hi)) for f, lo, hi in zip(features, self.obs_low, self.obs_high)]

    def _sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """Every key's value from ``rng``, in file order (one uniform number each)."""
        return {d.key: d.sample(rng) for d in self.draws}

    def draw(self, rng: np.random.Generator) -> ScenarioConfig:
        """One site: every key's value from ``rng`` in file order (one uniform number each)."""
        return self._build(self._sample(rng))

    def site(self, seed: int) -> ScenarioConfig:
        """The site drawn from ``numpy.random.default_rng(seed)``, id ``<family id>-site<seed>``: the site
        that an env reset with ``seed`` faces in its first episode."""
        return self._build(self._sample(np.random.default_rng(seed)), seed)

    def to_dict(self) -> dict[str, Any]:
        """The family as one self-contained family file's fields (its base with ``extends:`` resolved, and
        ``family:``): written as YAML, :class:`SiteFamily` loads the same family from it."""
        spec = {d.key: {d.kind: list(d.values), **({"p_low": d.p_low} if d.p_low else {})} for d in self.draws}
        return {**self.base, FAMILY_KEY: spec}

    def outside(self, cfg: ScenarioConfig) -> list[str]:
        """Where site ``cfg`` lies outside the family, one ``key = value (the family's range)`` per family key
        (values as :func:`key_value` reads them, relative keys as fractions); empty inside it."""
        mine, theirs = layout(cfg), layout(self.reference)
        out = [f"{name} = {mine[name]!r} (the family's: {theirs[name]!r})" for name in theirs
               if mine[name] != theirs[name]]
        data = config.scenario_to_dict(cfg)
        for d in self.draws:
            value = key_value(data, d.key)
            if value is None:  # not applicable (a C-rate without a battery)
                continue
            inside = value in d.values if d.kind == "choice" else d.values[0] - 1e-9 <= value <= d.values[1] + 1e-9
            if not inside:
                allowed = f"one of {list(d.values)}" if d.kind == "choice" else f"{d.values[0]:g}..{d.values[1]:g}"
                out.append(f"{d.key} = {value:.4g} (the family's: {allowed})")
        return out


def is_family_file(path: str | Path) -> bool:
    """Whether the scenario file at ``path`` (after its ``extends:`` chain) has a ``family:`` section; read once
    per file version in a process (every env construction asks)."""
    path = Path(path)
    if path.suffix not in (".yml", ".yaml") or not path.is_file():
        return False
    return _has_family(str(path.resolve()), path.stat().st_mtime_ns)


@functools.cache
def _has_family(path: str, mtime_ns: int) -> bool:
    return FAMILY_KEY in config.read_scenario_file(path)


def find_family(scenario: Any, base: str | Path | None) -> SiteFamily | None:
    """The family an env argument names (a :class:`SiteFamily`, a family file or id as ``scenario``, or
    overrides of a family ``base``), or None for one site."""
    if isinstance(scenario, SiteFamily):
        return scenario
    if isinstance(scenario, (str, Path)):
        path = config.scenario_file(scenario)
        return SiteFamily(path) if is_family_file(path) else None
    if (scenario is None or isinstance(scenario, Mapping)) and base is not None and is_family_file(base):
        return SiteFamily(base, scenario)
    return None


Source = ScenarioConfig | SiteFamily  # what an env is built from: one site or a family


def resolve(scenario: Any) -> Source:
    """A registered id, YAML path, :class:`ScenarioConfig` or :class:`SiteFamily` as the family it names or
    else the validated one-site config (:func:`cpm_env.config.resolve_scenario`)."""
    family = find_family(scenario, None) if isinstance(scenario, (str, Path, SiteFamily)) else None
    return family if family is not None else config.resolve_scenario(scenario)


def source_dict(source: Source) -> dict[str, Any]:
    """The plain (YAML-ready) fields of one site (:func:`cpm_env.config.scenario_to_dict`) or a family
    (:meth:`SiteFamily.to_dict`): a run's ``scenario.yml`` and the hash its artifacts record."""
    return source.to_dict() if isinstance(source, SiteFamily) else config.scenario_to_dict(source)
