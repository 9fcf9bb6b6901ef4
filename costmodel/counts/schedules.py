"""Pipeline schedules as the order in which each stage runs its passes.

A pass is (kind, micro_batch) with kind F (forward) or B (backward, weight gradient included); under
interleaving (Megatron's virtual stages) it is (kind, micro_batch, model chunk), chunk c of rank r being
virtual stage c * pp + r. The simulator runs each stage's list in order, each pass waiting for its inputs
from the neighbouring (virtual) stage.
"""

from __future__ import annotations

Pass = tuple[str, int]
ChunkPass = tuple[str, int, int]


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


def interleaved_warmup(stage: int, pp: int, m: int, chunks: int, overlap: bool = False) -> int:
    """Forward passes (of model chunks) rank `stage` runs before its first backward in Megatron-Core's
    interleaved 1F1B (MCORE): 2(pp - stage - 1) + (chunks - 1) pp, every one when m equals pp; one more
    under combined 1F1B (`overlap`), so that each steady-phase forward pairs with an earlier backward."""
    total = m * chunks
    if m == pp and pp > 1:
        return total
    return min(2 * (pp - stage - 1) + (chunks - 1) * pp + overlap, total)


def interleaved_1f1b(stage: int, pp: int, m: int, chunks: int, overlap: bool = False) -> list[ChunkPass]:
    """Megatron-Core's interleaved 1F1B (MCORE; Narayanan et al. 2021, MLM §2.2.2): each rank holds
    `chunks` model chunks; micro-batches go through the chunks in groups of pp (forward k runs chunk
    (k mod pp*chunks) // pp on micro-batch k // (pp*chunks) * pp + k mod pp, backwards through the chunks
    in reverse), after interleaved_warmup forwards, one forward and one backward alternate.
    Needs m a multiple of pp (feasibility.py). With one chunk and `overlap` it is combined 1F1B without
    pipelining (pp 1: forward i + 1 beside backward i)."""
    total, warm = m * chunks, interleaved_warmup(stage, pp, m, chunks, overlap)

    def at(k: int, forward: bool) -> tuple[int, int]:
        chunk = k % (pp * chunks) // pp
        return k // (pp * chunks) * pp + k % pp, chunk if forward else chunks - 1 - chunk

    order = [("F", *at(k, True)) for k in range(warm)]
    for j in range(total - warm):
        order += [("F", *at(warm + j, True)), ("B", *at(j, False))]
    return order + [("B", *at(j, False)) for j in range(total - warm, total)]


def in_flight(stage: int, pp: int) -> int:
    """Forwards a stage may run ahead of its backwards under 1F1B and ZB-H1 (per direction in DualPipe)."""
    return pp - stage


SCHEDULES = {"gpipe": gpipe, "1f1b": one_f_one_b}  # fixed orders
# Schedules with a separate weight-gradient pass W, list-scheduled by the simulator (train_sim.py):
# ZB-H1 (Qi et al. 2023), ideal bubble (pp - 1)(F + B_full - 2W), and DualPipe (V3P §3.2.1),
# (pp/2 - 1)(F&B + B_full - 3W) (V3P Table 2); 1F1B's is (pp - 1)(F + B_full).
LIST_SCHEDULED = ("zero-bubble", "dualpipe")
