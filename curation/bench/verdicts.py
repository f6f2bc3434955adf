"""Does the Intervener judge, or is it told? Its verdicts on the correct trajectories of a kept
loop run, asked two ways side by side in one run:

    python -m curation.bench verdicts --run var/bench/loop-<time>     # the run's own Intervener
    python -m curation.bench verdicts --run var/bench/loop-… --intervener URL#model --json
    python -m curation.bench verdicts --trajectories docs/bench/loop-*/trajectories.jsonl \
        --out var/bench/verdicts-<time>                  # kept runs' exports, the embedded model

- ``told``: the prompt before issue 18's fix (commit b4363da), the baseline: the facts say
  "The stated answer matches the reference." and the task says "Answer flawless: true unless a
  step clearly has one of the flaws above.";
- ``judges``: the prompt of this code: a matching answer is not announced, and the task asks to
  judge the reasoning step by step ("a right final answer does not make a trajectory flawless").

Only trajectories whose answer matches the reference are asked: on the others the two prompts
are the same. The Intervener samples, so ``--repeats`` asks each prompt again, to tell a change
from noise. Nothing is stored in the run's database; the verdicts go to
``verdicts-compare.jsonl`` beside it (``--out`` with ``--trajectories``, whose correct records
are loaded into a throwaway database first: ``trajectory_export``'s format, as the loop bench
keeps it).
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

VARIANTS = ("told", "judges")


def told_facts(facts):
    """The facts and task of the baseline prompt (before b4363da), for a correct answer."""
    from curation import engine

    class Told(engine.Facts):
        def lines(self, steps):
            out = super().lines(steps)
            if self.reference is not None and self.correct is True:
                at = next(i for i, line in enumerate(out) if line.startswith("- Reference"))
                out.insert(at + 1, "- The stated answer matches the reference.")
            return out

        def task(self):
            if not self.findings and self.correct is True:
                return (
                    "The stated answer matches the reference. Answer flawless: true unless a "
                    "step clearly has one of the flaws above.\n"
                )
            return super().task()

    told = Told(**{k: getattr(facts, k) for k in facts.__dataclass_fields__})
    return told


def _interveners(endpoint, batch):
    from curation.services.diagnoses import Intervener

    mode = batch.config.get("intervener_mode") if batch else None

    class Baseline(Intervener):
        def facts(self, trajectory):
            return told_facts(super().facts(trajectory))

    return {"told": Baseline(endpoint, mode=mode), "judges": Intervener(endpoint, mode=mode)}


def _verdict_row(verdict) -> dict:
    return {
        "flawless": None if verdict.error else verdict.flawless,
        "step": verdict.step,
        "flaw_type": verdict.flaw_type,
        "source": verdict.source,
        "error": verdict.error,
        "rationale": (verdict.rationale or "")[:300],
    }


def load_exported(paths: list[str]) -> int:
    """The correct trajectories of exported records (``trajectory_export``'s JSONL) as rows of
    this (throwaway) database, with their problems; how many."""
    import hashlib

    from curation.models import Benchmark, Problem, Trajectory

    n = 0
    for path in paths:
        for line in Path(path).read_text().splitlines():
            record = json.loads(line)
            if record.get("is_correct") is not True:
                continue
            p = record["problem"]
            name = p.get("benchmark") or "imported"
            benchmark, _ = Benchmark.objects.get_or_create(
                slug=name.lower().replace(" ", "-")[:50], defaults={"name": name}
            )
            problem, _ = Problem.objects.get_or_create(
                benchmark=benchmark, external_id=p["external_id"],
                defaults={"question": p["question"], "answer": p.get("reference_answer"),
                          "answer_status": p.get("answer_status") or "value",
                          "content_hash": hashlib.sha256(p["question"].encode()).hexdigest()},
            )  # fmt: skip
            Trajectory.objects.create(
                problem=problem, prompt_tokens=b"", completion_tokens=b"",
                text=record.get("text", ""), steps=record["steps"],
                finish_reason=record.get("finish_reason", ""),
                final_answer=record.get("final_answer", ""),
                final_value=record.get("final_value"),
                answer_source=record.get("answer_source", ""), is_correct=True,
                n_code_calls=record.get("code_calls") or 0,
            )  # fmt: skip
            n += 1
    return n


def _trajectories(batch, limit):
    from curation.models import Trajectory
    from curation.selectors.batches import trajectories_made_by_batches

    if batch is not None:
        made = trajectories_made_by_batches(batch=batch)
        qs = Trajectory.objects.filter(pk__in=made)
    else:
        qs = Trajectory.objects.all()
    qs = qs.filter(is_correct=True).select_related("problem").order_by("pk")
    return list(qs[:limit] if limit else qs)


def summarize(rows: list[dict], repeats: int) -> dict:
    """Per variant: verdicts asked, valid ones, flawless among them, flaw types named; and how
    many trajectories changed their majority verdict from one variant to the other."""
    out: dict = {"trajectories": len(rows), "repeats": repeats}
    for variant in VARIANTS:
        verdicts = [v for r in rows for v in r[variant]]
        valid = [v for v in verdicts if v["flawless"] is not None]
        flaws: dict[str, int] = {}
        for v in valid:
            if not v["flawless"] and v["flaw_type"]:
                flaws[v["flaw_type"]] = flaws.get(v["flaw_type"], 0) + 1
        out[variant] = {
            "asked": len(verdicts),
            "valid": len(valid),
            "flawless": sum(1 for v in valid if v["flawless"]),
            "flawless_rate": round(sum(1 for v in valid if v["flawless"]) / len(valid), 3)
            if valid
            else None,
            "flaw_types": dict(sorted(flaws.items())),
        }

    def majority(verdicts):
        valid = [v["flawless"] for v in verdicts if v["flawless"] is not None]
        return None if not valid else sum(valid) * 2 > len(valid)

    changes = {"flawless_to_flawed": 0, "flawed_to_flawless": 0, "same": 0, "undecided": 0}
    for r in rows:
        a, b = majority(r["told"]), majority(r["judges"])
        if a is None or b is None:
            changes["undecided"] += 1
        elif a == b:
            changes["same"] += 1
        elif a:
            changes["flawless_to_flawed"] += 1
        else:
            changes["flawed_to_flawless"] += 1
    out["changes"] = changes
    return out


def run(args) -> int:
    import logging

    from curation.models import Batch, ModelEndpoint

    logging.getLogger("httpx").setLevel(logging.WARNING)
    from .loop import _endpoint, _ensure_server

    if args.trajectories:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        if not load_exported(args.trajectories):
            raise SystemExit("no correct trajectory in those files: nothing to compare")
        args.intervener = args.intervener or "embedded"
    batch = Batch.objects.select_related("intervener").order_by("-pk").first()
    if args.intervener:
        endpoint = _endpoint(args.intervener, "intervener", args.tokenizer)
    elif batch is not None:
        endpoint = batch.intervener
    else:
        endpoint = ModelEndpoint.objects.filter(role__in=["intervener", "both"]).first()
    if endpoint is None:
        raise SystemExit("no Intervener: pass --intervener embedded|URL[#model]")
    trajectories = _trajectories(batch, args.limit)
    if not trajectories:
        raise SystemExit("no correct trajectory in this run: nothing to compare")
    server = _ensure_server([endpoint])
    interveners = _interveners(endpoint, batch)
    jobs = [(t, v) for t in trajectories for v in VARIANTS for _ in range(args.repeats)]
    started = time.monotonic()
    try:
        from tqdm import tqdm

        results: dict[tuple[int, str], list] = {}
        with (
            ThreadPoolExecutor(max_workers=args.concurrency) as pool,
            tqdm(total=len(jobs), unit="verdict", desc="Intervener, told vs judges") as bar,
        ):
            futures = [(t, v, pool.submit(interveners[v].ask, t)) for t, v in jobs]
            for t, v, future in futures:
                results.setdefault((t.pk, v), []).append(_verdict_row(future.result()))
                bar.update(1)
    finally:
        if server is not None:
            server.stop()
    rows = [
        {"trajectory": t.pk, "problem": t.problem.external_id, "answer": t.final_answer,
         **{v: results[(t.pk, v)] for v in VARIANTS}}
        for t in trajectories
    ]  # fmt: skip
    summary = summarize(rows, args.repeats)
    summary["minutes"] = round((time.monotonic() - started) / 60, 1)
    summary["intervener"] = endpoint.name
    out = Path(args.out or args.run)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "verdicts-compare.jsonl").open("w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    (out / "verdicts-compare.json").write_text(json.dumps(summary, indent=2))
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"\nIntervener {endpoint.name} on {len(rows)} correct trajectories, "
          f"{args.repeats} verdict(s) per prompt\n")  # fmt: skip
    print(f"{'problem':<28}{'traj':>6}  {'told (baseline)':<34}{'judges (this code)':<34}")
    for r in rows:

        def show(verdicts):
            return ", ".join(
                "error" if v["flawless"] is None else "flawless" if v["flawless"]
                else f"{v['flaw_type']}@{v['step']}" for v in verdicts
            )  # fmt: skip

        print(f"{r['problem'][:27]:<28}{r['trajectory']:>6}  {show(r['told'])[:33]:<34}"
              f"{show(r['judges'])[:33]:<34}")  # fmt: skip
    print(f"\n{'':<28}{'told (baseline)':>18}{'judges (this code)':>22}")
    for key in ("asked", "valid", "flawless", "flawless_rate"):
        print(f"{key:<28}{summary['told'][key]!s:>18}{summary['judges'][key]!s:>22}")
    print(f"flaw types, told:   {json.dumps(summary['told']['flaw_types'])}")
    print(f"flaw types, judges: {json.dumps(summary['judges']['flaw_types'])}")
    print(f"majority verdict per trajectory: {json.dumps(summary['changes'])}")
    print(f"minutes: {summary['minutes']}; kept in {out}/verdicts-compare.json(l)")
    return 0
