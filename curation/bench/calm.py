"""CALM batch orchestration speed.

1. Bookkeeping: an instantly answering scripted stand-in for both models, N problems through
   generate → diagnose (flaw) → hint → regenerate → diagnose (flawless); problems per second of
   the driver's own work (database writes, claims, tokens packing), with one item per round as
   the baseline against ``concurrency`` items per round.
2. Requests in flight: the Intervener is a real OpenAI-compatible HTTP server on loopback that
   answers after a delay; the server counts how many requests it holds at once.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FLAW = {"flawless": False, "step": 0, "flaw_type": "delayed_code_use",
        "hint": "Let me check the answer.", "rationale": "bench"}  # fmt: skip
CLEAN = {"flawless": True, "step": None, "flaw_type": None, "hint": None, "rationale": "bench"}


class _SlowServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, delay_s: float):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.delay_s = delay_s
        self.in_flight = 0
        self.peak = 0
        self.lock = threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        server = self.server
        with server.lock:
            server.in_flight += 1
            server.peak = max(server.peak, server.in_flight)
        try:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(server.delay_s)
            reply = json.dumps(CLEAN)
            body = json.dumps({"choices": [{"message": {"content": reply}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        finally:
            with server.lock:
                server.in_flight -= 1


def _setup(tokenizer_dir: str, problems: int):
    from django.core.management import call_command

    from curation.models import Benchmark, ModelEndpoint, Problem

    call_command("migrate", verbosity=0)
    bench = Benchmark.objects.create(name="Bench")
    Problem.objects.bulk_create(
        Problem(benchmark=bench, external_id=f"b{i}", question=f"Maximize x{i}.", answer=1.0,
                content_hash=str(i))
        for i in range(problems)
    )  # fmt: skip
    reasoner = ModelEndpoint.objects.create(
        name="instant reasoner", backend="scripted", model=tokenizer_dir,
        extra={"completions": ["The answer is \\\\boxed{1}."] * (problems * 4)},
    )  # fmt: skip
    instant = ModelEndpoint.objects.create(
        name="instant intervener", backend="scripted", role="intervener", model=tokenizer_dir,
        extra={"chat_rules": [["Let me check", json.dumps(CLEAN)], ["", json.dumps(FLAW)]]},
    )  # fmt: skip
    return list(Problem.objects.filter(benchmark=bench)), reasoner, instant


def _drive(batch) -> float:
    from curation.services.batches import batch_advance

    start = time.perf_counter()
    while batch_advance(batch_id=batch.pk):
        pass
    return time.perf_counter() - start


def run(args) -> int:
    from curation.engine.tiny_model import build_tiny_model
    from curation.models import BatchItem, ModelEndpoint
    from curation.services.batches import batch_create

    tokenizer_dir = str(build_tiny_model(tempfile.mkdtemp(prefix="calm-bench-tok-")))
    problems, reasoner, instant = _setup(tokenizer_dir, args.problems)
    rows = []
    for label, concurrency, chosen in (
        ("1 item per round (baseline)", 1, problems[: max(10, args.problems // 10)]),
        (f"{args.concurrency} items per round", args.concurrency, problems),
    ):
        batch = batch_create(name=label, problems=chosen, reasoner=reasoner, intervener=instant,
                             config={"concurrency": concurrency}, enqueue=False)  # fmt: skip
        seconds = _drive(batch)
        outcomes = set(BatchItem.objects.filter(batch=batch).values_list("outcome", flat=True))
        rows.append({"run": label, "problems": len(chosen), "seconds": round(seconds, 2),
                     "problems_per_s": round(len(chosen) / seconds, 1),
                     "outcomes": ",".join(sorted(outcomes))})  # fmt: skip
    rows.append({"run": "speed-up", "problems_per_s": round(
        rows[1]["problems_per_s"] / rows[0]["problems_per_s"], 1)})  # fmt: skip

    server = _SlowServer(args.delay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    slow = ModelEndpoint.objects.create(
        name="slow intervener", backend="openai", role="intervener", concurrency=args.in_flight,
        base_url=f"http://127.0.0.1:{server.server_address[1]}/v1", model="slow",
        tokenizer=tokenizer_dir,
    )  # fmt: skip
    batch = batch_create(name="in flight", problems=problems[: args.in_flight * 2],
                         reasoner=reasoner, intervener=slow,
                         config={"concurrency": args.in_flight}, enqueue=False)  # fmt: skip
    seconds = _drive(batch)
    server.shutdown()
    flight = {"requests_in_flight_peak": server.peak, "target": 32, "delay_s": args.delay,
              "problems": args.in_flight * 2, "seconds": round(seconds, 2)}  # fmt: skip
    report = {"bookkeeping": rows, "in_flight": flight}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print("CALM loop bookkeeping with an instantly answering scripted stand-in (target >= 20/s):")
    for row in rows:
        print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))
    print(f"\nRequests in flight against an Intervener that answers after {args.delay} s "
          f"(target >= 32): peak {server.peak}, {flight['problems']} problems in "
          f"{flight['seconds']} s")  # fmt: skip
    return 0
