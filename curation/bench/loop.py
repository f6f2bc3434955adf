"""The CALM loop on real endpoints, measured: the product's own batch (generate → Intervener →
hint → regenerate) over a problem set, the embedded model by default.

    python -m curation.bench loop                       # the 12 demo problems, embedded 1.5B
    python -m curation.bench loop --limit 2 --max-interventions 1
    python -m curation.bench loop --benchmark nl4opt --limit 20 --json
    python -m curation.bench loop --report var/bench/loop-<time>   # a kept run, again
    python -m curation.bench loop --problems my_set.jsonl \\
        --reasoner http://gpu-host:8000/v1#Qwen/Qwen3-4B-Thinking-2507 --tokenizer /models/qwen3

Every trajectory is kept as it came out: the run's SQLite database (open it with
``DATABASE_URL=sqlite:///…/loop.sqlite3 python manage.py runserver``), ``trajectories.jsonl``
and ``summary.json`` go to ``--out`` (default ``var/bench/loop-<time>/``). The targets printed
beside the figures are the issue's for the demo set; the paper's are its curation figures.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

PAPER = {
    "token_modification_ratio": "< 2.6% of generated tokens (paper)",
    "correctness": "rises markedly with hints (paper, fig. 'CALM curation'); 112 golden kept",
}
TARGETS = {"calm_correct": 6, "golden_candidates": 3, "token_modification_ratio": 0.10,
           "minutes": 45}  # fmt: skip


def _endpoint(spec: str, role: str, tokenizer: str):
    """An endpoint from a command-line spec: ``embedded``, ``URL[#model]`` or a local path."""
    from curation.models import ModelEndpoint
    from curation.services.endpoints import embedded_endpoint_values

    if spec == "embedded":
        values = embedded_endpoint_values()
        if values is None:
            raise SystemExit("CALM_LOCAL_MODEL=off: pass --reasoner/--intervener explicitly")
        values = {**values, "name": f"{values['name']} ({role})", "role": role}
    elif spec.startswith(("http://", "https://")):
        url, _, model = spec.partition("#")
        values = {"name": f"{spec} ({role})", "backend": "openai", "role": role,
                  "base_url": url, "model": model, "tokenizer": tokenizer}  # fmt: skip
    else:
        values = {"name": f"{spec} ({role})", "backend": "transformers", "role": role,
                  "model": spec}  # fmt: skip
    return ModelEndpoint.objects.create(**values)


def _problems(args):
    from django.conf import settings

    from curation.formats.problem_files import parse_problem_file
    from curation.models import Problem
    from curation.services.problems import problems_import

    if args.problems:
        path = Path(args.problems)
    elif args.benchmark:
        path = Path(settings.BENCHMARKS_DIR) / f"{args.benchmark}.jsonl"
    else:
        path = Path(__file__).resolve().parents[1] / "demo" / "demo_problems.jsonl"
    try:
        parsed = parse_problem_file(path.read_bytes(), filename=path.name)
    except (OSError, ValueError) as exc:  # ImportFileError names the line
        raise SystemExit(f"{path}: {exc}") from exc
    problems_import(records=parsed.records)
    ids = [r.external_id for r in parsed.records][: args.limit or None]
    by_id = {p.external_id: p for p in Problem.objects.filter(external_id__in=ids)}
    return [by_id[i] for i in ids]


def _ensure_server(endpoints):
    """Start the embedded model under its supervisor when it is used and not running (the
    same command line as ``devstack`` and ``serve_model``: ``serving.embedded``)."""
    from curation.engine.serving import local_model
    from curation.engine.serving.embedded import embedded_command
    from curation.engine.serving.supervisor import Supervisor

    if not any(local_model.serves(e.base_url) for e in endpoints):
        return None
    try:
        local_model.wait_ready(local_model.base_url(), timeout=1)
        return None  # already served (make run)
    except (TimeoutError, local_model.ModelError):
        pass
    why: list[str] = []
    argv = embedded_command(why.append)
    if argv is None:
        raise SystemExit(" ".join(why) or "the embedded model cannot start")
    supervisor = Supervisor(
        argv,
        base_url=local_model.base_url(),
        model=local_model.get_model().name,
        status_file=local_model.status_path(),
    ).start()
    if supervisor.wait_for("ready", "failed", timeout=300) != "ready":
        supervisor.stop()
        raise SystemExit("the embedded model server did not come up (see its status file)")
    return supervisor


def _drive(batch, total: int) -> float:
    from tqdm import tqdm

    from curation.models import BatchItem
    from curation.services.batches import batch_advance

    started = time.monotonic()
    with tqdm(total=total, unit="problem", desc="CALM loop", dynamic_ncols=True) as bar:
        more = True
        while more:
            more = batch_advance(batch_id=batch.pk)
            done = BatchItem.objects.filter(batch=batch, finished_at__isnull=False).count()
            rounds = sum(BatchItem.objects.filter(batch=batch).values_list("rounds", flat=True))
            bar.set_postfix(interventions=rounds)
            bar.update(done - bar.n)
    return (time.monotonic() - started) / 60


def _rows(batch) -> list[dict]:
    from curation.models import BatchItem, Diagnosis, Trajectory

    rows = []
    for item in BatchItem.objects.filter(batch=batch).select_related("problem", "root",
                                                                      "trajectory"):  # fmt: skip
        tree = list(Trajectory.objects.filter(problem=item.problem, endpoint=batch.reasoner))
        flaws = list(
            Diagnosis.objects.filter(trajectory__in=tree, flaw_type__isnull=False)
            .values_list("flaw_type__code", flat=True)
        )  # fmt: skip
        final = item.trajectory
        rows.append({
            "problem": item.problem.external_id,
            "reference": item.problem.answer,
            "native_answer": item.root.final_answer if item.root else "",
            "native_correct": bool(item.root and item.root.is_correct),
            "calm_answer": final.final_answer if final else "",
            "calm_correct": bool(final and final.is_correct),
            "interventions": item.rounds,
            "outcome": item.outcome or item.state,
            "golden_candidate": item.outcome == BatchItem.Outcome.CANDIDATE,
            "hint_tokens": final.n_hint_tokens if final else 0,
            "generated_tokens": (final.n_model_tokens + final.n_hint_tokens) if final else 0,
            "code_calls": final.n_code_calls if final else 0,
            "trajectories": len(tree),
            "minutes": round(sum(t.wall_ms for t in tree) / 60000, 2),
            "flaws": flaws,
            "error": item.error[:200],
        })  # fmt: skip
    return rows


def by_source(batch) -> dict[str, dict]:
    """Per flaw type, the two parts of the Intervener side by side: how often a check fired
    (a finding in a verdict's facts, whether or not it won), how often a check's verdict
    hinted a branch and how many of those branches came out correct; the same for the LLM's
    verdicts (``verdicts``: the LLM's own verdicts naming that flaw type)."""
    from curation.models import BatchItem, BatchRound, Diagnosis

    table: dict[str, dict] = {}

    def row(code: str) -> dict:
        return table.setdefault(code, {
            "checks": {"fired": 0, "hinted": 0, "correct": 0},
            "llm": {"verdicts": 0, "hinted": 0, "correct": 0},
        })  # fmt: skip

    made = set()
    for ids in (
        BatchItem.objects.filter(batch=batch).values_list("root_id", "trajectory_id"),
        BatchRound.objects.filter(item__batch=batch).values_list("before_id", "after_id"),
    ):
        for pair in ids:
            made.update(pk for pk in pair if pk)
    diagnoses = Diagnosis.objects.filter(
        trajectory_id__in=made, endpoint=batch.intervener, status="ok"
    )
    for source, code, findings in diagnoses.values_list("source", "flaw_type__code", "findings"):
        for flaw in {f.get("flaw_type") for f in findings or [] if f.get("flaw_type")}:
            row(flaw)["checks"]["fired"] += 1
        if source == "llm" and code:
            row(code)["llm"]["verdicts"] += 1
    rounds = BatchRound.objects.filter(item__batch=batch).exclude(diagnosis=None)
    for source, code, correct in rounds.values_list(
        "diagnosis__source", "diagnosis__flaw_type__code", "correct_after"
    ):
        if code:
            part = row(code)["checks" if source == "checks" else "llm"]
            part["hinted"] += 1
            part["correct"] += int(bool(correct))
    return dict(sorted(table.items()))


def _summary(rows: list[dict], minutes: float) -> dict:
    hint = sum(r["hint_tokens"] for r in rows)
    generated = sum(r["generated_tokens"] for r in rows)
    golden = [r for r in rows if r["golden_candidate"]]
    flaws: dict[str, int] = {}
    for r in rows:
        for code in r["flaws"]:
            flaws[code] = flaws.get(code, 0) + 1
    trajectories = sum(r["trajectories"] for r in rows)
    golden_hint = sum(r["hint_tokens"] for r in golden)
    golden_generated = sum(r["generated_tokens"] for r in golden)
    per_trajectory = (
        round(sum(r["minutes"] for r in rows) / trajectories, 2) if trajectories else None
    )
    return {
        "problems": len(rows),
        "native_correct": sum(r["native_correct"] for r in rows),
        "calm_correct": sum(r["calm_correct"] for r in rows),
        "golden_candidates": len(golden),
        "interventions": sum(r["interventions"] for r in rows),
        "token_modification_ratio": round(hint / generated, 4) if generated else 0.0,
        "token_modification_ratio_golden": round(golden_hint / max(1, golden_generated), 4),
        "code_calls": sum(r["code_calls"] for r in rows),
        "trajectories": trajectories,
        "minutes_per_trajectory": per_trajectory,
        "flaw_types": flaws,
        "minutes": round(minutes, 1),
    }


def _parts(batch) -> dict:
    from django.conf import settings

    mode = batch.config.get("intervener_mode") or settings.CALM_INTERVENER_MODE
    return {"intervener_mode": mode, "by_source": by_source(batch)}


def _export(batch, out: Path) -> None:
    from curation.formats.trajectory_records import trajectory_export
    from curation.models import Trajectory

    with (out / "trajectories.jsonl").open("w") as fh:
        for t in Trajectory.objects.filter(endpoint=batch.reasoner).order_by("pk"):
            fh.write(json.dumps(trajectory_export(t)) + "\n")


def _print(rows: list[dict], summary: dict, args, out: Path) -> None:
    def mark(ok):
        return "yes" if ok else "-"

    print(f"\nCALM loop: reasoner {args.reasoner}, intervener {args.intervener}, at most "
          f"{args.max_interventions} interventions\n")  # fmt: skip
    header = (f"{'problem':<28}{'native':>7}{'CALM':>6}{'hints':>6}{'golden':>7}{'TMR':>7}"
              f"{'code':>6}{'min/traj':>9}  flaws / outcome")  # fmt: skip
    print(header)
    print("-" * len(header))
    for r in rows:
        tmr = r["hint_tokens"] / r["generated_tokens"] if r["generated_tokens"] else 0
        per = r["minutes"] / r["trajectories"] if r["trajectories"] else 0
        print(
            f"{r['problem'][:27]:<28}{mark(r['native_correct']):>7}{mark(r['calm_correct']):>6}"
            f"{r['interventions']:>6}{mark(r['golden_candidate']):>7}{tmr:>7.1%}"
            f"{r['code_calls']:>6}{per:>9.2f}  {','.join(r['flaws']) or '-'} / {r['outcome']}"
        )
    s = summary
    n = s["problems"]
    print("\n" + f"{'overall':<34}{'this run':>16}{'target (demo set)':>22}   paper")
    lines = [
        ("native correct", f"{s['native_correct']}/{n}", "", ""),
        ("correct after CALM", f"{s['calm_correct']}/{n}",
         f">= {TARGETS['calm_correct']}/12 and > native", PAPER["correctness"]),
        ("golden candidates", str(s["golden_candidates"]), f">= {TARGETS['golden_candidates']}",
         "112 golden (paper, full run)"),
        ("interventions", str(s["interventions"]), "", ""),
        # The paper's figure is over golden trajectories: that is the headline row.
        ("token modification ratio, golden", f"{s['token_modification_ratio_golden']:.2%}",
         f"<= {TARGETS['token_modification_ratio']:.0%}", PAPER["token_modification_ratio"]),
        ("  over all trajectories", f"{s['token_modification_ratio']:.2%}", "", ""),
        ("code calls", str(s["code_calls"]), "", ""),
        ("minutes per trajectory", str(s["minutes_per_trajectory"]), "", ""),
        ("minutes, whole run", str(s["minutes"]), f"<= {TARGETS['minutes']} (2 cores)", ""),
    ]  # fmt: skip
    for label, value, target, paper in lines:
        print(f"{label:<34}{value:>16}{target:>22}   {paper}")
    print(f"flaw types found: {json.dumps(s['flaw_types'])}")
    if s.get("by_source"):
        print(f"\n{'flaw type (Intervener mode ' + s.get('intervener_mode', '?') + ')':<40}"
              f"{'check fired':>12}{'hinted':>8}{'correct':>8}{'LLM named':>11}{'hinted':>8}"
              f"{'correct':>8}")  # fmt: skip
        for code, parts in s["by_source"].items():
            c, m = parts["checks"], parts["llm"]
            print(f"{code:<40}{c['fired']:>12}{c['hinted']:>8}{c['correct']:>8}"
                  f"{m['verdicts']:>11}{m['hinted']:>8}{m['correct']:>8}")  # fmt: skip
    print(f"\nKept: {out}/loop.sqlite3, trajectories.jsonl, summary.json")


def report(args, out: Path) -> int:
    """The figures of a kept run from its database, also of one that was cut short (its
    unfinished problems show their state)."""
    from django.core.management import call_command
    from django.db.models import Max

    from curation.models import Batch, BatchItem, Diagnosis, Trajectory

    call_command("migrate", verbosity=0)  # a run kept by an older version reads too
    batch = Batch.objects.select_related("reasoner", "intervener").order_by("-pk").first()
    if batch is None:
        raise SystemExit(f"no batch in {out / 'loop.sqlite3'}")
    # The last write of the run: a trajectory or a verdict (``update()`` leaves updated_at).
    times = [
        Trajectory.objects.filter(endpoint=batch.reasoner).aggregate(at=Max("created_at"))["at"],
        Diagnosis.objects.filter(endpoint=batch.intervener).aggregate(at=Max("created_at"))["at"],
    ]
    last = max((t for t in times if t), default=None)
    minutes = (last - batch.created_at).total_seconds() / 60 if last else 0.0
    rows = _rows(batch)
    summary = _summary(rows, minutes)
    summary.update(_parts(batch))
    summary["finished"] = BatchItem.objects.filter(batch=batch, finished_at__isnull=False).count()
    args.reasoner, args.intervener = batch.reasoner.name, batch.intervener.name
    args.max_interventions = batch.max_interventions
    if args.json:
        print(json.dumps(summary))
    else:
        _print(rows, summary, args, out)
        print(f"finished problems: {summary['finished']} of {summary['problems']}")
    return 0


def run(args, out: Path) -> int:
    import logging

    from django.core.management import call_command

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise

    from curation.services.batches import batch_create

    call_command("migrate", verbosity=0)
    problems = _problems(args)
    reasoner = _endpoint(args.reasoner, "reasoner", args.tokenizer)
    intervener = (
        reasoner if args.intervener == args.reasoner
        else _endpoint(args.intervener, "intervener", args.tokenizer)
    )  # fmt: skip
    if intervener == reasoner:
        reasoner.role = "both"
        reasoner.save(update_fields=["role"])
    server = _ensure_server([reasoner, intervener])
    try:
        batch = batch_create(
            name=f"bench loop {time.strftime('%Y-%m-%d %H:%M')}", problems=problems,
            reasoner=reasoner, intervener=intervener, enqueue=False,
            config={"max_interventions": args.max_interventions,
                    "concurrency": args.concurrency,
                    **({"intervener_mode": args.intervener_mode}
                       if getattr(args, "intervener_mode", None) else {})},
        )  # fmt: skip
        minutes = _drive(batch, len(problems))
    finally:
        if server is not None:
            server.stop()
    rows = _rows(batch)
    summary = _summary(rows, minutes)
    summary.update(_parts(batch))
    _export(batch, out)
    (out / "summary.json").write_text(json.dumps({"summary": summary, "problems": rows,
                                                  "args": vars(args)}, indent=2))  # fmt: skip
    if args.json:
        print(json.dumps(summary))
    else:
        _print(rows, summary, args, out)
    return 0
