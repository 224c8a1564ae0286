"""A small vectorized builder for linear programs, solved with Clarabel or HiGHS.

Variables come in named blocks (numpy index arrays); constraints are added many rows at a
time as sums of (index array, coefficient array) terms with row bounds.

Two backends: ``"clarabel"`` (an interior-point method with a sparse direct LDL
factorization, 3-4x faster than HiGHS's IPX on the site's banded episode LPs) and
``"highs"`` (HiGHS IPM with crossover, simplex where the IPM stalls). A Clarabel solve that
does not reach optimality falls back to HiGHS.

A receding-horizon sequence of LPs of one shape (the MPC's) re-solves warm (:class:`WarmStart`):
HiGHS's dual simplex from the last solve's basis, each block of variables and rows stored circularly
by absolute time, so the entries of the steps both horizons share keep their place and status and the
step that left the horizon hands its place to the step that entered it.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import clarabel
import highspy
import numpy as np
import scipy.sparse as sp

INF = highspy.kHighsInf
BACKENDS = ("clarabel", "highs")
_banner_muted = False  # HiGHS prints a banner on the C-level stdout at a process's first instance


class WarmStart:
    """HiGHS and its last basis, for LPs of one shape solved in sequence, ``step`` decisions apart.

    :meth:`advance` after each decision: blocks are then stored one place further round, so the
    last basis starts the next horizon where the two overlap.
    """

    def __init__(self):
        self.highs: highspy.Highs | None = None
        self.bases: dict[tuple, object] = {}  # the blocks' lengths of an LP -> the basis its last solve ended at
        self.step = 0

    def advance(self) -> None:
        """The next decision: the horizon moved one step on."""
        self.step += 1


def as_length(value, n: int) -> np.ndarray:
    """``value`` (a number or an array broadcastable to ``n``) as a float array of ``n`` (a view where it can be;
    numpy's ``broadcast_to`` costs microseconds even where there is nothing to broadcast)."""
    a = np.asarray(value, dtype=float)
    return a if a.shape == (n,) else np.broadcast_to(a, (n,))


def _filled(value, n: int) -> np.ndarray:
    """``value`` (a number or an array broadcastable to ``n``) as a new float array of ``n``."""
    return np.full(n, float(value)) if np.ndim(value) == 0 else as_length(value, n).copy()


def _circular(lengths: list[int], step: int) -> np.ndarray:
    """Where each entry of blocks of ``lengths`` goes when each block is rotated ``step`` places."""
    starts = np.cumsum([0] + lengths[:-1])
    return np.concatenate([s + (np.arange(n) + step) % n for s, n in zip(starts, lengths)]) if lengths else \
        np.zeros(0, dtype=int)


@contextmanager
def _mute_stdout_fd():
    """Send file descriptor 1 (what C libraries print to) to /dev/null for the block."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(devnull)
        os.close(saved)


def _silent_highs() -> highspy.Highs:
    """A HiGHS instance that prints nothing (the banner of the first one is muted)."""
    global _banner_muted
    if _banner_muted:
        h = highspy.Highs()
    else:
        with _mute_stdout_fd():
            h = highspy.Highs()
        _banner_muted = True
    h.silent()
    return h


class LinearProgram:
    """Maximize ``c @ x`` subject to ``row_lo <= A x <= row_hi`` and ``lb <= x <= ub``."""

    def __init__(self):
        self.lb: list[np.ndarray] = []
        self.ub: list[np.ndarray] = []
        self.cost: list[np.ndarray] = []
        self.n = 0
        self._rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (row, col, val)
        self._row_lo: list[np.ndarray] = []
        self._row_hi: list[np.ndarray] = []
        self.m = 0
        self._col_blocks: list[int] = []  # lengths of the blocks added by var
        self._row_blocks: list[int] = []  # lengths of the blocks added by rows

    def var(self, n: int, lb=0.0, ub=INF, cost=0.0) -> np.ndarray:
        """Add ``n`` variables; returns their indices."""
        idx = np.arange(self.n, self.n + n)
        self.n += n
        self._col_blocks.append(n)
        self.lb.append(_filled(lb, n))
        self.ub.append(_filled(ub, n))
        self.cost.append(_filled(cost, n))
        return idx

    def add_cost(self, idx: np.ndarray, coef) -> None:
        """Add ``coef`` to the objective coefficients of ``idx`` (maximized)."""
        cost = np.concatenate(self.cost)
        np.add.at(cost, idx, np.broadcast_to(np.asarray(coef, float), idx.shape))
        self.cost = [cost]

    def rows(self, terms: list[tuple[np.ndarray, object]], lo=-INF, hi=INF) -> None:
        """Add rows ``lo <= sum(coef * x[idx]) <= hi``; every term's arrays have one entry per row."""
        m = len(terms[0][0])
        row = np.arange(self.m, self.m + m)
        for idx, coef in terms:
            if np.ndim(coef) == 0:
                if coef != 0:
                    self._rows.append((row, np.asarray(idx), np.full(m, float(coef))))
                continue
            coef = as_length(coef, m)
            keep = coef != 0
            self._rows.append((row[keep], np.asarray(idx)[keep], coef[keep]))
        self._row_lo.append(_filled(lo, m))
        self._row_hi.append(_filled(hi, m))
        self.m += m
        self._row_blocks.append(m)

    def _triplets(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The constraint matrix as (row, col, val), sorted by row, each (row, col) once."""
        row = np.concatenate([r for r, _, _ in self._rows])
        col = np.concatenate([c for _, c, _ in self._rows])
        val = np.concatenate([v for _, _, v in self._rows])
        order = np.lexsort((col, row))
        row, col, val = row[order], col[order], val[order]
        new = np.ones(len(row), dtype=bool)  # sum repeated (row, col) terms
        new[1:] = (row[1:] != row[:-1]) | (col[1:] != col[:-1])
        val = np.bincount(np.cumsum(new) - 1, weights=val)
        return row[new], col[new], val

    def solve(self, backend: str = "clarabel", warm: WarmStart | None = None) -> tuple[np.ndarray, float]:
        """Optimal ``x`` and objective; raises RuntimeError unless a backend reports optimal. With ``warm``
        (HiGHS only) it re-solves from the basis of the last LP of the same shape."""
        if backend not in BACKENDS:
            raise ValueError(f"LP backend {backend!r} unknown: available are {', '.join(BACKENDS)}")
        cost = np.concatenate(self.cost)
        if warm is not None and backend == "highs":
            x = self._solve_warm(cost, warm)
            return x, float(cost @ x)
        row, col, val = self._triplets()
        x = self._solve_clarabel(row, col, val, cost) if backend == "clarabel" else None
        if x is None:
            x = self._solve_highs(row, col, val, cost)
        return x, float(cost @ x)

    def _solve_warm(self, cost: np.ndarray, warm: WarmStart) -> np.ndarray:
        """HiGHS dual simplex on the LP with its blocks rotated ``warm.step`` places, from ``warm``'s basis
        where the shape matches; the basis it ends at is kept for the next solve."""
        shape = (tuple(self._col_blocks), tuple(self._row_blocks))
        col_at, row_at = _circular(self._col_blocks, warm.step), _circular(self._row_blocks, warm.step)
        row, col, val = (np.concatenate(part) for part in zip(*self._rows))
        a = sp.csc_matrix((val, (row_at[row], col_at[col])), shape=(self.m, self.n))  # sums repeated entries

        def placed(values: np.ndarray, at: np.ndarray) -> np.ndarray:
            out = np.empty_like(values)
            out[at] = values
            return out

        if warm.highs is None:
            warm.highs = _silent_highs()
            for option, value in (("output_flag", False), ("threads", 1), ("solver", "simplex"),
                                  ("simplex_dual_edge_weight_strategy", 1)):  # Devex: no steepest-edge set-up
                warm.highs.setOptionValue(option, value)
        h = warm.highs
        h.passModel(self.n, self.m, a.nnz, int(highspy.MatrixFormat.kColwise), int(highspy.ObjSense.kMinimize), 0.0,
                    placed(-cost, col_at), placed(np.concatenate(self.lb), col_at),  # HiGHS minimizes
                    placed(np.concatenate(self.ub), col_at), placed(np.concatenate(self._row_lo), row_at),
                    placed(np.concatenate(self._row_hi), row_at), a.indptr[:-1].astype(np.int32),
                    a.indices.astype(np.int32), a.data, np.zeros(self.n, dtype=np.int32))  # all continuous
        if shape in warm.bases:
            h.setBasis(warm.bases[shape])
        h.run()
        status = h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:  # a cold solve of the same LP decides
            warm.bases.pop(shape, None)
            return self._solve_highs(*self._triplets(), cost)
        warm.bases[shape] = h.getBasis()
        return np.array(h.getSolution().col_value)[col_at]

    def _solve_clarabel(self, row, col, val, cost) -> np.ndarray | None:
        """Clarabel on ``[A_eq; A_le] x + s = b``, s in (zero cone, nonnegative cone); None if not solved."""
        a = sp.csr_matrix((val, (row, col)), shape=(self.m, self.n))
        lo, hi = np.concatenate(self._row_lo), np.concatenate(self._row_hi)
        lb, ub = np.concatenate(self.lb), np.concatenate(self.ub)
        eye = sp.identity(self.n, format="csr")
        eq_row, eq_var = lo == hi, lb == ub
        le_hi, le_lo = ~eq_row & (hi < INF), ~eq_row & (lo > -INF)
        le_ub, le_lb = ~eq_var & (ub < INF), ~eq_var & (lb > -INF)
        blocks = [a[eq_row], eye[eq_var], a[le_hi], -a[le_lo], eye[le_ub], -eye[le_lb]]
        rhs = [hi[eq_row], ub[eq_var], hi[le_hi], -lo[le_lo], ub[le_ub], -lb[le_lb]]
        n_eq = int(eq_row.sum() + eq_var.sum())
        matrix = sp.vstack(blocks, format="csc")
        settings = clarabel.DefaultSettings()
        settings.verbose = False
        settings.max_threads = 1
        cones = [clarabel.ZeroConeT(n_eq), clarabel.NonnegativeConeT(matrix.shape[0] - n_eq)]
        solution = clarabel.DefaultSolver(sp.csc_matrix((self.n, self.n)), -cost, matrix, np.concatenate(rhs),
                                          cones, settings).solve()
        if solution.status != clarabel.SolverStatus.Solved:
            return None
        return np.clip(np.array(solution.x), lb, ub)

    def _solve_highs(self, row, col, val, cost) -> np.ndarray:
        """HiGHS IPM (crossover to a vertex), then simplex if the IPM stalls."""
        starts = np.searchsorted(row, np.arange(self.m))
        h = _silent_highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("threads", 1)
        h.setOptionValue("solver", "ipm")
        h.addVars(self.n, np.concatenate(self.lb), np.concatenate(self.ub))
        h.changeColsCost(self.n, np.arange(self.n, dtype=np.int32), -cost)  # HiGHS minimizes
        h.addRows(self.m, np.concatenate(self._row_lo), np.concatenate(self._row_hi), len(val),
                  starts.astype(np.int32), col.astype(np.int32), val)
        h.run()
        status = h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:  # IPM can stall on degenerate horizons: try simplex
            h.setOptionValue("solver", "simplex")
            h.clearSolver()
            h.run()
            status = h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(f"LP not solved: {h.modelStatusToString(status)}")
        return np.array(h.getSolution().col_value)
