"""Launch files from the bundled V3 and V2 plans: every engine command read back from the written files
parses with the engine's recorded flags, the manifests are the documented kinds, and the round trip
(import-deployment, then simulate serve) gives the plan's throughput again."""

import json
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from costmodel.app.launch import sglang, vllm
from costmodel.app.launch.deployment import serving_spec
from costmodel.app.launch.differences import refusal
from costmodel.app.launch.emit import TARGETS, chosen, emit, write
from costmodel.app.launch.flags import Command, command_problems, parse, table, yaml_problems
from costmodel.app.launch.importer import PROGRAM_WORDS, exec_words, imported
from costmodel.app.launch.settings import Settings
from costmodel.app.plan import checked_plan
from costmodel.app.serving import serve_variant
from costmodel.inputs.errors import PlannerError
from planner.cli import cli
from planner.plan_runner import run_plan
from scripts import engine_flags as ef
from tests.conftest import SCENARIOS

PLANS = {"v3": SCENARIOS / "plans" / "deepseek-v3-chat.yaml", "v2": SCENARIOS / "plans" / "deepseek-v2-paper.yaml"}


@pytest.fixture(scope="module")
def solved():
    return {name: (*checked_plan(path), run_plan(path, sequential=True)) for name, path in PLANS.items()}


@pytest.fixture(scope="module")
def folders(solved, tmp_path_factory):
    """Every target of both plans, written."""
    out = {}
    for name, (plan, engine, answer) in solved.items():
        for target in TARGETS:
            folder = tmp_path_factory.mktemp(f"{name}-{target}") / "out"
            write(emit(chosen(plan, engine, answer, target, 1, None), target), folder)
            out[name, target] = folder
    return out


def engine_commands(folder: Path) -> list[tuple[str, Command]]:
    """(engine, command) of every engine command in a folder, read back from its files."""
    record = json.loads((folder / "planner.json").read_text())
    engine, version, out = record["engine"], record["version"], []
    t = table(engine, version)
    for script in sorted(folder.glob("*/host-*.sh")) + sorted(folder.glob("*/launch.sh")):
        words = exec_words(script.read_text())
        if engine == "trtllm":
            words = words[words.index("trtllm-serve"):]
        out.append((engine, parse(t, words, PROGRAM_WORDS[engine])))
    if (folder / "dynamo.yaml").exists():
        services = yaml.safe_load((folder / "dynamo.yaml").read_text())["spec"]["services"]
        out += [("sglang", parse(t, s["extraPodSpec"]["mainContainer"]["args"], 0))
                for name, s in services.items() if name != "Frontend"]
    if (folder / "llm-d.yaml").exists():
        for doc in yaml.safe_load_all((folder / "llm-d.yaml").read_text()):
            script = doc["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["args"][0]
            out.append(("vllm", parse(t, exec_words(script), PROGRAM_WORDS["vllm"])))
    return out


@pytest.mark.parametrize("plan", list(PLANS))
@pytest.mark.parametrize("target", TARGETS)
def test_every_emitted_command_parses_with_the_engines_flags(folders, plan, target):
    folder = folders[plan, target]
    commands = engine_commands(folder)
    record = json.loads((folder / "planner.json").read_text())
    assert len(commands) >= len(record["roles"])
    for engine, c in commands:
        assert command_problems(table(engine, record["version"]), c) == [], c.argv()
    for config in folder.glob("*/config.yaml"):
        assert yaml_problems(table("trtllm", record["version"]).yaml_keys, yaml.safe_load(config.read_text())) == []


@pytest.mark.parametrize("plan", list(PLANS))
def test_the_manifests_are_the_documented_kinds(folders, plan):
    record = json.loads((folders[plan, "dynamo"] / "planner.json").read_text())
    dgd = yaml.safe_load((folders[plan, "dynamo"] / "dynamo.yaml").read_text())
    assert (dgd["apiVersion"], dgd["kind"]) == ("nvidia.com/v1alpha1", "DynamoGraphDeployment")
    services = dgd["spec"]["services"]
    assert services["Frontend"]["componentType"] == "frontend"
    for role, r in record["roles"].items():
        assert services[role]["componentType"] == "worker" and services[role]["replicas"] == r["units"]
        assert services[role]["extraPodSpec"]["mainContainer"]["command"] == ["python3", "-m", "dynamo.sglang"]
    docs = list(yaml.safe_load_all((folders[plan, "llm-d"] / "llm-d.yaml").read_text()))
    assert {(d["apiVersion"], d["kind"]) for d in docs} == {("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet")}
    for d in docs:
        role = d["metadata"]["labels"]["llm-d.ai/role"]
        s = record["roles"][role]["settings"]
        assert d["spec"]["leaderWorkerTemplate"]["size"] == s["nodes"] and d["spec"]["replicas"] == record["roles"][role]["units"]
    values = yaml.safe_load((folders[plan, "llm-d"] / "inferencepool.values.yaml").read_text())
    assert values["inferencePool"]["modelServers"]["matchLabels"]["llm-d.ai/model"] == record["model"]


def round_trip(folder: Path) -> tuple[dict, dict]:
    """(what was planned per unit, what simulate serve gives the imported folder per unit)."""
    record, m, inf = imported(folder)
    r = serve_variant(record["plan"], m, inf)
    return record["planned"]["per_unit"], {"generation_tok_s": r.max_generation_throughput_tok_s,
                                           "prompt_tok_s": r.prompt_throughput_tok_s}


@pytest.mark.parametrize("plan, target", [("v3", "sglang"), ("v3", "vllm"), ("v3", "dynamo"), ("v3", "llm-d"),
                                          ("v2", "sglang"), ("v2", "vllm"), ("v2", "trtllm"), ("v2", "dynamo"),
                                          ("v2", "llm-d")])
def test_the_round_trip_gives_the_plans_throughput_again(folders, plan, target):
    want, got = round_trip(folders[plan, target])
    for key in want:
        assert got[key] == pytest.approx(want[key], rel=0.01), key


def test_what_tensorrt_llm_cannot_express_shows_in_the_round_trip_and_the_readme(folders):
    """The V3 plan overlaps two micro-batches; TensorRT-LLM has no such option, so its README says so and
    the imported deployment runs without it (a different throughput)."""
    folder = folders["v3", "trtllm"]
    assert "two-batch overlap was planned" in (folder / "README.md").read_text()
    want, got = round_trip(folder)
    assert got["generation_tok_s"] != pytest.approx(want["generation_tok_s"], rel=0.01)


def test_the_v2_readme_lists_the_6_bit_cache_no_engine_has(folders):
    for target in TARGETS:
        assert "kv_bits 6 was planned" in (folders["v2", target] / "README.md").read_text(), target


def test_sglang_flags_carry_the_plans_per_rank_limits(folders):
    """SGLang divides --max-running-requests and --chunked-prefill-size among the DP-attention ranks
    (SGLARGS): the V3 decode unit's 128 requests and 16,384 tokens a rank at DP8 are 1,024 and 131,072."""
    script = (folders["v3", "sglang"] / "decode" / "host-0.sh").read_text()
    c = parse(table("sglang", "0.5.14"), exec_words(script), 3)
    assert (c.value("--dp-size"), c.value("--max-running-requests"), c.value("--chunked-prefill-size")) == (
        "8", "1024", "131072")
    assert c.value("--deepep-mode") == "low_latency" and c.has("--enable-two-batch-overlap")


def test_a_renamed_flag_is_refused_before_anything_is_written(folders, tmp_path, monkeypatch):
    """An emitter that writes a flag the engine does not define (as after a rename upstream) stops with one
    error naming it, and leaves no folder."""
    real = sglang.command

    def renamed(*args, **kwargs):
        c = real(*args, **kwargs)
        return Command(c.program, tuple(("--enable-tbo" if f == "--enable-two-batch-overlap" else f, v) for f, v in c.args))

    monkeypatch.setattr(sglang, "command", renamed)
    result = CliRunner().invoke(cli, ["plan", str(PLANS["v3"]), "--sequential", "--emit", "sglang",
                                      "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--enable-tbo: not a flag of sglang 0.5.14" in result.output, result.output
    assert not (tmp_path / "x").exists()


def test_the_check_knows_values_switches_choices_and_json_keys():
    t = table("vllm", "0.24.0")
    bad = Command(("vllm", "serve", "m"), (("--enable-expert-parallel", "1"), ("--max-num-seqs", None),
                                           ("--kv-cache-dtype", "fp6"), ("--eplb-config", '{"redundant": 3}')))
    problems = command_problems(t, bad)
    assert len(problems) == 4 and "fp6" in problems[2] and "redundant" in problems[3]
    assert command_problems(t, Command((), (("--no-enable-prefix-caching", None), ("-tp", "2")))) == []


def test_emit_errors_are_one_line_exit_2(tmp_path):
    runner = CliRunner()
    r = runner.invoke(cli, ["plan", str(PLANS["v3"]), "--emit", "sglang"])
    assert r.exit_code == 2 and "--emit and --out go together" in r.output
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    r = runner.invoke(cli, ["plan", str(PLANS["v3"]), "--emit", "vllm", "--out", str(tmp_path / "full")])
    assert r.exit_code == 2 and "not empty" in r.output
    r = runner.invoke(cli, ["import-deployment", str(tmp_path / "full")])
    assert r.exit_code == 2 and "planner.json" in r.output and "Traceback" not in r.output


def test_tensorrt_llm_refuses_attention_tp_inside_dp(solved):
    """TensorRT-LLM's attention DP puts attention on one GPU a rank: a unit of attention TP2 x DP4 cannot
    run on it, which is one error naming parallelism.tp."""
    plan, engine, answer = solved["v3"]
    dep = chosen(plan, engine, answer, "trtllm")
    role = dep.roles[0]
    par = role.spec.parallelism.model_copy(update={"tp": 2, "dp": role.spec.parallelism.dp // 2})
    odd = type(dep)(**{**dep.__dict__, "roles": (type(role)(role.name, role.units, role.spec.model_copy(
        update={"parallelism": par})),) + dep.roles[1:]})
    assert refusal(odd, "trtllm")[0] == "parallelism.tp"
    assert refusal(dep, "trtllm") is None


def test_settings_survive_the_trip_through_each_engines_flags(solved):
    """Settings -> command -> Settings is the identity for what SGLang and vLLM express."""
    plan, engine, answer = solved["v3"]
    dep = chosen(plan, engine, answer, "sglang", 1, None)
    for role in dep.roles:
        s = Settings.of(role.name, role.spec)
        back = sglang.read(parse(table("sglang", "0.5.14"), sglang.command(s, "m", 8, True, 0).argv(), 3), 8, s)
        assert back == s, role.name
        v = vllm.command(s, "m", 8, True, 0)
        assert vllm.read(parse(table("vllm", "0.24.0"), v.argv(), 3), 8, s, s.nodes) == s, role.name


def test_shell_words_keep_variables_expandable():
    c = Command(("x",), (("--addr", "${MASTER_ADDR}:5000"), ("--json", '{"a": 1}')))
    assert shlex.split(c.shell().replace("\\\n", " ")) == ["x", "--addr", "${MASTER_ADDR}:5000", "--json", '{"a": 1}']


ENGINES = Path(__file__).resolve().parents[3] / ".engines"


@pytest.mark.skipif(not list(ENGINES.glob("*.whl")), reason="make engine-flags downloads the engines' wheels")
def test_the_recorded_flags_are_what_the_wheels_define():
    """The recorded SGLang and vLLM tables are what scripts/engine_flags.py reads from the wheels now."""
    for engine, version in ef.WHEELS.items():
        path = ef.wheel(engine, version)
        live = ef.sglang_flags(path) if engine == "sglang" else ef.vllm_flags(path)
        recorded = table(engine, version).flags
        assert {f["name"] for f in live} == set(recorded), engine


def test_an_nvl72_rack_unit_launches_one_process_group_a_tray(tmp_path):
    """The NVL72 plan's decode unit is 16 GPUs of one GB200 rack: one NVLink domain for the planner, but
    4 compute trays of 4 GPUs (AICSYS) for the engine, so 4 launch scripts with --nnodes 4; read back, it
    is the planned unit again."""
    nvl72 = SCENARIOS / "plans" / "deepseek-v3-nvl72.yaml"
    plan, engine, answer = (*checked_plan(nvl72), run_plan(nvl72, sequential=True))
    folder = tmp_path / "nv"
    dep = chosen(plan, engine, answer, "sglang", 1, None)
    decode = dep.role("decode")
    assert (decode.spec.cluster.gpu.name, decode.spec.cluster.nodes, decode.spec.cluster.gpus_per_node) == ("gb200", 1, 16)
    write(emit(dep, "sglang"), folder)
    scripts = sorted((folder / "decode").glob("host-*.sh"))
    assert len(scripts) == 4
    c = parse(table("sglang", "0.5.14"), exec_words(scripts[3].read_text()), 3)
    assert (c.value("--tp-size"), c.value("--nnodes"), c.value("--node-rank")) == ("16", "4", "3")
    want, got = round_trip(folder)
    assert got == pytest.approx(want, rel=0.01)


@pytest.mark.parametrize("old, new, said", [
    ("--page-size 64", "--page-size 64 --frobnicate 3", "--frobnicate: not a flag of sglang 0.5.14"),
    # a misspelt flag keeps its value: the refusal names the flag alone, not its value as another flag
    ("--page-size 64", "--page-szie 64", "sglang 0.5.14 would refuse it: --page-szie: not a flag of sglang 0.5.14. Fix"),
    ("--deepep-mode low_latency", "--deepep-mode lowlatency", "not one of auto, normal, low_latency"),
    ("--page-size 64", "--page-size", "--page-size: takes a value"),
    ("--max-running-requests 1024", "", "lack or mangle a setting"),
    ("--page-size 64", "--page-size sixty", "lack or mangle a setting"),
    ("--enable-dp-attention", "", "--dp-size without DP attention"),
    ("--mem-fraction-static 0.9", "--mem-fraction-static 0.8", "0.9 memory fraction"),
])
def test_a_hand_edit_the_planner_cannot_read_is_one_line_exit_2(folders, tmp_path, old, new, said):
    folder = tmp_path / "edited"
    shutil.copytree(folders["v3", "sglang"], folder)
    script = folder / "decode" / "host-0.sh"
    assert old in script.read_text()
    script.write_text(script.read_text().replace(old, new))
    r = CliRunner().invoke(cli, ["import-deployment", str(folder)])
    assert r.exit_code == 2 and said in r.output and "Traceback" not in r.output and r.output.count("\n") == 1, r.output


def test_hosts_of_one_unit_must_run_one_command(tmp_path):
    folder = tmp_path / "nv"
    nvl72 = SCENARIOS / "plans" / "deepseek-v3-nvl72.yaml"
    plan, engine, answer = (*checked_plan(nvl72), run_plan(nvl72, sequential=True))
    write(emit(chosen(plan, engine, answer, "vllm", 1, None), "vllm"), folder)
    script = folder / "decode" / "host-2.sh"
    script.write_text(script.read_text().replace("--max-num-seqs 176", "--max-num-seqs 100"))
    r = CliRunner().invoke(cli, ["import-deployment", str(folder)])
    assert r.exit_code == 2 and "differs from host-0.sh in --max-num-seqs" in r.output, r.output


def test_json_stays_json_with_emit(tmp_path):
    r = CliRunner().invoke(cli, ["plan", str(PLANS["v2"]), "--sequential", "--format", "json",
                                                 "--emit", "vllm", "--out", str(tmp_path / "j")])
    assert r.exit_code == 0 and json.loads(r.stdout)["recommended"] and "wrote" in r.stderr


def test_a_rack_unit_of_part_trays_is_refused_by_the_plan(tmp_path):
    text = (SCENARIOS / "plans" / "deepseek-v3-nvl72.yaml").read_text().replace("rack_gpus: [16, 32, 48, 72]",
                                                                                 "rack_gpus: [18]")
    path = tmp_path / "rack18.yaml"
    path.write_text(text)
    r = CliRunner().invoke(cli, ["plan", str(path), "--sequential"])
    assert r.exit_code == 2 and "search.rack_gpus.0" in r.output and "multiples of 4" in r.output, r.output


def test_vllm_runs_one_tp_group_over_hosts_with_its_multi_node_flags():
    """Attention TP16 without DP over two 8-GPU hosts: host 0 serves, host 1 runs its workers headless."""
    s = Settings("aggregated", 2, 8, 16, 1, 16, 0, "hierarchical", "normal", False, 0, 64, 8192, True, True, 16, 8,
                 64, 8)
    first, second = (vllm.command(s, "m", 8, True, node) for node in (0, 1))
    assert (first.value("--nnodes"), first.value("--node-rank"), first.has("--headless")) == ("2", "0", False)
    assert (second.value("--node-rank"), second.value("--master-addr"), second.has("--headless")) == (
        "1", "${MASTER_ADDR}", True)
    assert command_problems(table("vllm", "0.24.0"), second) == []


def test_a_pd_deployment_simulates_the_whole_traffic_over_its_units(solved):
    """The imported P/D part shares the plan's whole traffic between its prefill and decode units (round
    robin), so its rate is the plan's; a simulated pool holds at most 64 units of each."""
    plan, engine, answer = solved["v3"]
    dep = chosen(plan, engine, answer, "sglang", 1, None)
    roles = {r.name: r for r in dep.roles}
    inf = serving_spec(roles)
    assert inf.workload.rate_per_s == pytest.approx(plan.traffic.rate_per_s)
    assert (inf.prefill_pool.instances, inf.prefill_pool.decode_instances) == (roles["prefill"].units,
                                                                              roles["decode"].units)
    many = {**roles, "decode": type(roles["decode"])("decode", 65, roles["decode"].spec)}
    with pytest.raises(PlannerError, match="prefill_pool.instances"):
        serving_spec(many)
