"""Pipeline schedules as the order in which each stage runs its passes.

A pass is (kind, micro_batch) with kind F (forward) or B (backward; for gpipe and 1f1b it includes the
weight gradient). The simulator runs each stage's list in order, each pass waiting for its inputs from
the neighbouring stage; under zero-bubble it also schedules the separate weight-gradient passes (W).
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
    """ZB-H1 (Qi et al. 2023) splits the backward into B (input gradient) and W (weight gradient). Its
    order is not fixed here: the simulator list-schedules each stage with priority B > F > W, at most
    `in_flight(stage, pp)` forwards ahead of the backwards (1F1B's activation memory), and runs a pending
    W only when nothing else is ready. This returns the F/B skeleton (1F1B's order) for reference.
    Ideal ZB-H1 bubble: (pp - 1)(F + B_full - 2W) against 1F1B's (pp - 1)(F + B_full) (V3P Table 2)."""
    return one_f_one_b(stage, pp, m)


def in_flight(stage: int, pp: int) -> int:
    """Forwards a stage may run ahead of its backwards under 1F1B and ZB-H1."""
    return pp - stage


SCHEDULES = {"gpipe": gpipe, "1f1b": one_f_one_b, "zero-bubble": zero_bubble_h1}
