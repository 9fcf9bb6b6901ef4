"""YAML → validated specs, with by-name references resolved and errors that point at the line.

Parts of a scenario may be written inline or referenced by name: `model: deepseek-v2` loads
`models/deepseek-v2.yaml` from the scenario's folder or one above it, else from the bundled `scenarios/`.
An error inside a referenced file names that file.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from costmodel.inputs.errors import FieldProblem, PlannerError
from costmodel.inputs.reading import parse_yaml, read_csv, read_text
from costmodel.inputs.specs import ClusterSpec, GPUSpec, ModelSpec, Scenario, Variant, WorkloadSpec

BUNDLED_DIR = Path(__file__).resolve().parents[2] / "scenarios"

# kind -> (folder of named files, spec class)
KINDS: dict[str, tuple[str, type[BaseModel]]] = {
    "model": ("models", ModelSpec),
    "gpu": ("gpus", GPUSpec),
    "cluster": ("clusters", ClusterSpec),
    "workload": ("workloads", WorkloadSpec),
    "scenario": ("", Scenario),
}


# ------------------------------------------------------------------------------------------- reading


def read_yaml(path: Path, text: str | None = None) -> tuple[dict, yaml.Node]:
    """Parse a YAML mapping (the file, or `text` standing for it); return the data and its node tree
    (reading.py: size, encoding, depth, alias and duplicate-key limits)."""
    if text is None:
        text = read_text(path)
    data, node = parse_yaml(text, path)
    if not isinstance(data, dict):
        raise PlannerError(
            f"the file must hold a mapping of keys, not {type(data).__name__}",
            file=str(path),
            line=1,
            fix="write `key: value` pairs at the top level",
        )
    return data, node


def line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """1-based line of the deepest node along `loc` that exists."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == str(key)), None)
            if nxt is None:
                key_node = next((k for k, _ in node.value if k.value == str(key)), None)
                return key_node.start_mark.line + 1 if key_node is not None else line
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            return line
        line = node.start_mark.line + 1
    return line


# ---------------------------------------------------------------------------------------- validating


def _submodel(cls: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic class that sits at `loc` inside `cls`, if any."""
    for key in loc:
        if isinstance(key, int):
            continue
        field = cls.model_fields.get(key)
        if field is None:
            return None
        cls = _first_model(field.annotation)
        if cls is None:
            return None
    return cls


def _first_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _first_model(arg)
        if found is not None:
            return found
    return None


# Parts of a pydantic error location that name a validator, not a field (union members, constraints).
PYDANTIC_TAGS = ("constrained-", "function-", "lax-or-strict", "json-or-python", "nullable", "tagged-union")


def _explain(err: dict, cls: type[BaseModel]) -> tuple[tuple, str, str]:
    """(location, problem, fix) for one pydantic error, in a user's words."""
    loc = tuple(k for k in err["loc"] if not (isinstance(k, str) and ("[" in k or k.startswith(PYDANTIC_TAGS))))
    kind, ctx, value = err["type"], err.get("ctx", {}), err.get("input")
    original = ctx.get("error")
    if isinstance(original, FieldProblem):
        sub = tuple(int(p) if p.isdigit() else p for p in original.field.split("."))
        return loc + sub, original.problem, original.fix
    name = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        parent = _submodel(cls, loc[:-1])
        allowed = sorted(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(name), allowed, n=1)
        hint = f"did you mean `{close[0]}`? " if close else ""
        return loc, f"unknown key `{name}`", f"{hint}remove or rename it; allowed keys here: {', '.join(allowed)}"
    if kind == "missing":
        return loc, "is required but missing", f"add `{name}`"
    if kind == "literal_error":
        return loc, f"{value!r} is not allowed", f"use one of {ctx.get('expected')}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = {"greater_than": "> ", "greater_than_equal": ">= ", "less_than": "< ", "less_than_equal": "<= "}[kind]
        limit = next(iter(ctx.values()))
        return loc, f"must be {bound}{limit}, got {value!r}", f"use a value {bound}{limit}"
    if kind == "too_short":
        return loc, "must not be empty", "add at least one entry"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return loc, f"must be a mapping of keys, got {value!r}", "write `key: value` pairs under it"
    # YAML reads `version: 0.10` as the number 0.1 (and `yes` as true): the number cannot say what was written
    if kind == "string_type" and isinstance(value, int | float) and not isinstance(value, bool):
        return loc, f"must be text, got the number {value!r}", f"quote the value as you wrote it (e.g. {name}: \"0.10\")"
    return loc, f"{err['msg'].rstrip('.').lower()}, got {value!r}", "correct the value's type"


def validate(cls: type[BaseModel], data: dict, path: Path, node: yaml.Node | None, prefix: tuple = ()) -> Any:
    """Validate `data` as `cls`; on failure raise one PlannerError naming file, line and field path."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        # A misspelt key also shows up as a missing one; the misspelling is the one to report.
        errors = sorted(e.errors(), key=lambda err: err["type"] != "extra_forbidden")
        loc, problem, fix = _explain(errors[0], cls)
        more = f" ({len(errors) - 1} more problem(s) in this file)" if len(errors) > 1 else ""
        full = prefix + loc
        raise PlannerError(
            problem + more,
            file=str(path),
            line=line_of(node, full),
            field=".".join(str(k) for k in full) or None,
            fix=fix,
        ) from None


# --------------------------------------------------------------------------------------- references


def search_dirs(near: Path) -> list[Path]:
    near = Path(near).resolve().parent
    dirs = [near, *list(near.parents)[:3]]
    out: list[Path] = []
    for d in dirs:
        out += [d, d / "scenarios"]
    out.append(BUNDLED_DIR)
    return list(dict.fromkeys(out))


def available(kind: str, near: Path) -> list[str]:
    folder = KINDS[kind][0]
    names: set[str] = set()
    for d in search_dirs(near):
        names |= {p.stem for p in (d / folder).glob("*.yaml")}
    return sorted(names)


def find_named(kind: str, name: str, near: Path) -> Path | None:
    folder = KINDS[kind][0]
    for d in search_dirs(near):
        p = d / folder / f"{name}.yaml"
        if p.is_file():
            return p
    return None


def named_on_command_line(kind: str, name: str) -> Path | None:
    """The file a command-line option names: a YAML path as given, or a name searched for from the working
    directory (its scenarios/ folder) up, then in the bundled scenarios."""
    path = Path(name) if name.endswith(".yaml") else find_named(kind, name, Path.cwd() / "x")
    return path if path is not None and path.exists() else None


def model_on_command_line(name: str) -> ModelSpec:
    """The model `--model` names, or one error saying how to name one."""
    path = named_on_command_line("model", name)
    if path is None:
        raise PlannerError(f"no model named {name!r}", field="--model",
                           fix="use a name from scenarios/models (e.g. deepseek-v3) or a model YAML path")
    return load_spec("model", path)


def load_named(kind: str, name: str, near: Path, *, referer: Path, node: yaml.Node | None, loc: tuple) -> Any:
    """Load the spec `name` of `kind`, referenced from `referer` at `loc`."""
    path = find_named(kind, name, near)
    if path is None:
        names = available(kind, near)
        raise PlannerError(
            f"no {kind} named {name!r} ({KINDS[kind][0]}/{name}.yaml not found next to the file or in scenarios/)",
            file=str(referer),
            line=line_of(node, loc),
            field=".".join(map(str, loc)),
            fix=f"use one of: {', '.join(names) or '(none found)'}; or write the {kind} inline",
        )
    return load_spec(kind, path)


def load_spec(kind: str, path: Path) -> Any:
    """Load one file of a known kind, resolving the references it holds."""
    path = Path(path)
    data, node = read_yaml(path)
    if kind == "scenario":
        return _load_scenario(data, node, path)
    if kind == "cluster":
        data = _resolve(data, "gpu", "gpu", path, node, ())
    if kind == "workload" and isinstance(data.get("trace_csv"), str):  # relative to the workload file itself
        data = {**data, "trace_csv": str(path.parent / data["trace_csv"])}
    return validate(KINDS[kind][1], data, path, node)


def _resolve(data: dict, key: str, kind: str, path: Path, node: yaml.Node, loc: tuple) -> dict:
    """Replace a by-name reference at data[key] with the loaded spec (errors name the right file)."""
    ref = data.get(key)
    if isinstance(ref, str):
        return {**data, key: load_named(kind, ref, path, referer=path, node=node, loc=loc + (key,))}
    if kind == "cluster" and isinstance(ref, dict):
        return {**data, key: _resolve(ref, "gpu", "gpu", path, node, loc + (key,))}
    return data


LOADS_FIX = "give a CSV with header expert,load (or layer,expert,load) and a row per expert"
MAX_LOAD_ROWS = 100_000  # experts x layers: V3's 256 routed experts x 58 MoE layers is 14,848


def read_expert_loads(csv_path: Path, referer: Path, line: int | None, field: str) -> list[float]:
    """Per-expert loads from a CSV with columns `expert,load` (global) or `layer,expert,load` (summed
    over layers), e.g. token counts per expert measured on a running service."""
    if not csv_path.exists():
        raise PlannerError(f"cannot read {csv_path} (no such file)", file=str(referer), line=line, field=field,
                           fix=LOADS_FIX)
    table = read_csv(csv_path, ("expert", "load"), MAX_LOAD_ROWS, LOADS_FIX)
    loads: dict[int, float] = {}
    for i in range(len(table.rows)):
        expert = int(table.number(i, "expert", "number the experts 0..N-1", zero=True, integer=True))
        loads[expert] = loads.get(expert, 0.0) + table.number(i, "load", "give each load as a number of 0 or more", zero=True)
    if not loads or sorted(loads) != list(range(len(loads))):
        raise PlannerError(f"{csv_path} must list experts 0..N-1", file=str(referer), line=line, field=field,
                           fix=LOADS_FIX)
    return [loads[e] for e in range(len(loads))]


def _routing_csv(part: dict, path: Path, node: yaml.Node, loc: tuple) -> dict:
    """`routing: {load_csv: FILE}` (relative to the scenario) becomes measured `expert_loads`."""
    routing = part.get("routing")
    if not isinstance(routing, dict) or "load_csv" not in routing:
        return part
    where = loc + ("routing", "load_csv")
    rest = {k: v for k, v in routing.items() if k != "load_csv"}
    loads = read_expert_loads(Path(path).parent / str(routing["load_csv"]), path, line_of(node, where),
                              ".".join(map(str, where)))
    return {**part, "routing": {**rest, "distribution": "measured", "expert_loads": loads}}


def _load_scenario(data: dict, node: yaml.Node, path: Path) -> Scenario:
    # top-level keys starting with "_" only hold YAML anchors (&name) that variants refer to (*name)
    data = {k: v for k, v in data.items() if not str(k).startswith("_")}
    variants = data.get("variants")
    if isinstance(variants, list):
        resolved = []
        for i, v in enumerate(variants):
            if isinstance(v, dict):
                loc = ("variants", i)
                v = _resolve(v, "model", "model", path, node, loc)
                for part in ("training", "inference"):
                    sub = v.get(part)
                    if isinstance(sub, dict):
                        sub = _resolve(sub, "cluster", "cluster", path, node, loc + (part,))
                        if part == "inference":
                            sub = _resolve(sub, "workload", "workload", path, node, loc + (part,))
                        sub = _routing_csv(sub, path, node, loc + (part,))
                        v = {**v, part: sub}
            resolved.append(v)
        data = {**data, "variants": resolved}
    return validate(Scenario, data, path, node)


def detect_kind(data: dict) -> str | None:
    """Which kind of spec a YAML mapping holds, judged by its keys."""
    if "variants" in data:
        return "scenario"
    if "axes" in data:
        return "sweep"
    if "traffic" in data and "slo" in data:
        return "plan"
    if "hidden_size" in data or "num_hidden_layers" in data:
        return "model"
    if "peak_flops_per_s" in data:
        return "gpu"
    if "gpu" in data:
        return "cluster"
    if "prompt_tokens" in data or "output_tokens" in data:
        return "workload"
    return None


def file_kind(path: Path, data: dict | None = None) -> str:
    """Which kind of spec a file holds, told from its keys (`data`: the file already read)."""
    kind = detect_kind(data if data is not None else read_yaml(Path(path))[0])
    if kind is None:
        raise PlannerError(
            "cannot tell what this file describes",
            file=str(path),
            line=1,
            fix="a scenario has `variants:`, a sweep `axes:`, a model `hidden_size:`, a GPU `peak_flops_per_s:`, "
            "a cluster `gpu:`, a workload `prompt_tokens:`, a plan `traffic:` and `slo:`",
        )
    return kind


def _model_as_scenario(spec: ModelSpec, where: str) -> Scenario:
    """A bare model file, reported as one variant at its checkpoint precision."""
    return Scenario(name=spec.name, description=f"model {where}", variants=[Variant(name=spec.name, model=spec)])


def scenario_and_node(path: Path, text: str | None = None) -> tuple[Scenario, yaml.Node]:
    """A scenario (or a bare model) file, or `text` standing for it, parsed once; the node tree lets
    later checks point at lines."""
    data, node = read_yaml(Path(path), text)
    kind = file_kind(path, data)
    if kind == "model":
        return _model_as_scenario(validate(ModelSpec, data, Path(path), node), str(path)), node
    if kind != "scenario":
        raise PlannerError(f"this is a {kind} file, not a scenario or model", file=str(path), line=1,
                           fix="pass a scenario (with `variants:`) or a model file")
    return _load_scenario(data, node, Path(path)), node


def load_scenario_text(text: str, path: Path) -> Scenario:
    """A scenario given as text (edited or uploaded in the dashboard); `path` names it in errors and
    anchors its by-name references."""
    return scenario_and_node(path, text)[0]


def load_scenario(path: Path) -> Scenario:
    """A scenario file, or a bare model file reported as one variant at its checkpoint precision."""
    return scenario_and_node(path)[0]
