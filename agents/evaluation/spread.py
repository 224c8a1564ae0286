"""How a learning method's result spreads over training seeds: interquartile mean and bootstrap CIs.

The score matrix has one row per training seed (a policy trained from that seed) and one column
per held-out evaluation seed (an episode); entries are normalized scores, e.g. % of the
oracle's reward on that episode. As ``rliable`` (Agarwal et al., "Deep RL at the Edge of the
Statistical Precipice", NeurIPS 2021) recommends for few runs, the summary is the interquartile
mean (IQM: the mean of the middle 50% of all entries) with a percentile bootstrap confidence
interval that resamples both the training seeds (rows) and the episodes (columns), plus the
median over training seeds of each policy's mean score. Pure numpy + scipy.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.stats import trim_mean

BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95


class Spread(NamedTuple):
    """A score matrix's summary (same unit as its entries)."""

    iqm: float
    iqm_low: float  # bootstrap confidence interval of the IQM
    iqm_high: float
    median_run: float  # median over training seeds of each run's mean score
    worst_run: float  # lowest run mean
    best_run: float  # highest run mean
    n_runs: int
    n_episodes: int


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all entries: the mean after dropping the lowest and highest 25%."""
    return float(trim_mean(np.asarray(scores, dtype=float).ravel(), 0.25))


def spread(scores: np.ndarray, seed: int = 0, samples: int = BOOTSTRAP_SAMPLES,
           confidence: float = CONFIDENCE) -> Spread:
    """Summary of a (training seeds, episodes) score matrix; ValueError (one line) if it is empty
    or holds a non-finite entry. The bootstrap resamples rows and columns with replacement
    (``samples`` times, seeded ``seed``) and takes the central ``confidence`` interval of the IQM."""
    x = np.asarray(scores, dtype=float)
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"scores have shape {x.shape}: need (training seeds, episodes), both at least 1")
    if not np.isfinite(x).all():
        raise ValueError(f"scores hold non-finite entries at {np.argwhere(~np.isfinite(x)).tolist()}")
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, x.shape[0], size=(samples, x.shape[0]))
    cols = rng.integers(0, x.shape[1], size=(samples, x.shape[1]))
    boot = np.array([iqm(x[np.ix_(r, c)]) for r, c in zip(rows, cols)])
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(boot, [tail, 100.0 - tail])
    runs = x.mean(axis=1)
    return Spread(iqm(x), float(low), float(high), float(np.median(runs)), float(runs.min()), float(runs.max()),
                  x.shape[0], x.shape[1])
