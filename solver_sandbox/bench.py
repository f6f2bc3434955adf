"""Benchmark, in one run on one small Pyomo LP: cold subprocess, warm isolated pool, in-process.

Latency is measured one job at a time (p50/p95); throughput with one worker per core.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import isolation
from .limits import Limits
from .pool import SandboxPool

LP = textwrap.dedent(
    """
    import pyomo.environ as pyo

    m = pyo.ConcreteModel()
    m.x = pyo.Var(within=pyo.NonNegativeReals)
    m.y = pyo.Var(within=pyo.NonNegativeReals)
    m.z = pyo.Var(within=pyo.NonNegativeReals)
    m.c1 = pyo.Constraint(expr=m.x + 2 * m.y + m.z <= 14)
    m.c2 = pyo.Constraint(expr=3 * m.x - m.y + m.z >= 0)
    m.c3 = pyo.Constraint(expr=m.x - m.y + 2 * m.z <= 2)
    m.obj = pyo.Objective(expr=3 * m.x + 4 * m.y + m.z, sense=pyo.maximize)
    pyo.SolverFactory("highs").solve(m)
    print(f"OBJECTIVE_VALUE: {pyo.value(m.obj)}")
    """
)
TARGETS = {"warm_p50_ms": 40.0, "speedup_vs_cold": 25.0, "warm_jobs_per_s": 35.0}

# Runs in a fresh interpreter so the benchmarking process never imports Pyomo itself.
_IN_PROCESS = textwrap.dedent(
    """
    import io, json, os, sys, time, contextlib
    code, n, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    import pyomo.environ, highspy
    compiled = compile(code, "<lp>", "exec")
    def job():
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compiled, {"__name__": "__main__"})
    for _ in range(5):
        job()
    lat = []
    for _ in range(n):
        t = time.perf_counter(); job(); lat.append((time.perf_counter() - t) * 1000)
    highspy.Highs.resetGlobalScheduler(True)
    t0 = time.perf_counter()
    pids = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            for _ in range(n):
                job()
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    jps = workers * n / (time.perf_counter() - t0)
    print(json.dumps({"latencies_ms": lat, "jobs_per_s": jps}))
    """
)


def _stats(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(p95, 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
        "n": len(ordered),
    }


def _cold(cold_jobs: int, workers: int, *, bwrap: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "lp_job.py")
        with open(path, "w") as fh:
            fh.write(LP)
        prefix = []
        if bwrap:  # the same job, wrapped per job in the pool's bubblewrap sandbox
            argv = isolation.bwrap_argv(sys.executable)
            assert argv[-1] == "--"
            prefix = [*argv[:-1], "--ro-bind", tmp, tmp, "--"]

        def one() -> float:
            t = time.perf_counter()
            subprocess.run([*prefix, sys.executable, path], check=True, capture_output=True)
            return (time.perf_counter() - t) * 1000

        latencies = [one() for _ in range(cold_jobs)]
        if bwrap:
            return _stats(latencies)
        n = max(workers * 3, cold_jobs)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(lambda _: one(), range(n)))
        jps = n / (time.perf_counter() - t0)
    return {**_stats(latencies), "jobs_per_s": round(jps, 2)}


def _warm(jobs: int, workers: int) -> dict[str, Any]:
    limits = Limits(timeout_s=10)
    with SandboxPool(slots=workers, profiles=("pyomo",)) as pool:
        for _ in range(10):
            result = pool.run(LP, limits=limits)
            if not result.ok or result.objective is None:
                raise RuntimeError(f"warm-up job failed: {result.status} {result.stderr[-500:]}")
        latencies = []
        for _ in range(jobs):
            result = pool.run(LP, limits=limits)
            latencies.append(result.wall_ms)
        # Interactive use leaves the pool idle between code blocks: spares are ready and warm.
        idle = []
        for _ in range(max(20, jobs // 5)):
            time.sleep(0.05)
            idle.append(pool.run(LP, limits=limits).wall_ms)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as ex:
            results = list(ex.map(lambda _: pool.run(LP, limits=limits), range(jobs)))
        jps = jobs / (time.perf_counter() - t0)
        failures = sum(1 for r in results if not r.ok)
        protections = pool.protections
        cpu = statistics.median(r.cpu_ms for r in results)
    return {
        **_stats(latencies),
        "jobs_per_s": round(jps, 2),
        "idle_between_jobs": _stats(idle),
        "child_cpu_ms_p50": round(cpu, 2),
        "failures": failures,
        "protections": protections,
    }


def _in_process(jobs: int, workers: int) -> dict[str, Any]:
    import json

    out = subprocess.run(
        [sys.executable, "-c", _IN_PROCESS, LP, str(jobs), str(workers)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    data = json.loads(out.strip().splitlines()[-1])
    return {**_stats(data["latencies_ms"]), "jobs_per_s": round(data["jobs_per_s"], 2)}


def run_bench(*, warm_jobs: int = 300, cold_jobs: int = 8) -> dict[str, Any]:
    """Measure all three ways and the ratios between them; returns a JSON-able report."""
    workers = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    cold = _cold(cold_jobs, workers)
    cold_bwrap = None
    if isolation.bwrap_problem() is None:
        cold_bwrap = _cold(cold_jobs, workers, bwrap=True)
    warm = _warm(warm_jobs, workers)
    inproc = _in_process(warm_jobs, workers)
    ratios = {
        "speedup_vs_cold": round(cold["p50_ms"] / warm["p50_ms"], 1),
        "throughput_vs_cold": round(warm["jobs_per_s"] / cold["jobs_per_s"], 1),
        "isolation_overhead_vs_in_process": round(warm["p50_ms"] / inproc["p50_ms"], 2),
        "throughput_vs_in_process": round(warm["jobs_per_s"] / inproc["jobs_per_s"], 2),
    }
    checks = {
        "warm_p50_ms": warm["p50_ms"] <= TARGETS["warm_p50_ms"],
        "speedup_vs_cold": ratios["speedup_vs_cold"] >= TARGETS["speedup_vs_cold"],
        "warm_jobs_per_s": warm["jobs_per_s"] >= TARGETS["warm_jobs_per_s"],
    }
    return {
        "workers": workers,
        "cold_subprocess": cold,
        "cold_subprocess_in_bwrap": cold_bwrap,
        "warm_pool": warm,
        "in_process": inproc,
        "ratios": ratios,
        "targets": TARGETS,
        "targets_met": checks,
        "bench_seconds": round(time.perf_counter() - t0, 1),
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
    }


def format_report(report: dict[str, Any]) -> str:
    rows = [("", "p50 ms", "p95 ms", "jobs/s")]
    warm = report["warm_pool"]
    for label, r in (
        ("cold subprocess", report["cold_subprocess"]),
        ("cold subprocess in bwrap", report["cold_subprocess_in_bwrap"]),
        ("warm pool, back to back", warm),
        ("warm pool, idle between", warm["idle_between_jobs"]),
        ("in-process (no isolation)", report["in_process"]),
    ):
        if r is None:
            continue
        jps = f"{r['jobs_per_s']:.1f}" if "jobs_per_s" in r else "-"
        rows.append((label, f"{r['p50_ms']:.1f}", f"{r['p95_ms']:.1f}", jps))
    load = report["load_average_1min"]
    lines = [
        f"small Pyomo LP; throughput with {report['workers']} workers (one per core); "
        f"1-min load average {load['before']:.2f} before, {load['after']:.2f} after",
        "",
    ]
    for row in rows:
        lines.append(f"{row[0]:<30}{row[1]:>10}{row[2]:>10}{row[3]:>10}")
    ratios, met, targets = report["ratios"], report["targets_met"], report["targets"]
    lines += [
        "",
        f"warm pool vs cold subprocess: {ratios['speedup_vs_cold']}x faster (p50), "
        f"{ratios['throughput_vs_cold']}x the throughput",
        f"warm pool vs in-process: {ratios['isolation_overhead_vs_in_process']}x the latency, "
        f"{ratios['throughput_vs_in_process']}x the throughput",
        f"job CPU (p50, in the sandboxed child): {report['warm_pool']['child_cpu_ms_p50']} ms; "
        f"failed jobs: {report['warm_pool']['failures']}",
        "",
        "targets: "
        + ", ".join(
            f"{k} {'<=' if k == 'warm_p50_ms' else '>='} {targets[k]} "
            f"[{'met' if met[k] else 'MISSED'}]"
            for k in targets
        ),
        "protections: " + ", ".join(report["warm_pool"]["protections"]),
        f"bench took {report['bench_seconds']} s",
    ]
    return "\n".join(lines)
