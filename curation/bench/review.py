"""Review screen speed: server render of a long trajectory, and concurrent reviewers.

Render: the trajectory page for an N-step trajectory through Django's test client (the server's
own work: queries, template, sanitizing), against a short trajectory as the baseline.
Load: a real gunicorn on loopback and U concurrent logged-in reviewers, each looping over
"open a trajectory, label a step (htmx), open the queue", against one reviewer alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time

PASSWORD = "bench-password-not-secret"  # noqa: S105 - throwaway bench users


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _seed(steps: int, baseline_steps: int, users: int):
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command

    from curation.models import Benchmark, Problem, Trajectory

    call_command("migrate", verbosity=0)
    group = Group.objects.get(name="reviewer")
    names = [f"bench-reviewer-{i}" for i in range(users)]
    for name in names:
        user = User.objects.create_user(name, password=PASSWORD)
        user.groups.add(group)
    bench = Benchmark.objects.create(name="Bench")
    problem = Problem.objects.create(
        benchmark=bench, external_id="bench-1", question="Maximize 3x + 2y.", answer=10,
        content_hash="bench",
    )  # fmt: skip

    def make(n: int) -> Trajectory:
        body = "Let me think about the constraints. " * 20 + "**Bold** and `code`."
        code = "import pyomo.environ as pyo\nm = pyo.ConcreteModel()\nm.x = pyo.Var()\n" * 3
        out = "OBJECTIVE_VALUE: 10\n" * 5
        steps_data = [
            {
                "index": i,
                "reasoning": f"Step {i}. {body}",
                "code": code if i < n - 1 else None,
                "output": out if i < n - 1 else None,
                "result": {"status": "ok", "objective": 10.0, "solver_status": "optimal"},
                "has_hint": False,
                "token_start": i * 100,
                "code_token_start": i * 100 + 50,
                "output_token_start": i * 100 + 80,
                "token_end": i * 100 + 100,
            }
            for i in range(n)
        ]
        return Trajectory.objects.create(
            problem=problem, prompt_tokens=b"", completion_tokens=b"", text="",
            steps=steps_data, finish_reason="eos", final_answer="10", final_value=10.0,
            is_correct=True, n_model_tokens=n * 80, n_interpreter_tokens=n * 20,
        )  # fmt: skip

    return make(steps), make(baseline_steps), names


def _render_times(trajectory, renders: int, warmup: int = 3) -> list[float]:
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(User.objects.get(username="bench-reviewer-0"))
    url = trajectory.get_absolute_url()
    for _ in range(warmup):  # warm template and rendering caches
        assert client.get(url).status_code == 200
    times = []
    for _ in range(renders):
        start = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    return times


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _login(client, base: str, name: str) -> str:
    page = await client.get("/login/")
    await client.post(
        "/login/",
        data={"username": name, "password": PASSWORD,
              "csrfmiddlewaretoken": page.cookies.get("csrftoken")},
        headers={"Referer": base + "/login/"},
    )  # fmt: skip
    return client.cookies.get("csrftoken")


async def _reviewer(client, base, csrf, trajectory_id, until, think, out) -> None:
    requests = [
        ("GET", f"/trajectories/{trajectory_id}/", None, {}),
        ("POST", f"/trajectories/{trajectory_id}/steps/1/label", {"flaw_type": "", "note": "x"},
         {"HX-Request": "true", "X-CSRFToken": csrf, "Referer": base}),
        ("GET", "/review/", None, {}),
    ]  # fmt: skip
    # People are not in lockstep: start at a random moment and pause a varying time (0.5x to
    # 1.5x ``think``), else every reviewer would hit the same page in the same instant.
    rng = random.Random(csrf)  # noqa: S311 - load timing, not security
    if think:
        await asyncio.sleep(rng.uniform(0, think))
    i = 0
    while time.monotonic() < until:
        method, path, data, headers = requests[i % len(requests)]
        i += 1
        start = time.perf_counter()
        try:
            response = await client.request(method, path, data=data, headers=headers)
            ok = response.status_code == 200
        except Exception:
            ok = False
        elapsed = (time.perf_counter() - start) * 1000
        out["latencies"].append(elapsed)
        kind = f"{method} {path.split('/')[-1] if method == 'POST' else path.split('/')[1]}"
        out.setdefault("by_kind", {}).setdefault(kind, []).append(elapsed)
        if not ok:
            out["errors"] += 1
        if think:
            await asyncio.sleep(think * rng.uniform(0.5, 1.5))


async def _load(base, names, trajectory_id, seconds, think) -> dict:
    import httpx

    out: dict = {"latencies": [], "errors": 0}
    clients = [httpx.AsyncClient(base_url=base, timeout=30) for _ in names]
    try:
        # Log everyone in first (password hashing is deliberately slow), then start the clock.
        tokens = await asyncio.gather(
            *(_login(c, base, n) for c, n in zip(clients, names, strict=True))
        )
        until = time.monotonic() + seconds
        started = time.perf_counter()
        await asyncio.gather(
            *(
                _reviewer(c, base, t, trajectory_id, until, think, out)
                for c, t in zip(clients, tokens, strict=True)
            )
        )
        out["elapsed"] = time.perf_counter() - started
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return out


def _serve(port: int) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "gunicorn", "calm_studio.wsgi", "--bind", f"127.0.0.1:{port}",
        "--workers", str(os.cpu_count() or 2), "--threads", "4", "--worker-class", "gthread",
        "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env={**os.environ})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("gunicorn did not start")


def _summary(label: str, result: dict) -> dict:
    lat = result["latencies"]
    kinds = {k: round(_percentile(v, 0.95), 1) for k, v in result.get("by_kind", {}).items()}
    return {
        "p95_by_request": kinds,
        "run": label,
        "requests": len(lat),
        "errors": result["errors"],
        "p50_ms": round(_percentile(lat, 0.50), 1),
        "p95_ms": round(_percentile(lat, 0.95), 1),
        "max_ms": round(max(lat), 1) if lat else None,
        "req_per_s": round(len(lat) / result["elapsed"], 1),
    }


def _table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  " + "  ".join(c.rjust(widths[c]) for c in columns))
    for row in rows:
        print("  " + "  ".join(str(row.get(c, "")).rjust(widths[c]) for c in columns))


def run(args) -> int:
    from curation.presentation import markdown as rendering

    long_t, short_t, names = _seed(args.steps, args.baseline_steps, args.users)
    # Cold: the first render after a restart, nothing cached; then the steady state.
    rendering._markdown_html.cache_clear()
    rendering._code_html.cache_clear()
    cold = _render_times(long_t, 1, warmup=0)[0]
    long_times = _render_times(long_t, args.renders)
    short_times = _render_times(short_t, args.renders)
    render = [
        {"page": f"{args.steps} steps, cold", "p50_ms": round(cold, 1), "p95_ms": "",
         "ratio": round(cold / statistics.median(short_times), 2)},
        {"page": f"{args.steps} steps", "p50_ms": round(statistics.median(long_times), 1),
         "p95_ms": round(_percentile(long_times, 0.95), 1),
         "ratio": round(statistics.median(long_times) / statistics.median(short_times), 2)},
        {"page": f"{args.baseline_steps} steps (baseline)",
         "p50_ms": round(statistics.median(short_times), 1),
         "p95_ms": round(_percentile(short_times, 0.95), 1), "ratio": 1.0},
    ]  # fmt: skip
    port = _free_port()
    server = _serve(port)
    try:
        base = f"http://127.0.0.1:{port}"
        runs = [
            ("1 reviewer (baseline)", names[:1], 0.0),
            (f"{args.users} reviewers, no pause", names, 0.0),
            (f"{args.users} reviewers, {args.think}s pause", names, args.think),
        ]
        load = []
        for label, who, think in runs:
            result = asyncio.run(_load(base, who, short_t.pk, args.seconds, think))
            load.append(_summary(label, result))
    finally:
        server.terminate()
        server.wait(timeout=20)
    for row in load:
        row["p95_vs_alone"] = round(row["p95_ms"] / load[0]["p95_ms"], 2)
    report = {"render": render, "load": load, "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"Server render of the trajectory page, in-process ({args.renders} renders each);")
    print("target: p50 <= 100 ms for 200 steps")
    _table(render, ["page", "p50_ms", "p95_ms", "ratio"])
    print(f"\nReviewers on gunicorn over loopback, {os.cpu_count()} CPUs shared with the load")
    print(
        "tool (each: open a trajectory, label a step with htmx, open the queue); target p95 <= 300"
    )
    _table(load, ["run", "requests", "errors", "p50_ms", "p95_ms", "max_ms", "req_per_s",
                  "p95_vs_alone"])  # fmt: skip
    return 0
