"""DeepSeekMoE: routing rules, vectorised dispatch vs loops, balance losses by hand, token dropping."""

import pytest
import torch

from kernels.config import ModelArgs
from kernels.moe import (
    MoE,
    balance_losses,
    device_capacity_keep,
    dispatch_combine,
    dispatch_combine_loop,
    routing_stats,
    stack_hf_experts,
    update_bias,
)
from kernels.reference import reference_moe

ROUTERS = {
    "greedy-softmax": dict(topk_method="greedy", scoring_func="softmax", n_group=1, topk_group=1),
    "v2-group-limited": dict(topk_method="group_limited_greedy", scoring_func="softmax", n_group=4, topk_group=2,
                             routed_scaling_factor=16.0),
    "v3-noaux-sigmoid": dict(topk_method="noaux_tc", scoring_func="sigmoid", n_group=4, topk_group=2,
                             norm_topk_prob=True, routed_scaling_factor=2.5),
}


def moe_args(**router) -> ModelArgs:
    return ModelArgs(hidden_size=32, n_routed_experts=16, num_experts_per_tok=4, moe_intermediate_size=24,
                     n_shared_experts=2, **router)


@pytest.mark.parametrize("name", ROUTERS)
def test_moe_equals_per_token_reference(name):
    args = moe_args(**ROUTERS[name])
    layer = MoE(args)
    if name.startswith("v3"):
        layer.gate.e_score_correction_bias.copy_(torch.randn(16) * 0.1)
    x = torch.randn(3, 5, 32)
    with torch.no_grad():
        got = layer(x).view(15, 32)
        want = reference_moe(layer.state_dict(), vars(args), x.view(15, 32))
    assert torch.allclose(got, want, atol=1e-5)


def test_selected_experts_are_the_top_k():
    layer = MoE(moe_args(**ROUTERS["greedy-softmax"]))
    route = layer.gate(torch.randn(50, 32))
    assert torch.equal(route.indices.sort(-1).values, route.scores.topk(4, -1).indices.sort(-1).values)


def test_group_limited_routing_uses_at_most_topk_group_groups():
    args = moe_args(**ROUTERS["v2-group-limited"])
    route = MoE(args).gate(torch.randn(500, 32))
    groups = route.indices // (16 // 4)
    distinct = torch.tensor([len(set(row.tolist())) for row in groups])
    assert distinct.max() <= 2 and (distinct == 2).any()
    stats = routing_stats(route.indices, 16, 4)
    assert torch.equal(stats.devices_per_token, distinct)
    assert stats.tokens_per_expert.sum() == 500 * 4 and torch.equal(stats.tokens_per_device, stats.tokens_per_expert.view(4, 4).sum(1))


def test_vectorised_dispatch_equals_loop():
    layer = MoE(moe_args())
    x = torch.randn(64, 32)
    route = layer.gate(x)
    with torch.no_grad():
        a = dispatch_combine(x, route.weights, route.indices, layer.experts)
        b = dispatch_combine_loop(x, route.weights, route.indices, layer.experts)
    assert torch.allclose(a, b, atol=1e-6)


def test_balance_losses_hand_example():
    # 1 sequence, 2 tokens, 4 experts on D = 2 devices ({0,1}, {2,3}), K = 2, M = 2.
    scores = torch.tensor([[[0.5, 0.3, 0.1, 0.1], [0.4, 0.1, 0.3, 0.2]]])
    indices = torch.tensor([[[0, 1], [0, 2]]])
    got = balance_losses(scores, indices, n_devices=2, topk_devices=2, alphas=(0.003, 0.05, 0.02))
    # f = [2,1,1,0], P = [.45,.2,.2,.15]          -> sum f P = 1.3
    # f' = [1.5,.5], P' = [.65,.35]                -> 1.15
    # f'' = D/(M T) * [2 tokens, 1 token] = [1,.5] -> .825
    assert got["expert"].item() == pytest.approx(0.003 * 1.3)
    assert got["device"].item() == pytest.approx(0.05 * 1.15)
    assert got["communication"].item() == pytest.approx(0.02 * 0.825)


def test_capacity_drops_lowest_affinity_first():
    # 4 tokens all choose expert 0 (device 0); capacity 1.0 x 4 x 1 / 2 = 2 assignments per device
    scores = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.8, 0.2], [0.7, 0.3]])
    indices = torch.zeros(4, 1, dtype=torch.long)
    keep = device_capacity_keep(scores, indices, n_devices=2, capacity_factor=1.0)
    assert keep.view(-1).tolist() == [True, False, True, False]
    protected = torch.tensor([False, True, False, False])  # a never-dropped sequence's token goes first
    keep = device_capacity_keep(scores, indices, n_devices=2, capacity_factor=1.0, protected=protected)
    assert keep.view(-1).tolist() == [True, True, False, False]


def test_training_drops_tokens_and_eval_does_not():
    layer = MoE(moe_args(**ROUTERS["v2-group-limited"]), capacity_factor=0.5, n_devices=4)
    x = torch.randn(40, 32)
    layer.train()
    layer(x)
    assert layer.stats().tokens_per_expert.sum() <= 0.5 * 40 * 4 + 4
    layer.eval()
    layer(x)
    assert layer.stats().tokens_per_expert.sum() == 40 * 4


def test_aux_free_bias_update():
    bias = update_bias(torch.zeros(4), torch.tensor([10, 2, 6, 6]), gamma=0.001)
    assert bias.tolist() == pytest.approx([-0.001, 0.001, 0.0, 0.0])


def test_stack_hf_experts_round_trip():
    layer = MoE(moe_args())
    sd = layer.state_dict()
    hf = {k: v for k, v in sd.items() if not k.startswith("experts.")}
    for name in ("gate_proj", "up_proj", "down_proj"):
        for i in range(16):
            hf[f"experts.{i}.{name}.weight"] = sd[f"experts.{name}"][i]
    stacked = stack_hf_experts(hf)
    assert set(stacked) == set(sd) and all(torch.equal(stacked[k], sd[k]) for k in sd)
