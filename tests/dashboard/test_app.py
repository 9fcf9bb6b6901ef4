"""Every dashboard page runs without an exception, shows its charts, and agrees with the CLI's JSON."""

import io
import json
import zipfile

import pytest
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from dashboard import data
from planner.cli import cli
from tests.conftest import ROOT, SCENARIOS

PAPER = SCENARIOS / "deepseek-v2-paper.yaml"
TIMEOUT = 240  # a cold cache simulates the paper scenario's serving runs (~20 s here)


def one_page(page: str) -> None:
    """The app's scenario bar and one page (AppTest cannot follow st.navigation's URL paths)."""
    from dashboard import pages

    if pages.scenario_bar():
        getattr(pages, page)()


def run_page(page: str) -> AppTest:
    return AppTest.from_function(one_page, args=(page,), default_timeout=TIMEOUT).run()


@pytest.fixture(scope="module")
def cli_json(paper_cli):
    """The paper scenario's CLI JSON by variant (run once a session, shared with the golden test; its
    serving results fill the dashboard's disk cache: conftest.dashboard_cache)."""
    train, serve, report = paper_cli["train"], paper_cli["serve"], paper_cli["report"]
    return {v["name"]: v for v in train["variants"]}, {v["name"]: v for v in serve["variants"]}, report


SMALL_WORKLOAD = ("workload: {prompt_tokens: {dist: lognormal, median: 700, sigma: 0.8, max: 3072}, output_tokens: "
                  "{dist: lognormal, median: 300, sigma: 0.8, max: 1024}, arrival: poisson, rate_per_s: 8, "
                  "requests: 150, saturation_requests: 150}")


def test_the_dashboard_serves_a_variant_as_the_cli_does(tmp_path):
    """The dashboard's per-variant computation (what its pages draw) equals `planner simulate serve
    --format json`, on the paper scenario with a 150-request workload."""
    text = PAPER.read_text().replace("workload: deepseek-chat-assumed", SMALL_WORKLOAD)
    path = tmp_path / "small.yaml"
    path.write_text(text)
    cli_out = json.loads(CliRunner().invoke(cli, ["simulate", "serve", str(path), "--format", "json"]).stdout)
    wall = {"sim_wall_s"}
    for want in cli_out["variants"]:
        got = data.compute_serving_one(text, PAPER.name, want["name"])
        assert {k: x for k, x in got.items() if k not in wall} == {k: x for k, x in want.items() if k not in wall}


def test_overview_matches_the_cli(cli_json):
    train, serve, report = cli_json
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert len(at.get("plotly_chart")) >= 2
    shown = [(m.label, m.value) for m in at.metric]
    for name in ("deepseek-v2", "deepseek-llm-67b"):
        assert ("GPU-hours / T tokens", f"{train[name]['gpu_hours_per_trillion_tokens'] / 1e3:,.1f}K") in shown
        assert ("Max generation tok/s", f"{serve[name]['max_generation_throughput_tok_s']:,.0f}") in shown
        kv = next(v for v in report["variants"] if v["name"] == name)["kv_cache_bytes_per_token"]
        assert ("KV cache / token", f"{kv / 1e3:.1f} KB") in shown
    deltas = {m.value: m.delta for m in at.metric}
    assert deltas["25.9 KB"] == "-93.3%"


@pytest.mark.parametrize("page, charts", [("training", 2), ("serving", 3), ("kernels", 1)])
def test_page_renders_its_charts(page, charts):
    at = run_page(page)
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) >= charts
    assert not at.error
    if page == "serving":  # each variant says where its timing came from (the paper scenario: no engine)
        shown = [c.value for c in at.caption if "timing:" in c.value]
        assert shown == ["Source: timing: roofline at the GPU file's sourced efficiencies (no engine or profile)"] * 2


def test_training_whatif_matches_the_cli(cli_json):
    train, _, _ = cli_json
    at = run_page("training")
    shown = {m.label: m.value for m in at.metric}
    assert shown["GPU-hours / T tokens"] == f"{train['deepseek-v2']['gpu_hours_per_trillion_tokens'] / 1e3:,.1f}K"
    widget = {s.label: s for s in at.selectbox}
    widget["Schedule"].select("1f1b").run()  # instead of zero-bubble: a bigger bubble, a longer step
    assert "Step time" not in {m.label for m in at.metric} and "Press **Simulate**" in at.info[0].value  # not yet
    at.button(key="train-whatif-deepseek-v2-simulate").click().run()
    assert not at.exception and float(at.metric[0].value.split()[0]) > float(shown["Step time"].split()[0])
    widget = {s.label: s for s in at.selectbox}
    widget["Schedule"].select("zero-bubble").run()
    widget = {s.label: s for s in at.selectbox}
    widget["Virtual stages"].select(2).run()  # interleaving on zero-bubble: refused inline, naming the field
    at.button(key="train-whatif-deepseek-v2-simulate").click().run()
    assert not at.exception and "virtual" in at.error[0].value and "1f1b" in at.error[0].value
    widget = {s.label: s for s in at.selectbox}
    widget["Virtual stages"].select(1).run()
    widget = {s.label: s for s in at.selectbox}
    widget["EP"].select(1).run()  # all 160 experts on every GPU: does not fit, said inline
    at.button(key="train-whatif-deepseek-v2-simulate").click().run()
    assert not at.exception and "needs" in at.error[0].value and "GB per GPU" in at.error[0].value


def test_training_page_takes_every_variant():
    """Choosing the second variant once crashed (StreamlitDuplicateElementId: the selectbox was created
    once per variant inside a generator)."""
    at = run_page("training")
    variant = next(s for s in at.selectbox if s.label == "Variant")
    for name in variant.options:
        variant.select(name).run()
        assert not at.exception, (name, at.exception)
        variant = next(s for s in at.selectbox if s.label == "Variant")
    assert variant.value == "deepseek-llm-67b" and at.metric[0].label == "Step time"


def test_sweeps_page_plots_the_committed_results():
    at = run_page("sweeps")
    assert not at.exception and len(at.get("plotly_chart")) == 1


def test_sweeps_front_uses_the_sweep_files_objectives():
    """The training sweep minimises cost and days: its cheapest feasible plan is on the front shown, and
    the axes default to the two objectives. (The page once maximised its y axis, so with y = cost it
    showed the dearest plans.)"""
    rows = [json.loads(line) for line in (ROOT / "results" / "deepseek-v2-training.jsonl").read_text().splitlines()[1:]]
    cheapest = min(r["metrics"]["cost_usd_per_trillion_tokens"] for r in rows if r["status"] == "ok")
    at = run_page("sweeps")
    next(s for s in at.selectbox if s.label == "Result file").select("results/deepseek-v2-training.jsonl").run()
    shown = {s.label: s.value for s in at.selectbox}
    assert not at.exception and (shown["x"], shown["y"]) == ("cost_usd_per_trillion_tokens", "days_total")
    front = at.dataframe[0].value
    assert cheapest in list(front["cost_usd_per_trillion_tokens"])
    assert front["cost_usd_per_trillion_tokens"].max() < max(r["metrics"]["cost_usd_per_trillion_tokens"]
                                                              for r in rows if r["status"] == "ok")


def test_sweeps_page_without_results_says_how_to_get_them(monkeypatch, tmp_path):
    from dashboard import data

    monkeypatch.setattr(data, "ROOT", tmp_path)  # no results/ folder there
    at = run_page("sweeps")
    assert not at.exception and not at.get("plotly_chart")
    assert any("planner sweep" in i.value for i in at.info)


def test_invalid_yaml_shows_the_error_inline():
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=TIMEOUT).run()
    at.text_area[0].input("name: x\nvariants:\n  - name: a\n    model: deepseek-v9\n")
    at.button[0].click().run()
    assert not at.exception
    assert at.error and "no model named 'deepseek-v9'" in at.error[0].value


def test_plan_page_shows_the_clis_recommendation():
    """The Plan page answers the bundled plan as `planner plan --format json` does. Both call
    plan_runner.run_plan on the file's text, so the CLI's answer goes into the page's disk cache rather
    than the same search running twice."""
    plan_file = SCENARIOS / "plans" / "deepseek-v2-paper.yaml"
    cli_out = json.loads(CliRunner().invoke(cli, ["plan", str(plan_file), "--sequential", "--format", "json"]).stdout)
    data._disk("plan", plan_file.read_text(), lambda: cli_out)
    at = run_page("plan")
    next(s for s in at.selectbox if s.label == "Plan file").select("deepseek-v2-paper.yaml").run()
    assert not at.exception and not at.error
    rec = cli_out["recommended"]
    shown = {m.label: m.value for m in at.metric}
    assert shown["Recommended"] == f"{rec['gpus']:,} × {rec['gpu']}"
    assert shown["Cost"] == f"${rec['usd_per_hour']:,.0f} / hour"
    assert len(at.get("plotly_chart")) == 1 and len(at.dataframe) == 2


def test_busy_spans_merge_back_to_back_passes():
    """Passes that touch merge into one span (with their exposed communication summed); a gap splits."""
    from charts.figures import busy_spans, plot_timeline

    passes = [(0, "F", 0, 0.0, 1.0, 0.1), (0, "B", 0, 1.0, 2.0, 0.2), (0, "F", 1, 5.0, 1.0, 0.0), (1, "F", 0, 1.0, 1.0, 0.0)]
    assert busy_spans(passes, 0, gap_s=1e-6) == [(0.0, 3.0, 2, pytest.approx(0.3)), (5.0, 6.0, 1, 0.0)]
    assert sum(len(t.x) for t in plot_timeline(passes, 2).data) == 3  # two spans on stage 0, one on stage 1
    detail = plot_timeline(passes, 2, detail_micro_batches=1).data
    assert {t.name for t in detail} == {"forward", "backward", "exposed communication"}


def test_serving_whatif_resimulates(cli_json):
    """The serving what-if, left as configured, reproduces the CLI's figure; a 16-bit KV cache instead of
    V2's 6 bits holds fewer requests, so the maximum generation throughput falls."""
    _, serve, _ = cli_json
    at = run_page("serving")
    assert len([m for m in at.metric if m.label == "Max generation tok/s"]) == 2  # the two cards: no what-if yet
    at.button(key="serve-whatif-deepseek-v2-simulate").click().run()
    assert not at.exception
    shown = [m.value for m in at.metric if m.label == "Max generation tok/s"]
    assert shown[-1] == f"{serve['deepseek-v2']['max_generation_throughput_tok_s']:,.0f}"
    before = len(at.metric)
    next(s for s in at.selectbox if s.label == "KV bits").select(16).run()
    assert len(at.metric) < before  # a change does not simulate until asked
    at.button(key="serve-whatif-deepseek-v2-simulate").click().run()
    after = [m.value for m in at.metric if m.label == "Max generation tok/s"][-1]
    assert not at.exception and float(after.replace(",", "")) < float(shown[-1].replace(",", ""))


def test_whatif_state_travels_in_the_url():
    """A link carries the variant and the what-if: the page opens with them chosen, and a choice made on
    the page is written back to the URL."""
    at = AppTest.from_function(one_page, args=("training",), default_timeout=TIMEOUT)
    at.query_params["train_variant"] = "deepseek-llm-67b"
    at.query_params["deepseek-llm-67b.schedule"] = "gpipe"
    at.run()
    shown = {s.label: s.value for s in at.selectbox}
    assert not at.exception and shown["Variant"] == "deepseek-llm-67b" and shown["Schedule"] == "gpipe"
    next(s for s in at.selectbox if s.label == "Precision").select("fp8").run()
    assert at.query_params["deepseek-llm-67b.precision"] == ["fp8"] or at.query_params["deepseek-llm-67b.precision"] == "fp8"
    assert at.query_params["scenario"] in ("deepseek-v2-paper.yaml", ["deepseek-v2-paper.yaml"])


def scenario_page(page: str, scenario: str) -> None:
    """One page of the app with `scenario` picked (as ?scenario= in the URL does)."""
    import streamlit as st

    from dashboard import pages

    st.query_params["scenario"] = scenario
    if pages.scenario_bar():
        getattr(pages, page)()


@pytest.mark.parametrize("scenario", ["deepseek-v2-paper.yaml", "deepseek-v3-pretrain.yaml", "deepseek-v3-megatron-h100.yaml"])
def test_training_page_opens_as_configured(scenario):
    """The what-if controls start at the scenario's own layout, so the page's step time is the CLI's
    (V3's DualPipe once fell back to 1F1B: 27.0 s instead of 17.8 s)."""
    cli_out = json.loads(CliRunner().invoke(cli, ["simulate", "train", str(SCENARIOS / scenario), "--format", "json"]).stdout)
    first = cli_out["variants"][0]
    at = AppTest.from_function(scenario_page, args=("training", scenario), default_timeout=TIMEOUT)
    at.query_params["scenario"] = scenario
    at.run()
    shown = {m.label: m.value for m in at.metric}
    assert not at.exception and shown["Step time"] == f"{first['step_time_s']:.2f} s"


def test_sweep_axes_are_titled_in_words_with_units():
    from charts.figures import metric_label

    assert metric_label("ttft_p99_s") == "ttft p99 (s)"
    assert metric_label("usd_per_million_output_tokens") == "$ per million output tokens"
    assert metric_label("max_generation_throughput_tok_s") == "max generation throughput (tok/s)"


def test_sweeps_page_refuses_a_file_that_is_not_a_journal(monkeypatch, tmp_path):
    """A results file without a sweep header is one error on the page (it once raised a KeyError)."""
    from dashboard import data

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "notes.jsonl").write_text("42\n")
    monkeypatch.setattr(data, "ROOT", tmp_path)
    at = run_page("sweeps")
    assert not at.exception and "no sweep header" in at.error[0].value


def test_training_whatif_context_parallel_keeps_the_gpus():
    """The Megatron scenario's EP64 variant with CP 2 chosen: DP halves to 32 so the 1,024 GPUs stay, the
    micro-batches stay one sequence each (256 a replica), and the step is the CLI's for that layout."""
    from costmodel.inputs.loader import load_scenario
    from costmodel.sim.train_sim import simulate_training

    scenario = "deepseek-v3-megatron-h100.yaml"
    v = load_scenario(SCENARIOS / scenario).variants[1]
    par = v.training.parallelism.model_copy(update={"cp": 2, "dp": 32, "micro_batches": 256})
    want = simulate_training(v.name, v.model, v.training.model_copy(update={"parallelism": par}))
    at = AppTest.from_function(scenario_page, args=("training", scenario), default_timeout=TIMEOUT)
    at.query_params["scenario"] = scenario
    at.run()
    next(s for s in at.selectbox if s.label == "Variant").select(v.name).run()
    next(s for s in at.selectbox if s.label == "Context parallel (CP)").select(2).run()
    at.button(key=f"train-whatif-{v.name}-simulate").click().run()
    shown = {m.label: m.value for m in at.metric}
    assert not at.exception and shown["Step time"] == f"{want.step_time_s:.2f} s"
    assert shown["Tokens / s / GPU"] == f"{want.tokens_per_s_per_gpu:,.0f}"


def test_plan_page_offers_the_launch_files_as_a_zip(tmp_path):
    """The Plan page's zip holds what `planner plan --emit` writes for the recommended deployment: the
    same files, byte for byte, from the page's cached answer."""
    plan_file = SCENARIOS / "plans" / "deepseek-v2-paper.yaml"
    zipped = data.launch_zip(plan_file.read_text(), plan_file.name, "vllm")
    with zipfile.ZipFile(io.BytesIO(zipped)) as z:
        files = {n.split("/", 1)[1]: z.read(n).decode() for n in z.namelist()}
    out = tmp_path / "cli"
    r = CliRunner().invoke(cli, ["plan", str(plan_file), "--sequential", "--emit", "vllm", "--out", str(out)])
    assert r.exit_code == 0, r.output
    cli_files = {str(p.relative_to(out)): p.read_text() for p in out.rglob("*") if p.is_file()}
    assert files == cli_files
    at = run_page("plan")
    next(s for s in at.selectbox if s.label == "Plan file").select("deepseek-v2-paper.yaml").run()
    assert not at.exception and any(s.label == "Engine or platform" for s in at.selectbox)
