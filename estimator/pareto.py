"""Pareto frontiers: the best metric at each memory size (seed 000 §7)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import TypeVar

T = TypeVar("T")


def frontier(items: Iterable[T], metric: Callable[[T], float | None], cost: Callable[[T], float]) -> list[T]:
    """Items no other item dominates (higher metric at no more cost, or equal metric at less).

    The seed's sweep (§7.3), with ties broken by cost so that of two equal metrics only the
    cheaper survives. Returned in increasing cost (and metric).
    """
    # ((-metric, cost), item): sorted on the first alone, by a C key function
    scored: list[tuple[tuple[float, float], T]] = []
    for item in items:
        m = metric(item)
        if m is not None:
            scored.append(((-m, cost(item)), item))
    scored.sort(key=itemgetter(0))
    front: list[T] = []
    min_cost = float("inf")
    for (_, c), item in scored:
        if c < min_cost:
            front.append(item)
            min_cost = c
    front.reverse()
    return front


def dominated(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether point a = (metric, cost) is dominated by b."""
    return (b[0] >= a[0] and b[1] <= a[1]) and (b[0] > a[0] or b[1] < a[1])
