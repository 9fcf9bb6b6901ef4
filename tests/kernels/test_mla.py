"""MLA: absorbed == naive, incremental == full, cache sizes, and agreement with an independent reference."""

import pytest
import torch

from kernels.config import ModelArgs
from kernels.mla import MLA, MLACache
from kernels.reference import reference_mla
from kernels.rope import softmax_scale

YARN = dict(type="yarn", factor=40, original_max_position_embeddings=64, beta_fast=32, beta_slow=1,
            mscale=0.707, mscale_all_dim=0.707)
SMALL = dict(hidden_size=128, num_attention_heads=4, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8,
             v_head_dim=16, rope_scaling=YARN, max_seq_len=256)


def pair(args: ModelArgs) -> tuple[MLA, MLA]:
    naive, absorbed = MLA(args, "naive"), MLA(args, "absorbed")
    absorbed.load_state_dict(naive.state_dict())
    for p in naive.parameters():  # larger than default init so differences would show
        torch.nn.init.normal_(p, std=0.1)
    absorbed.load_state_dict(naive.state_dict())
    return naive, absorbed


@pytest.mark.parametrize("q_lora_rank", [None, 48])
def test_absorbed_equals_naive_prefill_and_16_decode_steps(q_lora_rank):
    args = ModelArgs(**SMALL, q_lora_rank=q_lora_rank)
    naive, absorbed = pair(args)
    x = torch.randn(2, 26, args.hidden_size)
    full = naive(x)  # no cache: the full-sequence forward
    cn, ca = MLACache.allocate(args, 2, 26, "naive"), MLACache.allocate(args, 2, 26, "absorbed")
    with torch.no_grad():
        pn, pa = naive(x[:, :10], 0, cn), absorbed(x[:, :10], 0, ca)
        assert (pn - pa).abs().max() <= 1e-4
        assert (pn - full[:, :10]).abs().max() <= 1e-4
        for i in range(10, 26):
            dn, da = naive(x[:, i:i + 1], i, cn), absorbed(x[:, i:i + 1], i, ca)
            assert (dn - da).abs().max() <= 1e-4
            assert (da - full[:, i:i + 1]).abs().max() <= 1e-4


def test_chunked_prefill_equals_full():
    args = ModelArgs(**SMALL, q_lora_rank=48)
    _, absorbed = pair(args)
    x = torch.randn(1, 20, args.hidden_size)
    cache = MLACache.allocate(args, 1, 20, "absorbed")
    with torch.no_grad():
        parts = [absorbed(x[:, :7], 0, cache), absorbed(x[:, 7:20], 7, cache)]
        assert (torch.cat(parts, 1) - absorbed(x)).abs().max() <= 1e-4


def test_cache_elements_per_token(v2_cfg):
    args = ModelArgs.from_hf(v2_cfg, max_seq_len=8)
    assert MLACache.allocate(args, 1, 4, "absorbed").elements_per_token() == 512 + 64
    assert MLACache.allocate(args, 1, 4, "naive").elements_per_token() == 128 * (192 + 128)


def test_softmax_scale_with_yarn(v2_cfg):
    # V2P §3.1.4 / YaRN: V2 mscale = 0.0707 ln 40 + 1 = 1.2608; scale = 192^-0.5 * mscale^2
    assert softmax_scale(192, v2_cfg["rope_scaling"]) == pytest.approx(192**-0.5 * 1.2608**2, rel=1e-4)


@pytest.mark.parametrize("which", ["lite", "v2-shaped"])
def test_matches_independent_reference(lite_cfg, v2_cfg, which):
    """Real V2-Lite widths (no query compression), and V2's query compression on fewer heads."""
    cfg = dict(lite_cfg) if which == "lite" else {**v2_cfg, "hidden_size": 1024, "num_attention_heads": 8}
    args = ModelArgs.from_hf(cfg, max_seq_len=64)
    for mode in ("naive", "absorbed"):
        layer = MLA(args, mode)
        for p in layer.parameters():
            torch.nn.init.normal_(p, std=0.05)  # large enough that the softmax is far from uniform
        x = torch.randn(2, 12, args.hidden_size)
        with torch.no_grad():
            got, want = layer(x), reference_mla(layer.state_dict(), cfg, x)
        assert (got - want).abs().max() <= 1e-4 * max(1.0, want.abs().max().item())


def test_state_dict_names_follow_checkpoint(v2_cfg, lite_cfg):
    names = set(MLA(ModelArgs.from_hf(v2_cfg, max_seq_len=8, hidden_size=256, num_attention_heads=2)).state_dict())
    assert names == {"q_a_proj.weight", "q_a_layernorm.weight", "q_b_proj.weight", "kv_a_proj_with_mqa.weight",
                     "kv_a_layernorm.weight", "kv_b_proj.weight", "o_proj.weight"}
    lite = set(MLA(ModelArgs.from_hf(lite_cfg, max_seq_len=8)).state_dict())
    assert "q_proj.weight" in lite and "q_a_proj.weight" not in lite
