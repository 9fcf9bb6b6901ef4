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
from pydantic import ValidationError

from costmodel.app.launch import sglang, trtllm, vllm
from costmodel.app.launch.deployment import Role, serving_spec
from costmodel.app.launch.emit import PLANNER_FILE
from costmodel.app.launch.flags import Command, checked, checked_options, parse, table
from costmodel.app.launch.settings import Settings
from costmodel.counts.memory import SERVING_MEMORY_FRACTION
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


RECORD_KEYS = ("target", "engine", "version", "model_spec", "roles", "planned")
HOST_FLAGS = ("--node-rank", "--headless", "--data-parallel-start-rank")  # what differs from host to host
MEMORY_FRACTION = str(SERVING_MEMORY_FRACTION)


def record_of(folder: Path) -> dict:
    path = folder / PLANNER_FILE
    if not path.is_file():
        raise PlannerError(f"{folder} has no {PLANNER_FILE}, so it is not a folder `planner plan --emit` wrote",
                           file=str(folder), field=PLANNER_FILE, fix="point at a folder written by planner plan --emit")
    try:
        record = json.loads(read_text(path))
    except json.JSONDecodeError as e:
        raise PlannerError(f"{PLANNER_FILE} is not JSON ({e.msg}, line {e.lineno})", file=str(path), field=PLANNER_FILE,
                           fix="re-emit the folder") from e
    missing = [k for k in RECORD_KEYS if not isinstance(record, dict) or k not in record]
    if missing or not isinstance(record["roles"], dict) or not record["roles"]:
        raise PlannerError(f"{PLANNER_FILE} lacks {', '.join(missing) or 'its roles'}", file=str(path),
                           field=missing[0] if missing else "roles", fix="re-emit the folder")
    return record


def script_commands(folder: Path, engine: str, version: str, role: str) -> tuple[Command, int]:
    """Host 0's command of a role, and the unit's host count (sglang, vllm: a script a host, each the same
    command but for the host's own rank)."""
    scripts = sorted((folder / role).glob("host-*.sh"))
    if not scripts:
        raise PlannerError(f"no {role}/host-*.sh", file=str(folder), field=role, fix="re-emit the folder")
    t = table(engine, version)
    cs = [checked(t, parse(t, exec_words(read_text(p)), PROGRAM_WORDS[engine]), str(p)) for p in scripts]
    shared = [[a for a in c.args if a[0] not in HOST_FLAGS] for c in cs]
    for path, args in zip(scripts[1:], shared[1:], strict=True):
        if args != shared[0]:
            differ = sorted({f for f, _ in set(args) ^ set(shared[0])})
            raise PlannerError(f"differs from {scripts[0].name} in {', '.join(differ)}; a unit's hosts run one "
                               f"command", file=str(path), field=differ[0], fix="make the hosts' commands agree")
    return cs[0], len(scripts)


def trtllm_command(folder: Path, version: str, role: str, host_gpus: int) -> tuple[Command, dict, int]:
    """A TensorRT-LLM unit's command, its options, and its hosts: its MPI ranks over the hardware's GPUs a
    host (one host without MPI)."""
    path, config = folder / role / "launch.sh", folder / role / "config.yaml"
    words = exec_words(read_text(path))
    hosts = int(words[words.index("-n") + 1]) // host_gpus if words[0] == "mpirun" else 1
    t = table("trtllm", version)
    opts = checked_options(t, t.yaml_keys, yaml.safe_load(read_text(config)) or {}, str(config))
    c = checked(t, parse(t, words[words.index("trtllm-serve"):], PROGRAM_WORDS["trtllm"]), str(path))
    return c, opts, hosts


def manifest_command(folder: Path, target: str, version: str, role: str) -> tuple[Command, int, int]:
    """(host 0's command, hosts a unit, units) from Dynamo's or llm-d's manifest."""
    if target == "dynamo":
        path = folder / "dynamo.yaml"
        service = yaml.safe_load(read_text(path))["spec"]["services"][role]
        args = service["extraPodSpec"]["mainContainer"]["args"]
        hosts = service.get("multinode", {}).get("nodeCount", 1)
        t = table("sglang", version)
        return checked(t, parse(t, args, 0), str(path)), hosts, service["replicas"]
    path = folder / "llm-d.yaml"
    docs = list(yaml.safe_load_all(read_text(path)))
    lws = next(d for d in docs if d["metadata"]["labels"]["llm-d.ai/role"] == role)
    script = lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["spec"]["containers"][0]["args"][0]
    t = table("vllm", version)
    c = checked(t, parse(t, exec_words(script), PROGRAM_WORDS["vllm"]), str(path))
    return c, lws["spec"]["leaderWorkerTemplate"]["size"], lws["spec"]["replicas"]


def unmodelled(engine: str, c: Command, opts: dict) -> tuple[str, str] | None:
    """(flag, why) of a setting a hand edit gave that the planner cannot simulate, or None."""
    if engine == "sglang":
        rules = [("--enable-dp-attention", int(c.value("--dp-size") or 1) > 1 and not c.has("--enable-dp-attention"),
                  "--dp-size without DP attention is not the layout the planner models"),
                 ("--moe-a2a-backend", c.has("--ep-size") and c.value("--moe-a2a-backend") != "deepep",
                  "the planner times expert parallelism with DeepEP's kernels"),
                 ("--mem-fraction-static", c.value("--mem-fraction-static") != MEMORY_FRACTION,
                  f"the planner sizes the KV cache at a {MEMORY_FRACTION} memory fraction"),
                 ("--speculative-eagle-topk", c.has("--speculative-algorithm") and (
                     c.value("--speculative-eagle-topk") != "1" or c.value("--speculative-num-draft-tokens")
                     != str(int(c.value("--speculative-num-steps") or 0) + 1)),
                  "the planner models MTP as one chain of drafts (top-k 1, steps + 1 draft tokens)")]
    elif engine == "vllm":
        rules = [("--gpu-memory-utilization", c.value("--gpu-memory-utilization") != MEMORY_FRACTION,
                  f"the planner sizes the KV cache at a {MEMORY_FRACTION} memory fraction"),
                 ("--all2all-backend", c.has("--enable-expert-parallel") and not (c.value("--all2all-backend") or "")
                  .startswith("deepep"), "the planner times expert parallelism with DeepEP's kernels")]
    else:
        rules = [("kv_cache_config.free_gpu_memory_fraction", (opts.get("kv_cache_config") or {}).get(
            "free_gpu_memory_fraction") != SERVING_MEMORY_FRACTION, "the emitted fraction is the one planned")]
    return next(((flag, why) for flag, bad, why in rules if bad), None)


def role_settings(folder: Path, record: dict, role: str, m: ModelSpec) -> tuple[Settings, int]:
    """What the files say of one role, and its unit count."""
    target, engine, version = record["target"], record["engine"], record["version"]
    planned = Settings(**record["roles"][role]["settings"])
    units, opts = record["roles"][role]["units"], {}
    if target in ("dynamo", "llm-d"):
        c, hosts, units = manifest_command(folder, target, version, role)
    elif engine == "trtllm":
        c, opts, hosts = trtllm_command(folder, version, role, planned.host_gpus)
    else:
        c, hosts = script_commands(folder, engine, version, role)
    odd = unmodelled(engine, c, opts)
    if odd:
        given = c.value(odd[0]) if engine != "trtllm" else None
        raise PlannerError(f"{odd[0]}{' ' + given if given else ''}: {odd[1]}", file=str(folder / role),
                           field=odd[0], fix="restore the emitted value, or plan that setting")
    if engine == "trtllm":
        return trtllm.read(c, opts, m.n_routed_experts or 0, planned, hosts), units
    if engine == "sglang":
        return replace(sglang.read(c, m.checkpoint_weight_bits, planned, hosts), role=role), units
    return vllm.read(c, m.checkpoint_weight_bits, planned, hosts), units


def read_role(folder: Path, record: dict, role: str, m: ModelSpec) -> tuple[Settings, int]:
    """role_settings, with a file the planner cannot read (a flag's value mangled or removed, a manifest
    key missing) as one error naming the role's files."""
    try:
        return role_settings(folder, record, role, m)
    except (KeyError, ValueError, TypeError, IndexError, StopIteration, AttributeError) as e:
        raise PlannerError(f"the {role} launch files lack or mangle a setting the planner reads ({type(e).__name__}: "
                           f"{e})", file=str(folder / role), field=role, fix="restore the emitted files, or re-emit") from e


def imported(folder: Path) -> tuple[dict, ModelSpec, InferenceSpec]:
    """(planner.json, the model, the deployment as one inference part)."""
    record = record_of(folder)
    try:
        model = ModelSpec.model_validate(record["model_spec"])
        specs = {name: InferenceSpec.model_validate(r["spec"]) for name, r in record["roles"].items()}
    except (ValidationError, KeyError, TypeError) as e:
        raise PlannerError(f"{PLANNER_FILE}'s model or unit specs do not validate ({str(e).splitlines()[0]})",
                           file=str(folder / PLANNER_FILE), field="roles", fix="re-emit the folder") from e
    roles = {}
    for name, spec in specs.items():
        s, units = read_role(folder, record, name, model)
        roles[name] = Role(name, units, s.onto(spec))
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
