"""Expert-parallel all-to-all as DeepEP runs it (DEP README; V3P §3.2.2), from a token's fan-out.

normal kernels (training, prefill) — a token crosses InfiniBand once per remote node it needs (to the
    GPU with the same index there) and is forwarded over NVLink to the experts' GPUs inside that node;
    the sender's own node is reached over NVLink directly. Time = max(RDMA bytes / NIC, NVLink bytes /
    NVLink): the two links work at once. They occupy SMs (V3P §3.2.2: 20 of H800's 132), which matters
    where communication overlaps compute (two-batch overlap, DualPipe).
low-latency kernels (decode) — one message per (token, expert) pair, NVLink inside the node and RDMA
    across, no forwarding, no SMs held (DeepSeek's decode profile: "RDMA all-to-all occupies no SMs"),
    plus a fixed cost per call.

Bandwidths are comm.py's sourced effective rates (DeepEP's measured 153 GB/s NVLink and 43 GB/s RDMA).
The low-latency fixed cost is derived here from one published row (EP8 dispatch); `check_comm` then
predicts every other published row with no further constant.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from costmodel.counts.comm import Link
from costmodel.counts.routing import Fanout, _fanout, contiguous_slots

DEEPEP_SMS = 20  # DEP: deep_ep/buffer.py's Buffer.num_sms default, the SMs the normal kernels take
COMM_SM_FRACTION = DEEPEP_SMS / 132  # V3P §3.2.2: 20 of H800's 132 SMs run the normal kernels
FP8_BYTES_PER_ELEMENT = 1 + 4 / 128  # DeepEP dispatch: FP8 values plus one FP32 scale per 128 (its tests' fp8_factor)
LL_HEADER_BYTES = 16  # DeepEP low-latency tests: 16 B of metadata per FP8 message


@dataclass(frozen=True)
class A2ATime:
    dispatch_s: float
    combine_s: float


def normal_bytes(tokens: float, hidden: int, bytes_per_element: float, fan: Fanout, gpus_per_node: int) -> tuple[float, float]:
    """(RDMA, NVLink) bytes one GPU sends for `tokens` tokens: once per remote node over RDMA; over NVLink
    to its own node's target GPUs, and — by symmetry, as a forwarder — to the target GPUs of the tokens
    that land on it, except when it is itself the target (1 in gpus_per_node)."""
    per_token = hidden * bytes_per_element
    remote_node_ranks = fan.remote_ranks - fan.remote_in_node_ranks
    forwarded = remote_node_ranks * (gpus_per_node - 1) / gpus_per_node
    return tokens * fan.remote_nodes * per_token, tokens * (fan.remote_in_node_ranks + forwarded) * per_token


def normal_time(tokens: float, hidden: int, bytes_per_element: float, fan: Fanout, gpus_per_node: int,
                nvlink: Link, nic: Link) -> float:
    rdma, nvl = normal_bytes(tokens, hidden, bytes_per_element, fan, gpus_per_node)
    return max(rdma / nic.effective_bw, nvl / nvlink.effective_bw)


def normal_dispatch_combine_s(tokens: float, hidden: int, dispatch_bytes_per_element: float, fan: Fanout,
                              gpus_per_node: int, links: dict[str, Link]) -> tuple[float, float]:
    """(dispatch, BF16 combine) seconds of `tokens` tokens with the normal kernels; a backward reverses
    the two directions with the same payloads (V3P §3.3.4: FP8 before the down-projection's backward)."""
    nv, nic = links["nvlink"], links["nic"]
    return (normal_time(tokens, hidden, dispatch_bytes_per_element, fan, gpus_per_node, nv, nic),
            normal_time(tokens, hidden, 2, fan, gpus_per_node, nv, nic))


def low_latency_bytes(tokens: float, top_k: int, message_bytes: float, ep: int, gpus_per_node: int) -> tuple[float, float]:
    """(RDMA, NVLink) bytes one GPU sends: one message per (token, expert); experts uniform over ranks."""
    in_node = min(gpus_per_node, ep)
    pairs = tokens * top_k * message_bytes
    return pairs * (ep - in_node) / ep, pairs * (in_node - 1) / ep


def low_latency_time(tokens: float, top_k: int, message_bytes: float, ep: int, gpus_per_node: int, nvlink: Link,
                     nic: Link, fixed_s: float) -> float:
    rdma, nvl = low_latency_bytes(tokens, top_k, message_bytes, ep, gpus_per_node)
    return fixed_s + max(rdma / nic.effective_bw, nvl / nvlink.effective_bw)


# DEP README (docs/legacy.md at HEAD, after the 2025-04-22 revision). Normal kernels: 4096 tokens,
# hidden 7168, top-4 groups (groups = nodes in its test), top-8 of 256 experts, FP8 dispatch, BF16 combine;
# "bottleneck bandwidth" in GB/s. Low-latency: 128 tokens, hidden 7168, top-8, latency in microseconds.
NORMAL = [  # (kind, ep, dispatch GB/s, combine GB/s)
    ("intranode", 8, 153, 158), ("internode", 16, 43, 43), ("internode", 32, 58, 57), ("internode", 64, 51, 50)]
LOW_LATENCY = [  # (ep, dispatch us, combine us)
    (8, 77, 114), (16, 118, 195), (32, 155, 273), (64, 173, 314), (128, 192, 369), (256, 194, 360)]
HIDDEN, EXPERTS, TOP_K, GPUS_PER_NODE = 7168, 256, 8, 8
LL_TOKENS, NORMAL_TOKENS = 128, 4096
LL_DISPATCH_BYTES = HIDDEN * FP8_BYTES_PER_ELEMENT + LL_HEADER_BYTES
LL_COMBINE_BYTES = HIDDEN * 2


def low_latency_fixed_s(nvlink: Link, nic: Link) -> float:
    """The per-call cost of a low-latency kernel: DeepEP's EP8 dispatch (77 us) less its NVLink transfer."""
    ep, published_us = LOW_LATENCY[0][0], LOW_LATENCY[0][1]
    return published_us * 1e-6 - low_latency_time(LL_TOKENS, TOP_K, LL_DISPATCH_BYTES, ep, GPUS_PER_NODE, nvlink,
                                                  nic, 0.0)


def benchmark_fanout(ep: int) -> Fanout:
    """DeepEP's benchmark routing: uniform scores, groups = nodes, top min(4, nodes) groups, top-8."""
    nodes = max(1, ep // GPUS_PER_NODE)
    return _fanout((1 / EXPERTS,) * EXPERTS, TOP_K, nodes, min(4, nodes), contiguous_slots(EXPERTS, ep),
                   min(GPUS_PER_NODE, ep), 0)


def _normal_cases(nvlink: Link, nic: Link) -> list[dict]:
    """DeepEP's own metric: intranode counts bytes received (self included) over NVLink; internode counts
    RDMA bytes of every (token, node) pair, the sender's node included (its test_internode.py)."""
    out = []
    for kind, ep, dispatch_gbs, combine_gbs in NORMAL:
        fan = benchmark_fanout(ep)
        for name, bpe, published in (("dispatch", FP8_BYTES_PER_ELEMENT, dispatch_gbs), ("combine", 2, combine_gbs)):
            t = normal_time(NORMAL_TOKENS, HIDDEN, bpe, fan, min(GPUS_PER_NODE, ep), nvlink, nic)
            counted = fan.ranks if kind == "intranode" else fan.nodes
            out.append({"name": f"normal {kind} EP{ep} {name} (GB/s)", "published": published,
                        "predicted": NORMAL_TOKENS * counted * HIDDEN * bpe / t / 1e9})
    return out


def _low_latency_cases(nvlink: Link, nic: Link) -> list[dict]:
    fixed = low_latency_fixed_s(nvlink, nic)
    out = []
    for ep, dispatch_us, combine_us in LOW_LATENCY:
        for name, message, published in (("dispatch", LL_DISPATCH_BYTES, dispatch_us), ("combine", LL_COMBINE_BYTES,
                                                                                           combine_us)):
            t = low_latency_time(LL_TOKENS, TOP_K, message, ep, GPUS_PER_NODE, nvlink, nic, fixed)
            out.append({"name": f"low-latency EP{ep} {name} (us)", "published": published, "predicted": t * 1e6})
    return out


DOMAIN_EPS = (8, 16, 32, 48, 64, 72, 128, 256)  # EP groups the domain table lays out: HGX, and NVL72's sizes


def ll_benchmark_call(ep: int, gpus_per_domain: int, nvlink: Link, nic: Link, fixed_s: float) -> dict:
    """DeepEP's low-latency benchmark call (128 tokens a rank, top-8, hidden 7168) on an EP group of `ep`
    GPUs laid over NVLink domains of `gpus_per_domain`: the bytes one GPU sends over RDMA and NVLink in
    its dispatch, and both kernels' predicted time. Inside one domain nothing crosses the NIC."""
    in_domain = min(gpus_per_domain, ep)
    rdma, nvl = low_latency_bytes(LL_TOKENS, TOP_K, LL_DISPATCH_BYTES, ep, in_domain)
    dispatch, combine = (low_latency_time(LL_TOKENS, TOP_K, b, ep, in_domain, nvlink, nic, fixed_s)
                         for b in (LL_DISPATCH_BYTES, LL_COMBINE_BYTES))
    return {"ep": ep, "domains": -(-ep // in_domain), "dispatch_rdma_bytes": rdma, "dispatch_nvlink_bytes": nvl,
            "dispatch_us": dispatch * 1e6, "combine_us": combine * 1e6}


def domain_cases(nvlink: Link, nic: Link, domain_gpus: int) -> list[dict]:
    """The benchmark call at each of DOMAIN_EPS, in this part's NVLink domains and in 8-GPU nodes of the
    same links (the HGX layout), with the fixed cost derived on these links as serving derives it."""
    fixed = low_latency_fixed_s(nvlink, nic)
    out = []
    for ep in DOMAIN_EPS:
        row = ll_benchmark_call(ep, domain_gpus, nvlink, nic, fixed)
        hgx = ll_benchmark_call(ep, GPUS_PER_NODE, nvlink, nic, fixed)
        out.append(row | {"hgx_dispatch_us": hgx["dispatch_us"], "hgx_combine_us": hgx["combine_us"]})
    return out


def check_comm(nvlink: Link, nic: Link) -> dict:
    """Every published DeepEP row against this model: per-case and median absolute % error. The one row
    a constant is fitted to (the low-latency fixed cost: EP8 dispatch) is marked `anchor`. The NVLink and
    RDMA rates are DeepEP's EP8 and EP16 figures taken as bytes over time; DeepEP counts its own bytes
    differently (self and own-node traffic included), which is why those two rows are not exact."""
    anchors = {"low-latency EP8 dispatch (us)"}
    cases = _normal_cases(nvlink, nic) + _low_latency_cases(nvlink, nic)
    for c in cases:
        c["abs_pct_error"] = abs(c["predicted"] / c["published"] - 1) * 100
        c["anchor"] = c["name"] in anchors
    errors = [c["abs_pct_error"] for c in cases]
    held_out = [c["abs_pct_error"] for c in cases if not c["anchor"]]
    return {"cases": cases, "median_abs_pct_error": statistics.median(errors),
            "median_abs_pct_error_excluding_anchors": statistics.median(held_out),
            "max_abs_pct_error": max(errors)}
