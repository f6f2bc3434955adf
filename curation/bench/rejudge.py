"""Re-judging a stored evaluation under another answer rule, at benchmark size.

An evaluation of B benchmarks x P problems x K samples is stored as its scores' answers (as an
imported evaluation stores them); ``evaluation_rejudge`` scores it again under ORLM's rule:
reading the stored answers, judging, writing one score per benchmark. The baseline is the bare
judging (``rejudge`` on the same answers in memory, no database), so the figures show what the
bookkeeping adds. Target: 16,000 answers in under 5 s.
"""

from __future__ import annotations

import json
import statistics
import time


def _evaluation(benchmarks: int, problems: int, samples: int):
    from django.core.management import call_command

    from curation.models import Benchmark, Job, ModelEndpoint, Problem
    from training.models import EvaluationScore
    from training.services.runs import problems_select, run_create

    call_command("migrate", verbosity=0)
    bench = Benchmark.objects.create(name="Bench", slug="bench")
    Problem.objects.create(benchmark=bench, external_id="b0", question="Maximize x.", answer=100,
                           content_hash="b0")  # fmt: skip
    # Never called: the evaluation is made finished, with its answers stored.
    model = ModelEndpoint.objects.create(
        name="bench", backend="openai", base_url="http://127.0.0.1:9/v1", model="bench"
    )
    selection = problems_select(benchmarks=["bench"])
    run = run_create(kind="evaluate", name="bench", model=model, preset="eval_tiny",
                     problem_selection=selection, enqueue=False)  # fmt: skip
    Job.objects.filter(pk=run.job_id).update(status=Job.Status.SUCCEEDED)
    run.refresh_from_db()
    final = {"text": "101", "value": 101.0, "kind": "value", "source": "boxed"}
    sample = {"final_answer": final, "outcome": "wrong", "confidence": None, "code_calls": 2,
              "response_tokens": 900}  # fmt: skip
    answers = [
        {"id": str(i), "answer": 100.0, "answer_status": "value",
         "samples": [dict(sample, sample=s) for s in range(samples)]}
        for i in range(problems)
    ]  # fmt: skip
    for b in range(benchmarks):
        EvaluationScore.objects.create(
            run=run, benchmark=f"B{b}", rule="sirl", rule_label="sirl", problems=problems,
            samples=problems * samples, pass_at_1=0.0, answers=answers,
        )  # fmt: skip
    return run


def run(args) -> int:
    from training.scripts.eval_scoring import rejudge
    from training.services.evaluations import evaluation_rejudge

    evaluation = _evaluation(args.benchmarks, args.problems, args.samples)
    n = args.benchmarks * args.problems * args.samples
    stored = {"record": {"mode": "mean"},
              "benchmarks": {s.benchmark: {"problems": s.answers}
                             for s in evaluation.scores.filter(rejudged=False)}}  # fmt: skip
    rows = []
    for label, call in (
        ("judging only, in memory (baseline)",
         lambda: rejudge(stored, rule="orlm", tolerance=None)),
        ("evaluation_rejudge (read, judge, write)",
         lambda: evaluation_rejudge(run=evaluation, rule="orlm")),
    ):  # fmt: skip
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        rows.append({"run": label, "answers": n, "seconds_median": round(median, 3),
                     "seconds_max": round(max(times), 3),
                     "answers_per_s": round(n / median)})  # fmt: skip
    scores = {s.benchmark: s.pass_at_1 for s in evaluation.scores.filter(rejudged=True)}
    assert set(scores.values()) == {1.0}, scores  # 101 against 100 passes ORLM's 5%
    report = {"rejudge": rows, "target_s": 5.0, "repeat": args.repeat}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"Re-judging {n} stored answers ({args.benchmarks} benchmarks x {args.problems} "
          f"problems x {args.samples} samples) under orlm, {args.repeat} times "
          f"(target < 5 s):")  # fmt: skip
    for row in rows:
        print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))
    return 0
