"""The small decoder: incremental decode through the caches equals the full-sequence forward."""

import pytest
import torch

from kernels.config import ModelArgs
from kernels.model import Decoder


def tiny(attention: str, **kw) -> ModelArgs:
    base = dict(vocab_size=97, hidden_size=64, num_hidden_layers=3, num_attention_heads=4, intermediate_size=96,
                n_routed_experts=8, num_experts_per_tok=2, moe_intermediate_size=32, n_shared_experts=1,
                first_k_dense_replace=1, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16,
                max_seq_len=64, attention=attention)
    return ModelArgs(**{**base, **kw})


@pytest.mark.parametrize("attention, mode", [("mla", "absorbed"), ("mla", "naive"), ("gqa", "absorbed")])
def test_generate_matches_full_forward(attention, mode):
    args = tiny(attention, num_key_value_heads=2)
    model = Decoder(args, mla_mode=mode).eval()
    prompt = torch.randint(0, 97, (2, 7))
    out = model.generate(prompt, steps=16)
    model.caches = None
    with torch.no_grad():
        full = model(out[:, :-1])  # every generated token is the argmax of the full forward at its position
    assert torch.equal(full[:, 6:].argmax(-1), out[:, 7:])


def test_layers_follow_the_spec():
    model = Decoder(tiny("mla", first_k_dense_replace=2, num_hidden_layers=4))
    kinds = [type(layer.mlp).__name__ for layer in model.layers]
    assert kinds == ["SwiGLU", "SwiGLU", "MoE", "MoE"]


def test_cache_elements_per_token():
    model = Decoder(tiny("mla"), mla_mode="absorbed")
    model.allocate_caches(1, 8)
    assert model.cache_elements_per_token() == (32 + 8) * 3  # (d_c + d_r) per layer, paper Table 1
    model = Decoder(tiny("gqa", num_key_value_heads=2))
    model.allocate_caches(1, 8)
    assert model.cache_elements_per_token() == 2 * 2 * 16 * 3


def test_builds_from_a_hf_config(lite_cfg):
    args = ModelArgs.from_hf(lite_cfg, num_hidden_layers=2, n_routed_experts=8, vocab_size=128, max_seq_len=32)
    assert args.attention == "mla" and args.q_lora_rank is None and args.ffn == "moe"
    model = Decoder(args).eval()
    with torch.no_grad():
        assert model(torch.randint(0, 128, (1, 5))).shape == (1, 5, 128)
