"""Safety filter: the set-points nearest to a proposal that keep the coming step inside the grid contract.

:func:`shield` takes a batch of sites' telemetry (the site's :class:`~cpm_env.site.State` and the
step's :class:`~cpm_env.physics.Exo`, as decoded from the observation by :func:`observed_step`) and
proposed set-points (:class:`~cpm_env.physics.Action`, physical units), and returns set-points plus a
:class:`Report` per site. Every candidate is judged by :func:`cpm_env.physics.step` itself, so the
filter predicts exactly what the env will do with the decoded telemetry.

The contract, in priority order (:data:`CONSTRAINTS`):

1. ``limit``: the high-phase import at most the import limit,
2. ``ramp``: the step-mean import within the ramp limit of last step's,
3. ``band``: the residual swing at the meter within the oscillation band (battery power left for smoothing).

SoC bounds, the battery's power rating and the cap slew are kept by construction: every candidate
set-point is one the physics realizes unchanged. Each threshold is tightened by ``margin_mw`` (at
most half of it), so that the float32 rounding of the observation cannot turn a boundary set-point
into a violation.

Search: a proposal that meets the whole contract passes unchanged. Otherwise, for each cap candidate
(the proposal's caps first; then uniform moves of every class towards its lowest or highest reachable
cap, 16 steps each way plus the exact points where the mean import can sit on a ramp bound; then
every per-class combination of lowest, proposed and highest reachable cap; where none meets the whole
contract, rounds of one-class-at-a-time moves around the closest one) the battery set-points
that can bound a feasible interval are computed in closed form (the range ends, the roots of each
constraint on every linear piece of the inner loop's smoothing, the pieces' breakpoints), and all
are checked with the physics. The filter takes, among the candidates
meeting the most of the contract in priority order, the one that

- if a constraint had to be given up, minimizes its excess,
- then moves the caps least (IT MW at TDP: battery moves are preferred to compute cuts),
- then moves the battery least (MW, from the proposal as the physics would realize it).

Where no candidate meets the whole contract, it keeps the constraints in priority order as far as any
candidate can (lexicographically: ``limit`` before ``ramp`` before ``band``, :func:`contract_score`), so
it gives up ``band`` first, then ``ramp``, then ``limit``; the report's ``gave_up`` names the most
important constraint given up (:data:`GAVE_UP`). Floors are kept as proposed.

Fast path: a single site given as plain floats (the single env, the exported runtime) is first judged
with the physics' scalar backend (:data:`cpm_env.ops.SCALAR`, bitwise the numpy one's on such inputs:
:func:`proposal_meets_contract`). A proposal that breaks the contract goes to a scalar search where a
battery candidate at the proposal's caps meets the whole contract and no other cap candidate can tie
with them in cost (:func:`_search_site`: the same candidates, judged in order of battery move, the
first that meets the contract wins); elsewhere the numpy search runs. The result is the same as for a
batch of one, bit for bit. :func:`shield_site` is that path for a control loop that already holds
validated floats: it builds no arrays where the proposal passes.

The parameters may be one site's (floats) or a batch of sites' (a site family's batched env:
:func:`cpm_env.site.stack_params`, arrays over the batch that follow it through the search).

A controller that holds only the observation vector decodes it with :func:`decode_observation` (the
entries :func:`required_entries` names), as ``NAME+shield`` in evaluation and the exported runtime do.

Units: MW, MWh, h, caps and floors as fractions of TDP. Imports numpy and, of the project, only the
site model and the physics (a controller host runs it without gymnasium or PyYAML).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from cpm_env import physics
from cpm_env.ops import NUMPY, SCALAR
from cpm_env.physics import Action, Exo, Outputs
from cpm_env.site import Scalar, SiteParams, State, class_levels

CONSTRAINTS = ("limit", "ramp", "band")  # priority order: the first is given up last
GAVE_UP = ("none", "band", "ramp", "limit")  # Report.gave_up code -> the most important constraint given up
MARGIN_MW = 1e-3  # default tightening of every threshold (MW)
CAP_STEPS = 16  # uniform cap moves per direction
# where no candidate meets the whole contract: rounds of one-class-at-a-time cap moves around two candidates
# (_zoom_centers), ZOOM_POINTS - 1 per class within ZOOM_WIDTH of the reachable range, narrowed by ZOOM_SHRINK
# each round
ZOOM_ROUNDS, ZOOM_POINTS, ZOOM_WIDTH, ZOOM_SHRINK = 5, 9, 0.5, 0.3
_EPS = 1e-9  # MW: an excess up to this counts as met (rounding of the closed-form roots)
_TINY = 1e-12
# MW: a cap candidate within this of the proposal's caps in cost, or a facility mean within this of a ramp
# target, might tie with the proposal's caps within _EPS: the scalar search leaves such a site to the numpy one
_NEAR_MW = 1e-6
# The fast path takes floats up to this magnitude (any real telemetry): no intermediate of the physics
# then overflows to inf and on to NaN, where the scalar backend's min/max would differ from numpy's.
_FAST_MAX = 1e100


class Report(NamedTuple):
    """What the filter did, per site (arrays over the batch)."""

    intervened: np.ndarray  # bool: the returned set-points differ from the proposal as realized
    battery_delta_mw: np.ndarray  # returned minus realized proposed battery power (MW)
    cap_delta: tuple[np.ndarray, ...]  # per class, returned minus realized proposed cap (fraction of TDP)
    delta_mw: np.ndarray  # |battery delta| + sum over classes of peak x |cap delta| (MW)
    gave_up: np.ndarray  # int index into GAVE_UP


def required_entries(class_names: Sequence[str], floor_idx: Sequence[int], class_duties: bool = False) -> list[str]:
    """The observation entries (:mod:`cpm_env.spaces` names) the filter reads, in the order
    :func:`decode_observation` takes them: per class the uncapped demand, then per class the swing,
    ``duty``, ``grid_limit``, ``grid_import_prev``, ``soc``, per class the cap in force, the floor in
    force of each class in ``floor_idx`` (those whose floor is an action), and, where the observation
    carries them (``class_duties``, :func:`cpm_env.spaces.class_duties`), per class its own duty."""
    return ([f"demand_{n}" for n in class_names] + [f"swing_{n}" for n in class_names]
            + ["duty", "grid_limit", "grid_import_prev", "soc"] + [f"cap_{n}_prev" for n in class_names]
            + [f"floor_{class_names[k]}_prev" for k in floor_idx]
            + ([f"duty_{n}" for n in class_names] if class_duties else []))


def decode_observation(p: SiteParams, obs: np.ndarray, index: Sequence[int], scale: Sequence[float],
                       floor_idx: Sequence[int]) -> tuple[State, Exo]:
    """The state and step an observation describes, for :func:`shield`.

    ``obs``: one observation (n_obs,), decoded to plain floats (the fast path), or a batch (N, n_obs),
    decoded to arrays over it; its entries are read as float32, as the env observes them. ``index`` and
    ``scale``: the position in ``obs`` and the scale (physical value = entry x scale) of each of
    :func:`required_entries` (``floor_idx``), in its order. The duty is clipped to [0, 1]; floors of
    classes without a floor action are 0.
    """
    obs = np.asarray(obs, dtype=np.float32)
    n = len(p.peak_mw)
    with_class_duty = len(index) == 4 * n + 4 + len(floor_idx)
    v: list
    duty: Scalar
    zero: Scalar
    if obs.ndim == 1:
        row = obs.tolist()
        v = [row[i] * s for i, s in zip(index, scale)]
        duty, zero = min(max(v[2 * n], 0.0), 1.0), 0.0
    else:
        v = [obs[:, i].astype(np.float64) * s for i, s in zip(index, scale)]
        duty, zero = np.clip(v[2 * n], 0.0, 1.0), np.zeros(len(obs))
    floors = [zero] * n
    for j, k in enumerate(floor_idx):
        floors[k] = v[3 * n + 4 + j]
    class_duty = None
    if with_class_duty:
        first = 3 * n + 4 + len(floor_idx)
        class_duty = tuple(min(max(d, 0.0), 1.0) if obs.ndim == 1 else np.clip(d, 0.0, 1.0) for d in v[first:])
    return observed_step(p, v[:n], v[n:2 * n], duty, v[2 * n + 1], v[2 * n + 2], v[2 * n + 3], v[2 * n + 4:3 * n + 4],
                         floors, class_duty)


def observed_step(p: SiteParams, mean_mw, swing_mw, duty, limit_mw, import_mw, soc, caps, floors,
                  class_duty=None) -> tuple[State, Exo]:
    """The state and step the observation describes (arrays over a batch; per-class tuples for
    ``mean_mw``, ``swing_mw`` (uncapped IT MW), ``caps`` and ``floors`` (in force), and ``class_duty``,
    each class's own duty, where the observation has them; None: every class's is ``duty``). Compute is
    not observed and does not enter the contract: the step's work is set to zero."""
    duties = class_duty if class_duty is not None else (duty,) * len(mean_mw)
    highs, lows = zip(*[class_levels(m, s, d) for m, s, d in zip(mean_mw, swing_mw, duties)])
    zero = (0.0 * duty,) * len(highs)
    exo = Exo(highs, lows, zero, zero, duty, limit_mw, class_duty)
    return State(soc * p.capacity_mwh, import_mw, tuple(caps), tuple(floors)), exo


def contract_terms(p: SiteParams, s: State, out: Outputs, margin_mw: float, ops) -> tuple:
    """Excess (MW) of a step's outputs over each tightened threshold, in :data:`CONSTRAINTS` order
    (floats or arrays, as the outputs, with the matching ``ops`` backend); the constraint is met where
    the excess is at most ``_EPS``."""
    return _excess(p, s.import_mw, out.grid_limit_mw, out.grid_import_mw, out.grid_import_peak_mw,
                   out.residual_swing_mw, margin_mw, ops)


def _excess(p: SiteParams, import_prev_mw, limit_mw, import_mw, peak_import_mw, residual_mw, margin_mw: float,
            ops) -> tuple:
    """:func:`contract_terms` of the step-mean and high-phase import, the limit and the residual swing (MW)."""
    return (peak_import_mw - limit_mw + margin_mw,
            ops.abs(import_mw - import_prev_mw) - p.ramp_step_mw + _tightening(margin_mw, p.ramp_step_mw),
            residual_mw - p.swing_band_mw + _tightening(margin_mw, p.swing_band_mw))


def contract_excess(p: SiteParams, s: State, out: Outputs, margin_mw: float = MARGIN_MW) -> np.ndarray:
    """:func:`contract_terms` of arrays, stacked on a new first axis."""
    return np.stack([np.asarray(e) for e in contract_terms(p, s, out, margin_mw, NUMPY)])


def meets(excess: np.ndarray) -> np.ndarray:
    """Per constraint (first axis, :data:`CONSTRAINTS` order), whether it is met."""
    return excess <= _EPS


def _map(tree, fn):
    """Apply ``fn`` to every array in a State/Exo/Action (per-class tuples included; an absent field stays None)."""
    return type(tree)(*(tuple(fn(v) for v in f) if isinstance(f, tuple) else f if f is None else fn(f) for f in tree))


def _map_params(p: SiteParams, fn) -> SiteParams:
    """``p`` with ``fn`` applied to each of its per-site arrays (a batch of sites' parameters,
    :func:`cpm_env.site.stack_params`), so they follow the batch as the state does; floats stay as they are."""
    def one(v):
        return fn(v) if isinstance(v, np.ndarray) else v
    return SiteParams(*[tuple(one(v) for v in f) if isinstance(f, tuple) else one(f) for f in p])  # type: ignore[arg-type]


def _tightening(margin_mw: float, threshold_mw):
    """How much a threshold is tightened: ``margin_mw``, at most half the threshold (floats or arrays)."""
    half = 0.5 * threshold_mw
    return min(margin_mw, half) if isinstance(half, float) else np.minimum(margin_mw, half)


def _reachable_caps(p: SiteParams, s: State, x: Exo, floors) -> tuple[tuple, tuple]:
    """Lowest and highest caps per class the physics realizes this step (cap_min, 1 and the slew)."""
    def realized(c):
        ones = np.ones_like(np.asarray(x.duty, dtype=float))
        return physics.step(p, s, Action(0.0 * ones, tuple(c * ones for _ in p.peak_mw), floors), x, NUMPY)[0].caps
    return realized(0.0), realized(2.0)


def _ramp_roots(p: SiteParams, s: State, x: Exo, floors: tuple, cap0: tuple, end: tuple,
                margin_mw: float) -> np.ndarray:
    """(N, 4) fractions of the uniform cap move from ``cap0`` to ``end`` at which the mean import sits
    on a (tightened) ramp bound with the battery at either end of its range (0 where none). The facility
    mean is monotone along the move and linear between the points where a class's cap crosses its high
    or low level, so the roots are exact."""
    lam = [np.broadcast_to(np.linspace(0.0, 1.0, CAP_STEPS + 1), (len(cap0[0]), CAP_STEPS + 1))]
    with np.errstate(divide="ignore", invalid="ignore"):
        for k, peak in enumerate(p.peak_mw):
            for level in (x.high_mw[k], x.low_mw[k]):
                lam.append(((level / peak - cap0[k]) / (end[k] - cap0[k]))[:, None])
    grid = np.sort(np.clip(np.nan_to_num(np.concatenate(lam, axis=1), nan=0.0), 0.0, 1.0), axis=1)  # (N, S)
    caps = tuple(c[:, None] + grid * (e - c)[:, None] for c, e in zip(cap0, end))
    col = lambda v: v[:, None]  # noqa: E731
    _, out = physics.step(_map_params(p, col), _map(s, col), Action(0.0 * grid, caps, tuple(map(col, floors))),
                          _map(x, col), NUMPY)
    pmax, ramp = p.battery_power_mw, p.ramp_step_mw - _tightening(margin_mw, p.ramp_step_mw)
    b_lo = physics.battery_setpoint(p, s.energy_mwh, -pmax, np.inf, NUMPY)
    b_hi = physics.battery_setpoint(p, s.energy_mwh, pmax, np.inf, NUMPY)
    targets = np.stack([s.import_mw - ramp + b_lo, s.import_mw - ramp + b_hi,
                        s.import_mw + ramp + b_lo, s.import_mw + ramp + b_hi], axis=1)  # facility means
    diff = np.asarray(out.facility_power_mw)[:, None, :] - targets[:, :, None]  # (N, 4, S)
    change = diff[..., :-1] * diff[..., 1:] <= 0.0
    j = np.argmax(change, axis=-1)[..., None]
    f0, f1 = np.take_along_axis(diff, j, -1)[..., 0], np.take_along_axis(diff, j + 1, -1)[..., 0]
    lam4 = np.repeat(grid[:, None, :], 4, axis=1)
    l0, l1 = np.take_along_axis(lam4, j, -1)[..., 0], np.take_along_axis(lam4, j + 1, -1)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        root = np.where(f1 != f0, l0 - f0 * (l1 - l0) / (f1 - f0), l0)
    return np.where(change.any(axis=-1), root, 0.0)


def _cap_candidates(p: SiteParams, s: State, x: Exo, floors: tuple, cap0: tuple, margin_mw: float) -> tuple:
    """Per class, (N, C) candidate caps: the realized proposal ``cap0`` first; uniform moves of every class
    towards its lowest and its highest reachable cap (:data:`CAP_STEPS` each way, and where the import
    meets a ramp bound, :func:`_ramp_roots`); every per-class combination of lowest, proposed and highest.
    Also the reachable bounds per class (N,)."""
    lo, hi = _reachable_caps(p, s, x, floors)
    steps = np.linspace(0.0, 1.0, CAP_STEPS + 1)[None, 1:]
    lam_down = np.concatenate([np.broadcast_to(steps, (len(cap0[0]), CAP_STEPS)),
                               _ramp_roots(p, s, x, floors, cap0, lo, margin_mw)], axis=1)
    lam_up = np.concatenate([np.broadcast_to(steps, (len(cap0[0]), CAP_STEPS)),
                             _ramp_roots(p, s, x, floors, cap0, hi, margin_mw)], axis=1)
    combos = list(itertools.product(range(3), repeat=len(p.peak_mw)))
    cols = []
    for k in range(len(p.peak_mw)):
        c0, down, up = cap0[k][:, None], lo[k][:, None], hi[k][:, None]
        corner = np.concatenate([(c0, down, up)[combo[k]] for combo in combos], axis=1)
        cols.append(np.concatenate([c0, c0 + lam_down * (down - c0), c0 + lam_up * (up - c0), corner], axis=1))
    return tuple(cols), lo, hi


def _battery_setpoints(p: SiteParams, s: State, x: Exo, fac, swing, b_ref, margin_mw: float, ops) -> tuple:
    """(candidates, lowest, highest realizable battery set-point): set-points (MW) that include every end of
    the feasible set of each constraint, for facility mean ``fac`` and IT swing ``swing`` (MW): the
    realizable range's ends, ``b_ref``, the roots of each constraint on each linear piece of the inner
    loop's smoothing (:func:`cpm_env.physics.smoothing_limits`) and the pieces' breakpoints; some not
    finite, or outside the range (floats or arrays, with the matching ``ops``; numpy under an errstate
    that ignores division by zero)."""
    e, d = s.energy_mwh, x.duty
    d_lo, pmax = 1.0 - d, p.battery_power_mw
    b_lo = physics.battery_setpoint(p, e, -pmax, fac, ops)
    b_hi = physics.battery_setpoint(p, e, pmax, fac, ops)
    d_hi_safe, d_lo_safe = ops.maximum(d, _TINY), ops.maximum(d_lo, _TINY)
    loss_slope = d * d_lo * (1.0 / p.eta_discharge - p.eta_charge)
    ls_safe = ops.maximum(loss_slope, _TINY)
    has_energy_piece = loss_slope > _TINY
    # smoothing u(b) = max(min(pieces), 0), piece i = alpha_i + beta_i * b
    alpha = [0.0 * d, swing, pmax / d_lo_safe, pmax / d_hi_safe,
             ops.where(has_energy_piece, (e - p.energy_min_mwh) / p.dt_h / ls_safe, ops.nan)]
    beta = [0.0 * d, 0.0 * d, -1.0 / d_lo_safe, 1.0 / d_hi_safe,
            ops.where(has_energy_piece, -(d / p.eta_discharge + d_lo * p.eta_charge) / ls_safe, ops.nan)]
    ramp = p.ramp_step_mw - _tightening(margin_mw, p.ramp_step_mw)
    band_need = swing - (p.swing_band_mw - _tightening(margin_mw, p.swing_band_mw))  # u must reach this
    limit_need = fac + d_lo * swing - (x.limit_mw - margin_mw)  # b + d_lo * u must reach this
    cands = [b_lo, b_hi, b_ref, fac - s.import_mw - ramp, fac - s.import_mw + ramp]
    for i, j in itertools.combinations(range(len(alpha)), 2):
        cands.append(ops.divide(alpha[j] - alpha[i], beta[i] - beta[j]))
    for a_i, b_i in zip(alpha, beta):
        cands.append(ops.divide(band_need - a_i, b_i))
        cands.append(ops.divide(limit_need - d_lo * a_i, 1.0 + d_lo * b_i))
    return cands, b_lo, b_hi


def _battery_candidates(p: SiteParams, s: State, x: Exo, fac, swing, b_ref, margin_mw: float) -> np.ndarray:
    """:func:`_battery_setpoints` of arrays on the last axis, each not finite one replaced by the lowest,
    all clipped into the realizable range."""
    with np.errstate(divide="ignore", invalid="ignore"):
        cands, b_lo, b_hi = _battery_setpoints(p, s, x, fac, swing, b_ref, margin_mw, NUMPY)
    out = np.stack(np.broadcast_arrays(*cands), axis=-1)
    b_lo, b_hi = np.asarray(b_lo)[..., None], np.asarray(b_hi)[..., None]
    return np.clip(np.where(np.isfinite(out), out, b_lo), b_lo, b_hi)


def contract_score(excess: np.ndarray) -> np.ndarray:
    """Which constraints are met, as one number ordered by priority: 4 x limit + 2 x ramp + 1 x band."""
    return np.tensordot(np.array([4, 2, 1]), meets(excess).astype(int), axes=1)


def _select(excess: np.ndarray, cap_cost: np.ndarray, distance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the chosen candidate per site (candidates on the last axis of (3, N, M) ``excess`` and
    (N, M) costs) and the :data:`GAVE_UP` code: meet the most of the contract in priority order,
    then the least excess of the first constraint given up, the least cap move, the least battery move."""
    score = contract_score(excess)
    best = score.max(axis=1)
    code = np.select([best < 4, best < 6, best < 7], [3, 2, 1], 0)  # first constraint not met
    rows = np.arange(excess.shape[1])
    mask = score == best[:, None]
    given_up = np.stack([np.zeros_like(excess[0]), excess[2], excess[1], excess[0]])[code, rows]
    for key, tol in ((given_up, _EPS), (cap_cost, _EPS), (distance, 0.0)):
        masked = np.where(mask, key, np.inf)
        mask = mask & (masked <= masked.min(axis=1, keepdims=True) + tol)
    return np.argmax(mask, axis=1), code


def _judge(p: SiteParams, s: State, x: Exo, floors: tuple, caps: tuple, b0, margin_mw: float):
    """Battery candidates (N, C, B) for the (N, C) cap candidates ``caps`` and their contract excess (3, N, C, B)."""
    s2, x2 = _map(s, lambda v: v[:, None]), _map(x, lambda v: v[:, None])
    p2 = _map_params(p, lambda v: v[:, None])
    floors2 = tuple(f[:, None] for f in floors)
    _, fixed = physics.step(p2, s2, Action(0.0 * caps[0], caps, floors2), x2, NUMPY)
    batt = _battery_candidates(p2, s2, x2, np.asarray(fixed.facility_power_mw), np.asarray(fixed.facility_swing_mw),
                               b0[:, None], margin_mw)
    s3, x3 = _map(s2, lambda v: v[..., None]), _map(x2, lambda v: v[..., None])
    p3 = _map_params(p2, lambda v: v[..., None])
    action = Action(batt, tuple(c[..., None] for c in caps), tuple(f[..., None] for f in floors2))
    _, out = physics.step(p3, s3, action, x3, NUMPY)
    return batt, contract_excess(p3, s3, out, margin_mw)


def _zoom_centers(excess: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per site, the two cap candidates (axis 2 of (3, N, C, B) ``excess``) a search around starts from: the
    one with the least total excess over the contract (MW), and the one nearest to meeting the first
    constraint (in priority order) that no candidate meets together with all before it: the least excess
    of it among the candidates meeting those before it. A large excess of a later constraint (the band)
    no action can meet would otherwise pull the first away from an earlier one (the ramp) a nearby cap
    meets."""
    n, n_batt = excess.shape[1], excess.shape[3]
    flat = excess.reshape(3, n, -1)
    total = np.maximum(flat, 0.0).sum(axis=0)
    ok = np.ones(flat.shape[1:], dtype=bool)  # (N, M): meets every constraint before the current one
    nearest = np.zeros(n, dtype=int)
    undecided = np.ones(n, dtype=bool)
    for c in range(3):
        key = np.where(ok, flat[c], np.inf)
        met = ok & (flat[c] <= _EPS)
        stuck = undecided & ~met.any(axis=1)  # here the first constraint none meets with those before it
        nearest = np.where(stuck, np.argmin(key, axis=1), nearest)
        undecided &= ~stuck
        ok = met
    return np.argmin(total, axis=1) // n_batt, nearest // n_batt


def _search(p: SiteParams, s: State, x: Exo, floors: tuple, b0, cap0: tuple,
            margin_mw: float) -> tuple[np.ndarray, tuple, np.ndarray]:
    """Battery set-points (N,), caps per class and GAVE_UP codes chosen for sites (N,) whose realized
    proposal (``b0`` MW, ``cap0``) breaks the contract. Where no candidate meets the whole contract, one
    class's cap at a time moves around two candidates (:func:`_zoom_centers`), on finer steps each round
    (ZOOM_*)."""
    caps, lo, hi = _cap_candidates(p, s, x, floors, cap0, margin_mw)  # (N, C)
    batt, excess = _judge(p, s, x, floors, caps, b0, margin_mw)
    rows, width = np.arange(len(b0)), ZOOM_WIDTH
    t = np.delete(np.linspace(-1.0, 1.0, ZOOM_POINTS), ZOOM_POINTS // 2)[None, :]
    for _ in range(ZOOM_ROUNDS):
        done = meets(excess).all(axis=0).reshape(len(b0), -1).any(axis=1)  # a site with a candidate meeting it all
        if done.all():
            break
        new = []
        for center in _zoom_centers(excess):
            best = [c[rows, center][:, None] for c in caps]
            for k in range(len(caps)):  # move one class at a time
                moved = [np.repeat(c, t.shape[1], axis=1) for c in best]
                moved[k] = np.clip(best[k] + width * t * (hi[k] - lo[k])[:, None], lo[k][:, None], hi[k][:, None])
                new.append(moved)
        new_caps = tuple(np.concatenate([m[k] for m in new], axis=1) for k in range(len(caps)))
        new_batt, new_excess = _judge(p, s, x, floors, new_caps, b0, margin_mw)
        new_excess[:, done] = np.inf  # searched only where needed, so a site's choice never depends on its batch
        caps = tuple(np.concatenate([c, c_new], axis=1) for c, c_new in zip(caps, new_caps))
        batt, excess = np.concatenate([batt, new_batt], axis=1), np.concatenate([excess, new_excess], axis=2)
        width *= ZOOM_SHRINK
    n, m = batt.shape[0], batt.shape[1] * batt.shape[2]
    cap_cost = sum(np.asarray(pk)[..., None] * np.abs(c - c0[:, None]) for pk, c, c0 in zip(p.peak_mw, caps, cap0))
    cap_cost = np.broadcast_to(np.asarray(cap_cost)[..., None], batt.shape).reshape(n, m)
    pick, code = _select(excess.reshape(3, n, m), cap_cost, np.abs(batt - b0[:, None, None]).reshape(n, m))
    return batt.reshape(n, m)[rows, pick], tuple(c[rows, pick // batt.shape[2]] for c in caps), code


def proposal_meets_contract(p: SiteParams, s: State, x: Exo, a: Action, margin_mw: float = MARGIN_MW) -> bool:
    """Whether one site's proposal ``a`` (set-points as the physics takes them) keeps the coming step inside
    the tightened contract, judged by the physics (:func:`cpm_env.physics.step`'s parts) on the scalar
    backend: every value a plain float of magnitude at most ``_FAST_MAX`` (as :func:`shield`'s fast path
    checks first)."""
    _, fac, swing = physics.facility_power(p, s, a, x, SCALAR)
    return _site_meets(p, s, x, fac, swing, a.battery_mw, margin_mw)[1]


def _site_meets(p: SiteParams, s: State, x: Exo, fac: float, swing: float, battery_mw: Scalar,
                margin_mw: float) -> tuple[float, bool]:
    """(battery MW as realized, whether the step meets the whole tightened contract) for one site in plain
    floats at facility mean ``fac`` and swing ``swing`` (MW) with battery set-point ``battery_mw``."""
    b, u = physics.battery_at_meter(p, s.energy_mwh, battery_mw, fac, swing, x.duty, SCALAR)
    g_mean, g_hi, _, resid = physics.grid_import(fac, b, swing, u, x.duty)
    e_limit, e_ramp, e_band = _excess(p, s.import_mw, x.limit_mw, g_mean, g_hi, resid, margin_mw, SCALAR)
    return b, e_limit <= _EPS and e_ramp <= _EPS and e_band <= _EPS


def _caps_stand_apart(p: SiteParams, s: State, caps: tuple, fac: float, margin_mw: float) -> bool:
    """Whether every cap candidate of :func:`_cap_candidates` for one site (plain floats) other than the
    proposal's realized ``caps`` themselves (those repeat its battery candidates behind it, so never win a
    tie) costs more than ``_EPS`` (MW at TDP) of cap move: each class's reachable ends are the caps or more
    than ``_NEAR_MW`` away, and (where a cap can move) the facility mean ``fac`` is more than PUE x
    ``_NEAR_MW`` from each ramp target of :func:`_ramp_roots`. Along a uniform move the facility mean moves
    at most PUE x the cap move (MW at TDP), so a ramp root then costs at least ``_NEAR_MW``."""
    moves = False
    for k, peak in enumerate(p.peak_mw):
        for target in (0.0, 2.0):  # the lowest and highest reachable cap, as _reachable_caps
            gap_mw = peak * abs(physics.realized_cap(p, k, s.caps[k], target, SCALAR) - caps[k])
            if 0.0 < gap_mw <= _NEAR_MW:
                return False
            moves = moves or gap_mw > 0.0
    if not moves:
        return True
    pmax, ramp = p.battery_power_mw, p.ramp_step_mw - min(margin_mw, 0.5 * p.ramp_step_mw)
    ends = [physics.battery_setpoint(p, s.energy_mwh, b, math.inf, SCALAR) for b in (-pmax, pmax)]
    return all(abs(fac - (s.import_mw + bound + b)) > p.pue * _NEAR_MW for bound in (-ramp, ramp) for b in ends)


def _search_site(p: SiteParams, s: State, x: Exo, b0: float, caps: tuple, fac: float, swing: float,
                 margin_mw: float) -> float | None:
    """The battery set-point (MW) :func:`_search` picks for one site in plain floats whose realized proposal
    (battery ``b0``, ``caps``; facility mean ``fac`` and swing ``swing``, MW) breaks the contract, where a
    battery candidate at these caps meets the whole contract and no other cap candidate can tie with them
    (:func:`_caps_stand_apart`): of those, the nearest to ``b0``, the first on a tie. None where it cannot
    conclude so: the numpy search decides."""
    if not _caps_stand_apart(p, s, caps, fac, margin_mw):
        return None
    cands, b_lo, b_hi = _battery_setpoints(p, s, x, fac, swing, b0, margin_mw, SCALAR)
    # as _battery_candidates: not finite -> b_lo, then np.clip's min(max(b, b_lo), b_hi) with numpy's ties
    batt = [b_hi if not t < b_hi else t for t in (b if b_lo < b < math.inf else b_lo for b in cands)]
    distance = [abs(b - b0) for b in batt]
    failed = set()  # many candidates are the same set-point (a range end): judge each value once
    for i in sorted(range(len(batt)), key=distance.__getitem__):  # a stable sort: ties in candidate order
        b = batt[i]
        if b not in failed:
            if _site_meets(p, s, x, fac, swing, b, margin_mw)[1]:
                return b
            failed.add(b)
    return None


def _plain_floats(*trees) -> bool:
    """Whether every value of these State/Exo/Action trees is a Python float within ``_FAST_MAX`` (NaN and
    infinities are not): one site, on the fast path."""
    for tree in trees:
        for f in tree:
            for v in (f if type(f) is tuple else () if f is None else (f,)):
                if type(v) is not float or not -_FAST_MAX <= v <= _FAST_MAX:
                    return False
    return True


def _no_change(n_classes: int, shared: bool) -> Report:
    """The report of one site whose proposal passed unchanged, as 0-d arrays (read-only where ``shared``)."""
    report = Report(np.zeros((), dtype=bool), np.zeros(()), tuple(np.zeros(()) for _ in range(n_classes)),
                    np.zeros(()), np.zeros((), dtype=int))
    if shared:
        for v in (report.intervened, report.battery_delta_mw, *report.cap_delta, report.delta_mw, report.gave_up):
            v.flags.writeable = False
    return report


_NO_CHANGE: dict[int, Report] = {}  # per number of classes, shield_site's report for a proposal that passed


def shield(p: SiteParams, s: State, x: Exo, a: Action, margin_mw: float = MARGIN_MW) -> tuple[Action, Report]:
    """The set-points nearest to proposal ``a`` that keep the coming step inside the contract (see the
    module doc), and what the filter did. Floats or arrays over a batch; floors pass through. One site
    in plain floats takes the fast path (:func:`shield_site`: the same answer)."""
    if not _plain_floats(s, x, a):
        return _shield_arrays(p, s, x, a, margin_mw)
    safe, report = shield_site(p, s, x, a, margin_mw)
    if safe is None:
        return Action(np.array(a.battery_mw), tuple(np.array(c) for c in a.caps),
                      tuple(np.array(f) for f in a.floors)), _no_change(len(a.caps), shared=False)
    return safe, report


def shield_site(p: SiteParams, s: State, x: Exo, a: Action, margin_mw: float = MARGIN_MW) -> tuple[Action | None,
                                                                                                    Report]:
    """:func:`shield` for one site whose every value is a plain finite float of magnitude at most
    ``_FAST_MAX`` (the caller's promise: the exported runtime's validated telemetry and set-points), for a
    control loop: ``(None, report)`` where the proposal meets the contract (:func:`shield` returns it
    unchanged; the report is shared and read-only), else :func:`shield`'s answer (0-d arrays): from the
    scalar search where it concludes (:func:`_search_site`), else from the numpy one."""
    caps, fac, swing = physics.facility_power(p, s, a, x, SCALAR)
    b0, met = _site_meets(p, s, x, fac, swing, a.battery_mw, margin_mw)
    if met:
        n = len(a.caps)
        return None, _NO_CHANGE.get(n) or _NO_CHANGE.setdefault(n, _no_change(n, shared=True))
    battery = _search_site(p, s, x, b0, caps, fac, swing, margin_mw)
    if battery is None:
        return _shield_arrays(p, s, x, a, margin_mw)
    return _site_answer(p, a, b0, caps, battery)


def _site_answer(p: SiteParams, a: Action, b0: float, caps: tuple, battery: float) -> tuple[Action, Report]:
    """:func:`_shield_arrays`' answer (0-d arrays) for one site whose search kept the realized caps ``caps``
    and chose ``battery`` (MW; the realized proposal's battery: ``b0``), meeting the whole contract."""
    d_battery = battery - b0
    d_caps = [c - c for c in caps]  # the chosen caps minus the realized ones, as the numpy path subtracts
    intervened = d_battery != 0
    delta = abs(d_battery) + sum([pk * abs(dc) for pk, dc in zip(p.peak_mw, d_caps)])
    safe = Action(np.array(battery if intervened else a.battery_mw),
                  tuple([np.array(c) for c in (caps if intervened else a.caps)]),
                  tuple([np.array(f) for f in a.floors]))
    report = Report(np.array(intervened), np.array(d_battery), tuple([np.array(dc) for dc in d_caps]),
                    np.array(delta), np.array(0))
    return safe, report


def _shield_arrays(p: SiteParams, s: State, x: Exo, a: Action, margin_mw: float) -> tuple[Action, Report]:
    """:func:`shield` on numpy arrays: every site judged at once, the search only where the proposal breaks
    the contract."""
    shape = np.broadcast_shapes(*(np.shape(v) for t in (s, x, a) for f in t
                                  for v in (f if isinstance(f, tuple) else () if f is None else (f,))))
    n = int(np.prod(shape))
    s, x, a = (_map(t, lambda v: np.broadcast_to(np.asarray(v, dtype=float), shape).reshape(n).copy())
               for t in (s, x, a))
    s1, out = physics.step(p, s, a, x, NUMPY)
    b0 = np.broadcast_to(out.battery_power_mw, (n,))
    bad = np.flatnonzero(~meets(contract_excess(p, s, out, margin_mw)).all(axis=0))
    cap0 = [np.broadcast_to(c, (n,)) for c in s1.caps]
    floors = [np.asarray(f) for f in a.floors]
    battery, caps, code = b0.copy(), [c.copy() for c in cap0], np.zeros(n, dtype=int)
    if bad.size:
        take = lambda v: v[bad]  # noqa: E731
        battery[bad], new_caps, code[bad] = _search(_map_params(p, take), _map(s, take), _map(x, take),
                                                    tuple(f[bad] for f in floors), b0[bad], tuple(c[bad] for c in cap0),
                                                    margin_mw)
        for c, new in zip(caps, new_caps):
            c[bad] = new
    d_battery = battery - b0
    d_caps = tuple(c - c0 for c, c0 in zip(caps, cap0))
    intervened = (d_battery != 0) | np.any(np.stack([dc != 0 for dc in d_caps]), axis=0)

    def keep(new, old) -> np.ndarray:
        return np.asarray(np.where(intervened, new, old)).reshape(shape)

    safe = Action(keep(battery, a.battery_mw), tuple(keep(c, c0) for c, c0 in zip(caps, a.caps)),
                  tuple(f.reshape(shape) for f in floors))
    delta = np.abs(d_battery) + sum(pk * np.abs(dc) for pk, dc in zip(p.peak_mw, d_caps))
    report = Report(intervened.reshape(shape), d_battery.reshape(shape), tuple(dc.reshape(shape) for dc in d_caps),
                    np.asarray(delta).reshape(shape), code.reshape(shape))
    return safe, report
