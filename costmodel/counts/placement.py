"""Where the ranks of each parallel group sit, and which link their traffic crosses.

Ranks are numbered with the dims of `Parallelism.placement` from innermost to outermost (Megatron-style
rank order); EP is the innermost part of DP. A group of `size` ranks whose members are `stride` ranks
apart shares a node with min(size, gpus_per_node // stride) of its members.
"""

from __future__ import annotations

from dataclasses import dataclass

from costmodel.inputs.specs import ClusterSpec, Parallelism


@dataclass(frozen=True)
class Group:
    size: int
    stride: int

    def peers_in_node(self, gpus_per_node: int) -> int:
        """Other members on the same node as a given member."""
        if self.size <= 1:
            return 0
        if self.stride >= gpus_per_node:
            return 0
        return min(self.size, gpus_per_node // self.stride) - 1

    def spans_nodes(self, gpus_per_node: int) -> bool:
        return self.size > 1 and self.peers_in_node(gpus_per_node) < self.size - 1


def strides(par: Parallelism) -> dict[str, int]:
    """Rank distance between neighbours of each dim; cp sits just outside tp (Megatron's tp-cp-dp-pp)."""
    sizes = {"tp": par.tp * par.cp, "pp": par.pp, "dp": par.dp}
    out, stride = {}, 1
    for dim in par.placement:
        out[dim] = stride
        stride *= sizes[dim]
    out["cp"] = out["tp"] * par.tp
    return out


def groups(par: Parallelism) -> dict[str, Group]:
    """Each parallel group's size and stride. EP is the innermost part of DP, or, folded (Megatron-Core's
    parallel folding: tp just inside dp, checked in feasibility.py), the innermost part of tp x dp."""
    s = strides(par)
    # folded, the expert grid is etp innermost, then ep (Megatron-Core's expert rank order)
    ep_stride = s["tp"] * par.etp if par.moe_folding else s["dp"]
    return {
        "etp": Group(par.etp, s["tp"]),
        "tp": Group(par.tp, s["tp"]),
        "pp": Group(par.pp, s["pp"]),
        "dp": Group(par.dp, s["dp"]),  # the data-parallel ranks
        "cp": Group(par.cp, s["cp"]),
        # dense weights' replicas: DP x CP, contiguous from cp's stride when dp sits just outside tp (and cp)
        "wdp": Group(par.weight_data_parallel, s["cp"] if par.cp > 1 else s["dp"]),
        "ep": Group(par.ep, ep_stride),
        "edp": Group(par.expert_data_parallel, ep_stride * par.ep),  # replicas of one expert
    }


def stage_node(par: Parallelism, cluster: ClusterSpec, stage: int) -> int:
    """Node of pipeline stage `stage` of the first replica."""
    return stage * strides(par)["pp"] // cluster.gpus_per_node
