"""The dashboard in a real browser: streamlit serves it on a free port, headless Chromium (Debian's,
driven by playwright) loads the overview, waits for the plotly charts to draw, and takes a screenshot."""

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile

import pytest

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = ROOT / ".cache" / "screenshots" / "overview.png"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
                             "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port),
                             "--browser.gatherUsageStats", "false"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("streamlit did not answer its health check within 60 s")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for every test here; each test opens its own page (a fresh context)."""
    from playwright.sync_api import sync_playwright

    assert shutil.which("chromium") or __import__("os").path.exists(CHROMIUM), "make test installs chromium"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def test_overview_in_chromium(server, browser):
    """The Overview at / (one page load for three checks; each load is seconds of Chromium): its charts
    with no error, its title, and its delta colours. Green is better: lower GPU-hours and KV cache, higher
    throughput. Against V2 as the baseline the 67B is worse on all three, so all three are red with a minus
    sign on the throughput (once drawn green as '0.15x'); against the 67B, V2 is better on all three."""
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.goto(server, timeout=60_000)
    page.wait_for_selector('[data-testid="stPlotlyChart"] .js-plotly-plot .main-svg', timeout=240_000)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=240_000)
    page.wait_for_function("document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .main-svg').length >= 3",
                           timeout=120_000)
    charts = page.locator('[data-testid="stPlotlyChart"]').count()
    errors = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').count()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    text = page.locator('[data-testid="stPlotlyChart"]').first.text_content()
    heading, body = page.locator("h1").first.text_content(), page.locator("body").text_content()
    against_67b, against_v2 = _deltas_against_both_baselines(page)
    page.close()
    assert charts >= 3
    assert errors == 0
    assert "KV cache" in text and "Training cost" in text
    assert "Overview" in heading and "Page not found" not in body
    wanted = {"GPU-hours / T tokens", "KV cache / token", "Max generation tok/s"}
    assert {label for label, _, _ in against_67b} == wanted == {label for label, _, _ in against_v2}
    assert all(colour == "green" for _, _, colour in against_67b), against_67b
    assert all(colour == "red" for _, _, colour in against_v2), against_v2
    throughput = next(delta for label, delta, _ in against_v2 if label == "Max generation tok/s")
    assert throughput.startswith("-") and throughput.endswith("%"), throughput


def test_invalid_uploaded_yaml_shows_the_error(server, browser, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nvariants:\n  - name: a\n    model: deepseek-v9\n")
    page = browser.new_page()
    page.goto(server, timeout=60_000)
    page.wait_for_selector('[data-testid="stFileUploader"]', timeout=120_000)
    page.set_input_files('[data-testid="stFileUploader"] input[type="file"]', str(bad))
    alert = page.wait_for_selector('[data-testid="stAlertContentError"]', timeout=120_000)
    message = alert.text_content()
    tracebacks = page.locator('[data-testid="stException"]').count()
    page.close()
    assert "bad.yaml" in message and "no model named 'deepseek-v9'" in message and "Fix:" in message
    assert tracebacks == 0


def test_plan_page_in_chromium(server, browser):
    """The Plan page at its URL answers the first bundled plan (its screenshot is the README's), shows each
    headline figure whole at 1,400 px, and downloads the recommended deployment's launch files as a zip."""
    page = browser.new_page(viewport={"width": 1400, "height": 1600}, accept_downloads=True)
    page.goto(f"{server}/plan", timeout=60_000)
    page.wait_for_selector('[data-testid="stMetric"]', timeout=240_000)
    page.wait_for_selector('[data-testid="stPlotlyChart"] .js-plotly-plot .main-svg', timeout=120_000)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=240_000)
    metrics = page.locator('[data-testid="stMetric"]').all_text_contents()
    errors = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').count()
    # a value cut off by the column ("16 × h1…") keeps its whole text in the DOM but overflows its box
    cut = page.evaluate("""() => [...document.querySelectorAll('[data-testid="stMetricValue"]')]
        .filter(v => [v, ...v.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1))
        .map(v => v.textContent)""")
    page.screenshot(path=str(SCREENSHOT.with_name("plan.png")), full_page=True)
    with page.expect_download(timeout=240_000) as download:
        page.get_by_role("button", name="Download sglang launch files (zip)").click()
    with zipfile.ZipFile(download.value.path()) as z:
        names = z.namelist()
    page.close()
    assert errors == 0
    assert any("Recommended" in m and "×" in m for m in metrics)
    assert cut == [], cut
    assert {"deepseek-v2-paper-traffic-sglang/planner.json", "deepseek-v2-paper-traffic-sglang/README.md"} <= set(names)


@pytest.mark.parametrize("path, title", [("overview", "Overview"), ("training", "Training"),
                                         ("serving", "Serving"), ("kernels", "Kernels"), ("sweeps", "Sweeps"),
                                         ("validation", "Validation")])
def test_every_page_opens_at_its_url(server, browser, path, title):
    """Each page at its own URL: its title, no exception, no "Page not found" (/overview once gave that)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(f"{server}/{path}", timeout=60_000)
    page.wait_for_selector("h1", timeout=240_000)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=240_000)
    heading = page.locator("h1").first.text_content()
    body = page.locator("body").text_content()
    errors = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').count()
    page.close()
    assert title in heading and "Page not found" not in body and errors == 0


def _settle(page) -> None:
    """Wait for Streamlit's rerun to finish (its running indicator gone)."""
    page.wait_for_timeout(300)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=240_000)


def _choose(page, label: str, option: str) -> None:
    """Pick `option` in the selectbox labelled `label`, as a user does."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).first
    box.click()
    page.locator('[role="option"]').filter(has_text=option).first.click()
    _settle(page)


def _no_exception(page) -> bool:
    return page.locator('[data-testid="stException"]').count() == 0


def test_selectors_upload_edit_remove_in_chromium(server, browser, tmp_path):
    """As a user: each variant in the Training and Overview selectors, then upload a scenario (the sidebar
    and the editor show it), edit it (the page shows the edit), remove it (back to the picked file). Each
    check is retried (expect) while Streamlit reruns: a rerun may start after _settle has looked."""
    import re

    from playwright.sync_api import expect

    mine = tmp_path / "mine.yaml"
    mine.write_text((ROOT / "scenarios" / "deepseek-v2-paper.yaml").read_text()
                    .replace('description: "DeepSeek-V2 against', 'description: "Uploaded: DeepSeek-V2 against', 1))
    wait = 60_000
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(f"{server}/training", timeout=60_000)
    page.wait_for_selector('[data-testid="stMetric"]', timeout=240_000)
    for name in ("deepseek-llm-67b", "deepseek-v2"):
        _choose(page, "Variant", name)
        expect(page.locator('[data-testid="stMetric"]').filter(has_text="Step time")).to_have_count(1, timeout=wait)
        assert _no_exception(page)
    page.goto(f"{server}/overview", timeout=60_000)
    page.wait_for_selector('[data-testid="stMetric"]', timeout=240_000)
    _choose(page, "Baseline", "deepseek-v2")
    expect(page.locator('[data-testid="stMetric"]').filter(has_text="389.1 KB")).to_contain_text(
        "+1401.2%", timeout=wait)  # 389,120 B against 25,920 B
    page.set_input_files('[data-testid="stFileUploader"] input[type="file"]', str(mine))
    sidebar = page.locator('[data-testid="stSidebar"]')
    caption = page.locator('[data-testid="stCaptionContainer"]').filter(has_text=" — ").first  # name — description
    expect(sidebar).to_contain_text("mine.yaml (uploaded)", timeout=wait)
    expect(caption).to_contain_text("Uploaded: DeepSeek-V2", timeout=wait)
    sidebar.get_by_text("Edit YAML").click()
    editor = sidebar.locator("textarea:visible")
    expect(editor).to_have_value(re.compile("Uploaded: DeepSeek-V2"), timeout=wait)
    editor.fill(editor.input_value().replace("Uploaded: DeepSeek-V2", "Edited: DeepSeek-V2"))
    # a text area sends its value on Ctrl+Enter or blur; committed and settled first, the click cannot race
    # the blur's rerun (a click landing during that rerun was once lost, and the edit never applied)
    editor.press("Control+Enter")
    _settle(page)
    sidebar.get_by_role("button", name="Apply edits").click()
    expect(caption).to_contain_text("Edited: DeepSeek-V2", timeout=wait)
    expect(sidebar).to_contain_text("(edited)", timeout=wait)
    sidebar.get_by_role("button", name="Remove mine.yaml").click()
    expect(sidebar).to_contain_text("(bundled)", timeout=wait)
    expect(caption).to_contain_text("DeepSeek-V2 against", timeout=wait)
    expect(caption).not_to_contain_text("Edited:", timeout=wait)
    expect(caption).not_to_contain_text("Uploaded:", timeout=wait)
    _settle(page)
    errors = page.locator('[data-testid="stAlertContentError"]').count()
    exception = not _no_exception(page)
    page.close()
    assert errors == 0 and not exception


DELTAS_JS = """() => [...document.querySelectorAll('[data-testid="stMetric"]')].flatMap(m => {
  const d = m.querySelector('[data-testid="stMetricDelta"]');
  if (!d) return [];
  const [r, g] = getComputedStyle(d).color.match(/\\d+/g).map(Number);
  return [[m.querySelector('[data-testid="stMetricLabel"]').innerText.trim(), d.innerText.trim(), g > r ? "green" : "red"]];
})"""


def _deltas_against_both_baselines(page) -> tuple[list, list]:
    """The Overview's (label, delta, colour) against the bundled baseline (the 67B), then against V2."""
    page.wait_for_selector('[data-testid="stMetricDelta"]', timeout=240_000)
    _settle(page)
    against_67b = page.evaluate(DELTAS_JS)
    _choose(page, "Baseline", "deepseek-v2")
    before = [delta for _, delta, _ in against_67b]
    before_js = json.dumps(json.dumps(before, separators=(",", ":")))  # as JSON.stringify writes it
    page.wait_for_function(f"JSON.stringify(({DELTAS_JS})().map(d => d[1])) != {before_js}",
                           timeout=120_000)  # the rerun has drawn the new deltas
    return against_67b, page.evaluate(DELTAS_JS)


def test_a_whatif_change_waits_for_simulate_in_chromium(server, browser):
    """Training what-if: the configured step shows at once; a changed schedule simulates nothing (the step
    time is gone, the page says to press Simulate) until the button is pressed, then a longer 1F1B step."""
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.goto(f"{server}/training", timeout=60_000)
    step = page.locator('[data-testid="stMetric"]').filter(has_text="Step time")
    step.first.wait_for(timeout=240_000)
    configured_s = float(step.first.locator('[data-testid="stMetricValue"]').inner_text().split()[0])
    _choose(page, "Schedule", "1f1b")
    waiting = page.get_by_text("Press Simulate to run these choices").count()
    shown_before = step.count()
    page.get_by_role("button", name="Simulate").click()
    _settle(page)
    step.first.wait_for(timeout=240_000)
    whatif_s = float(step.first.locator('[data-testid="stMetricValue"]').inner_text().split()[0])
    ok = _no_exception(page)
    page.close()
    assert waiting == 1 and shown_before == 0, (waiting, shown_before)
    assert ok and whatif_s > configured_s


def test_validation_page_in_chromium(server, browser):
    """The committed dev check: both predicted-against-measured figures, the summary table, and a filter
    that narrows them (one engine) without an exception."""
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(f"{server}/validation", timeout=60_000)
    page.wait_for_selector('[data-testid="stPlotlyChart"]', timeout=240_000)
    _settle(page)
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 2
    text = page.locator("body").text_content()
    assert "points simulated" in text and "predicted TTFT (ms)" in text
    assert page.locator('[data-testid="stDataFrame"]').count() == 2  # the summary and the skipped reasons
    counted = re.compile(r"(\d+) of (\d+) points simulated")
    before = counted.search(text).groups()
    page.locator('button[aria-label="Remove sglang"]:visible').first.click()
    _settle(page)
    page.screenshot(path=str(SCREENSHOT.with_name("validation.png")), full_page=True)
    after = counted.search(page.locator("body").text_content()).groups()
    assert _no_exception(page) and page.locator('[data-testid="stPlotlyChart"]').count() == 2
    assert int(after[1]) < int(before[1])  # SGLang's points left the figures and the table
    page.close()
