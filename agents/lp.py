"""A small vectorized builder for linear programs, solved with HiGHS (highspy).

Variables come in named blocks (numpy index arrays); constraints are added many rows at a
time as sums of (index array, coefficient array) terms with row bounds.
"""

from __future__ import annotations

import numpy as np
import highspy

INF = highspy.kHighsInf


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

    def solve(self) -> tuple[np.ndarray, float]:
        """Optimal ``x`` and objective; raises RuntimeError unless HiGHS reports optimal."""
        row = np.concatenate([r for r, _, _ in self._rows])
        col = np.concatenate([c for _, c, _ in self._rows])
        val = np.concatenate([v for _, _, v in self._rows])
        order = np.lexsort((col, row))
        row, col, val = row[order], col[order], val[order]
        # HiGHS wants each (row, col) once: sum repeated terms
        new = np.ones(len(row), dtype=bool)
        new[1:] = (row[1:] != row[:-1]) | (col[1:] != col[:-1])
        group = np.cumsum(new) - 1
        val = np.bincount(group, weights=val)
        row, col = row[new], col[new]
        starts = np.searchsorted(row, np.arange(self.m))
        h = highspy.Highs()
        h.silent()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("threads", 1)
        h.setOptionValue("solver", "ipm")  # 1.5-2x faster than simplex here; crossover gives a vertex
        cost = np.concatenate(self.cost)
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
        x = np.array(h.getSolution().col_value)
        return x, float(cost @ x)
