"""`planner check-serving`: the measured sample read as its columns say, each point replayed as a variant,
and the errors summarised; bad input one line and exit 2, an unsupported row that row's reason."""

import csv
import hashlib
import io
import json

import pytest
from click.testing import CliRunner

from costmodel.app import check_serving as cs
from costmodel.inputs.errors import PlannerError
from costmodel.inputs.measured_serving import (
    INFERENCEX_CLIENT,
    REQUIRED,
    UNRECORDED_CLIENT,
    Client,
    read_points,
    split_of,
)
from planner.cli import cli

COLUMNS = list(REQUIRED) + ["silicon_data_source", "prefill_num_workers", "decode_num_workers"] + [
    f"{side}_{c}" for side in ("prefill", "decode") for c in ("tp_size", "pp_size", "attention_dp_size",
                                                               "moe_tp_size", "moe_ep_size")]
# a small dense model at short lengths: each point simulates in well under a second
LLAMA = {"id": "row-1", "backend": "trtllm", "backend_version": "1.0.0", "model_path": "meta-llama/Llama-3.1-8B-Instruct",
         "system": "h100_sxm", "precision": "bf16", "mode": "agg", "isl": "128", "osl": "16", "gemm_quant_mode": "",
         "moe_quant_mode": "", "batch_size": "4", "tp_size": "1", "pp_size": "1", "attention_dp_size": "1",
         "moe_tp_size": "1", "moe_ep_size": "1", "silicon_ttft_ms": "20", "silicon_tpot_ms": "5",
         "silicon_data_source": "model=x; silicon_concurrency=4"}
# a row of InferenceX's database (one of its dated exports), read with its client and means
INFX_ROW = {**LLAMA, "silicon_data_source": "source_file=2026-04-06.csv; model=x; silicon_concurrency=4"}


def write_csv(path, rows, columns=COLUMNS):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") for c in columns})
    path.write_text(out.getvalue())
    return path


def check(tmp_path, rows, *args, columns=COLUMNS):
    path = write_csv(tmp_path / "points.csv", rows, columns)
    return CliRunner().invoke(cli, ["check-serving", str(path), "--split", "all", "--sequential", *args])


# ------------------------------------------------------------------------------------------ reading


def test_the_split_is_sha1_of_the_id_modulo_4():
    """test: sha1(id) as an integer divisible by 4; a quarter of the shipped sample, give or take."""
    for point_id in ("a", "e", "row-1"):
        expected = "test" if int(hashlib.sha1(point_id.encode()).hexdigest(), 16) % 4 == 0 else "dev"
        assert split_of(point_id) == expected
    assert [split_of(i) for i in ("a", "b", "e", "f")] == ["test", "test", "dev", "dev"]
    points = cs.read_input("aiconfigurator")
    assert len(points) == 5221 and sum(p.split == "test" for p in points) == 1294  # 24.8%


def test_concurrency_comes_from_the_data_source_before_batch_size(tmp_path):
    (p,) = read_points(write_csv(tmp_path / "p.csv", [{**LLAMA, "batch_size": "9"}]))
    assert p.concurrency == 4
    (q,) = read_points(write_csv(tmp_path / "q.csv", [{**LLAMA, "silicon_data_source": ""}]))
    assert q.concurrency == 4  # batch_size 4


def test_a_layout_that_contradicts_its_id_is_unreadable(tmp_path):
    """Some rows named tp8_ep8 carry tp_size 64 on 64 GPUs: which of the two ran cannot be told."""
    row = {**LLAMA, "id": "x_tp8_ep8_1", "tp_size": "64"}
    (p,) = read_points(write_csv(tmp_path / "p.csv", [row]))
    assert p.layout is None and "names tp8_ep8 but the fields give tp_size 64 on 64 GPUs" in p.unreadable
    (q,) = read_points(write_csv(tmp_path / "q.csv", [{**row, "tp_size": "1", "attention_dp_size": "8"}]))
    assert (q.layout.tp, q.layout.attention_dp, q.layout.gpus) == (1, 8, 8)  # the id's tp8 is its 8 GPUs


@pytest.mark.parametrize("row_id, fields, expected", [
    # InferenceX's database counts a one-node recipe of tp T, ep E as T x E GPUs (AISIM); the sample carries it
    # as T x E attention GPUs with moe_tp T, moe_ep E ...
    ("x_tp8_ep8_1", {"tp_size": "64", "moe_tp_size": "8", "moe_ep_size": "8"}, (8, 1, 1, 8)),
    ("x_tp8_ep8_1", {"tp_size": "1", "attention_dp_size": "64", "moe_tp_size": "8", "moe_ep_size": "8"}, (1, 8, 1, 8)),
    ("x_cfg1", {"tp_size": "16", "moe_tp_size": "4", "moe_ep_size": "4"}, (4, 1, 1, 4)),  # unnamed, beyond a node
    ("x_tp2_ep2_1", {"tp_size": "4", "moe_tp_size": "2", "moe_ep_size": "2"}, (2, 1, 1, 2)),  # within one: named
    # ... or as attention TP T x DP E with moe_ep T x E
    ("x_tp4_ep4_1", {"tp_size": "4", "attention_dp_size": "4", "moe_tp_size": "1", "moe_ep_size": "16"}, (4, 1, 1, 4)),
    ("x_cfg1", {"tp_size": "4", "attention_dp_size": "4", "moe_tp_size": "1", "moe_ep_size": "16"}, (4, 1, 1, 4)),
    # what one node holds and no name contradicts is read as recorded
    ("x_cfg1", {"tp_size": "4", "moe_tp_size": "2", "moe_ep_size": "2"}, (4, 1, 2, 2)),
    ("x_tp8_ep8_1", {"tp_size": "8", "moe_tp_size": "1", "moe_ep_size": "8"}, (8, 1, 1, 8)),
])
def test_inferencex_inflated_gpu_counts_are_read_as_the_recipe_ran(tmp_path, row_id, fields, expected):
    (p,) = read_points(write_csv(tmp_path / "p.csv", [{**INFX_ROW, "id": row_id, **fields}]))
    assert (p.layout.tp, p.layout.attention_dp, p.layout.moe_tp, p.layout.moe_ep) == expected, p.unreadable


@pytest.mark.parametrize("change", [{}, {"system": "gb200"}])
def test_only_inferencex_rows_on_hgx_parts_are_uninflated(tmp_path, change):
    """A 16-GPU layout is real in your own CSV (no InferenceX source), and in an NVL72 rack."""
    fields = {"id": "x_cfg1", "tp_size": "4", "attention_dp_size": "4", "moe_tp_size": "1", "moe_ep_size": "16"}
    row = {**(INFX_ROW if change else LLAMA), **fields, **change}
    (p,) = read_points(write_csv(tmp_path / "p.csv", [row]))
    assert (p.layout.tp, p.layout.attention_dp, p.layout.moe_ep, p.layout.gpus) == (4, 4, 16, 16)


def test_a_disaggregated_row_needs_both_layouts_and_its_worker_counts(tmp_path):
    layouts = {f"{side}_{c}": "1" for side in ("prefill", "decode") for c in ("tp_size", "pp_size",
                                                                               "attention_dp_size", "moe_tp_size", "moe_ep_size")}
    row = {**LLAMA, "mode": "disagg", "tp_size": "", **layouts, "decode_tp_size": "2"}
    (p,) = read_points(write_csv(tmp_path / "p.csv", [row]))
    assert p.layout is None and "records no prefill_num_workers" in p.unreadable
    (q,) = read_points(write_csv(tmp_path / "q.csv", [{**row, "prefill_num_workers": "1", "decode_num_workers": "3"}]))
    assert (q.workers, q.layout.tp, q.prefill_layout.tp) == ((1, 3), 2, 1)


@pytest.mark.parametrize("change, columns, words", [
    ({}, [c for c in COLUMNS if c not in ("moe_ep_size", "isl")], "lacks 2 of the 19 columns check-serving reads: "
                                                                  "isl, moe_ep_size"),
    ({"silicon_ttft_ms": "nan"}, COLUMNS, "row 1 has no silicon_ttft_ms"),
    ({"silicon_tpot_ms": "-3"}, COLUMNS, "silicon_tpot_ms '-3' is not a positive number"),
    ({"system": "h900_sxm"}, COLUMNS, "system 'h900_sxm' is not a GPU the kernel database knows"),
    ({"model_path": "nobody/NoSuchModel-7B"}, COLUMNS, "model_path 'nobody/NoSuchModel-7B': no config.json"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, change, columns, words):
    result = check(tmp_path, [{**LLAMA, **change}], columns=columns)
    assert result.exit_code == 2 and words in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


# ---------------------------------------------------------------------------------- turning into variants


def point(tmp_path, **change):
    (p,) = read_points(write_csv(tmp_path / "one.csv", [{**LLAMA, **change}]))
    return p


@pytest.mark.parametrize("change, expected", [
    ({"precision": "bf16"}, {"weight_bits": 16}),
    ({"precision": "fp8", "gemm_quant_mode": "fp8", "moe_quant_mode": "fp8_block"},
     {"weight_bits": 8, "fp8_gemm_scaling": "tensor", "fp8_moe_scaling": "block"}),
    ({"precision": "", "model_path": "nvidia/Llama-3.1-8B-Instruct-FP8"},  # the checkpoint as it ships
     {"weight_bits": 8, "fp8_gemm_scaling": "block", "fp8_moe_scaling": "block"}),
    ({"precision": "", "model_path": "nvidia/Qwen3-32B-NVFP4"}, {"weight_bits": 4}),  # its base's config is BF16
    ({"precision": "fp16"}, {"weight_bits": 16}),
    # DeepSeek-R1 ships 128 x 128 block-scaled FP8: the engines run it so, whatever the label
    ({"precision": "fp8", "gemm_quant_mode": "fp8", "moe_quant_mode": "fp8", "model_path": "deepseek-ai/DeepSeek-R1"},
     {"weight_bits": 8, "fp8_gemm_scaling": "block", "fp8_moe_scaling": "block"}),
    # a BF16 checkpoint the engine quantizes per tensor, and a sibling that borrows the block checkpoint's config
    ({"precision": "fp8", "gemm_quant_mode": "fp8", "moe_quant_mode": "fp8", "model_path": "Qwen/Qwen3-32B"},
     {"weight_bits": 8, "fp8_gemm_scaling": "tensor", "fp8_moe_scaling": "tensor"}),
    ({"precision": "fp8", "gemm_quant_mode": "fp8", "moe_quant_mode": "fp8", "model_path": "nvidia/DeepSeek-R1-FP8"},
     {"weight_bits": 8, "fp8_gemm_scaling": "tensor", "fp8_moe_scaling": "tensor"}),
    ({"precision": "", "gemm_quant_mode": "bfloat16", "moe_quant_mode": "bfloat16"}, {"weight_bits": 16}),
])
def test_the_rows_precision(tmp_path, change, expected):
    assert cs.precision_of(point(tmp_path, **change)) == expected


def test_nvfp4_is_four_bit_weights_and_int4_a_reason_not_a_guess(tmp_path):
    assert cs.precision_of(point(tmp_path, precision="fp4", gemm_quant_mode="nvfp4", moe_quant_mode="nvfp4")) == \
        {"weight_bits": 4}
    with pytest.raises(cs.Unsupported, match="int4 weights are not modelled"):
        cs.precision_of(point(tmp_path, precision="int4"))
    with pytest.raises(cs.Unsupported, match="NVFP4 mixed with fp8"):
        cs.precision_of(point(tmp_path, precision="fp4", gemm_quant_mode="fp8", moe_quant_mode="nvfp4"))


def test_expert_tp_and_ep_come_from_moe_tp_and_moe_ep(tmp_path):
    p = point(tmp_path, tp_size="8", moe_tp_size="4", moe_ep_size="2")
    assert cs.parallelism_of(p.layout, "", moe=True) == {"tp": 8, "dp": 1, "ep": 2, "etp": 4, "zero_stage": 0}
    assert cs.parallelism_of(p.layout, "", moe=False) == {"tp": 8, "dp": 1, "zero_stage": 0}
    bad = point(tmp_path, tp_size="8", moe_tp_size="2", moe_ep_size="2")
    with pytest.raises(cs.Unsupported, match="moe_tp 2 x moe_ep 2 is not the 8 GPUs"):
        cs.parallelism_of(bad.layout, "", moe=True)


def test_a_quantized_checkpoint_reads_its_bases_config():
    assert cs.config_path("nvidia/Llama-3.1-8B-Instruct-FP8").name == "meta-llama--Meta-Llama-3.1-8B_config.json"
    assert cs.config_path("nvidia/DeepSeek-R1-NVFP4").name == "deepseek-ai--DeepSeek-R1_config.json"


# -------------------------------------------------------------------------------------------- summary


def row(ttft_pred, tpot_pred, ttft=100.0, tpot=10.0, gpu="h100_sxm"):
    predicted = None if ttft_pred is None else {"ttft_ms": ttft_pred, "tpot_ms": tpot_pred, "generation_tok_s": 1.0}
    return {"id": "x", "split": "dev", "group": {"gpu": gpu, "engine": "vllm", "mode": "agg", "family": "llama-3.1"},
            "measured": {"ttft_ms": ttft, "tpot_ms": tpot}, "predicted": predicted,
            "skipped": None if predicted else "precision: fp4 weights are not modelled (issue #26)"}


def test_summary_medians_by_hand():
    """TTFT errors +10%, -30%, +50% -> |err| median 30, signed median +10; TPOT +20%, -10%, 0 -> 10, 0."""
    rows = [row(110, 12), row(70, 9), row(150, 10), row(None, None)]
    s = cs.summarise(rows)
    assert (s["points"], s["simulated"], s["coverage"]) == (4, 3, 0.75)
    assert s["ttft_median_abs_pct_error"] == pytest.approx(30) and s["ttft_median_signed_pct_error"] == pytest.approx(10)
    assert s["tpot_median_abs_pct_error"] == pytest.approx(10) and s["tpot_median_signed_pct_error"] == pytest.approx(0)
    assert s["ttft_p90_abs_pct_error"] == pytest.approx(30 + 0.8 * 20)  # numpy's linear p90 of 10, 30, 50
    assert s["skipped_reasons"] == {"precision: fp4 weights are not modelled (issue #26)": 1}
    assert [g["points"] for g in s["groups"]] == [4]


# -------------------------------------------------------------------------------------------- runs


def test_each_point_is_simulated_or_skipped_with_its_reason(tmp_path):
    """A BF16 Llama-3.1-8B point runs; an INT4 one and one whose weights cannot fit are that row's reason."""
    rows = [LLAMA, {**LLAMA, "id": "row-2", "precision": "int4"},
            {**LLAMA, "id": "row-3", "model_path": "meta-llama/Llama-3.1-70B", "isl": "4096"}]
    result = check(tmp_path, rows, "--format", "json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    ran, fp4, big = out["points"]
    assert ran["skipped"] is None and ran["predicted"]["ttft_ms"] > 0 and ran["predicted"]["tpot_ms"] > 0
    # 1.0.0 predates every TensorRT-LLM version the database holds on H100: its oldest, 1.2.0rc5
    assert ran["setup"] == {"engine_version": "1.2.0rc5", "weight_bits": 16, "layout": "TP1 DP1 EP1"}
    assert fp4["predicted"] is None and "int4 weights" in fp4["skipped"]
    assert big["predicted"] is None and big["skipped"].startswith("infeasible: ")
    s = out["summary"]
    assert (s["points"], s["simulated"]) == (3, 1)
    err = 100 * (ran["predicted"]["tpot_ms"] - 5) / 5
    assert s["tpot_median_signed_pct_error"] == pytest.approx(err)
    assert set(s) >= {"points", "simulated", "coverage", "tpot_median_abs_pct_error", "ttft_median_abs_pct_error",
                      "tpot_median_signed_pct_error", "ttft_median_signed_pct_error", "groups"}


def test_a_sample_row_replays_inferencex_client_and_compares_means(tmp_path):
    """The sample's database rows are InferenceX's runs: lengths uniform in [int(0.8 L), L] (128 -> [102, 128],
    16 -> [12, 16]), ten prompts a user, and the means of TTFT and TPOT are what the row measured."""
    (p,) = read_points(write_csv(tmp_path / "points.csv", [INFX_ROW]))
    w = cs.workload_of(p)
    assert w["prompt_tokens"] == {"dist": "uniform", "low": 102, "high": 128}
    assert w["output_tokens"] == {"dist": "uniform", "low": 12, "high": 16}
    assert (w["users"], w["requests"], w["saturation_requests"]) == (4, 40, 40)
    r = cs.check_point(p)
    study = cs.study_from_text(cs.scenario_text(p), cs.BUNDLED_DIR / "check-serving.yaml")
    v = study.scenario.variants[0]
    lat = cs.run_serving("point", v.model, v.inference, base_dir=cs.BUNDLED_DIR).latency
    assert r.predicted["ttft_ms"] == pytest.approx(1e3 * lat.ttft_mean_s)
    assert r.predicted["tpot_ms"] == pytest.approx(1e3 * lat.tpot_mean_s)
    assert lat.ttft_mean_s != pytest.approx(lat.ttft_p50_s, rel=1e-3)  # the statistic is a choice that shows
    assert lat.tpot_mean_s != pytest.approx(lat.tpot_p50_s, rel=1e-4)
    (q,) = read_points(write_csv(tmp_path / "q.csv", [{**INFX_ROW, "silicon_data_source": "db-dump/2026-04-27; "
                                                       "config_id=1; silicon_concurrency=4"}]))
    assert q.client == INFERENCEX_CLIENT


def test_a_row_not_from_inferencex_replays_the_unrecorded_clients_assumption(tmp_path):
    """NVIDIA's gap-analysis rows (another source, other lengths): fixed lengths, two a user, medians."""
    gap = {**LLAMA, "silicon_data_source": "source_file=/x/aic-auto-gap-analysis/data/h100_sxm/q.csv; "
                                           "silicon_concurrency=4"}
    for row, columns in ((gap, COLUMNS), (LLAMA, [c for c in COLUMNS if c != "silicon_data_source"])):
        (p,) = read_points(write_csv(tmp_path / "p.csv", [row], columns))
        assert p.client == UNRECORDED_CLIENT and cs.workload_of(p)["requests"] == 8
    r = cs.check_point(p)
    study = cs.study_from_text(cs.scenario_text(p), cs.BUNDLED_DIR / "check-serving.yaml")
    v = study.scenario.variants[0]
    lat = cs.run_serving("point", v.model, v.inference, base_dir=cs.BUNDLED_DIR).latency
    assert (r.predicted["ttft_ms"], r.predicted["tpot_ms"]) == pytest.approx((1e3 * lat.ttft_p50_s, 1e3 * lat.tpot_p50_s))


def test_your_own_csv_may_say_how_its_client_drove_it(tmp_path):
    columns = COLUMNS + ["client_range_ratio", "client_prompts_per_user", "client_statistic"]
    row = {**INFX_ROW, "client_range_ratio": "1", "client_prompts_per_user": "3.0", "client_statistic": "median"}
    (p,) = read_points(write_csv(tmp_path / "p.csv", [row], columns))
    w = cs.workload_of(p)
    assert (w["prompt_tokens"], w["requests"], p.client.statistic) == ({"dist": "fixed", "value": 128}, 12, "median")
    (q,) = read_points(write_csv(tmp_path / "q.csv", [{**INFX_ROW, "client_prompts_per_user": "4"}], columns))
    assert q.client == Client(0.8, 4, "mean")  # what an InferenceX row leaves out is InferenceX's


@pytest.mark.parametrize("change, field", [({"client_range_ratio": "1.5"}, "client_range_ratio"),
                                           ({"client_range_ratio": "0.8", "client_prompts_per_user": "two"},
                                            "client_prompts_per_user"),
                                           ({"client_statistic": "p90"}, "client_statistic")])
def test_a_client_column_out_of_range_is_one_line_and_exit_2(tmp_path, change, field):
    columns = COLUMNS + ["client_range_ratio", "client_prompts_per_user", "client_statistic"]
    result = check(tmp_path, [{**LLAMA, **change}], columns=columns)
    bad = change[field]
    assert result.exit_code == 2 and f"has {field} {bad!r}" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_bench_file_replays_fixed_mean_lengths_and_its_prompts_a_user(tmp_path):
    """vLLM's file: 8 completed at concurrency 4 is two prompts a user, at the mean lengths; medians."""
    (tmp_path / "run.json").write_text(json.dumps(VLLM_RUN))
    (tmp_path / "run.yaml").write_text(SIDECAR)
    (p,) = cs.read_input(tmp_path / "run.json")
    w = cs.workload_of(p)
    assert (w["prompt_tokens"], w["output_tokens"]) == ({"dist": "fixed", "value": 128}, {"dist": "fixed", "value": 16})
    assert (w["requests"], p.client.statistic) == (8, "median")
    (tmp_path / "run.json").write_text(json.dumps({**VLLM_RUN, "completed": 10}))  # 2.5 a user: three, not two
    (q,) = cs.read_input(tmp_path / "run.json")
    assert q.client.prompts_per_user == 3
    lat = cs.LatencyStats(**{f"{m}_{q}_s": i for i, (m, q) in enumerate(
        (m, q) for m in ("ttft", "tpot", "e2e") for q in ("p50", "p90", "p99", "mean"))})
    assert cs.latency_of(lat, "median") == (lat.ttft_p50_s, lat.tpot_p50_s)
    assert cs.latency_of(lat, "mean") == (lat.ttft_mean_s, lat.tpot_mean_s)


def test_a_disaggregated_row_runs_its_prefill_and_decode_workers(tmp_path):
    layouts = {f"{side}_{c}": "1" for side in ("prefill", "decode") for c in ("tp_size", "pp_size",
                                                                               "attention_dp_size", "moe_tp_size", "moe_ep_size")}
    disagg = {**LLAMA, "mode": "disagg", "tp_size": "", **layouts, "prefill_num_workers": "1",
              "decode_num_workers": "2"}
    (r,) = json.loads(check(tmp_path, [disagg], "--format", "json").output)["points"]
    assert r["skipped"] is None, r["skipped"]
    assert (r["setup"]["layout"], r["setup"]["prefill_layout"]) == ("2 x TP1 DP1 EP1", "1 x TP1 DP1 EP1")


def test_html_is_one_page_with_the_table_and_both_figures(tmp_path):
    result = check(tmp_path, [LLAMA, {**LLAMA, "id": "row-2", "precision": "int4"}], "--format", "html")
    assert result.exit_code == 0, result.output
    page = result.output
    assert page.startswith("<!DOCTYPE html>") and page.count("plotly.js") >= 1 and "within 20%" in page
    assert "measured TTFT (ms)" in page and "measured TPOT (ms)" in page and "1 of 2 points simulated (50%)" in page
    assert "int4 weights are not modelled" in page


# ------------------------------------------------------------------------------- benchmark results


SIDECAR = ("model: meta-llama/Llama-3.1-8B-Instruct\ngpu: h100_sxm\nengine: vllm\nprecision: bf16\n"
           "layout: {tp: 1}\n")
VLLM_RUN = {"backend": "vllm", "completed": 8, "total_input_tokens": 1024, "total_output_tokens": 128,
            "max_concurrency": 4, "median_ttft_ms": 30.0, "median_tpot_ms": 6.0, "mean_ttft_ms": 31.0}


def test_a_vllm_result_with_its_sidecar_is_one_point(tmp_path):
    """Lengths from the run's totals over its completed requests (1024 / 8 = 128, 128 / 8 = 16), the
    concurrency from max_concurrency, the medians as the measurements."""
    (tmp_path / "run.json").write_text(json.dumps(VLLM_RUN))
    (tmp_path / "run.yaml").write_text(SIDECAR)
    (p,) = cs.read_input(tmp_path / "run.json")
    assert (p.isl, p.osl, p.concurrency, p.ttft_ms, p.tpot_ms, p.engine_version) == (128, 16, 4, 30.0, 6.0, "current")
    result = CliRunner().invoke(cli, ["check-serving", str(tmp_path / "run.json"), "--split", "all", "--format", "json"])
    assert result.exit_code == 0 and json.loads(result.output)["points"][0]["predicted"] is not None, result.output


def test_sglang_jsonl_is_one_point_a_line_and_the_sidecar_may_set_lengths(tmp_path):
    runs = [VLLM_RUN, {**VLLM_RUN, "max_concurrency": 16, "median_ttft_ms": 50.0}]
    (tmp_path / "sgl.jsonl").write_text("\n".join(json.dumps(r) for r in runs) + "\n")
    (tmp_path / "sgl.yaml").write_text(SIDECAR.replace("vllm", "sglang") + "isl: 100\nosl: 10\n")
    points = cs.read_input(tmp_path / "sgl.jsonl")
    assert [(p.id, p.isl, p.osl, p.concurrency, p.ttft_ms) for p in points] == [
        ("sgl-1", 100, 10, 4, 30.0), ("sgl-2", 100, 10, 16, 50.0)]


@pytest.mark.parametrize("sidecar, run, words", [
    (None, VLLM_RUN, "no sidecar run.yaml"),
    (None, VLLM_RUN, "Fix: write /"),  # the sidecar's own path, not a placeholder
    (SIDECAR.replace("engine: vllm", "engine: tgi"), VLLM_RUN, "engine"),
    (SIDECAR, {**VLLM_RUN, "median_tpot_ms": None}, "run 1 has no median_tpot_ms."),
    (SIDECAR, {**VLLM_RUN, "median_tpot_ms": -1}, "run 1: median_tpot_ms -1 is not a positive number"),
    # what the sidecar says is blamed on the sidecar, by its own field names
    (SIDECAR.replace("h100_sxm", "h900"), VLLM_RUN, "run.yaml: field `gpu`: point 'run-1': gpu 'h900' is not a GPU"),
    (SIDECAR.replace("meta-llama/Llama-3.1-8B-Instruct", "nobody/X"), VLLM_RUN, "run.yaml: field `model`: model 'nobody/X'"),
])
def test_a_bench_result_without_what_it_needs_is_one_line_and_exit_2(tmp_path, sidecar, run, words):
    (tmp_path / "run.json").write_text(json.dumps(run))
    if sidecar is not None:
        (tmp_path / "run.yaml").write_text(sidecar)
    result = CliRunner().invoke(cli, ["check-serving", str(tmp_path / "run.json"), "--split", "all"])
    assert result.exit_code == 2 and words in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_an_nvfp4_row_on_b200_reads_the_databases_fp4_kernels(tmp_path):
    """Llama-3.1-8B in NVFP4 on one B200 under TensorRT-LLM: 4-bit weights, the database's nvfp4 GEMMs."""
    row = {**LLAMA, "system": "b200_sxm", "precision": "fp4", "gemm_quant_mode": "nvfp4", "moe_quant_mode": "nvfp4"}
    (r,) = json.loads(check(tmp_path, [row], "--format", "json").output)["points"]
    assert r["skipped"] is None and r["setup"]["weight_bits"] == 4, r["skipped"]


def test_a_rack_part_runs_in_its_nvlink_domain():
    """A GB200 worker of 16 GPUs is one NVLink domain of the NVL72 rack, not two 8-GPU nodes."""
    assert cs.cluster_of("gb200", {"tp": 16, "dp": 1}) == {"gpus_per_node": 16, "nodes": 1}
    assert cs.cluster_of("b200", {"tp": 16, "dp": 1}) == {"gpus_per_node": 8, "nodes": 2}


@pytest.mark.parametrize("change", [{"precision": "w4afp8"}, {"gemm_quant_mode": "int8"}, {"precision": "mxfp4"}])
def test_an_unknown_precision_is_a_reason_never_fp8(tmp_path, change):
    with pytest.raises(cs.Unsupported, match="weights are not modelled"):
        cs.precision_of(point(tmp_path, **change))


def test_a_dynamo_runtimes_version_is_not_tensorrt_llms():
    """TensorRT-LLM rows run from ai-dynamo/tensorrtllm-runtime:0.8.1 images record Dynamo's 0.8.1: which
    TensorRT-LLM it bundles is unknown, so the database's current one, as for a nightly."""
    from costmodel.inputs import kernel_db

    current = kernel_db.current_version("h200_sxm", "trtllm")
    assert cs.engine_version("h200_sxm", "trtllm", "0.8.1.post1") == current
    assert cs.engine_version("h200_sxm", "trtllm", "1.2.0rc6") == "1.2.0rc5"  # a real one: the newest not after


@pytest.mark.parametrize("value", ["2.5", "abc", "inf"])
def test_a_layout_size_that_is_not_a_whole_number_makes_the_row_unreadable(tmp_path, value):
    (p,) = read_points(write_csv(tmp_path / "p.csv", [{**LLAMA, "attention_dp_size": value}]))
    assert p.layout is None and f"size {value!r} is not a whole number of GPUs" in p.unreadable


def test_an_open_loop_benchmark_is_refused_and_expert_tp_defaults_to_the_rest(tmp_path):
    """A run at a finite request rate is not a fixed concurrency; a sidecar naming tp 8 alone means the
    engines' default: experts sharded over the 8 GPUs (MoE TP 8, EP 1)."""
    (tmp_path / "run.json").write_text(json.dumps({**VLLM_RUN, "request_rate": 4.0}))
    (tmp_path / "run.yaml").write_text(SIDECAR.replace("{tp: 1}", "{tp: 8}"))
    with pytest.raises(PlannerError, match="an open loop"):
        cs.read_input(tmp_path / "run.json")
    (tmp_path / "run.json").write_text(json.dumps(VLLM_RUN))
    (p,) = cs.read_input(tmp_path / "run.json")
    assert (p.layout.moe_tp, p.layout.moe_ep) == (8, 1)


# ------------------------------------------------------------------------------- what a new user meets


def test_a_users_own_file_is_checked_whole_and_the_sample_by_its_dev_split(tmp_path):
    """The split belongs to the shipped sample: a user's own rows are all checked unless --split says
    otherwise (of ids row-1 .. row-8, sha1 puts some in test, and none may vanish)."""
    rows = [{**LLAMA, "id": f"row-{i}"} for i in range(1, 9)]
    assert {split_of(r["id"]) for r in rows} == {"dev", "test"}
    path = write_csv(tmp_path / "mine.csv", rows)
    assert cs.default_split(path) == "all" and cs.default_split("aiconfigurator") == "dev"
    shipped = cs.kernel_db.systems_dir() / "silicon_sample.csv"
    assert cs.default_split(shipped) == "dev"  # the sample by its path is still the sample
    result = CliRunner().invoke(cli, ["check-serving", str(path), "--sequential", "--format", "json"])
    out = json.loads(result.output)
    assert out["split"] == "all" and len(out["points"]) == 8, result.output


def test_the_gpu_filter_takes_a_gpu_files_name_and_lists_both_kinds_when_unknown():
    points = cs.read_input("aiconfigurator")
    assert cs.select(points, "all", None, "h200") == cs.select(points, "all", None, "h200_sxm") != []
    with pytest.raises(PlannerError) as err:
        cs.select(points, "all", None, "h900")
    assert "h200_sxm, l4" in err.value.fix and "GPU file's name: a100-80gb, b200" in err.value.fix
    assert err.value.message().startswith("command line: field `--gpu`")


def test_a_sidecar_passed_instead_of_its_result_is_one_line(tmp_path):
    (tmp_path / "run.yaml").write_text(SIDECAR)
    result = CliRunner().invoke(cli, ["check-serving", str(tmp_path / "run.yaml")])
    assert result.exit_code == 2 and "a YAML file is a benchmark's sidecar" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1


def test_nvfp4_on_a_gpu_without_fp4_tensor_cores_is_a_reason_not_a_replay(tmp_path):
    """Hopper has no FP4 math: an NVFP4 point there would be the roofline's guess at weight-only kernels."""
    row = {**LLAMA, "precision": "fp4", "gemm_quant_mode": "nvfp4", "moe_quant_mode": "nvfp4"}
    r = cs.check_point(point(tmp_path, **row))
    assert r.predicted is None and r.skipped.startswith("precision: NVFP4 weights on h100_sxm, which has no FP4")


def test_the_table_lists_each_point_and_a_lone_reason_word_for_word(tmp_path):
    """Few points: each with its measured and predicted values; a reason one point has keeps its numbers;
    the table is not folded to 80 columns when written to a pipe."""
    rows = [LLAMA, {**LLAMA, "id": "row-2", "model_path": "meta-llama/Llama-3.1-70B", "isl": "4096"}]
    result = check(tmp_path, rows)
    assert result.exit_code == 0, result.output
    out = result.output
    line = next(ln for ln in out.splitlines() if ln.startswith("│ row-1"))
    assert "20.0" in line and "5.00" in line and "TP1 DP1 EP1" in line and len(line) > 80
    lone = next(ln for ln in out.splitlines() if "skipped     1:" in ln)
    assert "row-2: infeasible:" in lone and " N " not in lone and "GB" in lone


def test_a_shared_reason_counts_once_with_its_first_point():
    rows = [{**row(None, None), "id": f"p{i}", "skipped": f"infeasible: tp {i} does not divide 7 heads"}
            for i in (2, 4)]
    s = cs.summarise(rows)
    assert s["skipped_reasons"] == {"infeasible: tp N does not divide N heads": 2}
    assert s["skipped_examples"] == {"infeasible: tp N does not divide N heads": "p2: infeasible: tp 2 does not divide 7 heads"}
