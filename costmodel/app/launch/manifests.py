"""Kubernetes manifests of a deployment, as the two projects document them:
- Dynamo (DYNK8S in docs/sources.md): one DynamoGraphDeployment, a Frontend (its router) and a worker
  service per role running `python3 -m dynamo.sglang` with SGLang's own flags; a multi-node unit is
  `multinode.nodeCount` nodes, whose --nnodes / --node-rank / --dist-init-addr the operator sets.
- llm-d (LLMDWEP): a LeaderWorkerSet per role running `vllm serve` (a group of `size` pods is one unit),
  P/D decode pods behind llm-d's routing sidecar, and the values of the inference scheduler's
  InferencePool chart (the router), whose P/D profile sends each request to a prefill then a decode pod.
Images are placeholders (${...}): pin the releases you run."""

from __future__ import annotations

import yaml

from costmodel.app.launch import sglang, vllm
from costmodel.app.launch.deployment import Deployment, Role
from costmodel.app.launch.flags import Command, checked, table
from costmodel.app.launch.settings import Settings, is_moe

DYNAMO_IMAGE = "nvcr.io/nvidia/ai-dynamo/sglang-runtime:${DYNAMO_VERSION}"
LLMD_IMAGE = "ghcr.io/llm-d/llm-d-cuda:${LLM_D_VERSION}"
SIDECAR_IMAGE = "ghcr.io/llm-d/llm-d-routing-sidecar:${LLM_D_SIDECAR_VERSION}"
OPERATOR_SET = ("--nnodes", "--node-rank", "--dist-init-addr")  # Dynamo's operator fills these in
VLLM_BEHIND_SIDECAR = 8200  # a P/D decode pod's vLLM port; the sidecar listens on the service port
HF_SECRET = "hf-token-secret"  # the secret holding HF_TOKEN, as Dynamo's examples name it


class _Plain(yaml.SafeDumper):
    """YAML without anchors: a manifest reads the same to kubectl and to a person."""

    def ignore_aliases(self, data) -> bool:
        return True


def to_yaml(data, documents: bool = False) -> str:
    dump = yaml.dump_all if documents else yaml.dump
    return dump(data, Dumper=_Plain, sort_keys=False, allow_unicode=True)


def dynamo_worker(dep: Deployment, role: Role) -> dict:
    s = Settings.of(role.name, role.spec)
    c = checked(table("sglang", dep.version), sglang.command(s, dep.model_path, dep.model.checkpoint_weight_bits,
                                                             is_moe(dep.model), 0))
    args = Command((), tuple(a for a in c.args if a[0] not in OPERATOR_SET)).argv()
    service = {"componentType": "worker", "replicas": role.units, "envFromSecret": HF_SECRET,
               "resources": {"limits": {"gpu": str(s.host_gpus)}},
               "extraPodSpec": {"mainContainer": {"image": DYNAMO_IMAGE,
                                                  "command": ["python3", "-m", "dynamo.sglang"], "args": args}}}
    if s.hosts > 1:
        service = {"multinode": {"nodeCount": s.hosts}, **service}
    return service


def dynamo(dep: Deployment) -> dict:
    services = {"Frontend": {"componentType": "frontend", "replicas": 1,
                             "extraPodSpec": {"mainContainer": {"image": DYNAMO_IMAGE}}}}
    services |= {role.name: dynamo_worker(dep, role) for role in dep.roles}
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
            "metadata": {"name": dep.plan}, "spec": {"backendFramework": "sglang", "services": services}}


def labels(dep: Deployment, role: str) -> dict:
    return {"llm-d.ai/inferenceServing": "true", "llm-d.ai/model": dep.model.name, "llm-d.ai/role": role}


def llmd_script(dep: Deployment, s: Settings, port: int) -> tuple[str, Command]:
    c = checked(table("vllm", dep.version), vllm.command(s, dep.model_path, dep.model.checkpoint_weight_bits,
                                                         is_moe(dep.model), None, port))
    start = f"START_RANK=$(( ${{LWS_WORKER_INDEX:-0}} * {s.host_gpus // s.tp} ))\n" if s.hosts > 1 else ""
    return start + "exec " + c.shell(), c


def llmd_container(dep: Deployment, role: Role) -> dict:
    s = Settings.of(role.name, role.spec)
    behind = dep.disaggregated and role.name == "decode"
    script, _ = llmd_script(dep, s, VLLM_BEHIND_SIDECAR if behind else vllm.PORT)
    gpus = {"nvidia.com/gpu": str(s.host_gpus)}
    return {"name": "vllm", "image": LLMD_IMAGE, "command": ["/bin/bash", "-c"], "args": [script],
            "ports": [{"containerPort": VLLM_BEHIND_SIDECAR if behind else vllm.PORT}],
            "resources": {"limits": gpus, "requests": gpus}}


def leader_worker_set(dep: Deployment, role: Role) -> dict:
    s = Settings.of(role.name, role.spec)
    pod: dict = {"containers": [llmd_container(dep, role)]}
    if dep.disaggregated and role.name == "decode":
        pod["initContainers"] = [{"name": "routing-proxy", "image": SIDECAR_IMAGE, "restartPolicy": "Always",
                                  "args": [f"--port={vllm.PORT}", f"--vllm-port={VLLM_BEHIND_SIDECAR}",
                                           "--connector=nixlv2"], "ports": [{"containerPort": vllm.PORT}]}]
    template = {"metadata": {"labels": labels(dep, role.name)}, "spec": pod}
    return {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
            "metadata": {"name": f"{dep.plan}-{role.name}", "labels": labels(dep, role.name)},
            "spec": {"replicas": role.units, "leaderWorkerTemplate": {"size": s.hosts, "workerTemplate": template}}}


def scheduler_values(dep: Deployment) -> dict:
    """The InferencePool chart's values: the pool is every pod of the model; with P/D, the scheduler's
    profiles pick a prefill pod, then a decode pod (an aggregated pool keeps the chart's own scheduling)."""
    extension: dict = {"replicas": 1, "image": {"name": "llm-d-inference-scheduler", "hub": "ghcr.io/llm-d",
                                                "tag": "${LLM_D_SCHEDULER_VERSION}"}}
    if dep.disaggregated:
        plugins = [{"type": "prefill-header-handler"}, {"type": "prefill-filter"}, {"type": "decode-filter"},
                   {"type": "random-picker"}, {"type": "pd-profile-handler", "parameters": {"threshold": 0}}]
        profiles = [{"name": "prefill", "plugins": [{"pluginRef": "prefill-filter"}, {"pluginRef": "random-picker"}]},
                    {"name": "decode", "plugins": [{"pluginRef": "decode-filter"}, {"pluginRef": "random-picker"}]}]
        config = {"apiVersion": "inference.networking.x-k8s.io/v1alpha1", "kind": "EndpointPickerConfig",
                  "plugins": plugins, "schedulingProfiles": profiles}
        extension |= {"pluginsConfigFile": "planned.yaml",
                      "pluginsCustomConfig": {"planned.yaml": to_yaml(config)}}
    return {"inferenceExtension": extension,
            "inferencePool": {"modelServers": {"matchLabels": {"llm-d.ai/inferenceServing": "true",
                                                               "llm-d.ai/model": dep.model.name}}}}


def files(dep: Deployment, target: str, out) -> None:
    """The target's manifests into `out` (emit.Emitted)."""
    if target == "dynamo":
        out.add("dynamo.yaml", to_yaml(dynamo(dep)))
        return
    docs = [leader_worker_set(dep, role) for role in dep.roles]
    out.add("llm-d.yaml", to_yaml(docs, documents=True))
    out.add("inferencepool.values.yaml", to_yaml(scheduler_values(dep)))
