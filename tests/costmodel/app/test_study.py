"""The application layer: overrides re-validated like a file, every feasibility problem at once, the
same checks in `validate` and `simulate`."""

import pytest
from click.testing import CliRunner

from costmodel.app import study
from costmodel.app.feasibility import variant_problems
from costmodel.inputs.errors import PlannerError, PlannerErrors
from planner.cli import cli
from tests.conftest import SCENARIOS

PAPER = SCENARIOS / "deepseek-v2-paper.yaml"


def test_override_is_validated_like_the_file():
    st = study.open_study(PAPER)
    with pytest.raises(PlannerError) as e:
        study.override(st, "deepseek-v2", {"training.parallelism.tp": 0})
    assert e.value.field == "variants.0.training.parallelism.tp" and "must be > 0" in e.value.problem
    with pytest.raises(PlannerError) as e:
        study.override(st, "deepseek-v2", {"training.parallelism.tpp": 2})
    assert "did you mean `tp`" in e.value.fix


def test_override_changes_only_its_variant():
    st = study.override(study.open_study(PAPER), "deepseek-v2", {"inference.kv_bits": 16})
    assert st.variant("deepseek-v2").inference.kv_bits == 16
    assert st.variant("deepseek-llm-67b") == study.open_study(PAPER).variant("deepseek-llm-67b")


def test_every_problem_of_a_variant_at_once():
    st = study.override(study.open_study(PAPER), "deepseek-v2", {
        "training.parallelism.ep": 7,  # divides neither 160 experts nor dp 64
        "training.global_batch_seqs": 9217,  # does not split into dp x micro-batches
        "inference.parallelism.tp": 3,  # does not divide 128 heads; 3 x 8 is not 8 GPUs
    })
    fields = [p.field for p in variant_problems(st.variant("deepseek-v2"))]
    assert fields == ["training.parallelism.ep", "training.parallelism.ep", "training.global_batch_seqs",
                      "inference.parallelism.dp", "inference.parallelism.tp"]
    with pytest.raises(PlannerErrors) as e:
        study.check(st)
    assert len(e.value.errors) == 5 and str(e.value).startswith("5 problems:")
    assert "variants.0.inference.parallelism.tp" in str(e.value)


def test_memory_context_and_kv_fit_are_problems_too():
    st = study.override(study.open_study(PAPER), "deepseek-v2", {
        "training.parallelism.recompute": "none",
        "inference.workload.prompt_tokens": {"dist": "fixed", "value": 200_000}})
    problems = {p.field: p.problem for p in variant_problems(st.variant("deepseek-v2"))}
    assert "GB per GPU" in problems["training.parallelism"]
    assert "exceeds the model's context of 163840" in problems["inference.workload"]
    # a 67B request of 2,000,000 tokens: beyond its 4K context and beyond one TP8 instance's KV cache
    st = study.override(study.open_study(PAPER), "deepseek-llm-67b", {
        "inference.workload.prompt_tokens": {"dist": "fixed", "value": 2_000_000}})
    problems = [p.problem for p in variant_problems(st.variant("deepseek-llm-67b"))]
    assert len(problems) == 2 and "more KV cache than one attention rank holds" in problems[1]


def test_validate_runs_the_checks_simulate_runs(tmp_path):
    text = PAPER.read_text().replace("recompute: selective  # V2P", "recompute: none  # V2P")
    path = tmp_path / "oom.yaml"
    path.write_text(text)
    validate = CliRunner().invoke(cli, ["validate", str(path)])
    simulate = CliRunner().invoke(cli, ["simulate", "train", str(path)])
    assert validate.exit_code == simulate.exit_code == 2
    assert "variants.0.training.parallelism" in validate.output and "GB per GPU" in validate.output
    assert validate.output.split("error: ")[1] == simulate.output.split("error: ")[1]
