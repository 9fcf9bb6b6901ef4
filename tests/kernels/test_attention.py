"""MHA / GQA / MQA: GQA(n_kv = n_h) = MHA, GQA(n_kv = 1) = MQA, GQA = MHA with repeated K/V heads."""

import torch

from kernels.attention import Attention, KVCache
from kernels.config import ModelArgs

BASE = dict(hidden_size=128, num_attention_heads=8, max_seq_len=64)


def same_weights(dst: Attention, src: Attention) -> Attention:
    dst.load_state_dict(src.state_dict())
    return dst


def test_gqa_with_all_heads_is_mha():
    mha = Attention(ModelArgs(**BASE, attention="mha"))
    gqa = same_weights(Attention(ModelArgs(**BASE, attention="gqa", num_key_value_heads=8)), mha)
    x = torch.randn(2, 9, 128)
    assert torch.allclose(mha(x), gqa(x), atol=1e-6)


def test_gqa_with_one_head_is_mqa():
    mqa = Attention(ModelArgs(**BASE, attention="mqa"))
    gqa = same_weights(Attention(ModelArgs(**BASE, attention="gqa", num_key_value_heads=1)), mqa)
    x = torch.randn(2, 9, 128)
    assert mqa.k_proj.weight.shape == (16, 128)
    assert torch.allclose(mqa(x), gqa(x), atol=1e-6)


def test_gqa_equals_mha_with_repeated_kv_weights():
    gqa = Attention(ModelArgs(**BASE, attention="gqa", num_key_value_heads=2))
    mha = Attention(ModelArgs(**BASE, attention="mha"))
    sd = gqa.state_dict()
    for name in ("k_proj.weight", "v_proj.weight"):  # each KV head serves 4 query heads
        sd[name] = sd[name].view(2, 1, 16, 128).expand(2, 4, 16, 128).reshape(128, 128)
    mha.load_state_dict(sd)
    x = torch.randn(1, 7, 128)
    assert torch.allclose(gqa(x), mha(x), atol=1e-5)


def test_incremental_decode_equals_full_and_cache_size():
    args = ModelArgs(**BASE, attention="gqa", num_key_value_heads=2)
    layer = Attention(args)
    x = torch.randn(2, 20, 128)
    cache = KVCache.allocate(args, 2, 20)
    with torch.no_grad():
        full = layer(x)
        out = [layer(x[:, :12], 0, cache)] + [layer(x[:, i:i + 1], i, cache) for i in range(12, 20)]
    assert torch.allclose(torch.cat(out, 1), full, atol=1e-5)
    assert cache.elements_per_token() == 2 * 2 * 16
