"""moe-planner dashboard. Placeholder until the dashboard issue lands: it shows the analytic report of
the default scenario through the same costmodel API the CLI uses (no formulas here)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from costmodel.errors import PlannerError
from costmodel.loader import load_scenario
from costmodel.report import build_report

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

st.set_page_config(page_title="moe-planner", layout="wide")
st.title("moe-planner")
st.caption("Placeholder page: the full dashboard (training, serving, kernels, sweeps) is on the way.")

files = sorted(p.name for p in SCENARIOS.glob("*.yaml"))
choice = st.selectbox("Scenario", files, index=files.index("deepseek-v2-paper.yaml") if "deepseek-v2-paper.yaml" in files else 0)
try:
    report = build_report(load_scenario(SCENARIOS / choice))
except PlannerError as e:
    st.error(str(e))
    st.stop()

st.subheader(report.description or report.scenario)
rows = [
    {
        "variant": v.name,
        "params total (B)": round(v.params_total / 1e9, 2),
        "params active (B)": round(v.params_active / 1e9, 2),
        "KV cache (KB/token)": round(v.kv_cache_bytes_per_token / 1e3, 1),
        "train GFLOP/token": round(v.train_flops_per_token / 1e9, 1),
    }
    for v in report.variants
]
st.dataframe(rows, hide_index=True)
for c in report.comparisons:
    if c.metric == "kv_cache_bytes_per_token":
        st.metric(f"KV cache per token, {c.variant} vs {c.baseline}", f"{c.variant_value / 1e3:.1f} KB", f"{c.change_pct:+.1f}%",
                  delta_color="inverse")
