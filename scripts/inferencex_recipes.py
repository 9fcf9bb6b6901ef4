"""The InferenceX recipes behind the silicon sample's rows, as the CSV check-serving joins them to
(`scenarios/measured/inferencex-recipes.csv`; INFX in docs/sources.md).

InferenceX (github.com/SemiAnalysisAI/InferenceX) names every benchmark it runs in
`.github/configs/nvidia-master.yaml`: per recipe its engine image, GPU runner, framework and precision, and
per (ISL, OSL) the concurrencies, layouts (`tp`, `ep`, `dp-attn`, and `num-worker` per prefill and decode
worker of a disaggregated run) and `spec-decoding` it ran. This script walks that file's history in a local
clone of the repository (up to the day the sample's database was dumped) and writes one row per recipe
entry and concurrency whose image some sample row names, with the newest commit that holds it.

    .venv/bin/python scripts/inferencex_recipes.py PATH/TO/InferenceX [--until 2026-04-27]

No row is invented or edited: a sample row that matches no entry keeps what it records.
"""

from __future__ import annotations

import argparse
import csv
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


def entry_rows(name: str, recipe: dict, sha: str) -> list[dict]:
    """One row per (ISL, OSL), search-space entry and concurrency of a recipe."""
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
            rows += [{**base, "isl": lengths["isl"], "osl": lengths["osl"], "concurrency": c, **sides,
                      "spec_decoding": entry.get("spec-decoding", "none")} for c in concurrencies(entry)]
    return rows


def entries_over_history(repo: Path, until: str, images: set[str]) -> dict[tuple, dict]:
    """Every entry of an image in `images` over the file's history, with the dates it was in force: from
    the first commit that holds it (`from_date`) to the first later commit that no longer does (`to_date`;
    `until` if none), and the newest commit that holds it."""
    found: dict[tuple, dict] = {}
    for sha, day in commits(repo, until):
        doc = yaml.load(git(repo, "show", f"{sha}:{CONFIG}"), Loader=yaml.CSafeLoader) or {}
        seen = set()
        for name, recipe in doc.items():
            if isinstance(recipe, dict) and image_name(recipe) in images:
                for row in entry_rows(name, recipe, sha[:12]):
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
