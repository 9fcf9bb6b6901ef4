"""Alpha-beta times of collectives over NVLink (inside a node) or the NIC (across nodes).

t = α·steps + bytes_on_the_wire / (bandwidth · efficiency). Bandwidths come from the GPU file (per GPU,
per direction); the default efficiencies are DeepEP's measured fractions (DEP in docs/sources.md):
  NVLink: 153 GB/s dispatch bottleneck at EP8 on H800, whose NVLink is 400 GB/s bidirectional, i.e.
          200 GB/s per direction (gpus/h800.yaml) -> 0.765;
  NIC:    43 GB/s RDMA at EP16 over a 50 GB/s CX7 NIC -> 0.86 (EP32/64 report 51-58 GB/s, which counts
          NVLink-forwarded traffic, so the EP16 figure is the conservative one).
α defaults to 0: DeepEP's low-latency table is bandwidth-bound to within its rounding (EP8 dispatch:
77 µs x 98 GB/s = 7.5 MB, the 128 x 7168 x 8 FP8 payload itself), so no latency term is sourced.
The one exception: an all-reduce across nodes takes NCCL's own latency model (nccl_all_reduce_latency_s).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

NVLINK_EFFICIENCY = 153 / 200
NIC_EFFICIENCY = 43 / 50


@dataclass(frozen=True)
class Link:
    bw_bytes_per_s: float
    efficiency: float = 1.0
    latency_s: float = 0.0

    @property
    def effective_bw(self) -> float:
        return self.bw_bytes_per_s * self.efficiency


def links_of(gpu) -> dict[str, Link]:
    """The two kinds of link a GPU file describes, with the sourced default efficiencies."""
    return {"nvlink": Link(gpu.nvlink_bw_bytes_per_s.value, NVLINK_EFFICIENCY),
            "nic": Link(gpu.nic_bw_bytes_per_s.value, NIC_EFFICIENCY)}


def spanning_link(links: dict[str, Link], gpus_per_node: int) -> Link:
    """The link of a ring collective whose group holds every GPU of several nodes (a TP group wider than
    one NVLink domain). Its rings run side by side, a share of the buffer each, and each ring leaves a
    node through another GPU's NIC (NCCL spreads its channels over a node's NICs), so a ring's
    2(n-1)/n of the buffer crosses between nodes at the node's `gpus_per_node` NICs together, and inside
    a node at NVLink: the slower of the two paces the ring. (A group of one GPU a node, such as a data-
    parallel one, has one NIC each: links_of's "nic".)"""
    nv, nic = links["nvlink"], links["nic"]
    return Link(min(nv.effective_bw, gpus_per_node * nic.effective_bw), latency_s=max(nv.latency_s, nic.latency_s))


# NCCL's own latency model of an all-reduce (NCCL in docs/sources.md: src/graph/tuning.cc, its tuner's
# default constants, in µs), for the LL protocol it picks for small messages: a base latency per
# algorithm, and a latency per step inside a node (NVLink) and between nodes (the network).
NCCL_LL_BASE_US = {"tree": 6.8, "ring": 6.6}
NCCL_LL_NVLINK_US = {"tree": 0.6, "ring": 0.6}
NCCL_LL_NET_US = {"tree": 5.0, "ring": 2.7}  # one GPU a node exposes the whole hop: the ring takes the tree's
NCCL_NET_OVERHEAD_US = 1.0  # getNetOverhead on Intel hosts (DGX systems ship Xeons); 2.0 on AMD hosts


def nccl_all_reduce_latency_s(ranks: int, nodes: int) -> float:
    """The latency NCCL's tuner puts on an all-reduce of `ranks` GPUs in `nodes` nodes (the lower of its
    tree and ring, LL protocol). Tree: 2 (ranks/node - 1) NVLink hops and 2 log2(nodes) network hops;
    ring: 2 (ranks - 1) steps, 2 (nodes - 1) of them over the network, each other step no faster than
    the network's per-step overhead. The LL protocol's latency is NCCL's least: for large messages NCCL
    picks LL128 or Simple, whose latencies are longer, so this is a floor."""
    if ranks <= 1 or nodes < 1:
        return 0.0
    per_node, hops = max(1, ranks // nodes), nodes.bit_length() - 1  # NCCL's log2i: floor(log2)
    tree = NCCL_LL_BASE_US["tree"] + 2 * ((per_node - 1) * NCCL_LL_NVLINK_US["tree"] + hops * NCCL_LL_NET_US["tree"])
    steps, inter = 2 * (ranks - 1), 2 * (nodes - 1)
    intra_us = max(NCCL_LL_NVLINK_US["ring"], NCCL_NET_OVERHEAD_US if nodes > 1 else 0.0)
    net_us = NCCL_LL_NET_US["tree" if per_node == 1 else "ring"]
    ring = NCCL_LL_BASE_US["ring"] + (steps - inter) * intra_us + inter * net_us
    return 1e-6 * min(tree, ring)


def spanning_all_reduce_time(nbytes: float, ranks: int, links: dict[str, Link], gpus_per_node: int) -> float:
    """A ring all-reduce over every GPU of several NVLink domains: NCCL's own latency for that many GPUs and
    nodes, then the bytes at the spanning link's bandwidth (its per-step α left out: NCCL's latency is the
    whole latency, so both would count the steps twice)."""
    nodes = -(-ranks // gpus_per_node)
    link = replace(spanning_link(links, gpus_per_node), latency_s=0.0)
    return nccl_all_reduce_latency_s(ranks, nodes) + all_reduce_time(nbytes, ranks, link)


def p2p_time(nbytes: float, link: Link) -> float:
    """One send of `nbytes` to one peer."""
    return link.latency_s + nbytes / link.effective_bw


def all_to_all_time(send_bytes: float, link: Link) -> float:
    """Each rank sends `send_bytes` in total to the others at once; its link is the bottleneck."""
    return link.latency_s + send_bytes / link.effective_bw


def reduce_scatter_time(nbytes: float, n: int, link: Link) -> float:
    """Ring reduce-scatter of an `nbytes` buffer over n ranks: (n-1) steps of nbytes/n each."""
    if n <= 1:
        return 0.0
    return (n - 1) * link.latency_s + (n - 1) / n * nbytes / link.effective_bw


def all_gather_time(nbytes: float, n: int, link: Link) -> float:
    """Ring all-gather into an `nbytes` buffer over n ranks."""
    return reduce_scatter_time(nbytes, n, link)


def all_reduce_time(nbytes: float, n: int, link: Link) -> float:
    """Ring all-reduce = reduce-scatter + all-gather."""
    return 2 * reduce_scatter_time(nbytes, n, link)

