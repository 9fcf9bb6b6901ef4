"""What each memory-saving choice of a training scenario is worth: peak memory per GPU and GPU-hours
per trillion tokens with each choice turned off in turn (a Markdown table on stdout).

    .venv/bin/python scripts/memory_choices.py scenarios/deepseek-v3-pretrain.yaml
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from costmodel.app.study import open_study, override  # noqa: E402
from costmodel.counts.memory import training_memory  # noqa: E402
from costmodel.sim.train_sim import simulate_training  # noqa: E402

CHOICES = {  # label -> the override that turns the choice off
    "as published": {},
    "activations cached in BF16, not FP8": {"training.memory.activation_bytes": 2},
    "Adam moments in FP32, not BF16": {"training.memory.optimizer_moment_bytes": 4},
    "EMA on the GPU, not the CPU": {"training.memory.ema_on_gpu": True},
    "no selective recompute": {"training.parallelism.recompute": "none"},
    "1F1B instead of DualPipe": {"training.parallelism.schedule": "1f1b"},
}


def main(path: str) -> None:
    st = open_study(Path(path))
    v = next(x for x in st.scenario.variants if x.training is not None)
    print("| choice turned off | peak memory / GPU | fits | GPU-hours / T tokens |\n|---|---|---|---|")
    for label, change in CHOICES.items():
        t = override(st, v.name, change).variant(v.name).training  # re-validated like a file
        mem = training_memory(v.model, t)
        r = simulate_training(v.name, v.model, t)  # the step as if it fitted
        print(f"| {label} | {mem.total_bytes / 1e9:.1f} GB of {mem.capacity_bytes / 1e9:.0f} | "
              f"{'yes' if mem.fits else 'no'} | {r.gpu_hours_per_trillion_tokens / 1e3:,.1f}K |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "scenarios/deepseek-v3-pretrain.yaml")
