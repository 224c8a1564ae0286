"""agents.evaluation.spread: the interquartile mean and its bootstrap CI over training seeds x episodes."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from agents.evaluation.spread import iqm, spread

matrices = st.tuples(st.integers(1, 5), st.integers(1, 6)).flatmap(
    lambda shape: arrays(np.float64, shape, elements=st.floats(-200, 200, allow_nan=False)))


def test_iqm_drops_the_outer_quartiles():
    assert iqm(np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1000.0])) == pytest.approx(3.5)  # mean of 2..5


@given(matrices)
def test_spread_is_ordered_and_ignores_run_order(x):
    s = spread(x, samples=200)
    lo, hi = x.min() - 1e-9, x.max() + 1e-9
    assert lo <= s.iqm_low <= s.iqm_high <= hi and lo <= s.iqm <= hi
    assert s.worst_run <= s.median_run <= s.best_run
    assert (s.n_runs, s.n_episodes) == x.shape
    flipped = spread(x[::-1], samples=200)
    assert flipped.iqm == pytest.approx(s.iqm) and flipped.median_run == pytest.approx(s.median_run)


def test_identical_runs_have_no_spread():
    s = spread(np.full((3, 5), 92.5))
    assert s.iqm == s.iqm_low == s.iqm_high == s.median_run == pytest.approx(92.5)


@pytest.mark.parametrize("bad", [np.zeros((0, 3)), np.zeros(4), np.array([[1.0, np.nan]])])
def test_bad_score_matrix_is_a_one_line_error(bad):
    with pytest.raises(ValueError) as err:
        spread(bad)
    assert "\n" not in str(err.value)
