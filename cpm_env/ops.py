"""Element-wise operations for the physics, on numpy arrays or on plain Python floats.

The physics is written once against this tiny interface. The batched env passes
:data:`NUMPY` (arrays with a leading batch axis); the single env passes :data:`SCALAR`,
because numpy's per-call overhead (~1 us) on size-1 arrays would make one step cost more
than the whole physics does in plain floats.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from types import SimpleNamespace

import numpy as np


def _s_min(a, b):
    return a if a < b else b


def _s_max(a, b):
    return a if a > b else b


def _s_where(cond, a, b):
    return a if cond else b


def _s_interp(x, xs, ys):
    """``np.interp`` for one float, with numpy's formula so both backends agree bitwise."""
    if x >= xs[-1]:
        return ys[-1]
    if x <= xs[0]:
        return ys[0]
    j = bisect_right(xs, x) - 1
    slope = (ys[j + 1] - ys[j]) / (xs[j + 1] - xs[j])
    return slope * (x - xs[j]) + ys[j]


def _s_divide(a, b):
    """``a / b``, with IEEE 754's answer (numpy's, without the warning) where ``b`` is zero: +-inf, or NaN."""
    if b != 0.0:  # NaN included
        return a / b
    return math.nan if a == 0.0 or a != a else math.copysign(math.inf, a) * math.copysign(1.0, b)


NUMPY = SimpleNamespace(minimum=np.minimum, maximum=np.maximum, where=np.where, abs=np.abs, interp=np.interp,
                        divide=np.divide, inf=np.inf, nan=np.nan)
SCALAR = SimpleNamespace(minimum=_s_min, maximum=_s_max, where=_s_where, abs=abs, interp=_s_interp, divide=_s_divide,
                         inf=math.inf, nan=math.nan)
