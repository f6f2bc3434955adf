"""The ``openai`` backend against ``python -m curation.engine.serving.checkpoint_server`` as a real
server process on loopback; retries and fence-stop resumption against a small stub server (named
as such)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from curation.engine import (
    BackendTimeoutError,
    GenerationRequest,
    RolloutConfig,
    Tag,
    load_backend,
    rollout,
)

REPO = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tiny_model_path):
    """The tiny model behind ``curation.engine.serving.checkpoint_server`` in a subprocess; killed
    at the end."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "curation.engine.serving.checkpoint_server",
         "--model", str(tiny_model_path),
         "--port", str(port), "--name", "tiny"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"serve exited: {proc.stdout.read().decode()[-2000:]}")
        try:
            if httpx.get(url + "/v1/models", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("serve did not come up within 90 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _spec(url, **kw):
    return {"backend": "openai", "model": "tiny", "base_url": url + "/v1", "concurrency": 4,
            "sampling": {"temperature": 0.0}, **kw}  # fmt: skip


def test_it_generates_the_same_ids_as_the_local_model(served, tiny_backend, tiny_model_path):
    remote = load_backend(_spec(served, tokenizer=str(tiny_model_path)))
    prompts = [tiny_backend.encode("Maximize profit"), tiny_backend.encode("x <= 4")]
    reqs = [GenerationRequest(p, 12, temperature=0.0) for p in prompts]
    got = remote.generate(reqs)
    want = tiny_backend.generate(reqs)
    assert [g.token_ids for g in got] == [w.token_ids for w in want]
    assert all(g.finish_reason in ("length", "eos") for g in got)


def test_it_uses_the_servers_tokenizer_when_there_is_no_local_one(served, tiny_backend):
    remote = load_backend(_spec(served))
    text = "m.x = pyo.Var()\n```python\n"
    assert remote.encode(text) == tiny_backend.encode(text)
    assert remote.decode(tiny_backend.encode(text)) == text
    messages = [{"role": "user", "content": "hi"}]
    assert remote.chat_prompt_ids(messages) == tiny_backend.chat_prompt_ids(messages)


def test_it_runs_a_rollout_and_answers_chat_through_the_server(served, tiny_model_path, sandbox):
    remote = load_backend(_spec(served, tokenizer=str(tiny_model_path)))
    prefix = "<think>\n```python\nprint('OBJECTIVE_VALUE: 3')\n```\n"
    r = rollout(remote, "P.", RolloutConfig(max_new_tokens=60, think_prefix=prefix,
                                           temperature=0.0))  # fmt: skip
    assert r.code_calls == 1 and r.steps[0].output == "OBJECTIVE_VALUE: 3"
    out = r.completion[r.steps[0].output_token_start : r.steps[0].token_end]
    assert set(out.tags) == {Tag.INTERPRETER}
    assert r.finish_reason in ("budget", "eos")
    assert isinstance(remote.chat([{"role": "user", "content": "hi"}], max_new_tokens=5), str)


# --- a stub server for retries and stop handling (not a model) ---------------------------------


class Stub(ThreadingHTTPServer):
    """Answers completion POSTs from a list of (status, body or None to hang) entries and records
    them. Tokenize requests go to ``tokenize(text) -> ids`` (404 when None, as on a server
    without a tokenize endpoint) and are recorded in ``tokenized``."""

    daemon_threads = True

    def __init__(self, answers, tokenize=None):
        self.answers, self.seen, self.tokenized = list(answers), [], []

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(h):
                body = json.loads(h.rfile.read(int(h.headers["Content-Length"])))
                if h.path.endswith("tokenize"):
                    text = body.get("prompt", body.get("input", ""))
                    self.tokenized.append(text)
                    ids = tokenize(text) if tokenize else None
                    status, answer = (404, {}) if ids is None else (200, {"tokens": ids})
                else:
                    self.seen.append(body)
                    status, answer = self.answers.pop(0) if self.answers else (500, {})
                if answer is None:
                    time.sleep(1.0)  # longer than the client's timeout
                    return
                data = json.dumps(answer).encode()
                h.send_response(status)
                h.send_header("Content-Length", str(len(data)))
                h.end_headers()
                h.wfile.write(data)

        super().__init__(("127.0.0.1", 0), H)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


def _text(text, stop_reason="```"):
    return (200, {"choices": [{"text": text, "finish_reason": "stop", "stop_reason": stop_reason}]})


def test_it_retries_a_timing_out_endpoint_then_fails_clearly(tiny_model_path):
    stub = Stub([(200, None)] * 6)
    backend = load_backend(_spec(stub.url, tokenizer=str(tiny_model_path), request_timeout_s=0.2,
                                 max_retries=2, retry_backoff_s=0.01))  # fmt: skip
    [result] = backend.generate([GenerationRequest([1, 2, 3], 5)])
    assert result.finish_reason == "error"
    assert "no answer after 3 attempts" in result.error and "timed out" in result.error
    assert len(stub.seen) == 3
    with pytest.raises(BackendTimeoutError):
        backend.chat([{"role": "user", "content": "hi"}])
    stub.shutdown()


def test_it_retries_429_but_not_a_bad_request(tiny_model_path):
    stub = Stub([(429, {}), (503, {}), _text("done", None), (400, {"error": "bad"})])
    backend = load_backend(_spec(stub.url, tokenizer=str(tiny_model_path), retry_backoff_s=0.01,
                                 token_prompts=True))  # fmt: skip
    [ok] = backend.generate([GenerationRequest([5, 6], 10)])
    assert ok.finish_reason == "eos" and ok.text == "done" and len(stub.seen) == 3
    [bad] = backend.generate([GenerationRequest([5, 6], 10)])
    assert bad.finish_reason == "error" and "HTTP 400" in bad.error and len(stub.seen) == 4
    stub.shutdown()


def test_it_resumes_after_fences_that_close_no_python_block(tiny_model_path):
    stub = Stub([
        _text("See:\n```"), _text("text\nhello\n```"), _text("\nNow:\n```"),
        _text("python\nprint(1)\n```"), _text("never asked"),
    ])  # fmt: skip
    backend = load_backend(_spec(stub.url, tokenizer=str(tiny_model_path), token_prompts=False))
    [result] = backend.generate([GenerationRequest(backend.encode("Q:"), 200)])
    assert result.finish_reason == "code"
    assert result.text == "See:\n```text\nhello\n```\nNow:\n```python\nprint(1)\n```"
    assert len(stub.seen) == 4
    assert stub.seen[3]["prompt"] == "Q:See:\n```text\nhello\n```\nNow:\n```"
    assert stub.seen[0]["stop"] == ["```"]
    stub.shutdown()


# --- the text route (llama.cpp's server takes text prompts only) -------------------------------


def _llama(text, completion_tokens):
    """An answer as llama-cpp-python gives it: "stop" for both EOS and a matched stop string
    (which it drops from the text), no stop_reason, and a usage count."""
    return (200, {"choices": [{"text": text, "finish_reason": "stop"}],
                  "usage": {"completion_tokens": completion_tokens}})  # fmt: skip


def _text_backend(stub, tiny_model_path):
    return load_backend(_spec(stub.url, tokenizer=str(tiny_model_path), token_prompts=False,
                              stop_strings=["\n```\n"]))  # fmt: skip


def test_the_text_route_stores_the_end_of_sequence(tiny_model_path, tiny_backend):
    same = lambda text: tiny_backend.encode(text)  # noqa: E731 - the server's own tokenizer
    stub = Stub([_llama("The answer is 3.", 6)], tokenize=same)
    backend = _text_backend(stub, tiny_model_path)
    [result] = backend.generate([GenerationRequest(backend.encode("Q: 1+2?"), 50)])
    im_end = backend.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert result.finish_reason == "eos" and result.token_ids[-1] == im_end
    assert backend.decode(result.token_ids) == "The answer is 3.<|im_end|>"
    assert result.warnings == [] and stub.tokenized == ["Q: 1+2?"]
    stub.shutdown()


def test_the_text_route_goes_on_after_a_dropped_fence_that_is_not_the_end(tiny_model_path):
    # The usage count says the server generated tokens it did not return: a stop string.
    stub = Stub([_llama("See:\n```text\nhi", 20), _llama(" done.", 3)])
    backend = _text_backend(stub, tiny_model_path)
    [result] = backend.generate([GenerationRequest(backend.encode("Q:"), 200)])
    assert result.finish_reason == "eos"
    assert backend.decode(result.token_ids).startswith("See:\n```text\nhi\n```\n done.")
    assert len(stub.seen) == 2
    stub.shutdown()


def test_the_text_route_flags_a_server_that_tokenizes_differently(tiny_model_path, tiny_backend):
    def other(text):  # a server whose tokenizer splits the text its own way
        ids = tiny_backend.encode(text)
        return [*ids[:2], 7, 7, *ids[2:]]

    stub = Stub([_llama("```python\nprint(1)", 9), _llama("</think>\\boxed{1}", 8)],
                tokenize=other)  # fmt: skip
    backend = _text_backend(stub, tiny_model_path)
    r = rollout(
        backend,
        "Q.",
        RolloutConfig(max_new_tokens=200),
        run_code=lambda code, cells, timeout: {"status": "ok", "stdout": "1\n"},
    )
    kinds = {w["kind"] for w in r.warnings}
    assert kinds == {"retokenized"}
    first = r.warnings[0]
    assert first["first_difference"] == 2 and first["server"] == first["stored"] + 2
    assert r.final_answer.value == 1 and r.completion.ids[-1] in backend.eos_token_ids
    stub.shutdown()
