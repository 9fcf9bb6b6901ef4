"""Fleet sizing: how many prefill and decode units a service needs for its traffic, and what a million
tokens costs, from one unit's simulated saturated throughputs (app/serving.py: serve_variant).

Prompt tokens found in the prefix cache (`prefix_cache_hit_rate`) skip prefill compute; their KV is
loaded over the prefill unit's NICs instead, which is what a cache-hit token is charged for here.
Units are sized for the mean traffic (no headroom for bursts: add it to the traffic if you need it), and
$ per million tokens is what the sized fleet costs per hour over the tokens it actually carries, so idle
capacity is paid for. No latency target is applied here (the decode unit runs saturated).
"""

from __future__ import annotations

import math

from pydantic import BaseModel

from costmodel.app.serving import ServeVariantResult
from costmodel.counts.comm import links_of
from costmodel.counts.kvcache import kv_bytes_per_token
from costmodel.inputs.specs import InferenceSpec, ModelSpec


class FleetPlan(BaseModel):
    requests_per_s: float
    prompt_tok_s: float  # all prompt tokens per second, hits included
    prefill_tok_s: float  # prompt tokens that miss the prefix cache and run through prefill
    output_tok_s: float
    prefill_units: int
    decode_units: int
    gpus: int
    prefill_utilisation: float  # traffic / capacity of the units sized
    decode_utilisation: float
    usd_per_hour: float
    usd_per_m_input_tokens_cache_miss: float | None  # None: no prompt token misses the cache
    usd_per_m_input_tokens_cache_hit: float
    usd_per_m_output_tokens: float | None  # None: no decode work (every output is the first token)


def usd_per_million_output_tokens(inf: InferenceSpec, generation_tok_s: float) -> float | None:
    """What one instance's hour costs per million tokens it generates at `generation_tok_s` (None at 0)."""
    usd_per_s = inf.cluster.gpu.price_usd_per_hour.value * inf.cluster.num_gpus / 3600
    return usd_per_s / generation_tok_s * 1e6 if generation_tok_s > 0 else None


def plan_fleet(m: ModelSpec, inf: InferenceSpec, r: ServeVariantResult) -> FleetPlan:
    """Units for the traffic in `inf.fleet`, at the unit throughputs `r` measured."""
    f, w = inf.fleet, inf.workload
    rate = f.request_rate(w.prompt_tokens.mean, w.output_tokens.mean)
    prompt, output = rate * w.prompt_tokens.mean, rate * w.output_tokens.mean
    miss = prompt * (1 - f.prefix_cache_hit_rate)
    gen, pre = r.max_generation_throughput_tok_s, r.prompt_throughput_tok_s
    p_units = max(1, math.ceil(miss / pre))
    d_units = math.ceil(output / gen) if gen > 0 else 0
    price = inf.cluster.gpu.price_usd_per_hour.value
    p_usd_h, d_usd_h = price * r.prefill_gpus * p_units, price * r.decode_gpus * d_units  # the sized fleet
    nic = links_of(inf.cluster.gpu)["nic"].effective_bw * r.prefill_gpus  # a prefill unit's NICs load hit KV
    return FleetPlan(
        requests_per_s=rate, prompt_tok_s=prompt, prefill_tok_s=miss, output_tok_s=output,
        prefill_units=p_units, decode_units=d_units, gpus=p_units * r.prefill_gpus + d_units * r.decode_gpus,
        prefill_utilisation=miss / (p_units * pre), decode_utilisation=output / (d_units * gen) if d_units else 0.0,
        usd_per_hour=p_usd_h + d_usd_h,
        usd_per_m_input_tokens_cache_miss=p_usd_h / 3600 / miss * 1e6 if miss > 0 else None,
        usd_per_m_input_tokens_cache_hit=price * r.prefill_gpus / 3600 * kv_bytes_per_token(m, inf.kv_bits) / nic * 1e6,
        usd_per_m_output_tokens=d_usd_h / 3600 / output * 1e6 if d_units else None)
