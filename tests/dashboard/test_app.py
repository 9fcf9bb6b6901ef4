"""The dashboard page runs without an exception and shows the CLI's numbers."""

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT


def test_placeholder_page_shows_kv_saving():
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=30).run()
    assert not at.exception
    (metric,) = at.metric
    assert metric.value == "25.9 KB" and metric.delta == "-93.3%"
