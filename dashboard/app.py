"""moe-planner dashboard: `streamlit run dashboard/app.py` (or `make run`)."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `streamlit run` from any folder

from dashboard import pages  # noqa: E402

st.set_page_config(page_title="moe-planner", layout="wide")
if pages.scenario_bar():
    nav = st.navigation([st.Page(pages.overview, title="Overview", default=True, url_path="overview"),
                         st.Page(pages.training, title="Training", url_path="training"),
                         st.Page(pages.serving, title="Serving", url_path="serving"),
                         st.Page(pages.kernels, title="Kernels", url_path="kernels"),
                         st.Page(pages.sweeps, title="Sweeps", url_path="sweeps"),
                         st.Page(pages.plan, title="Plan", url_path="plan")])
    nav.run()
