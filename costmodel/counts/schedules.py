"""Pipeline schedules as the order in which each stage runs its passes.

A pass is (kind, micro_batch) with kind F (forward) or B (backward, weight gradient included). The
simulator runs each stage's list in order, each pass waiting for its inputs from the neighbouring stage.
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


def in_flight(stage: int, pp: int) -> int:
    """Forwards a stage may run ahead of its backwards under 1F1B and ZB-H1 (per direction in DualPipe)."""
    return pp - stage


SCHEDULES = {"gpipe": gpipe, "1f1b": one_f_one_b}  # fixed orders
# Schedules with a separate weight-gradient pass W, list-scheduled by the simulator (train_sim.py):
# ZB-H1 (Qi et al. 2023), ideal bubble (pp - 1)(F + B_full - 2W), and DualPipe (V3P §3.2.1),
# (pp/2 - 1)(F&B + B_full - 3W) (V3P Table 2); 1F1B's is (pp - 1)(F + B_full).
LIST_SCHEDULED = ("zero-bubble", "dualpipe")
