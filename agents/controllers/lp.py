"""A small vectorized builder for linear programs, solved with Clarabel or HiGHS.

Variables come in named blocks (numpy index arrays); constraints are added many rows at a
time as sums of (index array, coefficient array) terms with row bounds.

Two backends: ``"clarabel"`` (an interior-point method with a sparse direct LDL
factorization, 3-4x faster than HiGHS's IPX on the site's banded episode LPs) and
``"highs"`` (HiGHS IPM with crossover, simplex where the IPM stalls). A Clarabel solve that
does not reach optimality falls back to HiGHS.
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

    def var(self, n: int, lb=0.0, ub=INF, cost=0.0) -> np.ndarray:
        """Add ``n`` variables; returns their indices."""
        idx = np.arange(self.n, self.n + n)
        self.n += n
        self.lb.append(np.broadcast_to(np.asarray(lb, float), (n,)).copy())
        self.ub.append(np.broadcast_to(np.asarray(ub, float), (n,)).copy())
        self.cost.append(np.broadcast_to(np.asarray(cost, float), (n,)).copy())
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
            coef = np.broadcast_to(np.asarray(coef, float), (m,))
            keep = coef != 0
            self._rows.append((row[keep], np.asarray(idx)[keep], coef[keep]))
        self._row_lo.append(np.broadcast_to(np.asarray(lo, float), (m,)).copy())
        self._row_hi.append(np.broadcast_to(np.asarray(hi, float), (m,)).copy())
        self.m += m

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

    def solve(self, backend: str = "clarabel") -> tuple[np.ndarray, float]:
        """Optimal ``x`` and objective; raises RuntimeError unless a backend reports optimal."""
        if backend not in BACKENDS:
            raise ValueError(f"LP backend {backend!r} unknown: available are {', '.join(BACKENDS)}")
        cost = np.concatenate(self.cost)
        row, col, val = self._triplets()
        x = self._solve_clarabel(row, col, val, cost) if backend == "clarabel" else None
        if x is None:
            x = self._solve_highs(row, col, val, cost)
        return x, float(cost @ x)

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
