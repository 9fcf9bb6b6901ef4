"""The InferenceX recipes behind the silicon sample's rows, as the CSV check-serving joins them to
(`scenarios/measured/inferencex-recipes.csv`; INFX in docs/sources.md).

InferenceX (github.com/SemiAnalysisAI/InferenceX) names every benchmark it runs in
`.github/configs/nvidia-master.yaml`: per recipe its engine image, GPU runner, framework and precision, and
per (ISL, OSL) the concurrencies, layouts (`tp`, `ep`, `dp-attn`, and `num-worker` per prefill and decode
worker of a disaggregated run) and `spec-decoding` it ran. This script walks that file's history in a local
clone of the repository (up to the day the sample's database was dumped) and writes one row per recipe
entry and concurrency whose image some sample row names, with the newest commit that holds it, and the KV
cache dtype its launch script gives the engine at that commit (`--kv-cache-dtype` for SGLang and vLLM,
`kv_cache_config: dtype:` for TensorRT-LLM; `auto` where it gives none; empty where a shell variable sets
it, where no single script is found, and for multi-node recipes, whose launch configuration lives outside
the repository). A script is read at the config's commits: one changed between two of them counts from the
next.

    .venv/bin/python scripts/inferencex_recipes.py PATH/TO/InferenceX [--until 2026-04-27]

No row is invented or edited: a sample row that matches no entry keeps what it records.
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from costmodel.inputs import kernel_db  # noqa: E402
from costmodel.inputs.recipes import COLUMNS, RECIPES_CSV, image_of  # noqa: E402

CONFIG = ".github/configs/nvidia-master.yaml"
DATED = ("source_commit", "from_date", "to_date")  # what an entry's identity leaves out


def git(repo: Path, *args: str) -> str:
    """The output of one git command in `repo`."""
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def commits(repo: Path, until: str) -> list[tuple[str, str]]:
    """(sha, date) of every commit that changed the recipes file, oldest first."""
    lines = git(repo, "log", "--reverse", "--format=%H %ad", "--date=short", f"--before={until}T23:59:59", "--", CONFIG)
    return [tuple(line.split()) for line in lines.splitlines() if line.strip()]


def concurrencies(entry: dict) -> list[int]:
    """An entry's concurrencies: its `conc-list`, or conc-start doubling up to conc-end."""
    if "conc-list" in entry:
        return [int(c) for c in entry["conc-list"]]
    out, c = [], entry.get("conc-start")
    while c is not None and c <= entry.get("conc-end", c):
        out.append(int(c))
        c *= 2
    return out


def worker(spec: dict | None) -> tuple:
    """(tp, ep, dp_attn, workers) of one worker's search-space entry ("" for what is not given)."""
    if spec is None:
        return ("", "", "", "")
    return (spec.get("tp", ""), spec.get("ep", 1), str(bool(spec.get("dp-attn", False))).lower(),
            spec.get("num-worker", ""))


def image_name(recipe: dict) -> str:
    """A recipe's engine image in the `nvcr.io/...` spelling recipes.image_of gives the sample's rows."""
    return str(recipe.get("image", "")).replace("#", "/")


KV_FLAG = re.compile(r"--kv-cache-dtype[ =]+(\S+)")  # SGLang's and vLLM's server flag
KV_CONFIG = re.compile(r"kv_cache_config:\s*\n((?:[ \t]+\S.*\n?)+)")  # TensorRT-LLM's extra YAML block
RUNNER_SUFFIXES = ("", "_docker", "_slurm")  # older commits kept a launch script a runner kind


def script_paths(recipe: dict, spec: str) -> list[str]:
    """Where a single-node recipe's launch script may lie (the runners' rule, runners/launch_*-nv.sh:
    benchmarks/[single_node/]{model}_{precision}_{gpu}_{framework}{_mtp}.sh, else with `_trt` for TensorRT-LLM
    and nothing for SGLang), at any commit's layout."""
    base = f"{recipe.get('model-prefix', '')}_{recipe.get('precision', '')}_{str(recipe.get('runner', '')).split('-')[0]}"
    framework = str(recipe.get("framework", ""))
    mtp = "_mtp" if spec == "mtp" else ""
    names = [f"{base}_{framework}{mtp}", f"{base}{'_trt' if framework == 'trt' else ''}{mtp}"]
    return [f"benchmarks/{folder}{n}{suffix}.sh" for folder in ("single_node/", "") for n in names
            for suffix in RUNNER_SUFFIXES]


def kv_cache_dtype(script: str) -> str:
    """The KV cache dtype a launch script gives its engine: `fp8` (SGLang's fp8_e4m3 too), `auto` where it
    gives none (the engine's default), or "" where a shell variable sets it."""
    flag = KV_FLAG.search(script)
    block = KV_CONFIG.search(script)
    found = flag.group(1) if flag else None
    if found is None and block:
        dtype = re.search(r"^\s*dtype:\s*(\S+)", block.group(1), re.MULTILINE)
        found = dtype.group(1) if dtype else None
    if found is None:
        return "auto"
    if "$" in found:
        return ""
    return "fp8" if found.lower().startswith("fp8") else found.lower()


class Scripts:
    """The launch scripts of one commit (path -> blob), each blob's KV cache dtype read once."""

    def __init__(self, repo: Path):
        self.repo, self.blobs, self.kv = repo, {}, {}

    def at(self, sha: str) -> None:
        listing = git(self.repo, "ls-tree", "-r", sha, "--", "benchmarks")
        self.blobs = {line.split("\t")[1]: line.split()[2] for line in listing.splitlines() if "\t" in line}

    def kv_dtype(self, recipe: dict, spec: str) -> str:
        """The KV cache dtype of a single-node recipe's launch scripts, where every one found agrees; "" for
        a multi-node recipe (its launch configuration lives outside the repository) or where none is found."""
        if recipe.get("multinode"):
            return ""
        found = {self._read(self.blobs[path]) for path in script_paths(recipe, spec) if path in self.blobs}
        return found.pop() if len(found) == 1 else ""

    def _read(self, blob: str) -> str:
        if blob not in self.kv:
            self.kv[blob] = kv_cache_dtype(git(self.repo, "cat-file", "blob", blob))
        return self.kv[blob]


def entry_rows(name: str, recipe: dict, sha: str, scripts: Scripts | None = None) -> list[dict]:
    """One row per (ISL, OSL), search-space entry and concurrency of a recipe, with the KV cache dtype of
    its launch script at `sha` where `scripts` reads them."""
    precision = str(recipe.get("precision", ""))
    base = {"recipe": name, "model_prefix": recipe.get("model-prefix", ""),
            "gpu": str(recipe.get("runner", "")).split("-")[0], "framework": recipe.get("framework", ""),
            "precision": "fp4" if precision == "nvfp4" else precision,  # the sample's spelling of NVFP4
            "image": image_name(recipe), "source_commit": sha}
    rows = []
    for lengths in recipe.get("seq-len-configs", []):
        for entry in lengths.get("search-space", []):
            pre = worker(entry.get("prefill"))
            dec = worker(entry["decode"]) if "decode" in entry else worker(entry)[:3] + ("",)
            sides = {f"{side}_{k}": v for side, w in (("prefill", pre), ("decode", dec))
                     for k, v in zip(("tp", "ep", "dp_attn", "workers"), w, strict=True)}
            spec = entry.get("spec-decoding", "none")
            kv = scripts.kv_dtype(recipe, spec) if scripts else ""
            rows += [{**base, "isl": lengths["isl"], "osl": lengths["osl"], "concurrency": c, **sides,
                      "spec_decoding": spec, "kv_cache_dtype": kv} for c in concurrencies(entry)]
    return rows


def entries_over_history(repo: Path, until: str, images: set[str]) -> dict[tuple, dict]:
    """Every entry of an image in `images` over the file's history, with the dates it was in force: from
    the first commit that holds it (`from_date`) to the first later commit that no longer does (`to_date`;
    `until` if none), and the newest commit that holds it."""
    found: dict[tuple, dict] = {}
    scripts = Scripts(repo)
    for sha, day in commits(repo, until):
        doc = yaml.load(git(repo, "show", f"{sha}:{CONFIG}"), Loader=yaml.CSafeLoader) or {}
        scripts.at(sha)
        seen = set()
        for name, recipe in doc.items():
            if isinstance(recipe, dict) and image_name(recipe) in images:
                for row in entry_rows(name, recipe, sha[:12], scripts):
                    key = tuple(row[c] for c in COLUMNS if c not in DATED)
                    seen.add(key)
                    first = found.get(key, {}).get("from_date", day)
                    found[key] = {**row, "from_date": first, "to_date": until}  # the newest commit wins
        for key, row in found.items():
            if key not in seen and row["to_date"] == until:
                row["to_date"] = day  # gone from this commit on (a later return keeps its first date)
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repo", type=Path, help="a clone of github.com/SemiAnalysisAI/InferenceX")
    ap.add_argument("--until", default="2026-04-27", help="the sample database's dump date")
    args = ap.parse_args()
    with (kernel_db.systems_dir() / "silicon_sample.csv").open(newline="") as f:
        images = {image_of(row["silicon_data_source"] or "") for row in csv.DictReader(f)} - {""}
    found = entries_over_history(args.repo, args.until, images)
    RECIPES_CSV.parent.mkdir(parents=True, exist_ok=True)
    with RECIPES_CSV.open("w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        out.writeheader()
        out.writerows(sorted(found.values(), key=lambda r: tuple(str(r[c]) for c in COLUMNS)))
    print(f"wrote {len(found)} recipe rows to {RECIPES_CSV.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
