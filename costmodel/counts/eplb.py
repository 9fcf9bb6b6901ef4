"""Redundant experts and their placement, written from the EPLB description (DeepSeek's `EPLB` README):

hierarchical — pack expert groups onto nodes (balanced, equal groups per node), replicate the heaviest
               experts within each node, then pack the node's replicas onto its GPUs; used for prefill
               and smaller EP, where group-limited routing keeps a token's traffic inside few nodes;
global       — replicate the heaviest experts over the whole EP group, then pack onto GPUs; used for
               decode at large EP.
Every GPU ends with the same number of expert slots, (experts + redundant) / ep. A replicated expert's
tokens are split evenly over its replicas. Loads are the routing model's expected shares (routing.py).
"""

from __future__ import annotations

import heapq

Slots = tuple[tuple[int, ...], ...]  # slots[gpu] = expert ids held by that GPU


def pack_balanced(weights: dict[int, float], bins: int, per_bin: int) -> list[list[int]]:
    """Heaviest first into the lightest bin that still has room: each bin gets exactly per_bin items."""
    out: list[list[int]] = [[] for _ in range(bins)]
    load = [0.0] * bins
    for item in sorted(weights, key=lambda i: (-weights[i], i)):
        b = min((b for b in range(bins) if len(out[b]) < per_bin), key=lambda b: (load[b], b))
        out[b].append(item)
        load[b] += weights[item]
    return out


def replicate(shares: dict[int, float], slots: int) -> list[tuple[int, float]]:
    """`slots` replicas of the experts in `shares`: one each, then one more at a time for the expert with
    the most load per replica. Returns (expert, load of one replica) per replica."""
    count = {e: 1 for e in shares}
    heap = [(-s, e) for e, s in shares.items()]
    heapq.heapify(heap)
    for _ in range(slots - len(shares)):
        _, e = heapq.heappop(heap)
        count[e] += 1
        heapq.heappush(heap, (-shares[e] / count[e], e))
    return [(e, shares[e] / count[e]) for e in sorted(count) for _ in range(count[e])]


def _pack_replicas(replicas: list[tuple[int, float]], gpus: int) -> list[list[int]]:
    weights = {i: w for i, (_, w) in enumerate(replicas)}
    return [[replicas[i][0] for i in b] for b in pack_balanced(weights, gpus, len(replicas) // gpus)]


def global_placement(shares: tuple[float, ...], redundant: int, gpus: int) -> Slots:
    replicas = replicate(dict(enumerate(shares)), len(shares) + redundant)
    return tuple(tuple(sorted(b)) for b in _pack_replicas(replicas, gpus))


def hierarchical_placement(shares: tuple[float, ...], redundant: int, gpus: int, groups: int,
                           gpus_per_node: int) -> Slots:
    nodes = gpus // gpus_per_node
    per_group = len(shares) // groups
    group_load = {g: sum(shares[g * per_group:(g + 1) * per_group]) for g in range(groups)}
    out: list[tuple[int, ...]] = []
    for node_groups in pack_balanced(group_load, nodes, groups // nodes):
        experts = {e: shares[e] for g in node_groups for e in range(g * per_group, (g + 1) * per_group)}
        replicas = replicate(experts, (len(shares) + redundant) // nodes)
        out += [tuple(sorted(b)) for b in _pack_replicas(replicas, gpus_per_node)]
    return tuple(out)


def placement(shares: tuple[float, ...], redundant: int, gpus: int, policy: str, groups: int,
              gpus_per_node: int) -> Slots:
    """The slots of each GPU. Hierarchical needs whole nodes and groups that split evenly over them;
    otherwise (and for `global`) the global policy places the replicas."""
    nodes = gpus // gpus_per_node
    whole = gpus % gpus_per_node == 0 and nodes > 0 and groups % nodes == 0 and len(shares) % groups == 0 \
        and (len(shares) + redundant) % nodes == 0 and ((len(shares) + redundant) // nodes) % gpus_per_node == 0
    if policy == "hierarchical" and whole and groups > 1:
        return hierarchical_placement(shares, redundant, gpus, groups, gpus_per_node)
    return global_placement(shares, redundant, gpus)
