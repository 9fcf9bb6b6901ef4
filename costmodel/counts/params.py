"""Parameter counts. Convention (docs/sources.md, V2P and HF configs): `params_active` excludes the input embedding
(a lookup, no FLOPs) and includes the output head, norms and router; `params_total` counts everything
except the MTP module (DeepSeek-V3's `num_nextn_predict_layers`)."""

from __future__ import annotations

from dataclasses import dataclass

from costmodel.inputs.specs import ModelSpec


def attention_params(m: ModelSpec) -> int:
    """Attention weights of one layer, latent RMSNorms included (V2P App. C eq. 37-47)."""
    h, nh = m.hidden_size, m.num_attention_heads
    if m.attention == "mla":
        if m.q_lora_rank:
            q = h * m.q_lora_rank + m.q_lora_rank + m.q_lora_rank * nh * m.qk_head_dim  # q_a, norm, q_b
        else:
            q = h * nh * m.qk_head_dim  # q_proj
        kv_a = h * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank  # kv_a_proj_with_mqa + norm
        kv_b = m.kv_lora_rank * nh * (m.qk_nope_head_dim + m.v_head_dim)
        return q + kv_a + kv_b + nh * m.v_head_dim * h
    hd, nkv = m.attn_head_dim, m.kv_heads
    bias = (nh + 2 * nkv) * hd if m.attention_bias else 0
    return h * nh * hd + 2 * h * nkv * hd + nh * hd * h + bias


def swiglu_params(hidden: int, width: int) -> int:
    """gate, up and down projections of one SwiGLU FFN."""
    return 3 * hidden * width


def router_params(m: ModelSpec) -> int:
    bias = m.n_routed_experts if m.topk_method == "noaux_tc" else 0  # V3 e_score_correction_bias
    return m.n_routed_experts * m.hidden_size + bias


@dataclass(frozen=True)
class LayerParams:
    """One layer's weights, split by how expert parallelism shards them."""

    dense: int  # attention, norms, dense FFN or shared experts, router: replicated across EP
    routed_experts: int  # all routed experts of the layer: sharded across EP
    routed_active: int  # routed experts one token passes through


def layer_params(m: ModelSpec, layer: int) -> LayerParams:
    h = m.hidden_size
    base = attention_params(m) + 2 * h  # two RMSNorms
    if not m.is_moe_layer(layer):
        return LayerParams(base + swiglu_params(h, m.intermediate_size), 0, 0)
    expert = swiglu_params(h, m.moe_intermediate_size)
    dense = base + swiglu_params(h, m.shared_ffn_width) + router_params(m)
    return LayerParams(dense, m.n_routed_experts * expert, m.num_experts_per_tok * expert)


def mtp_params(m: ModelSpec) -> LayerParams:
    """The MTP modules (V3P §2.2), num_nextn_predict_layers of them: each a Transformer block like the
    last layer, a d x 2d projection and two RMSNorms; embedding and output head shared with the model."""
    depth, h = m.num_nextn_predict_layers, m.hidden_size
    if not depth:
        return LayerParams(0, 0, 0)
    block = layer_params(m, m.num_hidden_layers - 1)
    return LayerParams(depth * (block.dense + 2 * h * h + 2 * h), depth * block.routed_experts,
                       depth * block.routed_active)


def all_layer_params(m: ModelSpec) -> list[LayerParams]:
    return [layer_params(m, i) for i in range(m.num_hidden_layers)]


def embedding_params(m: ModelSpec) -> int:
    return m.vocab_size * m.hidden_size


def head_params(m: ModelSpec) -> int:
    """Output head plus final norm; a tied head shares the embedding's weights."""
    return (0 if m.tie_word_embeddings else m.vocab_size * m.hidden_size) + m.hidden_size


def params_total(m: ModelSpec) -> int:
    layers = sum(lp.dense + lp.routed_experts for lp in all_layer_params(m))
    return layers + embedding_params(m) + head_params(m)


def params_active(m: ModelSpec, *, include_input_embedding: bool = False) -> int:
    """Parameters one token passes through (see module docstring for the convention)."""
    layers = sum(lp.dense + lp.routed_active for lp in all_layer_params(m))
    head = head_params(m)
    if m.tie_word_embeddings:
        head += embedding_params(m)  # the tied matrix still does the head's matmul
    emb = embedding_params(m) if include_input_embedding and not m.tie_word_embeddings else 0
    return layers + head + emb
