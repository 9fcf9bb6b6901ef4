"""Wide expert parallelism: the routing model against brute-force sampling, EPLB placement, DeepEP's
published tables, and DeepSeek-V3 simulated at every EP degree."""

import math

import numpy as np
import pytest
from click.testing import CliRunner

from costmodel.app.serving import run_serving
from costmodel.app.study import open_study, override, problems
from costmodel.counts.comm import Link, nccl_all_reduce_latency_s, spanning_link
from costmodel.counts.eplb import placement
from costmodel.counts.routing import (
    busiest_rank_factor,
    contiguous_slots,
    distinct_experts,
    expert_shares,
    sample_topk,
    selection_shares,
    token_fanout,
)
from costmodel.inputs.loader import load_spec
from costmodel.inputs.specs import (
    ClusterSpec,
    InferenceSpec,
    LengthDist,
    ModelSpec,
    MTPSpec,
    Parallelism,
    RoutingSpec,
    WorkloadSpec,
)
from costmodel.sim.train_sim import simulate_training
from costmodel.timing.serve_costs import step_model_for
from planner.cli import cli
from tests.conftest import SCENARIOS

H800 = load_spec("gpu", SCENARIOS / "gpus" / "h800.yaml")
V3_SERVING = SCENARIOS / "deepseek-v3-serving.yaml"


def brute_force_loads(shares, k, tokens, ep, trials, seed=1):
    """Per-rank assignments of `trials` batches of real top-k sets (contiguous experts per rank)."""
    rng = np.random.default_rng(seed)
    per = len(shares) // ep
    out = []
    for _ in range(trials):
        experts = sample_topk(np.asarray(shares), k, tokens, rng)  # (T, k), k distinct experts per token
        out.append(np.bincount((experts // per).ravel(), minlength=ep))
    return np.array(out)  # (trials, ep)


def sampled_distinct_on_rank(n_experts: int, per_rank: int, k: int, tokens: int, rng) -> int:
    """Route `tokens` tokens (each a uniform k-subset of the experts, no repeats) and count the experts
    of rank 0 (the first `per_rank`) that receive one. Exact sampling: how many of a token's k picks
    land on rank 0 is hypergeometric; which of rank 0's experts they are is a uniform subset."""
    on_rank = rng.hypergeometric(per_rank, n_experts - per_rank, k, size=tokens)  # (T,)
    on_rank = on_rank[on_rank > 0]
    order = np.argsort(np.argsort(rng.random((len(on_rank), per_rank)), axis=1), axis=1)  # random ranks
    return int(np.any(order < on_rank[:, None], axis=0).sum())


@pytest.mark.parametrize("ep, tokens", [(8, 4), (16, 2), (32, 1), (64, 1), (64, 3), (128, 1), (256, 1)])
def test_distinct_experts_per_rank_matches_sampling(ep, tokens):
    # V3: 256 experts, top-8; at EP64 a rank holds 4 experts (fewer than top-k), at EP128 two
    k, per = 8, 256 // ep
    rng = np.random.default_rng(0)
    hit = [sampled_distinct_on_rank(256, per, k, tokens * ep, rng) for _ in range(2000)]  # all ranks' tokens
    # every rank receives `tokens` tokens' worth of selections (tokens · k of them) on average
    assert distinct_experts(per, tokens, k, 256) == pytest.approx(np.mean(hit), rel=0.02)


def test_distinct_experts_is_bounded_and_never_overflows():
    assert distinct_experts(4, 1e12, 8, 256) == pytest.approx(4.0)
    assert 0 <= distinct_experts(2, 3, 8, 256) <= 2 and distinct_experts(1, 5, 8, 256) <= 1
    assert distinct_experts(8, 0, 8, 256) == 0 and distinct_experts(8, 3, 8, 8) == 8


@pytest.mark.parametrize("distribution, ep, tokens", [("uniform", 8, 256), ("uniform", 64, 4096),
                                                      ("zipf", 32, 1024), ("zipf", 144, 8192)])
def test_busiest_rank_matches_sampling(distribution, ep, tokens):
    n = 256 if ep != 144 else 288  # 144 ranks: 288 experts, two per rank
    m = ModelSpec(name="m", attention="mha", ffn="moe", vocab_size=16, hidden_size=8, num_hidden_layers=1,
                  num_attention_heads=2, n_routed_experts=n, num_experts_per_tok=8, moe_intermediate_size=8)
    routing = RoutingSpec(distribution=distribution, zipf_s=0.8)
    # real tokens' top-k sets; at 4096+ tokens 16 batches put the sampled mean's standard error at 0.2-0.4%
    # of the factor (64 batches: 0.1-0.3%), well inside the 2% asked, for a quarter of the draws
    loads = brute_force_loads(expert_shares(routing, n), 8, tokens, ep, trials=64 if tokens <= 1024 else 16)
    sampled = np.mean(loads.max(axis=1)) / (tokens * 8 / ep)
    model = busiest_rank_factor(selection_shares(m, routing), contiguous_slots(n, ep), tokens * 8)
    assert model == pytest.approx(sampled, rel=0.02) and model >= 1.0


@pytest.mark.parametrize("s, ep, redundant", [(0.0, 32, 32), (0.6, 32, 0), (0.6, 32, 32), (1.0, 144, 32),
                                              (1.2, 64, 64)])
def test_eplb_is_never_worse_than_no_replication(s, ep, redundant):
    shares = expert_shares(RoutingSpec(distribution="zipf", zipf_s=s, seed=3), 256)  # as selection shares
    for policy in ("hierarchical", "global"):
        if (256 + redundant) % ep:
            continue
        slots = placement(shares, redundant, ep, policy, 8, min(8, ep))
        assert sorted(e for gpu in slots for e in gpu)[:256:] and len(slots) == ep
        assert {len(gpu) for gpu in slots} == {(256 + redundant) // ep}  # every GPU the same slot count
        before = busiest_rank_factor(shares, contiguous_slots(256, ep) if 256 % ep == 0 else slots, 65536)
        after = busiest_rank_factor(shares, slots, 65536)
        assert after <= before + 1e-9


def test_eplb_replicas_cut_a_skewed_load():
    shares = expert_shares(RoutingSpec(distribution="zipf", zipf_s=1.0, seed=3), 256)
    before = busiest_rank_factor(shares, contiguous_slots(256, 32), 65536)
    after = busiest_rank_factor(shares, placement(shares, 32, 32, "hierarchical", 8, 8), 65536)
    assert before > 2.0 and after < 0.6 * before


def test_node_limited_routing_bounds_the_nodes_a_token_reaches(models):
    # V3: top-4 of 8 groups; at EP64 over 8 nodes a group is a node, so a token reaches at most 4 nodes
    v3 = models["deepseek-v3"]
    fan = token_fanout(v3, RoutingSpec(), contiguous_slots(256, 64), 8)
    assert fan.nodes <= 4 and fan.remote_nodes <= fan.nodes and fan.remote_ranks < fan.ranks <= 8
    free = token_fanout(v3.model_copy(update={"topk_method": "greedy"}), RoutingSpec(), contiguous_slots(256, 64), 8)
    assert free.nodes > 4.5  # without the limit: 8·(1 − (7/8)^8) ≈ 5.3 nodes


def test_check_comm_reproduces_deepep_within_15_percent():
    import json

    result = CliRunner().invoke(cli, ["check-comm", "--format", "json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert len(out["cases"]) == 20 and {"name", "published", "predicted", "abs_pct_error"} <= set(out["cases"][0])
    assert out["median_abs_pct_error"] <= 15
    assert sum(c["anchor"] for c in out["cases"]) == 1


def test_check_comm_on_an_nvl72_rack_sends_no_rdma_bytes_inside_the_domain():
    """GB200's domain is 72 GPUs: EP8-EP72 stay on NVLink; EP128 spans 2 domains, each GPU sending the
    pairs bound for the 56 ranks outside its own: 128 tokens x 8 x (7168 x (1 + 4/128) + 16) B x 56/128."""
    import json

    result = CliRunner().invoke(cli, ["check-comm", "--gpu", "gb200", "--format", "json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    rows = {r["ep"]: r for r in out["domain"]}
    assert out["nvlink_domain_gpus"] == 72 and set(rows) == {8, 16, 32, 48, 64, 72, 128, 256}
    assert all(rows[ep]["dispatch_rdma_bytes"] == 0 and rows[ep]["domains"] == 1 for ep in (8, 16, 32, 48, 64, 72))
    assert rows[128]["domains"] == 2 and rows[256]["domains"] == 4
    assert rows[128]["dispatch_rdma_bytes"] == pytest.approx(128 * 8 * (7168 * (1 + 4 / 128) + 16) * 56 / 128)
    assert rows[48]["dispatch_us"] < rows[48]["hgx_dispatch_us"]  # six 8-GPU nodes cross the NIC
    assert rows[8]["dispatch_us"] == pytest.approx(rows[8]["hgx_dispatch_us"])


def test_check_comm_database_rows_are_the_kernel_tables_own():
    """H200's measured DeepEP low-latency call at the benchmark shape, read straight from the parquet files:
    one node from SGLang 0.5.12, 2-8 nodes from 0.5.6.post2 (the release that measured them)."""
    import json

    import pyarrow.parquet as pq

    from costmodel.inputs.kernel_db import systems_dir

    out = json.loads(CliRunner().invoke(cli, ["check-comm", "--gpu", "h200", "--format", "json"]).stdout)
    got = {r["nodes"]: (r["version"], r["measured_dispatch_us"], r["measured_combine_us"]) for r in out["database"]}
    want = {}
    for version in ("0.5.12", "0.5.6.post2"):
        t = pq.read_table(systems_dir() / "data" / "h200_sxm" / "comm" / "sglang" / version /
                          "wideep_deepep_ll_perf.parquet").to_pylist()
        for r in t:
            if (r["hidden_size"], r["num_topk"], r["num_experts"], r["num_token"]) == (7168, 8, 256, 128):
                want.setdefault(r["node_num"], (version, r["dispatch_avg_t_us"], r["combine_avg_t_us"]))
    assert got == want and sorted(got) == [1, 2, 4, 8]
    assert {r["ep"] for r in out["database"]} == {8, 16, 32, 64}


def v3_instance(ep: int, redundant: int = 0, **kw) -> InferenceSpec:
    gpn = min(8, ep)
    return InferenceSpec(cluster=ClusterSpec(gpu=H800, gpus_per_node=gpn, nodes=max(1, ep // 8)),
                         parallelism=Parallelism(dp=ep, ep=ep, zero_stage=0), weight_bits=8, kv_bits=16,
                         redundant_experts=redundant, max_running=64, **kw)


EPS = [(ep, 0) for ep in (1, 2, 4, 8, 16, 32, 64, 128, 256)] + [(144, 32), (320, 64)]


@pytest.mark.parametrize("ep, redundant", EPS)
def test_v3_serving_iterations_at_every_ep(models, ep, redundant):
    v3 = models["deepseek-v3"]
    steps = step_model_for(v3, v3_instance(ep, redundant, all_to_all="low_latency"))
    decode = steps.time([], 64 * ep, 64 * ep * 2048)
    prefill = steps.time([(4096, 4096)] * 2, 0, 0)
    assert 0 < decode < 10 and 0 < prefill < 100 and math.isfinite(decode + prefill)
    if ep > 1:  # 64 tokens on each of ep attention ranks: 64 tokens' selections per EP rank on average
        assert steps.moe.busiest_tokens(64 * ep) >= 64


@pytest.mark.parametrize("ep, redundant", [(16, 0), (64, 0), (256, 0), (144, 32), (320, 64)])
def test_v3_serving_simulates_where_the_weights_fit(models, ep, redundant):
    v3 = models["deepseek-v3"]
    w = WorkloadSpec(prompt_tokens=LengthDist(value=1024), output_tokens=LengthDist(value=32), arrival="burst",
                     requests=4 * ep)
    r = run_serving("v3", v3, v3_instance(ep, redundant), w)
    assert r.finished == 4 * ep and math.isfinite(r.generation_throughput_tok_s) and r.generation_throughput_tok_s > 0


@pytest.mark.parametrize("ep", [1, 2, 4, 8, 16, 32, 64, 128, 256])
def test_v3_training_simulates_at_every_ep(ep):
    st = open_study(SCENARIOS / "deepseek-v2-paper.yaml")
    dp = max(128, ep)
    st = override(st, "deepseek-v2", {
        "model": load_spec("model", SCENARIOS / "models" / "deepseek-v3.yaml").model_dump(),
        "training.cluster.nodes": 16 * dp // 8, "training.parallelism.pp": 16, "training.parallelism.dp": dp,
        "training.parallelism.ep": ep, "training.parallelism.micro_batches": 2, "training.global_batch_seqs": 2 * dp,
        "training.capacity_factor": None, "training.precision": "fp8"})
    v = st.variant("deepseek-v2")
    r = simulate_training(v.name, v.model, v.training)
    assert math.isfinite(r.gpu_hours_per_trillion_tokens) and r.step_time_s > 0


def test_the_bundled_v3_deployment_prints_per_gpu_and_per_node_throughput():
    result = CliRunner().invoke(cli, ["simulate", "serve", str(V3_SERVING), "--format", "json", "--requests", "400"])
    assert result.exit_code == 0, result.output
    import json

    (v,) = json.loads(result.stdout)["variants"]
    assert v["decode_gpus"] == 144 and v["prefill_gpus"] == 32
    assert v["generation_tok_s_per_node"] == pytest.approx(v["max_generation_throughput_tok_s"] / 18)
    assert v["prompt_tok_s_per_node"] == pytest.approx(v["prompt_throughput_tok_s"] / 4)
    f = v["fleet"]
    assert f["prefill_units"] * 32 + f["decode_units"] * 144 == f["gpus"] and 0 < f["decode_utilisation"] <= 1


def test_new_options_are_validated():
    st = open_study(V3_SERVING)
    bad = override(st, "deepseek-v3-oii", {"inference.redundant_experts": 30, "inference.mtp.tokens": 2,
                                            "inference.mtp.acceptance": 0.8})
    fields = [e.field for e in problems(bad)]
    assert fields == ["variants.0.inference.redundant_experts", "variants.0.inference.mtp.tokens"]


def test_mtp_expected_tokens_and_a_faster_tpot(models):
    assert MTPSpec(tokens=2, acceptance=[0.8, 0.5]).expected_tokens_per_step == pytest.approx(1 + 0.8 + 0.4)
    v3 = models["deepseek-v3"]
    w = WorkloadSpec(prompt_tokens=LengthDist(value=512), output_tokens=LengthDist(value=65), arrival="burst",
                     requests=64)
    plain = run_serving("v3", v3, v3_instance(16), w)
    always = run_serving("v3", v3, v3_instance(16, mtp=MTPSpec(tokens=1, acceptance=1.0)), w)
    # every draft accepted: 64 decode steps become 32, each verifying two tokens (a little slower)
    assert always.iterations < 0.6 * plain.iterations
    assert always.latency.tpot_p50_s < 0.75 * plain.latency.tpot_p50_s


def test_an_mtp_pass_under_tp_pays_its_layers_two_all_reduces(models):
    """A draft pass is one more layer: under TP8 it all-reduces after attention and after the experts, as
    each main layer does (the pass with the all-reduce charged nothing is that much shorter)."""
    v3 = models["deepseek-v3"]
    inf = InferenceSpec(cluster=ClusterSpec(gpu=H800, gpus_per_node=8, nodes=1),
                        parallelism=Parallelism(tp=8, ep=8, zero_stage=0), weight_bits=8, max_running=8,
                        mtp=MTPSpec(tokens=1, acceptance=0.8))
    steps = step_model_for(v3, inf)
    with_ar = steps._mtp_module_s(8, 8, 1024)
    ar = steps.tp_all_reduce_s(8)
    steps.tp_all_reduce_s = lambda tokens: 0.0
    assert ar > 0 and with_ar - steps._mtp_module_s(8, 8, 1024) == pytest.approx(2 * ar)


def test_two_batch_overlap_hides_the_all_to_all(models):
    v3 = models["deepseek-v3"]
    plain = step_model_for(v3, v3_instance(32))
    tbo = step_model_for(v3, v3_instance(32, two_batch_overlap=True))
    tokens = 8192
    # two micro-batches of half the tokens: each reads the experts and calls the kernels once
    group = tokens * 32  # every one of the 32 attention ranks has `tokens`
    compute = 2 * tbo.moe.compute_s(tokens // 2, group / 2)
    comm = 2 * tbo.moe.comm_s(tokens // 2, decode_only=False)
    attn_free = tbo._moe_layer(0.0, tokens, group, decode_only=False)
    assert attn_free == pytest.approx(max(compute / (1 - 20 / 132), comm))  # V3P §3.2.2: 20 of 132 SMs
    whole = plain.moe.compute_s(tokens, group) + plain.moe.comm_s(tokens, decode_only=False)
    assert plain._moe_layer(0.0, tokens, group, decode_only=False) == pytest.approx(whole)
    assert tbo.time([(tokens, tokens)], 0, 0) < plain.time([(tokens, tokens)], 0, 0)


def test_a_prompt_runs_on_the_rank_that_holds_its_request():
    from costmodel.timing.serve_costs import busiest_rank_chunks

    assert busiest_rank_chunks([(2000, 2000)], 32) == [(2000, 2000)]  # one prompt: one rank does all of it
    assert busiest_rank_chunks([(500, 500), (2000, 2000), (700, 700)], 8) == [(2000, 2000)]
    # more chunks than ranks: largest first onto the least loaded rank -> {900, 100} and {800, 300} (busiest)
    assert sorted(busiest_rank_chunks([(900, 9), (800, 8), (300, 3), (100, 1)], 2)) == [(300, 3), (800, 8)]


def test_an_ep_group_receives_only_its_own_attention_ranks_tokens(models):
    lite = models["deepseek-v2-lite"]
    wide = InferenceSpec(cluster=ClusterSpec(gpu=H800, gpus_per_node=8, nodes=2),
                         parallelism=Parallelism(dp=16, ep=8, zero_stage=0))
    steps = step_model_for(lite, wide)
    assert steps.group_tokens(16 * 64) == 8 * 64  # two EP groups of 8 GPUs, each fed by 8 attention ranks


def test_one_token_outputs_and_a_fleet_give_no_traceback(tmp_path):
    text = V3_SERVING.read_text().replace("workload: deepseek-v3-chat-assumed",
                                          "workload: {prompt_tokens: {value: 512}, output_tokens: {value: 1}, "
                                          "arrival: burst, requests: 64}")
    path = tmp_path / "one.yaml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["simulate", "serve", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    import json

    fleet = json.loads(result.stdout)["variants"][0]["fleet"]
    assert fleet["decode_units"] == 0 and fleet["usd_per_m_output_tokens"] is None


def test_dense_models_refuse_expert_options():
    st = open_study(SCENARIOS / "deepseek-v2-paper.yaml")
    bad = override(st, "deepseek-llm-67b", {"inference.two_batch_overlap": True, "inference.redundant_experts": 8})
    assert {e.field for e in problems(bad)} == {"variants.1.inference.two_batch_overlap",
                                                "variants.1.inference.redundant_experts"}


def test_clipped_lognormal_mean_matches_its_samples():
    d = LengthDist(dist="lognormal", median=600, sigma=1.5, max=4096)
    x = np.clip(np.random.default_rng(0).lognormal(math.log(600), 1.5, 400_000), 1, 4096)
    assert d.mean == pytest.approx(x.mean(), rel=0.01)


def test_measured_loads_from_a_csv_per_layer_or_global(tmp_path):
    text = V3_SERVING.read_text().replace("routing: {distribution: uniform}", "routing: {load_csv: loads.csv}")
    (tmp_path / "v3.yaml").write_text(text)
    rows = ["layer,expert,load"] + [f"{layer},{e},{1 + (e % 4 == 0) * 7}" for layer in range(2) for e in range(256)]
    (tmp_path / "loads.csv").write_text("\n".join(rows) + "\n")
    v = open_study(tmp_path / "v3.yaml").variant("deepseek-v3-oii")
    assert v.inference.routing.distribution == "measured" and v.inference.routing.expert_loads[:2] == [16.0, 2.0]
    (tmp_path / "loads.csv").write_text("expert,load\n0,1\n2,1\n")  # expert 1 missing
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "v3.yaml")])
    assert result.exit_code == 2 and "must list experts 0..N-1" in result.output
    assert "variants.0.inference.routing.load_csv" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("tp", [8, 16])
def test_a_tp_group_beyond_its_nvlink_domain_all_reduces_over_its_nodes_nics(models, tp):
    """TP16 on 8-GPU nodes (the silicon sample's TP16 and TP64 rows): the rings cross between the nodes
    through all 8 NICs of each at once, so the slower of NVLink and 8 NICs paces them; inside a node,
    NVLink. By hand: 2 (n-1)/n of the BF16 buffer over that bandwidth (B200: 900 GB/s NVLink a direction
    x 153/200 = 688 GB/s, against 8 x 50 GB/s NICs x 43/50 = 344 GB/s)."""
    v3, b200 = models["deepseek-v3"], load_spec("gpu", SCENARIOS / "gpus" / "b200.yaml")
    inf = InferenceSpec(cluster=ClusterSpec(gpu=b200, gpus_per_node=8, nodes=tp // 8),
                        parallelism=Parallelism(tp=tp, ep=tp, zero_stage=0), weight_bits=8, max_running=8)
    steps = step_model_for(v3, inf)
    nvlink, nics = b200.nvlink_bw_bytes_per_s.value * 153 / 200, 8 * b200.nic_bw_bytes_per_s.value * 43 / 50
    bw = nvlink if tp == 8 else min(nvlink, nics)
    nbytes = 4096 * v3.hidden_size * 2
    # NCCL's latency across 2 nodes: its tree, 6.8 + 2 (7 x 0.6 + 1 x 5.0) = 25.2 us (nccl_all_reduce_latency_s)
    latency_s = 25.2e-6 if tp == 16 else 0.0
    assert steps.tp_all_reduce_s(4096) == pytest.approx(latency_s + 2 * (tp - 1) / tp * nbytes / bw)


@pytest.mark.parametrize("ranks, nodes, us", [
    (16, 2, 6.8 + 2 * (7 * 0.6 + 1 * 5.0)),   # tree: 7 NVLink hops a node, log2(2) = 1 network hop, twice
    (64, 8, 6.8 + 2 * (7 * 0.6 + 3 * 5.0)),   # tree: log2(8) = 3 network hops (ring: 6.6 + 112 x 1.0 + 14 x 2.7)
    (8, 1, 6.6 + 14 * 0.6),                    # one node: the ring's 14 NVLink steps beat the tree's 15.2
    (2, 2, 6.6 + 2 * 5.0),                     # one GPU a node: the ring pays the tree's network hop, 16.6 < 16.8
    (4, 2, 6.6 + 4 * 1.0 + 2 * 2.7),           # ring 16.0 < tree 18.0: its NVLink steps at the 1.0 us net overhead
    (24, 3, 6.8 + 2 * (7 * 0.6 + 1 * 5.0)),    # log2i(3) = 1 (an exact log2 would give 31.05)
    (1, 1, 0.0),
])
def test_nccl_all_reduce_latency_is_its_tuners_lower_of_tree_and_ring(ranks, nodes, us):
    assert nccl_all_reduce_latency_s(ranks, nodes) == pytest.approx(us * 1e-6)


def test_the_nics_pace_a_spanning_ring_when_they_are_slower_than_nvlink():
    links = {"nvlink": Link(900e9, 0.765), "nic": Link(50e9, 0.86)}  # B200 NVLink 5 against 400 Gb/s NICs
    assert spanning_link(links, 8).effective_bw == pytest.approx(8 * 50e9 * 0.86)
    assert spanning_link(links, 32).effective_bw == pytest.approx(900e9 * 0.765)  # more NICs than NVLink carries
