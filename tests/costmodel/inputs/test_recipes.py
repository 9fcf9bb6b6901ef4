"""InferenceX's recipes joined to the sample's rows: a row's run is the recipe entry of its image, GPU, engine,
precision, lengths, concurrency and layouts; the join answers only where the entries agree."""

import sys

from costmodel.app import check_serving as cs
from costmodel.inputs import kernel_db, recipes
from costmodel.inputs import measured_serving as ms
from costmodel.inputs.measured_serving import read_points
from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import inferencex_recipes  # noqa: E402

HEADER = ",".join(recipes.COLUMNS)


def sample_point(point_id: str):
    (p,) = [p for p in read_points(kernel_db.systems_dir() / "silicon_sample.csv") if p.id == point_id]
    assert p.split == "dev"  # the test split is only ever reported
    return p


def test_a_b200_fp8_row_of_the_mtp_image_is_the_mtp_recipe_and_is_skipped():
    """DeepSeek-R1 FP8, TP8 EP1 on 8xB200 under TensorRT-LLM, 8K/1K at 64 users: two dev rows of the same
    layout, one on image 1.2.0rc6.post2 (InferenceX's dsr1-fp8-b200-trt), one on rc6.post3 (its -mtp recipe)."""
    mtp = sample_point("2026_04_06_deepseek_r1_b200_sxm_trtllm_fp8_agg_8192x1024_c64_tp8_ep1_80")
    assert (mtp.recipe.recipe, mtp.recipe.spec_decoding) == ("dsr1-fp8-b200-trt-mtp", "mtp")
    r = cs.check_point(mtp)
    assert r.predicted is None and r.skipped.startswith("speculative decoding: InferenceX's recipe dsr1-fp8-b200-trt-mtp ran MTP")
    plain = sample_point("2026_03_25_deepseek_r1_b200_sxm_trtllm_fp8_agg_8192x1024_c128_tp8_0_ep1_0_1194")
    assert (plain.recipe.recipe, plain.recipe.spec_decoding) == ("dsr1-fp8-b200-trt", "none")


def test_the_join_needs_the_model_layout_and_agreeing_entries(tmp_path, monkeypatch):
    """Entries of one image and lengths: a row joins those of its model, GPU, engine, precision and layout;
    where those disagree on MTP the answer is AMBIGUOUS unless the day it was measured tells them apart."""
    def entry(recipe, conc, tp, ep, dp, spec, dates="2026-01-01,2026-04-27", prefix="dsr1"):
        return f"{recipe},{prefix},b200,trt,fp8,img:1,1024,1024,{conc},,,,,{tp},{ep},{dp},,{spec},auto,aaa,{dates}"
    rows = [entry("r-plain", 4, 8, 1, "false", "none"), entry("r-mtp", 4, 8, 8, "true", "mtp"),
            entry("r-kimi", 4, 8, 1, "false", "mtp", prefix="kimik2.5"),
            entry("r-mtp2", 8, 8, 1, "false", "mtp", "2026-01-01,2026-02-01"),
            entry("r-plain2", 8, 8, 1, "false", "none", "2026-02-01,2026-04-27")]
    (tmp_path / "r.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    monkeypatch.setattr(recipes, "RECIPES_CSV", tmp_path / "r.csv")
    recipes.recipe_index.cache_clear()
    r1 = "deepseek-ai/DeepSeek-R1"
    try:
        def find(model=r1, system="b200_sxm", engine="trtllm", precision="fp8", conc=4, layout=(8, 1, False), day=""):
            return recipes.recipe_of("img:1", model, system, engine, precision, (1024, 1024, conc), layout, None, day)
        assert find().recipe == "r-plain" and find().spec_decoding == "none"
        assert find(layout=(8, 8, True)).spec_decoding == "mtp"
        assert find(model="moonshotai/Kimi-K2.5").recipe == "r-kimi"  # another model's recipe
        assert find(layout=(4, 1, False)) is None  # no such layout
        assert find(engine="sglang") is None and find(system="h200_sxm") is None and find(precision="fp4") is None
        assert find(conc=8).spec_decoding == recipes.AMBIGUOUS  # both fit, on no particular day
        assert find(conc=8).recipe == "r-mtp2, r-plain2"
        assert find(conc=8, day="2026-01-15").recipe == "r-mtp2"  # the one in force that day
        assert find(conc=8, day="2026-03-01").spec_decoding == "none"
        assert find(conc=8, day="2025-12-01").spec_decoding == recipes.AMBIGUOUS  # before both: not narrowed
    finally:
        recipes.recipe_index.cache_clear()


def test_an_ambiguous_row_is_skipped_with_both_recipes_named():
    (p,) = [p for p in read_points(kernel_db.systems_dir() / "silicon_sample.csv")
            if p.split == "dev" and "deepseek" in p.model_path.lower() and p.recipe
            and p.recipe.spec_decoding == recipes.AMBIGUOUS][:1]
    r = cs.check_point(p)
    assert r.predicted is None and "ran it both with MTP and without: which ran cannot be told" in r.skipped
    assert p.recipe.recipe in r.skipped


def test_an_image_is_read_in_either_spelling():
    assert recipes.image_of("x; image=nvcr.io#nvidia/tensorrt-llm/release:1.2.0rc6.post2") == \
        "nvcr.io/nvidia/tensorrt-llm/release:1.2.0rc6.post2"
    assert recipes.image_of("db-dump/2026-04-27; config_id=91; nvcr.io#nvidia/a:1") == "nvcr.io/nvidia/a:1"
    assert recipes.image_of("source_file=x.csv; wip=False") == ""
    assert recipes.image_of("source_file=/d/h100_sxm/vllm/0.12.0/Qwen_Qwen3-32B.csv; x=1") == ""  # a path, no tag
    assert recipes.measured_date("x; measured=2026-02-05T00:00:00.000Z; y") == "2026-02-05"


def test_a_recipe_entry_becomes_a_row_a_concurrency():
    """conc-start 4 to conc-end 32 doubles: 4, 8, 16, 32; a disaggregated entry keeps both workers."""
    recipe = {"image": "nvcr.io#nvidia/x:1", "runner": "b200-trt", "framework": "trt", "precision": "fp8",
              "seq-len-configs": [{"isl": 1024, "osl": 8192, "search-space": [
                  {"tp": 8, "ep": 8, "dp-attn": True, "conc-start": 4, "conc-end": 32, "spec-decoding": "mtp"},
                  {"conc-list": [6], "prefill": {"num-worker": 2, "tp": 4, "ep": 4, "dp-attn": True},
                   "decode": {"num-worker": 5, "tp": 8, "ep": 8}}]}]}
    rows = inferencex_recipes.entry_rows("r", recipe, "abc")
    assert [r["concurrency"] for r in rows] == [4, 8, 16, 32, 6]
    agg, dis = rows[0], rows[-1]
    assert (agg["image"], agg["gpu"], agg["decode_tp"], agg["decode_ep"], agg["decode_dp_attn"], agg["spec_decoding"],
            agg["prefill_tp"]) == ("nvcr.io/nvidia/x:1", "b200", 8, 8, "true", "mtp", "")
    assert (dis["prefill_workers"], dis["prefill_tp"], dis["prefill_dp_attn"], dis["decode_workers"],
            dis["decode_dp_attn"], dis["spec_decoding"]) == (2, 4, "true", 5, "false", "none")
    assert agg["kv_cache_dtype"] == ""  # no launch scripts read
    assert set(agg) | {"from_date", "to_date"} == set(recipes.COLUMNS)


def test_the_bundled_recipes_have_the_columns_the_join_reads():
    assert recipes.RECIPES_CSV.read_text().splitlines()[0] == HEADER


def test_a_worker_the_row_records_by_its_gpus_alone_fits_every_recipe_worker_of_those_gpus():
    assert recipes.fits((8, 8, True), (8, None, None)) and recipes.fits((8, 8, True), (8, 8, True))
    assert not recipes.fits((8, 8, True), (4, None, None)) and not recipes.fits((8, 8, True), (8, 8, False))
    assert not recipes.fits(None, (8, None, None)) and not recipes.fits((8, 8, True), None)
    assert recipes.fits(None, None)  # an aggregated run has no prefill worker on either side


def test_a_disaggregated_rows_workers_are_its_recipes_where_the_recipes_agree(tmp_path, monkeypatch):
    """Two entries of one image, lengths and concurrency with 4-GPU prefill and 8-GPU decode workers: a row
    that records GPUs alone gets the workers where both say the same, none where their counts differ."""
    def entry(recipe, conc, decode_ep, decode_workers):
        return (f"{recipe},dsr1,b200,dynamo-trt,fp8,img:1,1024,1024,{conc},4,4,true,2,8,{decode_ep},true,"
                f"{decode_workers},none,fp8,aaa,2026-01-01,2026-04-27")
    rows = [entry("r-a", 4, 8, 3), entry("r-b", 4, 8, 3), entry("r-a", 8, 8, 3), entry("r-b", 8, 8, 5)]
    (tmp_path / "r.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    monkeypatch.setattr(recipes, "RECIPES_CSV", tmp_path / "r.csv")
    recipes.recipe_index.cache_clear()
    try:
        def find(conc):
            return recipes.recipe_of("img:1", "deepseek-ai/DeepSeek-R1", "b200_sxm", "trtllm", "fp8",
                                     (1024, 1024, conc), (8, None, None), (4, None, None))
        assert find(4).workers == recipes.Workers(prefill=(4, 4, True), decode=(8, 8, True), counts=(2, 3))
        assert find(8).workers is None and find(8).recipe == "r-a, r-b"  # 3 or 5 decode workers: not told
        assert find(8).spec_decoding == "none"
    finally:
        recipes.recipe_index.cache_clear()


def test_a_recipes_worker_becomes_a_layout():
    """InferenceX's `tp` is the worker's GPUs: with dp-attn, attention DP over them; experts EP `ep` x TP."""
    assert ms.layout_of((8, 8, True)) == ms.Layout(tp=1, pp=1, attention_dp=8, moe_tp=1, moe_ep=8)
    assert ms.layout_of((8, 1, False)) == ms.Layout(tp=8, pp=1, attention_dp=1, moe_tp=8, moe_ep=1)
    assert ms.layout_of((32, 8, False)) == ms.Layout(tp=32, pp=1, attention_dp=1, moe_tp=4, moe_ep=8)


def test_an_exported_disaggregated_row_runs_its_recipes_workers():
    """DeepSeek-R1 NVFP4 on GB200 under Dynamo + TensorRT-LLM, 1K/8K at 2,048 users: the export records a 4-GPU
    prefill and a 32-GPU decode worker with attention DP 1, EP 4 and no counts; InferenceX's
    dsr1-fp4-gb200-dynamo-trt ran one DEP4 prefill worker and one DEP32 decode worker."""
    p = sample_point("2026_03_25_deepseek_r1_gb200_trtllm_fp4_disagg_1024x8192_c2048_tp4_0_ep4_0_352")
    assert p.layout_from_recipe and p.recipe.recipe == "dsr1-fp4-gb200-dynamo-trt" and p.workers == (1, 1)
    assert p.layout == ms.Layout(tp=1, pp=1, attention_dp=32, moe_tp=1, moe_ep=32)
    assert p.prefill_layout == ms.Layout(tp=1, pp=1, attention_dp=4, moe_tp=1, moe_ep=4)
    text = cs.scenario_text(p)
    assert "instances: 1" in text and "decode_instances: 1" in text


def test_a_placeholder_recipe_worker_leaves_the_row_unreadable():
    """dsr1-fp8-gb200-dynamo-sglang's entries spell every worker tp 1, ep 1, dp-attn true: fields that "do
    nothing", the launch script setting the layout; the row is unreadable, not a 1-GPU DeepSeek."""
    p = sample_point("2026_04_06_deepseek_r1_gb200_sglang_fp8_disagg_1024x1024_c64_tp1_ep1_1149")
    assert p.layout is None and p.workers is None and "placeholder worker" in p.unreadable
    assert cs.check_point(p).skipped.startswith("layout: the row records only each worker's GPUs")


def test_a_database_rows_own_workers_are_read_not_its_recipes():
    """The database dump records a disaggregated run's workers in full: they are read as recorded."""
    dumped = [p for p in read_points(kernel_db.systems_dir() / "silicon_sample.csv")
              if p.mode == "disagg" and p.source.startswith("db-dump/") and p.split == "dev"]
    assert dumped and all(not p.layout_from_recipe and p.workers for p in dumped)


def test_the_kv_cache_dtype_is_the_launch_scripts():
    """InferenceX's dsr1_fp8_b200_trt.sh gives TensorRT-LLM `kv_cache_config: dtype: fp8`; its
    dsr1_fp8_h200.sh gives SGLang no --kv-cache-dtype (the engine's default, BF16 for this model)."""
    trt = sample_point("2026_03_25_deepseek_r1_b200_sxm_trtllm_fp8_agg_8192x1024_c128_tp8_0_ep1_0_1194")
    assert (trt.recipe.recipe, trt.recipe.kv_cache_dtype) == ("dsr1-fp8-b200-trt", "fp8")
    assert cs.kv_cache_of(trt) == {"kv_bits": 8} and "kv_bits: 8" in cs.scenario_text(trt)
    sgl = sample_point("dsr1_h200_sglang_fp8_agg_1024x1024_c4_cfg81")
    assert (sgl.recipe.recipe, sgl.recipe.kv_cache_dtype) == ("dsr1-fp8-h200-sglang", "auto")
    assert cs.kv_cache_of(sgl) == {} and "kv_bits" not in cs.scenario_text(sgl)


def test_a_launch_script_is_read_for_its_kv_cache_dtype():
    read = inferencex_recipes.kv_cache_dtype
    assert read("python3 -m sglang.launch_server --kv-cache-dtype fp8_e4m3 --tp 8") == "fp8"
    assert read("vllm serve m --kv-cache-dtype=fp8 --tp 8") == "fp8"
    assert read("cat > x.yml << EOF\nkv_cache_config:\n    dtype: fp8\n    free_gpu_memory_fraction: 0.8\n"
                "stream_interval: 10\nEOF\n") == "fp8"
    assert read("kv_cache_config:\n    free_gpu_memory_fraction: 0.8\nstream_interval: 10\n") == "auto"
    assert read("python3 -m sglang.launch_server --tp 8") == "auto"
    assert read("vllm serve m --kv-cache-dtype $KV_DTYPE") == ""  # set elsewhere: not told
    recipe = {"model-prefix": "dsr1", "precision": "fp8", "runner": "b200-dgxc", "framework": "trt"}
    assert "benchmarks/single_node/dsr1_fp8_b200_trt_mtp.sh" in inferencex_recipes.script_paths(recipe, "mtp")
    assert "benchmarks/dsr1_fp8_b200_trt_slurm.sh" in inferencex_recipes.script_paths(recipe, "none")
