"""`planner import-deployment DIR`: an emitted folder back into a scenario `simulate serve` runs. The
layout and engine settings are read from the launch files themselves (each engine command parsed with
the engine's recorded flags), the hardware, the units and the plan's assumptions (routing, MTP
acceptance, the traffic) from planner.json; so a setting the files lost, or an engine runs otherwise,
shows in the imported scenario's figures."""

from __future__ import annotations

import json
import shlex
from dataclasses import replace
from pathlib import Path

import yaml

from costmodel.app.launch import sglang, trtllm, vllm
from costmodel.app.launch.deployment import Role, serving_spec
from costmodel.app.launch.emit import PLANNER_FILE
from costmodel.app.launch.flags import Command, parse, table
from costmodel.app.launch.settings import Settings
from costmodel.inputs.errors import PlannerError
from costmodel.inputs.reading import read_text
from costmodel.inputs.specs import InferenceSpec, ModelSpec

PROGRAM_WORDS = {"sglang": 3, "vllm": 3, "trtllm": 2}  # python3 -m sglang.launch_server | vllm serve M | trtllm-serve M


def exec_words(script: str) -> list[str]:
    """The words of a script's `exec ...` command (its continuation lines joined)."""
    text = script.replace("\\\n", " ")
    line = next((ln for ln in text.splitlines() if ln.lstrip().startswith("exec ")), None)
    if line is None:
        raise PlannerError("no `exec` command in the launch script", field="exec", fix="re-emit the folder")
    return shlex.split(line.lstrip()[5:])


def record_of(folder: Path) -> dict:
    path = folder / PLANNER_FILE
    if not path.is_file():
        raise PlannerError(f"{folder} has no {PLANNER_FILE}, so it is not a folder `planner plan --emit` wrote",
                           file=str(folder), field=PLANNER_FILE, fix="point at a folder written by planner plan --emit")
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise PlannerError(f"{PLANNER_FILE} is not JSON ({e.msg}, line {e.lineno})", file=str(path), field=PLANNER_FILE,
                           fix="re-emit the folder") from e


def script_commands(folder: Path, engine: str, version: str, role: str) -> tuple[Command, int]:
    """Node 0's command of a role, and the unit's node count (sglang, vllm: a script a node)."""
    scripts = sorted((folder / role).glob("host-*.sh"))
    if not scripts:
        raise PlannerError(f"no {role}/host-*.sh", file=str(folder), field=role, fix="re-emit the folder")
    words = exec_words(read_text(scripts[0]))
    return parse(table(engine, version), words, PROGRAM_WORDS[engine]), len(scripts)


def trtllm_command(folder: Path, version: str, role: str) -> tuple[Command, dict]:
    words = exec_words(read_text(folder / role / "launch.sh"))
    words = words[words.index("trtllm-serve"):]
    opts = yaml.safe_load(read_text(folder / role / "config.yaml")) or {}
    return parse(table("trtllm", version), words, PROGRAM_WORDS["trtllm"]), opts


def mpi_hosts(folder: Path, role: str, planned: Settings) -> int:
    """A TensorRT-LLM unit's hosts: its MPI ranks over the hardware's GPUs a host (one host without MPI)."""
    words = exec_words(read_text(folder / role / "launch.sh"))
    if words[0] != "mpirun":
        return 1
    return int(words[words.index("-n") + 1]) // planned.host_gpus


def manifest_command(folder: Path, target: str, version: str, role: str) -> tuple[Command, int, int]:
    """(node 0's command, nodes a unit, units) from Dynamo's or llm-d's manifest."""
    if target == "dynamo":
        service = yaml.safe_load(read_text(folder / "dynamo.yaml"))["spec"]["services"][role]
        args = service["extraPodSpec"]["mainContainer"]["args"]
        nodes = service.get("multinode", {}).get("nodeCount", 1)
        return parse(table("sglang", version), args, 0), nodes, service["replicas"]
    docs = list(yaml.safe_load_all(read_text(folder / "llm-d.yaml")))
    lws = next(d for d in docs if d["metadata"]["labels"]["llm-d.ai/role"] == role)
    script = lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["args"][0]
    c = parse(table("vllm", version), exec_words(script), PROGRAM_WORDS["vllm"])
    return c, lws["spec"]["leaderWorkerTemplate"]["size"], lws["spec"]["replicas"]


def role_settings(folder: Path, record: dict, role: str, m: ModelSpec) -> tuple[Settings, int]:
    """What the files say of one role, and its unit count."""
    target, engine, version = record["target"], record["engine"], record["version"]
    planned = Settings(**record["roles"][role]["settings"])
    units = record["roles"][role]["units"]
    bits = m.checkpoint_weight_bits
    if target in ("dynamo", "llm-d"):
        c, nodes, units = manifest_command(folder, target, version, role)
    elif engine == "trtllm":
        c, opts = trtllm_command(folder, version, role)
        return trtllm.read(c, opts, m.n_routed_experts or 0, planned, mpi_hosts(folder, role, planned)), units
    else:
        c, nodes = script_commands(folder, engine, version, role)
    if engine == "sglang":
        return replace(sglang.read(c, bits, planned, nodes), role=role), units
    return vllm.read(c, bits, planned, nodes), units


def imported(folder: Path) -> tuple[dict, ModelSpec, InferenceSpec]:
    """(planner.json, the model, the deployment as one inference part)."""
    record = record_of(folder)
    model = ModelSpec.model_validate(record["model_spec"])
    roles = {}
    for name, r in record["roles"].items():
        s, units = role_settings(folder, record, name, model)
        roles[name] = Role(name, units, s.onto(InferenceSpec.model_validate(r["spec"])))
    return record, model, serving_spec(roles)


def scenario_text(folder: Path) -> str:
    """The folder as a scenario file: one variant, the model and the deployment inline."""
    record, model, inference = imported(folder)
    variant = {"name": record["plan"], "model": model.model_dump(mode="json", exclude_none=True),
               "inference": inference.model_dump(mode="json", exclude_none=True)}
    head = (f"# Imported by `planner import-deployment {folder}` from its {record['target']} launch files\n"
            f"# ({record['engine']} {record['version']}) and planner.json: `planner simulate serve` on this file\n"
            f"# gives the deployment's figures (the plan's: {record['planned']['generation_tok_s']:,.0f} output "
            f"tok/s saturated).\n")
    doc = {"name": f"{record['plan']}-imported", "description": f"{record['plan']} as emitted for {record['target']}",
           "variants": [variant]}
    return head + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
