"""Evaluation through the engine on the tiny model: results.json with pass@1 per benchmark and
the macro average, trajectories.jsonl, the table beside the paper's numbers."""

from __future__ import annotations

import json

import pytest

from tests.training.scripts.conftest import CODE_PREFIX, write_problems
from training.scripts import evaluate as ev
from training.scripts.runtime import read_events

PROBLEMS = [
    {"id": "a", "benchmark": "NL4Opt", "question": "Maximize 3x with 0 <= x <= 4.",
     "answer": 12.0, "answer_status": "value"},
    {"id": "b", "benchmark": "NL4Opt", "question": "Maximize 3x with 0 <= x <= 5.",
     "answer": 15.0, "answer_status": "value"},
    {"id": "c", "benchmark": "IndustryOR", "question": "Maximize x with x >= 1.",
     "answer": None, "answer_status": "no_best_solution"},
]  # fmt: skip


def test_it_writes_pass_at_1_per_benchmark_and_the_macro_average(
    tmp_path, tiny_model_path, sandbox, capsys
):
    problems = write_problems(tmp_path / "problems.jsonl", PROBLEMS)
    out = tmp_path / "eval"
    rc = ev.main([
        "--model", str(tiny_model_path), "--device", "cpu", "--problems", str(problems),
        "--k", "2", "--temperature", "0", "--max_new_tokens", "150", "--think_prefix",
        CODE_PREFIX, "--output_dir", str(out), "--metrics_file", str(tmp_path / "m.jsonl"),
        "--batch_size", "4", "--credit_sandbox_answer", "true",
    ])  # fmt: skip
    assert rc == 0

    results = json.loads((out / "results.json").read_text())
    # Every sample's answer is the sandbox's solve, 12: right for a, wrong for b and for c
    # (c has no optimal solution).
    nl4opt, industry = results["benchmarks"]["NL4Opt"], results["benchmarks"]["IndustryOR"]
    assert nl4opt["pass_at_1"] == 0.5 and nl4opt["n_problems"] == 2 and nl4opt["n_samples"] == 4
    assert industry["pass_at_1"] == 0.0
    assert results["macro_pass_at_1"] == pytest.approx(0.25)
    assert nl4opt["paper"] == {"base": 67.9, "storm": 70.3}
    assert industry["paper"] == {"base": 45.4, "storm": 63.5}
    first = nl4opt["problems"][0]
    assert first["id"] == "a" and first["pass_at_1"] == 1.0 and len(first["samples"]) == 2
    sample = first["samples"][0]
    assert sample["correct"] is True and sample["code_calls"] == 1
    assert sample["final_answer"]["value"] == 12.0
    assert 0 < sample["response_tokens"] <= 150
    assert results["status"] == "completed" and results["samples_done"] == 6

    lines = [json.loads(x) for x in (out / "trajectories.jsonl").read_text().splitlines()]
    assert len(lines) == 6
    assert {(x["problem_id"], x["sample"]) for x in lines} == {
        (p, s) for p in "abc" for s in range(2)
    }
    assert all(x["completion"]["ids"] and x["counts"]["interpreter"] > 0 for x in lines)
    # One definition of response length (curation's): model + hint tokens, not the interpreter's
    # output nor the forced prefix, which the whole completion holds besides.
    from curation.presentation.statistics import RESPONSE_LENGTH_DEFINITION

    first_line = lines[0]
    assert (first_line["problem_id"], first_line["sample"]) == ("a", 0)
    counts = first_line["counts"]
    assert sample["response_tokens"] == counts["model"] + counts["hint"]
    assert sample["completion_tokens"] == len(first_line["completion"]["ids"])
    assert sample["completion_tokens"] > sample["response_tokens"]
    assert "interpreter output and the forced think prefix excluded" in RESPONSE_LENGTH_DEFINITION

    table = capsys.readouterr().out
    assert "NL4Opt" in table and "50.0" in table and "67.9" in table and "70.3" in table
    assert "macro average" in table and "25.0" in table

    events = read_events(tmp_path / "m.jsonl")
    kinds = ["start", "phase", "phase", "step", "step", "phase", "eval", "done"]
    assert [e["event"] for e in events] == kinds
    phases = [e for e in events if e["event"] == "phase"]
    assert [p["phase"] for p in phases] == ["loading", "generating", "scoring"]
    assert (phases[1]["k"], phases[1]["problems"], phases[1]["samples"]) == (2, 3, 6)
    assert events[4]["step"] == events[4]["max_steps"] == 6
    assert events[-1]["status"] == "completed" and events[-1]["macro_pass_at_1"] == 0.25


@pytest.mark.parametrize(
    ("name", "expected"),
    [("MAMO-EasyLP", 80.0), ("mamo_complexlp", 44.5), ("OptMATH-Bench", 47.7), ("NLP4LP", None)],
)
def test_it_matches_benchmark_names_to_the_papers_rows(name, expected):
    numbers = ev.paper_numbers(name)
    assert (numbers or {}).get("base") == expected


def test_it_builds_an_openai_backend_spec_from_a_base_url():
    args = ev.EvaluateArguments(model="qwen", base_url="http://127.0.0.1:8000/v1",
                                api_key_env="MY_KEY", tokenizer="/tok")  # fmt: skip
    assert ev.backend_spec(args) == {
        "backend": "openai", "model": "qwen", "tokenizer": "/tok",
        "base_url": "http://127.0.0.1:8000/v1", "concurrency": 8, "api_key_env": "MY_KEY",
    }  # fmt: skip
    assert ev.backend_spec(ev.EvaluateArguments(model="/ckpt"))["backend"] == "transformers"


def test_an_endpoint_spec_file_is_used_whole_with_the_local_device_settings(tmp_path):
    import json

    from training.scripts.evaluate import EvaluateArguments, backend_spec

    server = {"backend": "openai", "model": "m", "base_url": "http://h/v1", "stop": ["\n```\n"]}
    (tmp_path / "server.json").write_text(json.dumps(server))
    args = EvaluateArguments(endpoint_spec=str(tmp_path / "server.json"), device="cuda")
    assert backend_spec(args) == server  # a server has no device of ours to set
    local = {"backend": "transformers", "model": "/m", "device": "cpu", "dtype": "float32"}
    (tmp_path / "local.json").write_text(json.dumps(local))
    args = EvaluateArguments(
        endpoint_spec=str(tmp_path / "local.json"), device="cuda", batch_size=4
    )
    assert backend_spec(args) == {**local, "device": "cuda", "max_batch_size": 4}
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not an endpoint spec"):
        backend_spec(EvaluateArguments(endpoint_spec=str(tmp_path / "bad.json")))


def test_by_default_an_answer_the_model_never_stated_is_not_credited(
    tmp_path, tiny_model_path, sandbox
):
    problems = write_problems(tmp_path / "problems.jsonl", PROBLEMS)
    out = tmp_path / "eval"
    rc = ev.main([
        "--model", str(tiny_model_path), "--device", "cpu", "--problems", str(problems),
        "--k", "1", "--temperature", "0", "--max_new_tokens", "150", "--think_prefix",
        CODE_PREFIX, "--output_dir", str(out), "--batch_size", "4",
    ])  # fmt: skip
    assert rc == 0
    nl4opt = json.loads((out / "results.json").read_text())["benchmarks"]["NL4Opt"]
    # The forced code solves problem a (12), but the model boxed nothing: no answer.
    assert nl4opt["pass_at_1"] == 0.0
    assert all(s["final_answer"] is None for p in nl4opt["problems"] for s in p["samples"])


def test_an_evaluation_does_not_start_when_the_sandbox_cannot_infrastructure(
    tmp_path, tiny_model_path, sandbox_without_bubblewrap
):
    from curation.engine import SandboxUnavailableError

    problems = write_problems(tmp_path / "problems.jsonl", PROBLEMS)
    args = ev.EvaluateArguments(
        model=str(tiny_model_path), device="cpu", problems=[str(problems)],
        output_dir=str(tmp_path / "eval"), max_new_tokens=50,
    )  # fmt: skip
    with pytest.raises(SandboxUnavailableError, match="bwrap not installed"):
        ev.evaluate(args)
    assert not (tmp_path / "eval" / "results.json").exists()


def test_samples_the_sandbox_failed_are_counted_apart_and_left_out_of_pass_at_1_infrastructure(
    tmp_path, tiny_model_path, sandbox
):
    """The real sandbox passes the start check and runs problem a's samples, then loses its
    zygote (batch 2: problem b's samples). Those are "infrastructure", not wrong: pass@1 is
    over problem a alone, and the table says how many samples were not scored."""
    from curation.engine import run_in_sandbox

    calls = []

    def sandbox_that_breaks_after_the_first_batch(code, cells, timeout_s):
        calls.append(code)
        if len(calls) > 3:  # the start check, then problem a's two samples
            return {"status": "harness_error", "detail": "lost contact with the zygote"}
        return run_in_sandbox(code, cells, timeout_s)

    problems = write_problems(tmp_path / "problems.jsonl", PROBLEMS[:2])
    args = ev.EvaluateArguments(
        model=str(tiny_model_path), device="cpu", problems=[str(problems)], k=2,
        temperature=0.0, max_new_tokens=150, output_dir=str(tmp_path / "eval"), batch_size=2,
        credit_sandbox_answer=True, think_prefix=CODE_PREFIX,
    )  # fmt: skip
    results = ev.evaluate(args, run_code=sandbox_that_breaks_after_the_first_batch)
    nl4opt = results["benchmarks"]["NL4Opt"]
    assert nl4opt["counts"]["infrastructure"] == 2 and nl4opt["counts"]["wrong"] == 0
    assert nl4opt["counts"]["correct"] == 2  # problem a: the sandbox's 12, credited
    assert nl4opt["pass_at_1"] == 1.0 and nl4opt["n_scored_problems"] == 1  # not 0.5
    b = nl4opt["problems"][1]
    assert b["pass_at_1"] is None and {s["finish_reason"] for s in b["samples"]} == {
        "infrastructure"
    }
    assert "2 sample(s) not scored" in ev.format_table(results)
