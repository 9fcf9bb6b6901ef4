"""The kernel database's layout (the contract kernel_db.py reads) and the profile imported from it."""

import json
import math

import pyarrow.parquet as pq
import pytest

from costmodel.app.kernel_import import gemm_widths, import_profile, render_csv
from costmodel.inputs import kernel_db
from costmodel.inputs.loader import load_spec
from costmodel.inputs.profiles import load_profile
from costmodel.timing.operators import MeasuredBackend
from tests.conftest import SCENARIOS

# (gpu, engine) pairs the bundled GPU files and scenarios use
USED = [("h200_sxm", "sglang"), ("h200_sxm", "trtllm"), ("h200_sxm", "vllm"), ("h100_sxm", "sglang"),
        ("b200_sxm", "sglang"), ("a100_sxm", "sglang")]


@pytest.fixture(scope="module")
def v3():
    return load_spec("model", SCENARIOS / "models" / "deepseek-v3.yaml")


@pytest.fixture(scope="module")
def h200_sglang(v3, tmp_path_factory):
    imp = import_profile("h200_sxm", "sglang", "current", v3)
    path = tmp_path_factory.mktemp("aic") / "h200.csv"
    path.write_text(render_csv(imp))
    return imp, load_profile(path)


@pytest.mark.parametrize("gpu, engine", USED)
def test_every_table_the_planner_reads_has_its_columns(gpu, engine):
    """A new release that moves a table or renames a column fails here, naming the path and the column."""
    version = kernel_db.resolve(gpu, engine, "current")
    found = 0
    for kind, tk in kernel_db.TABLES.items():
        table = kernel_db.find_table(gpu, engine, version, kind)
        if table is None:
            continue
        found += 1
        names = set(pq.read_schema(table.path).names)
        missing = [c for c in tk.columns if c not in names]
        assert not missing, f"{table.path}: no column {missing}"
    assert found >= 3, f"{gpu}/{engine} {version}: only {found} of the tables"


def test_bundled_gpu_files_name_database_gpus():
    for name in ("h100-sxm", "h200", "b200", "a100-80gb", "h800"):
        gpu = load_spec("gpu", SCENARIOS / "gpus" / f"{name}.yaml")
        assert gpu.kernel_database.gpu in kernel_db.gpus()
    assert load_spec("gpu", SCENARIOS / "gpus" / "h800.yaml").kernel_database.source.startswith("ASSUMPTION")


def test_current_version_is_the_database_own_and_older_tables_backfill():
    assert kernel_db.resolve("h200_sxm", "sglang") == "0.5.14"  # query_versions.yaml's default for sglang
    deepep = kernel_db.find_table("h200_sxm", "sglang", "0.5.14", "deepep_ll")
    assert deepep.version == "0.5.12"  # no 0.5.14 folder holds it: the newest older one, never a newer one
    assert deepep.collected_at == "2026-07-31"
    assert kernel_db.find_table("h200_sxm", "sglang", "0.5.6.post2", "moe_deepep_masked").version == "0.5.6.post2"


@pytest.mark.parametrize("gpu, engine, version, field", [("h201_sxm", "sglang", "current", "--gpu"),
                                                          ("h200_sxm", "sglng", "current", "--engine"),
                                                          ("h200_sxm", "sglang", "9.9", "--version")])
def test_unknown_gpu_engine_or_version_lists_what_the_database_has(gpu, engine, version, field):
    with pytest.raises(Exception) as e:
        kernel_db.resolve(gpu, engine, version)
    assert e.value.field == field and "use" in e.value.fix
    assert {"--gpu": "h200_sxm", "--engine": "trtllm", "--version": "0.5.10"}[field] in e.value.fix


def test_gemm_widths_are_the_layers_projections(v3):
    """Hand-listed DeepSeek-V3 widths: fused q_a + kv_a 1536 + 512 + 64 = 2112 from 7168; q_b to 128 x 192 /
    tp; o from 128 x 128 / tp; shared expert gate+up 2 x 2048 and down; router 256; the head 129280 / tp."""
    w = gemm_widths(v3)
    assert {(2112, 7168), (24576, 1536), (7168, 16384), (4096, 7168), (7168, 2048), (256, 7168),
            (129280, 7168), (16160, 7168), (3072, 1536), (7168, 2048), (36864, 7168), (7168, 18432)} <= w
    assert (32768, 512) in w  # naive prefill's kv_b: 128 x (128 + 128) from the 512-wide latent


def test_imported_rows_are_database_rows_in_seconds(h200_sglang):
    """A sample of the real tables' rows, looked up in the imported profile: same shape, latency / 1000."""
    imp, _ = h200_sglang
    rows = {(r[0], r[3]): float(r[4]) for r in imp.rows}
    gemm = pq.read_table(kernel_db.find_table("h200_sxm", "sglang", "0.5.14", "gemm").path).to_pydict()
    checked = 0
    for i in range(0, len(gemm["m"]), 997):
        shape = {"m": gemm["m"][i], "n": gemm["n"][i], "k": gemm["k"][i], "dtype": gemm["gemm_dtype"][i]}
        key = ("gemm", json.dumps(shape, sort_keys=True))
        if key in rows:
            assert rows[key] == pytest.approx(gemm["latency"][i] / 1e3, rel=1e-6)
            checked += 1
    assert checked >= 10
    gen = pq.read_table(kernel_db.find_table("h200_sxm", "sglang", "0.5.14", "mla_generation").path).to_pydict()
    i = next(j for j in range(len(gen["step"])) if gen["num_heads"][j] == 128 and gen["step"][j] == 2047
             and gen["batch_size"][j] == 64 and gen["kv_cache_dtype"][j] == "bfloat16")
    shape = {"b": 64, "ctx": 2048, "heads": 128, "kv_dtype": "bfloat16", "dtype": "bfloat16"}
    assert rows["mla_generation", json.dumps(shape, sort_keys=True)] == pytest.approx(gen["latency"][i] / 1e3, rel=1e-6)


def test_timing_model_returns_the_database_latency_at_every_measured_shape(h200_sglang):
    _, profile = h200_sglang
    backend = MeasuredBackend(profile)
    off = [p for p in profile.points if backend.time(p.op, p.shape, p.pass_) != pytest.approx(p.median_s, rel=1e-9)]
    assert not off, off[:3]


def test_a_gemm_between_grid_widths_interpolates_log_log(h200_sglang):
    """n = 2112 lies between the grid's 2048 and 2560: log t is linear in log n between their times."""
    _, profile = h200_sglang
    backend = MeasuredBackend(profile)
    at = {n: backend.time("gemm", {"m": 64, "n": n, "k": 7168, "dtype": "fp8_block"}) for n in (2048, 2112, 2560)}
    x = (math.log(2112) - math.log(2048)) / (math.log(2560) - math.log(2048))
    assert at[2112] == pytest.approx(math.exp(math.log(at[2048]) + x * (math.log(at[2560]) - math.log(at[2048]))))
    assert backend.lookup("gemm", {"m": 64, "n": 100_000, "k": 7168, "dtype": "fp8_block"}) is None  # beyond the grid


def test_header_names_the_source_and_each_table(h200_sglang):
    imp, profile = h200_sglang
    h = profile.header
    assert h["source"].startswith("aiconfigurator-core==0.12.0") and h["engine_version"] == "0.5.14"
    assert "gemm/sglang/0.5.14/gemm_perf.parquet" in h["table_gemm"] and "collected_at" in h["table_gemm"]
    assert "version 0.5.12, collected_at 2026-07-31" in h["table_deepep_ll"]
    first_row = next(line for line in render_csv(imp).splitlines() if not line.startswith("#"))
    assert first_row.startswith("op,pass,dtype,shape,median_s")


def test_deepep_node_counts_the_newest_release_lacks_come_from_an_older_one(h200_sglang):
    """SGLang 0.5.12 measured DeepEP on one node; 0.5.6.post2 on 1-8. The import takes node 1 from 0.5.12 and
    2, 4, 8 from 0.5.6.post2, each row equal to its table's (microseconds to seconds)."""
    imp, profile = h200_sglang
    rows = {(r[0], r[3]): float(r[4]) for r in imp.rows}
    nodes = {json.loads(r[3])["nodes"] for r in imp.rows if r[0] == "deepep_ll"}
    assert nodes == {1, 2, 4, 8}
    for version, node in (("0.5.12", 1), ("0.5.6.post2", 8)):
        table = next(t for t in kernel_db.find_tables("h200_sxm", "sglang", "0.5.14", "deepep_ll") if t.version == version)
        ll = pq.read_table(table.path).to_pydict()
        i = next(j for j in range(len(ll["num_token"])) if ll["node_num"][j] == node and ll["num_token"][j] == 128
                 and ll["hidden_size"][j] == 7168 and ll["num_experts"][j] == 256 and ll["num_topk"][j] == 8)
        shape = {"tokens": 128, "hidden": 7168, "top_k": 8, "experts": 256, "nodes": node, "phase": "dispatch",
                 "dtype": "deepep"}
        assert rows["deepep_ll", json.dumps(shape, sort_keys=True)] == pytest.approx(ll["dispatch_avg_t_us"][i] / 1e6)
    assert "0.5.6.post2" in profile.header["table_deepep_ll"] and "for nodes 2, 4, 8" in profile.header["table_deepep_ll"]


def test_a_version_older_than_every_table_reads_the_oldest_measured():
    """vLLM 0.14.0's H200 folder holds all-reduce only: its experts are 0.19.0's and its GEMMs 0.24.0's (the
    measurements nearest in time); 0.24.0 keeps the backward fill, newest first."""
    versions = {kind: kernel_db.find_table("h200_sxm", "vllm", "0.14.0", kind).version for kind in ("all_reduce", "moe", "gemm")}
    assert versions == {"all_reduce": "0.14.0", "moe": "0.19.0", "gemm": "0.24.0"}
    assert [t.version for t in kernel_db.find_tables("h200_sxm", "vllm", "0.24.0", "moe")] == ["0.24.0", "0.19.0"]
    assert kernel_db.measured_versions("h200_sxm", "vllm") == ["0.14.0", "0.18.0", "0.19.0", "0.24.0"]


def test_trtllm_expert_curves_are_its_default_kernel_only(v3):
    """TensorRT-LLM's B200 table times NVFP4 experts twice at each shape: the default CUTLASS kernel and its
    min-latency mode (about 4x faster at 8 tokens). Every imported NVFP4 row is the CUTLASS row of its
    shape, at every layout, and the header says which kernel was left out and why."""
    imp = import_profile("b200_sxm", "trtllm", "1.3.0rc20", v3)
    path = kernel_db.find_table("b200_sxm", "trtllm", "1.3.0rc20", "moe").path
    t = pq.read_table(path).to_pydict()
    by_kernel: dict[str, dict] = {"moe_torch_flow_cutlass": {}, "moe_torch_flow_min_latency": {}}
    for i in range(len(t["latency"])):
        if (t["moe_dtype"][i], t["hidden_size"][i], t["inter_size"][i], t["topk"][i], t["num_experts"][i],
                t["distribution"][i]) == ("nvfp4", 7168, 2048, 8, 256, "balanced") and t["kernel_source"][i] in by_kernel:
            key = (t["num_tokens"][i], t["moe_tp_size"][i], t["moe_ep_size"][i])
            by_kernel[t["kernel_source"][i]][key] = t["latency"][i] / 1e3
    got = {(s["tokens"], s["tp"], s["ep"]): float(r[4]) for r in imp.rows
           if r[0] == "moe_experts" and (s := json.loads(r[3]))["dtype"] == "nvfp4"}
    assert set(got) == set(by_kernel["moe_torch_flow_cutlass"]) and len(got) > 500
    assert all(got[k] == pytest.approx(v, rel=1e-6) for k, v in by_kernel["moe_torch_flow_cutlass"].items())
    # the two kernels do differ: the test would see a row of the other one
    assert sum(by_kernel["moe_torch_flow_min_latency"].get(k, v) < 0.5 * v for k, v in got.items()) > 100
    assert imp.header["duplicate_rows_dropped"] == "0"
    assert "moe_torch_flow_cutlass" in imp.header["moe_kernels"] and "min_latency" not in imp.header["moe_kernels"]
    assert "no longer call" in imp.header["moe_skipped_moe_torch_flow_min_latency"]
