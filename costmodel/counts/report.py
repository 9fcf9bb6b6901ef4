"""The analytic report of a scenario: plain result objects that the CLI and dashboard render."""

from __future__ import annotations

from pydantic import BaseModel

from costmodel.counts.flops import forward_flops_per_token, train_flops_per_token
from costmodel.counts.kvcache import equivalent_gqa_groups, kv_bytes_per_token, kv_elements_per_token
from costmodel.counts.memory import serving_memory, training_memory
from costmodel.counts.params import all_layer_params, params_active, params_total
from costmodel.inputs.specs import Scenario, Variant, stored_bits

DEFAULT_SEQ_LEN = 4096  # V2P §3.1: pre-training sequence length, used when a variant has no training part


class VariantReport(BaseModel):
    name: str
    model: str
    attention: str
    ffn: str
    params_total: int
    params_active: int  # input embedding excluded (see costmodel/counts/params.py)
    params_active_incl_embedding: int
    kv_cache_elements_per_token: int
    kv_cache_bits: float
    kv_cache_bytes_per_token: float
    kv_cache_equivalent_gqa_groups: float
    seq_len: int
    train_flops_per_token: float
    forward_flops_per_token: float  # at the causal average context seq_len / 2
    weight_bits: int
    weight_bytes_total: float
    train_memory: dict | None = None  # TrainingMemory fields, per GPU, heaviest stage
    serving_memory: dict | None = None  # ServingMemory fields, per GPU


class Comparison(BaseModel):
    metric: str
    baseline: str
    variant: str
    baseline_value: float
    variant_value: float
    ratio: float | None  # None when the baseline's value is 0: `undefined` says so
    change_pct: float | None
    undefined: str | None = None


class ScenarioReport(BaseModel):
    scenario: str
    description: str
    baseline: str
    variants: list[VariantReport]
    comparisons: list[Comparison]


COMPARED = ("params_total", "params_active", "kv_cache_elements_per_token", "kv_cache_bytes_per_token",
            "train_flops_per_token")


def variant_report(v: Variant) -> VariantReport:
    m = v.model
    seq = v.training.seq_len if v.training else DEFAULT_SEQ_LEN
    # Serving precision when the variant says how it serves, else the checkpoint's own.
    weight_bits = v.inference.weight_bits if v.inference else m.checkpoint_weight_bits
    kv_bits = v.inference.kv_bits if v.inference else 16
    total = params_total(m)
    expert_bits = v.inference.expert_bits if v.inference else weight_bits
    routed = sum(lp.routed_experts for lp in all_layer_params(m))
    return VariantReport(
        name=v.name,
        model=m.name,
        attention=m.attention,
        ffn=m.ffn,
        params_total=total,
        params_active=params_active(m),
        params_active_incl_embedding=params_active(m, include_input_embedding=True),
        kv_cache_elements_per_token=kv_elements_per_token(m),
        kv_cache_bits=kv_bits,
        kv_cache_bytes_per_token=kv_bytes_per_token(m, kv_bits),
        kv_cache_equivalent_gqa_groups=equivalent_gqa_groups(m),
        seq_len=seq,
        train_flops_per_token=train_flops_per_token(m, seq),
        forward_flops_per_token=forward_flops_per_token(m, seq / 2),
        weight_bits=weight_bits,
        weight_bytes_total=((total - routed) * stored_bits(weight_bits) + routed * stored_bits(expert_bits)) / 8,
        train_memory=training_memory(m, v.training).as_dict() if v.training else None,
        serving_memory=serving_memory(m, v.inference).as_dict() if v.inference else None,
    )


def compare(items: list, base, metrics: tuple[str, ...]) -> list[Comparison]:
    """Every non-baseline item's metrics against the baseline's (items are result models with a name)."""
    out = []
    for r in items:
        if r is base:
            continue
        for metric in metrics:
            b, x = float(getattr(base, metric)), float(getattr(r, metric))
            ratio = x / b if b else None
            out.append(Comparison(metric=metric, baseline=base.name, variant=r.name, baseline_value=b,
                                  variant_value=x, ratio=ratio, change_pct=None if ratio is None else (ratio - 1) * 100,
                                  undefined=None if b else f"the baseline's {metric} is 0"))
    return out


def build_report(s: Scenario) -> ScenarioReport:
    """Counts for every variant and their ratios to the baseline variant."""
    reports = [variant_report(v) for v in s.variants]
    base = next(r for r in reports if r.name == s.baseline_variant.name)
    return ScenarioReport(scenario=s.name, description=s.description, baseline=base.name, variants=reports,
                          comparisons=compare(reports, base, COMPARED))
