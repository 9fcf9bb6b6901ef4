"""Pipeline schedules as the order in which each stage runs its passes.

A pass is (kind, micro_batch) with kind F (forward), B (backward; for gpipe and 1f1b it includes the
weight gradient) or W (weight gradient alone, zero-bubble only). The simulator runs each stage's list in
order, each pass waiting for its inputs from the neighbouring stage.
"""

from __future__ import annotations

Pass = tuple[str, int]


def gpipe(stage: int, pp: int, m: int) -> list[Pass]:
    """All forwards, then all backwards (GPipe, Huang et al. 2019)."""
    return [("F", i) for i in range(m)] + [("B", i) for i in reversed(range(m))]


def one_f_one_b(stage: int, pp: int, m: int) -> list[Pass]:
    """1F1B (PipeDream-flush): pp - stage - 1 warm-up forwards, then alternate, then drain backwards."""
    warm = min(pp - stage - 1, m)
    order = [("F", i) for i in range(warm)]
    for i in range(m - warm):
        order += [("F", warm + i), ("B", i)]
    return order + [("B", i) for i in range(m - warm, m)]


def zero_bubble_h1(stage: int, pp: int, m: int) -> list[Pass]:
    """ZB-H1 (Qi et al. 2023): 1F1B's order and memory, with backward split into B (input gradient) and
    W (weight gradient); stage s keeps pp - s - 1 W passes pending and runs them in the drain, where
    1F1B would wait for the next stage's backward. Bubble (pp - 1)(F + B - W) vs 1F1B's (pp - 1)(F + B + W)."""
    warm = min(pp - stage - 1, m)
    order: list[Pass] = [("F", i) for i in range(warm)]
    pending: list[int] = []
    for i in range(m - warm):
        order += [("F", warm + i), ("B", i)]
        pending.append(i)
        if len(pending) > warm:
            order.append(("W", pending.pop(0)))
    for i in range(m - warm, m):
        order.append(("B", i))
        pending.append(i)
        order.append(("W", pending.pop(0)))
    return order + [("W", i) for i in pending]


SCHEDULES = {"gpipe": gpipe, "1f1b": one_f_one_b, "zero-bubble": zero_bubble_h1}
