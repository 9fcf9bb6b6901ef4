"""`planner plan --emit`: a deployment's launch files, each engine command checked against the engine's
recorded flags before anything is written, the settings no engine flag carries listed as differences,
and planner.json (what was planned, and the plan's assumptions) for `planner import-deployment`."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from costmodel.app.feasibility import longest_tokens
from costmodel.app.launch import manifests, sglang, trtllm, vllm
from costmodel.app.launch.deployment import Deployment, Role, deployment_of, serving_spec
from costmodel.app.launch.differences import differences, refusal
from costmodel.app.launch.flags import Command, checked, checked_options, table
from costmodel.app.launch.readme import readme
from costmodel.app.launch.settings import Settings, is_moe
from costmodel.app.serving import serve_variant
from costmodel.inputs.errors import PlannerError
from costmodel.inputs.plan_spec import PlanSpec
from costmodel.inputs.specs import InferenceSpec

TARGETS = ("sglang", "vllm", "trtllm", "dynamo", "llm-d")
PLANNER_FILE = "planner.json"


@dataclass
class Emitted:
    files: dict[str, str] = field(default_factory=dict)  # path in DIR -> text

    def add(self, path: str, text: str) -> None:
        self.files[path] = text


def engine_command(dep: Deployment, s: Settings, node: int, role_dir: str) -> Command:
    """The role's engine command on one node of a unit (TensorRT-LLM: one for the whole unit)."""
    m = dep.model
    if dep.engine == "sglang":
        return sglang.command(s, dep.model_path, m.checkpoint_weight_bits, is_moe(m), node)
    if dep.engine == "vllm":
        return vllm.command(s, dep.model_path, m.checkpoint_weight_bits, is_moe(m), node)
    return trtllm.command(s, dep.model_path, f"{role_dir}/config.yaml")


MASTER_ADDR = ': "${MASTER_ADDR:?set MASTER_ADDR to the address of host 0 of this unit}"\n'


def node_script(dep: Deployment, role: Role, s: Settings, node: int, c: Command, where: str = "",
                preamble: str | None = None) -> str:
    """A host's launch script: what it is, where it runs, what it needs set (default: MASTER_ADDR when the
    unit spans hosts), then the engine command."""
    need = preamble if preamble is not None else MASTER_ADDR if s.hosts > 1 else ""
    return (f"#!/usr/bin/env bash\n# {dep.plan}: {role.name} unit ({s.gpus} GPUs, {s.hosts} host(s)), host {node}.\n"
            f"# For each of the {role.units} {role.name} unit(s): start it {where or f'on host {node}'}.\n"
            f"set -euo pipefail\n{need}"
            f"exec {c.shell()}\n")


def trtllm_files(dep: Deployment, role: Role, s: Settings, out: Emitted) -> None:
    """A TensorRT-LLM unit: its LLM-API options and one launch (under MPI across nodes)."""
    t = table("trtllm", dep.version)
    opts = checked_options(t, t.yaml_keys, trtllm.options(
        s, role.spec.cluster.gpu.name, is_moe(dep.model), dep.model.n_routed_experts or 0,
        longest_tokens(role.spec.workload.prompt_tokens, dep.model.max_position_embeddings)))
    c = checked(t, engine_command(dep, s, 0, "${HERE}"))
    launch = c if s.hosts == 1 else Command(("mpirun", "-H", "${HOSTS}", "-n", str(s.gpus), "trtllm-llmapi-launch")
                                            + c.program, c.args)
    out.add(f"{role.name}/config.yaml", manifests.to_yaml(opts))
    where = "once (MPI starts its ranks on HOSTS)" if s.hosts > 1 else "on the host"
    here = 'HERE="$(cd "$(dirname "$0")" && pwd)"  # config.yaml lies beside this script\n'
    hosts = f': "${{HOSTS:?set HOSTS to the unit\'s hosts, host:{s.host_gpus},host:{s.host_gpus},...}}"\n'
    out.add(f"{role.name}/launch.sh",
            node_script(dep, role, s, 0, launch, where, here + (hosts if s.hosts > 1 else "")))


def engine_files(dep: Deployment, out: Emitted) -> None:
    """Per role: sglang / vllm one script a host, trtllm one launch a unit; each command checked."""
    t = table(dep.engine, dep.version)
    for role in dep.roles:
        s = Settings.of(role.name, role.spec)
        if dep.engine == "trtllm":
            trtllm_files(dep, role, s, out)
            continue
        for node in range(s.hosts):
            c = checked(t, engine_command(dep, s, node, role.name))
            out.add(f"{role.name}/host-{node}.sh", node_script(dep, role, s, node, c))


def router_files(dep: Deployment, out: Emitted) -> None:
    """What sits in front of the units: SGLang's router, TensorRT-LLM's disaggregated server (vLLM ships
    none for P/D: README)."""
    hosts = {r.name: [f"{r.name}-{u}:{port_of(dep.engine)}" for u in range(r.units)] for r in dep.roles}
    if dep.engine == "sglang" and (dep.disaggregated or dep.roles[0].units > 1):
        urls = {name: [f"http://{h}" for h in hs] for name, hs in hosts.items()}
        out.add("router.sh", f"#!/usr/bin/env bash\n# {dep.plan}: the router in front of the units (edit the "
                             f"addresses).\nset -euo pipefail\nexec {sglang.router(urls).shell()}\n")
    if dep.engine == "trtllm" and dep.disaggregated:
        spec = {"hostname": "0.0.0.0", "port": 8000, "backend": "pytorch",
                "context_servers": {"num_instances": len(hosts["prefill"]), "urls": hosts["prefill"]},
                "generation_servers": {"num_instances": len(hosts["decode"]), "urls": hosts["decode"]}}
        t = table("trtllm", dep.version)
        out.add("disagg.yaml", manifests.to_yaml(checked_options(t, t.router_keys, spec)))
        out.add("router.sh", f"#!/usr/bin/env bash\n# {dep.plan}: TensorRT-LLM's disaggregated server (edit the "
                             f"addresses in disagg.yaml).\nset -euo pipefail\nexec trtllm-serve disaggregated -c disagg.yaml\n")


def port_of(engine: str) -> int:
    return {"sglang": sglang.PORT, "vllm": vllm.PORT, "trtllm": trtllm.PORT}[engine]


def planned_throughput(dep: Deployment) -> dict:
    """The deployment's saturated output and prompt tokens/s: one unit of each role as `simulate serve`
    runs the deployment's inference part (serving_spec), times its units. The saturated runs take one
    unit each, so the part is built with one of each (any unit count then emits)."""
    roles = {r.name: r for r in dep.roles}
    r = serve_variant(dep.plan, dep.model, serving_spec({n: replace(r, units=1) for n, r in roles.items()}))
    decode = roles.get("decode") or roles["aggregated"]
    prefill = roles.get("prefill") or roles["aggregated"]
    return {"generation_tok_s": r.max_generation_throughput_tok_s * decode.units,
            "prompt_tok_s": r.prompt_throughput_tok_s * prefill.units,
            "per_unit": {"generation_tok_s": r.max_generation_throughput_tok_s,
                         "prompt_tok_s": r.prompt_throughput_tok_s}}


def planner_record(dep: Deployment, target: str, figures: dict, diffs: list[str]) -> dict:
    return {"plan": dep.plan, "target": target, "engine": dep.engine, "version": dep.version,
            "model": dep.model.name, "model_path": dep.model_path, "model_spec": dep.model.model_dump(mode="json"),
            "roles": {r.name: {"units": r.units, "settings": Settings.of(r.name, r.spec).as_dict(),
                               "spec": r.spec.model_dump(mode="json")} for r in dep.roles},
            "planned": {**dep.planned, **figures}, "differences": diffs}


def emit(dep: Deployment, target: str) -> Emitted:
    """Every file of `target` for the deployment (nothing written yet)."""
    why = refusal(dep, target)
    if why:
        raise PlannerError(why[1], field=why[0], fix=why[2])
    out = Emitted()
    if target in ("dynamo", "llm-d"):
        manifests.files(dep, target, out)
    else:
        engine_files(dep, out)
        router_files(dep, out)
    diffs = differences(dep, target)
    figures = planned_throughput(dep)
    out.add(PLANNER_FILE, json.dumps(planner_record(dep, target, figures, diffs), indent=1) + "\n")
    out.add("README.md", readme(dep, target, figures, diffs, sorted(out.files)))
    return out


def out_problem(directory: Path) -> str | None:
    """Why `directory` cannot be a new folder of launch files, or None."""
    if directory.exists() and not directory.is_dir():
        return f"{directory} is a file"
    if directory.is_dir() and any(directory.iterdir()):
        return f"{directory} exists and is not empty"
    above = next((p for p in directory.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        return f"{above} is a file, so {directory} cannot be made under it"
    return None


def write(out: Emitted, directory: Path) -> list[Path]:
    """All files or none: written into a temporary folder beside `directory`, then moved into place."""
    problem = out_problem(directory)
    if problem:
        raise PlannerError(problem, field="--out", fix="choose a new folder, or remove that one")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".emit-", dir=directory.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp's 0700 would keep the folder from the other users who start the engines
        for rel, text in out.files.items():
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            if rel.endswith(".sh"):
                path.chmod(0o755)
        if directory.exists():
            directory.rmdir()
        shutil.move(str(tmp), str(directory))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return sorted(directory / rel for rel in out.files)


def chosen(plan: PlanSpec, engine: InferenceSpec, answer: dict, target: str, rank: int = 1,
           model_path: str | None = None) -> Deployment:
    """The rank-th deployment of the plan's answer, its verified list (1: the recommended one)."""
    rows = answer["per_gpu_type"]
    if not rows:
        raise PlannerError("the plan verified no deployment, so there is nothing to emit", field="slo",
                           fix="relax the targets or widen search: (see the rejected plans above)")
    if not 1 <= rank <= len(rows):
        raise PlannerError(f"--rank {rank}: the plan verified {len(rows)} deployment(s)", field="--rank",
                           fix=f"give 1 to {len(rows)}")
    return deployment_of(plan, engine, rows[rank - 1], target, model_path)


def zip_bytes(out: Emitted, folder: str) -> bytes:
    """The files as a zip archive under `folder/` (scripts executable)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for rel, text in sorted(out.files.items()):
            info = zipfile.ZipInfo(f"{folder}/{rel}")
            info.external_attr = (0o755 if rel.endswith(".sh") else 0o644) << 16
            z.writestr(info, text)
    return buf.getvalue()
