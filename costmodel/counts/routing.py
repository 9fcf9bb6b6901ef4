"""Who receives what under expert parallelism: a routing model, for any EP degree.

A routing distribution gives each routed expert its share p_i of the top-k selections: `uniform`,
`zipf` (p_i ∝ 1 / rank^s, ranks shuffled by a seed), or `measured` per-expert loads. From it:
  - expected distinct experts one rank runs for a batch (closed form; what its GEMMs read);
  - the busiest EP rank's share of the assignments, E[max_r load_r] / mean (seeded Monte Carlo over
    multinomial per-expert counts, once per configuration), after any replica placement (eplb.py);
  - a token's fan-out — distinct ranks and nodes its k experts sit on, and how many are remote — under
    group-/node-limited routing (V2P §2.2.2 device-limited, M groups; V3P §2.1.2 at most 4 nodes), by
    sampling top-k sets (Gumbel top-k = sampling without replacement in proportion to p).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from costmodel.inputs.specs import ModelSpec, RoutingSpec

MC_SAMPLES = 64  # Monte Carlo batches per busiest-rank estimate (seeded; relative s.e. well below 1%)
FANOUT_TOKENS = 4096  # sampled tokens per fan-out estimate


def expert_shares(r: RoutingSpec, n_experts: int) -> tuple[float, ...]:
    """The router's preference for each expert (sums to 1): a token picks its top-k in proportion to
    these, without repeats. For `measured`, the measured loads themselves."""
    if r.distribution == "uniform":
        return (1.0 / n_experts,) * n_experts
    if r.distribution == "zipf":
        w = 1.0 / np.arange(1, n_experts + 1) ** r.zipf_s
        w = np.random.default_rng(r.seed).permutation(w)
    else:
        w = np.resize(np.asarray(r.expert_loads, dtype=float), n_experts)  # feasibility checks the length
    return tuple(float(x) for x in w / w.sum())


SHARE_TOKENS = 32768  # sampled tokens per selection-share estimate


@functools.lru_cache(maxsize=64)
def _sampled_selection_shares(weights: tuple[float, ...], k: int, n_group: int, topk_group: int,
                              seed: int) -> tuple[float, ...]:
    experts = sample_topk(np.asarray(weights), k, SHARE_TOKENS, np.random.default_rng(seed), n_group, topk_group)
    counts = np.bincount(experts.ravel(), minlength=len(weights)) + 0.5  # +0.5: no expert is never picked
    return tuple(float(x) for x in counts / counts.sum())


def group_limit(m: ModelSpec) -> tuple[int, int]:
    """(groups, groups a token may use) of the model's router; (1, 1) when routing is not group-limited."""
    limited = m.topk_method != "greedy" and m.n_group > 1
    return (m.n_group, m.topk_group) if limited else (1, 1)


def selection_shares(m: ModelSpec, r: RoutingSpec) -> tuple[float, ...]:
    """Each expert's share of all top-k selections. Uniform and measured loads are that already; a
    skewed preference is compressed by top-k (a token takes an expert at most once), so it is sampled."""
    weights = expert_shares(r, m.n_routed_experts)
    if r.distribution != "zipf":
        return weights
    return _sampled_selection_shares(weights, m.num_experts_per_tok, *group_limit(m), r.seed)


def distinct_experts(experts: int, tokens: float, top_k: int, total_experts: int | None = None) -> float:
    """Expected experts of a rank (of `experts` there, `total_experts` in all) that receive at least one
    token, when `tokens` tokens' worth of top-k selections land on the rank (uniform routing). Globally
    that is T = tokens · E / e tokens, each taking each expert with probability k/E, so
    e · (1 − (1 − k/E)^T) — exact for sampling without repeats, finite for any EP (e < k included)."""
    total = total_experts or experts
    if tokens <= 0 or experts <= 0:
        return 0.0
    if top_k >= total:
        return float(experts)
    global_tokens = tokens * total / experts
    return experts * -math.expm1(global_tokens * math.log1p(-top_k / total))


@functools.lru_cache(maxsize=64)
def _rank_matrix(slots: tuple[tuple[int, ...], ...], n_experts: int) -> np.ndarray:
    """(ranks, E): the share of expert e's tokens rank r takes (replicas split them evenly)."""
    replicas = np.bincount(np.concatenate([np.asarray(s) for s in slots]), minlength=n_experts)  # (E,)
    out = np.zeros((len(slots), n_experts))
    for r, experts in enumerate(slots):
        for e in experts:
            out[r, e] += 1.0 / replicas[e]
    return out


def assignment_bucket(assignments: float) -> int:
    """Assignments rounded to a geometric grid (~4% steps): the busiest-rank factor varies slowly, and
    the Monte Carlo then runs once per bucket, not once per batch size."""
    if assignments < 1:
        return 0
    return int(round(2 ** (round(math.log2(assignments) * 16) / 16)))


@functools.lru_cache(maxsize=4096)
def busiest_rank_factor(shares: tuple[float, ...], slots: tuple[tuple[int, ...], ...], assignments: int,
                        seed: int = 0) -> float:
    """E[max over ranks of the rank's assignments] / the mean, for `assignments` token-expert pairs drawn
    from `shares`; rank r holds the expert replicas in slots[r], and a replicated expert's tokens split
    evenly over its replicas (EPLB). 1 when everything lands evenly; ≥ 1 always."""
    if assignments <= 0 or len(slots) <= 1:
        return 1.0
    counts = np.random.default_rng(seed).multinomial(assignments, np.asarray(shares), size=MC_SAMPLES)  # (S, E)
    loads = counts @ _rank_matrix(slots, len(shares)).T  # (S, ranks)
    return float(np.mean(loads.max(axis=1)) / (assignments / len(slots)))


def contiguous_slots(n_experts: int, ranks: int) -> tuple[tuple[int, ...], ...]:
    """No replication: rank r holds experts r·E/R … (r+1)·E/R − 1."""
    per = n_experts // ranks
    return tuple(tuple(range(r * per, (r + 1) * per)) for r in range(ranks))


@dataclass(frozen=True)
class Fanout:
    """Where one token's k routed experts sit, averaged over tokens and senders."""

    ranks: float  # distinct EP ranks
    remote_ranks: float  # of which not the sender itself
    nodes: float  # distinct nodes
    remote_nodes: float  # of which not the sender's node
    remote_in_node_ranks: float  # distinct ranks on the sender's node, other than the sender


def sample_topk(shares: np.ndarray, k: int, tokens: int, rng: np.random.Generator, n_group: int = 1,
                topk_group: int = 1) -> np.ndarray:
    """(tokens, k) expert ids: top-k of log p + Gumbel noise, restricted to the topk_group groups with
    the highest best score when n_group > 1 (group-limited routing)."""
    scores = np.log(shares)[None, :] + rng.gumbel(size=(tokens, len(shares)))  # (T, E)
    if n_group > 1 and topk_group < n_group:
        grouped = scores.reshape(tokens, n_group, -1)  # (T, G, E/G)
        best = grouped.max(axis=2)  # (T, G)
        keep = np.argsort(-best, axis=1)[:, :topk_group]
        mask = np.full((tokens, n_group), -np.inf)
        np.put_along_axis(mask, keep, 0.0, axis=1)
        scores = (grouped + mask[:, :, None]).reshape(tokens, -1)
    return np.argpartition(-scores, k - 1, axis=1)[:, :k]


def replica_ranks(slots: tuple[tuple[int, ...], ...], n_experts: int) -> tuple[np.ndarray, np.ndarray]:
    """(E, max replicas) ranks holding each expert (padded with -1) and (E,) replica counts."""
    holders: list[list[int]] = [[] for _ in range(n_experts)]
    for r, experts in enumerate(slots):
        for e in experts:
            holders[e].append(r)
    count = np.array([len(h) for h in holders])
    table = np.full((n_experts, count.max()), -1)
    for e, h in enumerate(holders):
        table[e, :len(h)] = h
    return table, count


@functools.lru_cache(maxsize=256)
def _fanout(shares: tuple[float, ...], k: int, n_group: int, topk_group: int,
            slots: tuple[tuple[int, ...], ...], gpus_per_node: int, seed: int) -> Fanout:
    """Sampled tokens' experts; a replicated expert's token goes to one of its replicas at random."""
    rng, ep, T = np.random.default_rng(seed), len(slots), FANOUT_TOKENS
    experts = sample_topk(np.asarray(shares), k, T, rng, n_group, topk_group)  # (T, k)
    table, count = replica_ranks(slots, len(shares))
    rank = table[experts, (rng.random(experts.shape) * count[experts]).astype(int)]  # (T, k)
    sender = rng.integers(0, ep, size=T)  # (T,)
    hit_rank = np.zeros((T, ep), dtype=bool)
    np.put_along_axis(hit_rank, rank, True, axis=1)
    hit_node = np.zeros((T, -(-ep // gpus_per_node)), dtype=bool)
    np.put_along_axis(hit_node, rank // gpus_per_node, True, axis=1)
    own, sender_node = np.arange(T), sender // gpus_per_node
    same_node = (np.arange(ep)[None, :] // gpus_per_node) == sender_node[:, None]  # (T, ep)
    ranks, nodes, self_hit = hit_rank.sum(axis=1), hit_node.sum(axis=1), hit_rank[own, sender]
    in_node = (hit_rank & same_node).sum(axis=1) - self_hit
    return Fanout(float(ranks.mean()), float((ranks - self_hit).mean()), float(nodes.mean()),
                  float((nodes - hit_node[own, sender_node]).mean()), float(in_node.mean()))


def token_fanout(m: ModelSpec, r: RoutingSpec, slots: tuple[tuple[int, ...], ...], gpus_per_node: int) -> Fanout:
    """A token's fan-out over the EP ranks holding `slots` (`gpus_per_node` of them per node)."""
    if len(slots) <= 1:
        return Fanout(1.0, 0.0, 1.0, 0.0, 0.0)
    return _fanout(expert_shares(r, m.n_routed_experts), m.num_experts_per_tok, *group_limit(m), slots,
                   min(gpus_per_node, len(slots)), r.seed)
