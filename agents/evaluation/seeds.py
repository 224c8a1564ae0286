"""Seed lists as the CLIs and config files write them: '100-119', '1,5,9' or a mix."""

from __future__ import annotations


def parse_seeds(text: str, field: str = "--seeds") -> list[int]:
    """'100-119' or '1,5,9' (or a mix) -> a list of distinct seeds >= 0; a one-line error naming
    ``field`` for an empty list or part, a reversed range, a negative or a repeated seed."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                lo, hi = part.split("-", 1)
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                seeds += list(range(lo_i, hi_i + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise ValueError(f"{field} = {text!r}: must be a range like 100-119 or a list like 1,5,9") from None
    if min(seeds) < 0:
        raise ValueError(f"{field} = {text!r}: seeds must be integers >= 0")
    seen: set[int] = set()
    for seed in seeds:
        if seed in seen:
            raise ValueError(f"{field} = {text!r}: seed {seed} given twice")
        seen.add(seed)
    return seeds
