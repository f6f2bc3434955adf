"""``python -m curation.bench serve``: the embedded model server's speed, side by side with
another server given by URL (the previous server, or a plain llama.cpp build).

Measured on each server, through ``/v1/completions`` with text prompts (what every
OpenAI-compatible server takes), temperature 0:

- decode tokens/s of one request (a short prompt, ``--decode-tokens`` generated);
- prompt tokens/s (a ~2,800-token prompt never seen before, one token generated);
- all tokens (prompt + generated) per second of wall time with 1, 2, 4 and 8 requests at once;
- the time to continue a ~3,000-token trajectory after a hint when requests for other problems
  came in between (the previous server's single context forgets it; a slot keeps it).

Benchmarks, not tests: the figures depend on the machine and its load (printed with them).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PARAGRAPH = (
    "A furniture maker builds tables and chairs. Each table needs 4 hours of carpentry and 2 "
    "hours of finishing; each chair needs 3 hours of carpentry and 1 hour of finishing. There "
    "are 240 carpentry hours and 100 finishing hours a week. A table earns 70 and a chair 50. "
)


def _post(url: str, body: dict, timeout: float = 900.0) -> dict:
    request = urllib.request.Request(  # noqa: S310
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read())


def _v1(url: str) -> str:
    """An OpenAI base URL: ``http://host:port`` and ``…/v1`` both mean ``…/v1``."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def _complete(base: str, model: str, prompt: str, max_tokens: int) -> tuple[float, int, int]:
    """(seconds, prompt tokens, generated tokens) of one completion; an answer without token
    counts is an error, never a zero figure."""
    started = time.monotonic()
    data = _post(f"{base}/completions", {"model": model, "prompt": prompt,
                                          "max_tokens": max_tokens, "temperature": 0})  # fmt: skip
    usage = data.get("usage")
    if not isinstance(usage, dict) or "completion_tokens" not in usage:
        raise SystemExit(f"{base}/completions answered without token counts (is it an "
                         f"OpenAI-compatible /v1 base URL?): {str(data)[:200]}")  # fmt: skip
    return (time.monotonic() - started, int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0))  # fmt: skip


def _long_prompt(words: int) -> str:
    text = f"[{uuid.uuid4()}] "  # never cached
    while len(text.split()) < words:
        text += PARAGRAPH
    return text + "\nWrite the Pyomo model."


def measure(base: str, model: str, decode_tokens: int = 128) -> dict:
    out: dict = {"url": base}
    seconds, prompt, generated = _complete(
        base, model, f"[{uuid.uuid4()}] Write a long Python program that prints primes.",
        decode_tokens,
    )  # fmt: skip
    out["decode_tokens_per_s"] = round(generated / seconds, 1) if seconds else None
    seconds, prompt, _ = _complete(base, model, _long_prompt(2100), 1)
    out["prompt_tokens"] = prompt
    out["prompt_tokens_per_s"] = round(prompt / seconds, 1) if seconds else None
    out["all_tokens_per_s"] = {}
    for concurrent in (1, 2, 4, 8):
        prompts = [f"[{uuid.uuid4()}] Problem {i}: {PARAGRAPH}" for i in range(concurrent)]
        started = time.monotonic()
        with ThreadPoolExecutor(concurrent) as pool:
            results = list(pool.map(lambda p: _complete(base, model, p, 64), prompts))
        wall = time.monotonic() - started
        tokens = sum(p + g for _, p, g in results)
        out["all_tokens_per_s"][concurrent] = round(tokens / wall, 1)
    trajectory = _long_prompt(2300)
    _complete(base, model, trajectory, 16)  # problem A, generated once
    with ThreadPoolExecutor(2) as pool:  # problems B and C come in between
        list(pool.map(lambda p: _complete(base, model, p, 16),
                      [_long_prompt(300), _long_prompt(300)]))  # fmt: skip
    seconds, prompt, _ = _complete(base, model, trajectory + "\nHint: check the units.", 16)
    out["continuation_after_hint_s"] = round(seconds, 2)
    out["continuation_prompt_tokens"] = prompt
    return out


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(args) -> int:
    from curation.engine.serving import local_model

    spec = local_model.get_model()
    rows = []
    proc = None
    base = _v1(args.url) if args.url else None
    if not base:
        build = local_model.server_build()
        if build is None or not local_model.is_prepared(spec):
            print("the embedded model is not prepared or llama-server not built: run "
                  "`python manage.py prepare_model`, or give --url")  # fmt: skip
            return 2
        port = _free_port()
        argv = local_model.command_for(spec, build=build, port_=port)
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = local_model.base_url(port_=port)
        local_model.wait_ready(base, timeout=300, alive=lambda: proc.poll() is None)
    try:
        targets = [("llama-server (embedded)", base, spec.name)]
        if args.compare:
            url, _, model = args.compare.partition("#")
            targets.append(("compared", _v1(url), model or spec.name))
        for name, url, model in targets:
            row = {"server": name, **measure(url, model, args.decode_tokens)}
            rows.append(row)
            if not args.json:
                print(json.dumps(row))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
    load = os.getloadavg()
    summary = {"rows": rows, "load_average": [round(x, 2) for x in load],
               "cpus": len(os.sched_getaffinity(0)), "slots": local_model.n_slots()}  # fmt: skip
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"machine: {summary['cpus']} CPUs, load average {summary['load_average']}, "
              f"{summary['slots']} slots")  # fmt: skip
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2))
    return 0
