"""Pareto fronts over result dictionaries (used by sweeps and the dashboard)."""

from __future__ import annotations


def dominates(a: dict, b: dict, objectives: list[tuple[str, str]]) -> bool:
    """a is at least as good as b on every objective and better on one ("min" or "max")."""
    better = False
    for key, sense in objectives:
        x, y = a[key], b[key]
        if (x > y) if sense == "min" else (x < y):
            return False
        if x != y:
            better = True
    return better


def pareto_front(points: list[dict], objectives: list[tuple[str, str]]) -> list[dict]:
    """The points no other point dominates."""
    return [p for p in points if not any(dominates(q, p, objectives) for q in points if q is not p)]
