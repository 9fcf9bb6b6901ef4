"""InferenceX's recipes joined to the sample's rows: a row's run is the recipe entry of its image, GPU, engine,
precision, lengths, concurrency and layouts; the join answers only where the entries agree."""

import sys

from costmodel.app import check_serving as cs
from costmodel.inputs import kernel_db, recipes
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


def test_the_join_needs_the_layout_and_agreeing_entries(tmp_path, monkeypatch):
    rows = ["r-plain,b200,trt,fp8,img:1,1024,1024,4,,,,,8,1,false,,none,aaa",
            "r-mtp,b200,trt,fp8,img:1,1024,1024,4,,,,,8,8,true,,mtp,bbb",
            "r-mtp2,b200,trt,fp8,img:1,1024,1024,8,,,,,8,1,false,,mtp,ccc",
            "r-plain2,b200,trt,fp8,img:1,1024,1024,8,,,,,8,1,false,,none,ddd"]
    (tmp_path / "r.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    monkeypatch.setattr(recipes, "RECIPES_CSV", tmp_path / "r.csv")
    recipes.recipe_index.cache_clear()
    try:
        find = recipes.recipe_of
        assert find("img:1", "b200_sxm", "trtllm", "fp8", (1024, 1024, 4), (8, 1, False)).recipe == "r-plain"
        assert find("img:1", "b200_sxm", "trtllm", "fp8", (1024, 1024, 4), (8, 8, True)).spec_decoding == "mtp"
        assert find("img:1", "b200_sxm", "trtllm", "fp8", (1024, 1024, 4), (4, 1, False)) is None  # no such layout
        assert find("img:1", "b200_sxm", "sglang", "fp8", (1024, 1024, 4), (8, 1, False)) is None  # another engine
        assert find("img:1", "h200_sxm", "trtllm", "fp8", (1024, 1024, 4), (8, 1, False)) is None  # another GPU
        assert find("img:1", "b200_sxm", "trtllm", "fp8", (1024, 1024, 8), (8, 1, False)) is None  # they disagree
    finally:
        recipes.recipe_index.cache_clear()


def test_an_image_is_read_in_either_spelling():
    assert recipes.image_of("x; image=nvcr.io#nvidia/tensorrt-llm/release:1.2.0rc6.post2") == \
        "nvcr.io/nvidia/tensorrt-llm/release:1.2.0rc6.post2"
    assert recipes.image_of("db-dump/2026-04-27; config_id=91; nvcr.io#nvidia/a:1") == "nvcr.io/nvidia/a:1"
    assert recipes.image_of("source_file=x.csv; wip=False") == ""


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
    assert set(agg) == set(recipes.COLUMNS)


def test_the_bundled_recipes_have_the_columns_the_join_reads():
    assert recipes.RECIPES_CSV.read_text().splitlines()[0] == HEADER
