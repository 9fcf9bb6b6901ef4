"""moe-planner dashboard: `streamlit run dashboard/app.py` (or `make run`)."""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `streamlit run` from any folder

from dashboard import pages  # noqa: E402

st.set_page_config(page_title="moe-planner", layout="wide")
# Streamlit serves its default page at "/" only; the same Overview is also registered at /overview (like
# every other page at /<name>), so the navigation is drawn here rather than by Streamlit, without the alias.
home = st.Page(pages.overview, title="Overview", default=True, url_path="home")  # served at "/"
shown = [home, st.Page(pages.training, title="Training", url_path="training"),
         st.Page(pages.serving, title="Serving", url_path="serving"),
         st.Page(pages.kernels, title="Kernels", url_path="kernels"),
         st.Page(pages.sweeps, title="Sweeps", url_path="sweeps"),
         st.Page(pages.plan, title="Plan", url_path="plan"),
         st.Page(pages.validation, title="Validation", url_path="validation")]
nav = st.navigation([*shown, st.Page(pages.overview, title="Overview (/overview)", url_path="overview")], position="hidden")
with st.sidebar:
    for page in shown:
        st.page_link(page)
valid = pages.scenario_bar()  # on every page, so the picked scenario stays in the URL
if valid or nav.url_path in ("plan", "validation"):  # these read plan and check files, not the scenario
    nav.run()
