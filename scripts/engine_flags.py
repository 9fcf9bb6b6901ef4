"""Record the command-line flags of SGLang and vLLM at the versions the launch files target, read from
the engines' own argument definitions in their PyPI wheels (docs/sources.md: SGLARGS, VLLMARGS).

Neither engine's parser imports on a CPU machine (SGLang's utilities load CUDA-built torchvision and
triton; vLLM's configs load its CUDA extensions), so this reads their source with `ast` instead:
- SGLang 0.5.x declares most flags as `ServerArgs` fields annotated `A[type, Arg(...)]` or `A[type,
  "help"]` (add_cli_args_from_dataclass: `--field-name`, or Arg's cli_name, plus its aliases; a bool
  is a store_true switch), and the rest with `parser.add_argument("--flag", ...)`.
- vLLM declares each `vllm serve` flag with `add_argument("--flag", **kwargs[field])`; a field
  annotated bool becomes a --flag / --no-flag switch (argparse.BooleanOptionalAction).

    .venv/bin/python scripts/engine_flags.py            # downloads the two wheels into .engines/

writes costmodel/app/launch/flags/<engine>-<version>.json. TensorRT-LLM's list is recorded by hand from
its sources (its wheel is not on PyPI): see that file's `source`.
"""

from __future__ import annotations

import ast
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "costmodel" / "app" / "launch" / "flags"
CACHE = ROOT / ".engines"
WHEELS = {"sglang": "0.5.14", "vllm": "0.24.0"}  # the kernel database's current versions (query_versions.yaml)


def wheel(engine: str, version: str) -> Path:
    """The engine's wheel from PyPI, without its dependencies (downloaded once into .engines/)."""
    CACHE.mkdir(exist_ok=True)
    found = sorted(CACHE.glob(f"{engine}-{version}-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", f"{engine}=={version}", "--no-deps", "-q",
                        "-d", str(CACHE)], check=True)
        found = sorted(CACHE.glob(f"{engine}-{version}-*.whl"))
    return found[0]


def literal_lists(tree: ast.Module) -> dict[str, list]:
    """Module-level NAME = [literals] (choices lists the fields name)."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            if isinstance(value, (list, tuple)):
                out[node.targets[0].id] = list(value)
    return out


def choices_of(node: ast.AST | None, consts: dict[str, list]) -> list | None:
    if node is None:
        return None
    if isinstance(node, ast.Name):
        return consts.get(node.id)
    try:
        value = ast.literal_eval(node)
    except ValueError:
        return None
    return list(value) if isinstance(value, (list, tuple)) else None


def keywords(call: ast.Call) -> dict[str, ast.AST]:
    return {k.arg: k.value for k in call.keywords if k.arg}


def literal_of(annotation: ast.AST) -> list | None:
    """Literal[...] values of an annotation (inside Optional[...] too)."""
    for node in ast.walk(annotation):
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", "") == "Literal":
            try:
                return list(ast.literal_eval(node.slice)) if isinstance(node.slice, ast.Tuple) else [
                    ast.literal_eval(node.slice)]
            except ValueError:
                return None
    return None


def is_bool(annotation: ast.AST) -> bool:
    """bool or Optional[bool] / bool | None."""
    names = {n.id for n in ast.walk(annotation) if isinstance(n, ast.Name)} - {"Optional", "None"}
    return names == {"bool"}


def sglang_field(node: ast.AnnAssign, consts: dict[str, list]) -> dict | None:
    """One ServerArgs field's flag entry, or None when it has no CLI surface."""
    ann = node.annotation
    if not (isinstance(ann, ast.Subscript) and getattr(ann.value, "id", "") == "A"):
        return None
    typ, meta = ann.slice.elts[0], ann.slice.elts[1]
    kw = keywords(meta) if isinstance(meta, ast.Call) else {}
    if isinstance(kw.get("no_cli"), ast.Constant) and kw["no_cli"].value:
        return None
    name = kw["cli_name"].value if "cli_name" in kw else "--" + node.target.id.replace("_", "-")
    aliases = ast.literal_eval(kw["aliases"]) if "aliases" in kw else []
    switch = "action" not in kw and is_bool(typ)
    return {"name": name, "aliases": aliases, "value": not switch,
            "choices": choices_of(kw.get("choices"), consts) or literal_of(typ)}


def added_arguments(tree: ast.AST, consts: dict[str, list]) -> list[dict]:
    """Every parser.add_argument("--flag", ...) call."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            names = [a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("-")]
            if names:
                kw = keywords(node)
                action = kw.get("action")
                switch = isinstance(action, ast.Constant) and action.value in ("store_true", "store_false")
                out.append({"name": names[0], "aliases": names[1:], "value": not switch,
                            "choices": choices_of(kw.get("choices"), consts), "kwargs_key": _kwargs_key(node)})
    return out


def _kwargs_key(call: ast.Call) -> str | None:
    """vLLM's add_argument("--x", **group_kwargs["field"]): the field behind the flag."""
    for k in call.keywords:
        if k.arg is None:  # **kwargs["field"], or **{**kwargs["field"], "default": ...}
            for node in ast.walk(k.value):
                if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                    return node.slice.value
    return None


def sglang_flags(path: Path) -> list[dict]:
    with zipfile.ZipFile(path) as z:
        tree = ast.parse(z.read("sglang/srt/server_args.py"))
    consts = literal_lists(tree)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ServerArgs")
    fields = [f for n in cls.body if isinstance(n, ast.AnnAssign) and (f := sglang_field(n, consts))]
    return fields + added_arguments(cls, consts)


VLLM_FILES = ("vllm/engine/arg_utils.py", "vllm/entrypoints/openai/cli_args.py", "vllm/entrypoints/cli/serve.py")


def vllm_field_types(z: zipfile.ZipFile) -> tuple[dict[str, ast.AST], dict[str, ast.AST]]:
    """Annotations of the config dataclasses' fields by field name (vllm/config/*.py; a config's own
    field before EngineArgs' copy of it), and the module-level type aliases (X = Literal[...])."""
    fields: dict[str, ast.AST] = {}
    aliases: dict[str, ast.AST] = {}
    names = [n for n in z.namelist() if n.startswith("vllm/config/") and n.endswith(".py")] + list(VLLM_FILES)
    for name in names:
        tree = ast.parse(z.read(name))
        for node in tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                aliases.setdefault(node.targets[0].id, node.value)
        for node in ast.walk(tree):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                fields.setdefault(node.target.id, node.annotation)
    return fields, aliases


def resolved(annotation: ast.AST, aliases: dict[str, ast.AST]) -> ast.AST:
    """A bare alias name replaced by what it names (CacheDType -> Literal[...])."""
    if isinstance(annotation, ast.Name) and annotation.id in aliases:
        return aliases[annotation.id]
    return annotation


# vLLM's JSON-valued flags: the config dataclass whose fields the JSON's keys are
VLLM_JSON = {"--speculative-config": ("vllm/config/speculative.py", "SpeculativeConfig"),
             "--eplb-config": ("vllm/config/parallel.py", "EPLBConfig"),
             "--kv-transfer-config": ("vllm/config/kv_transfer.py", "KVTransferConfig")}


def class_fields(source: bytes, name: str) -> list[str]:
    """The annotated fields of class `name` (a dataclass's keys)."""
    cls = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ClassDef) and n.name == name)
    return sorted(n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name))


FRONTEND = ("BaseFrontendArgs", "FrontendArgs")  # cli_args.py: every field is `--field-name` (get_kwargs)


def frontend_flags(tree: ast.Module) -> list[dict]:
    """The API server's flags vLLM derives from its frontend dataclasses' fields."""
    out = []
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name in FRONTEND):
        for node in cls.body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                out.append({"name": "--" + node.target.id.replace("_", "-"), "aliases": [], "value": True,
                            "choices": None, "kwargs_key": node.target.id})
    return out


def vllm_flags(path: Path) -> list[dict]:
    with zipfile.ZipFile(path) as z:
        types, aliases = vllm_field_types(z)
        flags = []
        for name in VLLM_FILES:
            tree = ast.parse(z.read(name))
            flags += added_arguments(tree, literal_lists(tree))
        flags += frontend_flags(ast.parse(z.read("vllm/entrypoints/openai/cli_args.py")))
    for f in flags:
        ann = types.get(f.pop("kwargs_key") or "")
        if ann is not None and is_bool(ann):  # BooleanOptionalAction: --x and --no-x, no value
            f["value"] = False
            f["aliases"] = f["aliases"] + ["--no-" + f["name"][2:]]
        if ann is not None and f["choices"] is None:
            f["choices"] = literal_of(resolved(ann, aliases))
    with zipfile.ZipFile(path) as z:
        for f in flags:
            if f["name"] in VLLM_JSON:
                file, cls = VLLM_JSON[f["name"]]
                f["json_keys"] = class_fields(z.read(file), cls)
    return flags


def record(engine: str, version: str, flags: list[dict], artifact: Path) -> Path:
    table = {f["name"]: {"value": f["value"], "choices": f["choices"], "aliases": f["aliases"],
                         **({"json_keys": f["json_keys"]} if "json_keys" in f else {})} for f in flags}
    for f in table.values():
        if f["choices"] is not None:
            f["choices"] = [str(c) for c in f["choices"]]
    out = {"engine": engine, "version": version, "style": "argparse",
           "source": {"artifact": artifact.name, "sha256": hashlib.sha256(artifact.read_bytes()).hexdigest(),
                      "read": "scripts/engine_flags.py (ast over the engine's argument definitions)"},
           "flags": dict(sorted(table.items()))}
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{engine}-{version}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    return path


def main() -> None:
    for engine, version in WHEELS.items():
        artifact = wheel(engine, version)
        flags = sglang_flags(artifact) if engine == "sglang" else vllm_flags(artifact)
        for f in flags:
            f.pop("kwargs_key", None)
        print(f"{record(engine, version, flags, artifact)}: {len(flags)} flags")


if __name__ == "__main__":
    main()
