"""Bad input, end to end: one reproduction per class of issue 15's table, each run as a new user runs it
(the installed `planner` in a fresh process), timed. Each must end with exit 2 and one message that names
the file, field or option, or succeed with strict JSON, within 10 seconds, never with a traceback.

Writes benchmarks/results/bad-input.{json,md}; exits 1 when a case breaks the contract (the time is
reported, not asserted: this machine is shared)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLANNER = str(Path(sys.executable).parent / "planner")
SC = ROOT / "scenarios"
PAPER = (SC / "deepseek-v2-paper.yaml").read_text()
LITE = (SC / "models" / "deepseek-v2-lite.yaml").read_text()
CHAT = (SC / "workloads" / "deepseek-chat-assumed.yaml").read_text()
SWEEP = (SC / "sweeps" / "deepseek-v2-training.yaml").read_text().replace("base: ../", f"base: {SC}/")
LIMIT_S = 10.0
LIMIT_BYTES = 1_000_000_000  # issue 22: each probe within 1 GB
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8)) + "description: *i\n"


def paper_with(workload: str) -> str:
    return PAPER.replace("workload: deepseek-chat-assumed", f"workload: {workload}")


def sweep_axes(axes: str) -> str:
    start = SWEEP.index("axes:")
    return SWEEP[:start] + f"axes: {axes}\n" + SWEEP[SWEEP.index("objectives:"):]


# (class, case, {relative path: text or bytes}, argv after `planner`, "json" when stdout must be strict JSON)
CASES = [
    ("non-finite numbers", "model hidden_size: .inf", {"m.yaml": LITE.replace("hidden_size: 2048", "hidden_size: .inf")},
     ["validate", "m.yaml"], ""),
    ("non-finite numbers", "GPU hbm_bytes value: .inf", {"g.yaml": (SC / "gpus" / "h800.yaml").read_text()
     .replace("hbm_bytes: {value: 80.0e9", "hbm_bytes: {value: .inf")}, ["validate", "g.yaml"], ""),
    ("non-finite numbers", "training tokens: .inf", {"s.yaml": PAPER.replace("tokens: 8.1e12", "tokens: .inf", 1)},
     ["simulate", "train", "s.yaml", "--format", "json"], "json"),
    ("NaN in JSON", "1-token outputs (no TPOT)", {"workloads/one.yaml": CHAT.replace(
        "output_tokens: {dist: lognormal, median: 300, sigma: 0.8, max: 1024}", "output_tokens: {dist: fixed, value: 1}"),
        "s.yaml": paper_with("one")}, ["simulate", "serve", "s.yaml", "--requests", "50", "--format", "json"], "json"),
    ("encodings and depth", "UTF-16 model file", {"m.yaml": LITE.encode("utf-16")}, ["validate", "m.yaml"], ""),
    ("encodings and depth", "Latin-1 model file", {"m.yaml": "source: caf\xe9\n".encode("latin-1") + LITE.encode()},
     ["validate", "m.yaml"], ""),
    ("encodings and depth", "3,000-deep nesting", {"m.yaml": "a: " + "[" * 3000 + "]" * 3000 + "\n"}, ["validate", "m.yaml"], ""),
    ("encodings and depth", "5,000-digit integer", {"m.yaml": LITE.replace("vocab_size: 102400", "vocab_size: " + "9" * 5000)},
     ["validate", "m.yaml"], ""),
    ("size and time", "billion laughs in description", {"m.yaml": LAUGHS}, ["validate", "m.yaml"], ""),
    ("size and time", "5 MB YAML", {"m.yaml": LITE + "description: " + "a" * 5_000_000 + "\n"}, ["validate", "m.yaml"], ""),
    ("size and time", "max_running: 1 (iteration budget)", {"s.yaml": PAPER.replace(
        "kv_bits: 6 ", "kv_bits: 6\n      max_running: 1 ", 1)}, ["simulate", "serve", "s.yaml", "--variant", "deepseek-v2"], ""),
    ("size and time", "--requests 20 bounds the saturated runs", {"s.yaml": PAPER},
     ["simulate", "serve", "s.yaml", "--requests", "20", "--format", "json"], "json"),
    ("CLI values", "--requests 0", {"s.yaml": PAPER}, ["simulate", "serve", "s.yaml", "--requests", "0"], ""),
    ("CLI values", "--requests -5", {"s.yaml": PAPER}, ["simulate", "serve", "s.yaml", "--requests", "-5"], ""),
    ("CLI values", "workload seed: -1", {"w.yaml": CHAT.replace("seed: 0", "seed: -1")}, ["validate", "w.yaml"], ""),
    ("CLI values", "lognormal sigma: 50", {"w.yaml": CHAT.replace("sigma: 0.8", "sigma: 50", 1)}, ["validate", "w.yaml"], ""),
    ("CLI values", "empty trace CSV", {"workloads/t.yaml": "prompt_tokens: {value: 100}\noutput_tokens: {value: 10}\n"
     "arrival: trace\ntrace_csv: t.csv\n", "workloads/t.csv": "", "s.yaml": paper_with("t")}, ["simulate", "serve", "s.yaml"], ""),
    ("CLI values", "--trace is a directory", {"s.yaml": PAPER, "d/x": ""}, ["simulate", "train", "s.yaml", "--trace", "d"], ""),
    ("import-hf", "Mixtral without num_local_experts", {"config.json": json.dumps({
        "model_type": "mixtral", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
        "num_key_value_heads": 8, "vocab_size": 32000, "intermediate_size": 14336, "num_experts_per_tok": 2})},
     ["import-hf", "config.json"], ""),
    ("import-hf", "qwen3_moe without num_experts", {"config.json": json.dumps({
        "model_type": "qwen3_moe", "hidden_size": 2048, "num_hidden_layers": 48, "num_attention_heads": 32,
        "num_key_value_heads": 4, "vocab_size": 151936, "moe_intermediate_size": 768, "num_experts_per_tok": 8})},
     ["import-hf", "config.json"], ""),
    ("silent wrong numbers", "prompts beyond the model's context", {"workloads/long.yaml": CHAT.replace(
        "prompt_tokens: {dist: lognormal, median: 700, sigma: 0.8, max: 3072}", "prompt_tokens: {value: 200000}"),
        "s.yaml": paper_with("long")}, ["simulate", "serve", "s.yaml", "--variant", "deepseek-v2"], ""),
    ("silent wrong numbers", "lognormal median: 1e30", {"w.yaml": CHAT.replace("median: 700", "median: 1e30")},
     ["validate", "w.yaml"], ""),
    ("silent wrong numbers", "negative tokens in a trace", {"workloads/t.yaml": "prompt_tokens: {value: 100}\n"
     "output_tokens: {value: 10}\narrival: trace\ntrace_csv: t.csv\n", "workloads/t.csv":
     "arrival_s,prompt_tokens,output_tokens\n0,-5,10\n", "s.yaml": paper_with("t")}, ["simulate", "serve", "s.yaml"], ""),
    ("sweep axes", "tp: [0]", {"sw.yaml": sweep_axes("{tp: [0]}")}, ["sweep", "sw.yaml", "--sequential", "--out", "r.jsonl"], ""),
    ("sweep axes", 'tp: ["a"]', {"sw.yaml": sweep_axes('{tp: ["a"]}')}, ["sweep", "sw.yaml", "--sequential", "--out", "r.jsonl"], ""),
    ("sweep axes", "micro_batches: [0]", {"sw.yaml": sweep_axes("{micro_batches: [0]}")},
     ["sweep", "sw.yaml", "--sequential", "--out", "r.jsonl"], ""),
    ("sweep axes", "nested lists", {"sw.yaml": sweep_axes("{ep: [[8, 16]]}")}, ["sweep", "sw.yaml", "--sequential", "--out", "r.jsonl"], ""),
    ("one bad point", "a layout that does not fit, among good ones", {"sw.yaml": sweep_axes("{ep: [8, 160]}")},
     ["sweep", "sw.yaml", "--sequential", "--out", "r.jsonl", "--format", "json"], "json"),
    ("results file", "a file that is not a journal, --resume", {"sw.yaml": sweep_axes("{ep: [8]}"), "r.jsonl": "42\n"},
     ["sweep", "sw.yaml", "--sequential", "--out", "r.jsonl", "--resume", "--format", "json"], "json"),
    ("minor", "duplicate YAML key", {"m.yaml": LITE + "hidden_size: 1024\n"}, ["validate", "m.yaml"], ""),
    ("minor", "num_hidden_layers: true", {"m.yaml": LITE.replace("num_hidden_layers: 27", "num_hidden_layers: true")},
     ["validate", "m.yaml"], ""),
    ("minor", "unknown objective metric", {"sw.yaml": SWEEP.replace("metric: days_total", "metric: dayz_total")},
     ["validate", "sw.yaml"], ""),
    ("minor", "duplicate axis values", {"sw.yaml": sweep_axes("{ep: [8, 8]}")}, ["validate", "sw.yaml"], ""),
]


FIFO = ("fifo",)  # a file value that makes a named pipe instead of a file
PROFILE_HEAD = "# peak_matmul_flops_per_s: 1e11\n# peak_copy_bytes_per_s: 5e10\n# device: cpu\nop,pass,dtype,shape,median_s,status\n"
PROFILE_ROW = 'gemm,fwd,float32,"{{""m"": 32, ""n"": 64, ""k"": 128}}",{t},ok\n'
TRACE_WORKLOAD = "prompt_tokens: {value: 100}\noutput_tokens: {value: 10}\narrival: trace\ntrace_csv: t.csv\n"
SERVE_SWEEP = (SC / "sweeps" / "deepseek-v2-serving.yaml").read_text().replace("base: ../", f"base: {SC}/")
V3_CONFIG = {"model_type": "deepseek_v3", "hidden_size": 7168, "num_hidden_layers": 61, "num_attention_heads": 128,
             "vocab_size": 129280, "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_nope_head_dim": 128,
             "qk_rope_head_dim": 64, "v_head_dim": 128, "intermediate_size": 18432, "index_topk": 2048,
             "index_n_heads": 64, "index_head_dim": 128}
MI300X = ("name: mi300x-like\npeak_flops_per_s:\n  bf16: {value: 1.3e15, source: 'ASSUMPTION: probe'}\n"
          "  fp8: {value: 2.6e15, source: 'ASSUMPTION: probe'}\nhbm_bytes: {value: 192.0e9, source: 'ASSUMPTION: probe'}\n"
          "hbm_bw_bytes_per_s: {value: 5.3e12, source: 'ASSUMPTION: probe'}\n"
          "nvlink_bw_bytes_per_s: {value: 64.0e9, source: 'ASSUMPTION: probe'}\n"
          "nic_bw_bytes_per_s: {value: 50.0e9, source: 'ASSUMPTION: probe'}\n"
          "price_usd_per_hour: {value: 2.0, source: 'ASSUMPTION: probe'}\n")

# Issue 22's probe classes (each run through the installed CLI as above).
CASES += [
    ("not a regular file", "a scenario that is /dev/zero", {}, ["validate", "/dev/zero"], ""),
    ("not a regular file", "a scenario that is a FIFO", {"f.yaml": FIFO}, ["validate", "f.yaml"], ""),
    ("not a regular file", "a symlink to /dev/zero", {"l.yaml": ("symlink", "/dev/zero")}, ["validate", "l.yaml"], ""),
    ("not a regular file", "import-hf /dev/zero", {}, ["import-hf", "/dev/zero"], ""),
    ("not a regular file", "a trace that is a FIFO", {"workloads/t.yaml": TRACE_WORKLOAD, "workloads/t.csv": FIFO,
     "s.yaml": paper_with("t")}, ["simulate", "serve", "s.yaml"], ""),
    ("size", "50 MB scenario (the dashboard's upload limit is the same)", {"s.yaml": PAPER + "# " + "a" * 50_000_000 + "\n"},
     ["validate", "s.yaml"], ""),
    ("profile CSV", "header only", {"p.csv": PROFILE_HEAD}, ["check-timing", "p.csv"], ""),
    ("profile CSV", "ragged row", {"p.csv": PROFILE_HEAD + PROFILE_ROW.format(t="1e-3") + "gemm,fwd\n"}, ["check-timing", "p.csv"], ""),
    ("profile CSV", "NaN time", {"p.csv": PROFILE_HEAD + PROFILE_ROW.format(t="nan")}, ["check-timing", "p.csv"], ""),
    ("profile CSV", "negative time", {"p.csv": PROFILE_HEAD + PROFILE_ROW.format(t="-1e-3")}, ["check-timing", "p.csv"], ""),
    ("profile CSV", "zero time", {"p.csv": PROFILE_HEAD + PROFILE_ROW.format(t="0")}, ["check-timing", "p.csv"], ""),
    ("profile CSV", "shape not a JSON object", {"p.csv": PROFILE_HEAD + "gemm,fwd,float32,[1],1e-3,ok\n"},
     ["check-timing", "p.csv"], ""),
    ("profile CSV", "million rows", {"p.csv": PROFILE_HEAD + PROFILE_ROW.format(t="1e-3") * 1_000_000},
     ["check-timing", "p.csv"], ""),
    ("profile CSV", "validate-sim --profile with a NaN time", {"p.csv": PROFILE_HEAD + PROFILE_ROW.format(t="nan")},
     ["validate-sim", "--profile", "p.csv"], ""),
    ("work budget", "requests: 10000000", {"workloads/w.yaml": CHAT.replace("requests: 20000", "requests: 10000000"),
     "s.yaml": paper_with("w")}, ["simulate", "serve", "s.yaml"], ""),
    ("work budget", "--requests 10000000", {"s.yaml": PAPER}, ["simulate", "serve", "s.yaml", "--requests", "10000000"], ""),
    ("work budget", "million-row trace", {"workloads/t.yaml": TRACE_WORKLOAD, "workloads/t.csv":
     "arrival_s,prompt_tokens,output_tokens\n" + "0,100,10\n" * 1_000_000, "s.yaml": paper_with("t")},
     ["simulate", "serve", "s.yaml"], ""),
    ("work budget", "million-point sweep", {"sw.yaml": sweep_axes("{global_batch_seqs: [" + ", ".join(
        str(4608 + 8 * i) for i in range(1000)) + "], seq_len: [" + ", ".join(str(1024 + i) for i in range(1000)) + "]}")},
     ["sweep", "sw.yaml", "--out", "r.jsonl"], ""),
    ("misleading errors", "ep that does not divide the experts", {"s.yaml": PAPER.replace(
        "      cluster: h800-node      # V2P §3.2.3: one node of 8 H800\n      parallelism:\n        tp: 1                 # "
        "ASSUMPTION: attention data-parallel, since the MLA latent cache cannot be split by head\n        dp: 8\n        ep: 8",
        "      cluster: {gpu: h800, gpus_per_node: 6, nodes: 1}\n      parallelism:\n        tp: 1\n        dp: 6\n        ep: 3")}, ["validate", "s.yaml"], ""),
    ("misleading errors", "sweep variant: nope", {"sw.yaml": SWEEP.replace("variant: deepseek-v2", "variant: nope")},
     ["sweep", "sw.yaml", "--sequential", "--out", "r.jsonl"], ""),
    ("misleading errors", "sweep base: itself", {"sw.yaml": SWEEP.replace(f"base: {SC}/deepseek-v2-paper.yaml", "base: sw.yaml")},
     ["sweep", "sw.yaml", "--sequential", "--out", "r.jsonl"], ""),
    ("misleading errors", "sweep requests: 1e10", {"sw.yaml": SERVE_SWEEP.replace("requests: 1500", "requests: 1e10")},
     ["validate", "sw.yaml"], ""),
    ("misleading errors", "sweep requests: true", {"sw.yaml": SERVE_SWEEP.replace("requests: 1500", "requests: true")},
     ["validate", "sw.yaml"], ""),
    ("misleading errors", "axis rate_per_s: [1e3] is a number", {"sw.yaml": SERVE_SWEEP.replace("kv_bits: [16, 8, 6]",
     "rate_per_s: [1e1]").replace("gpu: [h800, h200, b200]", "gpu: [h800]")}, ["validate", "sw.yaml"], ""),
    ("misleading errors", "constraint with neither max nor min", {"sw.yaml": SERVE_SWEEP.replace(
        "{metric: ttft_p99_s, max: 2.0}", "{metric: ttft_p99_s}")}, ["validate", "sw.yaml"], ""),
    ("misleading errors", "import-hf DeepSeek-V3.2 indexer", {"config.json": json.dumps(V3_CONFIG)},
     ["import-hf", "config.json"], ""),
    ("misleading errors", "MI300X-like node at 400 requests/s (overload stated)", {"gpus/mi300x.yaml": MI300X,
     "workloads/hot.yaml": CHAT.replace("rate_per_s: 8", "rate_per_s: 400"), "s.yaml": paper_with("hot").replace(
         "cluster: h800-node", "cluster: {gpu: mi300x, gpus_per_node: 8, nodes: 1}")},
     ["simulate", "serve", "s.yaml", "--variant", "deepseek-v2", "--requests", "3000", "--format", "json"], "json"),
]


def strict_json(text: str) -> bool:
    try:
        json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    except ValueError:
        return False
    return True


def _write(p: Path, body) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    if body == FIFO:
        os.mkfifo(p)
    elif isinstance(body, tuple):
        p.symlink_to(body[1])
    else:
        p.write_bytes(body if isinstance(body, bytes) else body.encode())


def _run(argv: list[str], cwd: str) -> tuple[subprocess.CompletedProcess, float, int]:
    """(result, seconds, peak resident bytes) of one run; wait4 gives this child's own peak memory."""
    start = time.perf_counter()
    proc = subprocess.Popen([PLANNER, *argv], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    streams: dict[str, bytes] = {}
    readers = [threading.Thread(target=lambda n=n: streams.__setitem__(n, getattr(proc, n).read())) for n in ("stdout", "stderr")]
    for t in readers:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    for t in readers:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = {n: streams[n].decode(errors="replace") for n in streams}
    return subprocess.CompletedProcess(argv, proc.returncode, text["stdout"], text["stderr"]), seconds, usage.ru_maxrss * 1024


def run_case(files: dict, argv: list[str], want_json: str) -> dict:
    """One reproduction in a fresh folder: its exit code, seconds, peak memory, message and verdict."""
    with tempfile.TemporaryDirectory() as tmp:
        for rel, body in files.items():
            _write(Path(tmp) / rel, body)
        out, seconds, peak_bytes = _run(argv, tmp)
    message = [line for line in out.stderr.splitlines() if line.startswith("error:")]  # warnings may precede it
    ok = out.returncode in (0, 2) and "Traceback" not in out.stderr + out.stdout
    ok = ok and (out.returncode == 2 and len(message) == 1 or out.returncode == 0 and (not want_json or strict_json(out.stdout)))
    return {"exit": out.returncode, "seconds": round(seconds, 2), "peak_mb": round(peak_bytes / 1e6),
            "ok": ok and peak_bytes <= LIMIT_BYTES, "within_limit": seconds <= LIMIT_S,
            "message": (message[0][:300] if message else "") if out.returncode else "(succeeded)"}


def main() -> int:
    rows = []
    for klass, case, files, argv, want_json in CASES:
        r = {"class": klass, "case": case, "command": "planner " + " ".join(argv), **run_case(files, argv, want_json)}
        rows.append(r)
        print(f"{'ok ' if r['ok'] else 'BAD'} {r['seconds']:6.2f} s {r['peak_mb']:5d} MB  exit {r['exit']}  {klass}: {case}: {r['message'][:110]}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bad-input.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["| class | case | exit | seconds | peak MB | message |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['class']} | {r['case']} | {r['exit']} | {r['seconds']:.2f} | {r['peak_mb']} | "
              f"{r['message'].replace('|', '/')} |" for r in rows]
    (out / "bad-input.md").write_text("\n".join(lines) + "\n")
    slowest = max(rows, key=lambda r: r["seconds"])
    print(f"{sum(r['ok'] for r in rows)}/{len(rows)} cases keep the contract; slowest {slowest['seconds']:.2f} s "
          f"({slowest['case']}); limit {LIMIT_S:.0f} s")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
