"""The embedded model's token route: llama.cpp's own server (``llama-server``) takes the prompt
as token ids on its native ``/completion`` and returns the generated ids, so a continuation
from a hint sends the stored ids and stores exactly the ids that come back.

The server here is a stub of llama-server's ``/completion`` (named as such) that records every
request and answers with what a real model generates: the tiny random Qwen3 through the
transformers backend, greedy, from the ids it was sent. The real llama-server is exercised in
``tests/curation/engine/serving/test_llama_server.py`` where it is built.
"""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from curation import engine
from curation.engine import GenerationRequest, load_backend
from curation.models import Job, ModelEndpoint, Trajectory
from curation.services.hints import continue_job_run, hint_insert
from curation.services.trajectories import generate_job_run, trajectories_generate

HINT = "Let me think again about the constraints."


class StubLlamaServer(ThreadingHTTPServer):
    """A stub of llama-server's native ``/completion`` (not llama.cpp): records each request
    in ``seen`` and the ids it answered in ``answered``; the ids come from ``model`` (a real
    tiny model, greedy). Any other path answers 404, as a text route would need."""

    daemon_threads = True

    def __init__(self, model):
        self.seen: list[dict] = []
        self.answered: list[list[int]] = []
        self.paths: list[str] = []
        # Streamed answers send one event per token, as llama-server does; ``hold_back`` drops
        # the event of that token index, as llama-server does for a token that ends inside a
        # UTF-8 character (its id never arrives; ``tokens_predicted`` still counts it).
        self.hold_back: int | None = None
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(h):
                body = json.loads(h.rfile.read(int(h.headers["Content-Length"])))
                self.paths.append(h.path)
                if h.path != "/completion":
                    status, answer = 404, {"error": "stub: only /completion"}
                else:
                    with lock:
                        [out] = model.generate(
                            [GenerationRequest(list(body["prompt"]), body["n_predict"],
                                               temperature=0.0)]
                        )  # fmt: skip
                        self.seen.append(body)
                        self.answered.append(list(out.token_ids))
                    stop_type = "eos" if out.finish_reason == "eos" else "limit"
                    if body.get("stream"):
                        return self._stream(h, model, out, stop_type)
                    status, answer = 200, {
                        "content": out.text, "tokens": list(out.token_ids),
                        "stop_type": stop_type, "stopping_word": "",
                        "tokens_predicted": len(out.token_ids),
                    }  # fmt: skip
                data = json.dumps(answer).encode()
                h.send_response(status)
                h.send_header("Content-Length", str(len(data)))
                h.end_headers()
                h.wfile.write(data)

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def _stream(self, h, model, out, stop_type) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.end_headers()
        for i, token in enumerate(out.token_ids):
            if i == self.hold_back:
                continue
            event = {"content": model.decode([token]), "tokens": [token], "stop": False}
            h.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            h.wfile.flush()
        final = {"content": "", "tokens": [], "stop": True, "stop_type": stop_type,
                 "tokens_predicted": len(out.token_ids)}  # fmt: skip
        h.wfile.write(f"data: {json.dumps(final)}\n\n".encode())
        h.wfile.flush()
        h.close_connection = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def tiny(tiny_model_path):
    return load_backend(
        {"backend": "transformers", "model": str(tiny_model_path), "device": "cpu",
         "sampling": {"temperature": 0.0}}
    )  # fmt: skip


@pytest.fixture
def stub(tiny):
    server = StubLlamaServer(tiny)
    yield server
    server.shutdown()


def _spec(url, tokenizer, **extra):
    return {"backend": "openai", "model": "tiny", "base_url": url + "/v1", "concurrency": 2,
            "tokenizer": str(tokenizer), "sampling": {"temperature": 0.0},
            "completion_api": "llama.cpp", **extra}  # fmt: skip


def test_ids_go_in_and_the_ids_that_come_back_are_the_result(stub, tiny, tiny_model_path):
    backend = load_backend(_spec(stub.url, tiny_model_path))
    prompt = tiny.encode("Maximize profit")
    [result] = backend.generate([GenerationRequest(prompt, 12, temperature=0.0)])
    assert stub.paths == ["/completion"]  # no tokenize round trip, no text
    [sent] = stub.seen
    assert sent["prompt"] == prompt and sent["return_tokens"] is True
    assert sent["cache_prompt"] is True and sent["n_predict"] == 12
    assert result.token_ids == stub.answered[0]
    assert result.token_ids == tiny.generate([GenerationRequest(prompt, 12)])[0].token_ids
    assert result.warnings == []


def test_someone_watching_sees_the_ids_while_they_stream_and_the_result_is_the_same(
    stub, tiny, tiny_model_path
):
    """A generation with a preview (``on_tokens``) streams: the watcher sees the ids grow one
    event at a time, and the result is exactly the ids the server generated."""
    backend = load_backend(_spec(stub.url, tiny_model_path))
    assert backend.streams
    prompt = tiny.encode("Maximize profit")
    seen: list[tuple[int, list[int]]] = []
    where: set = set()

    def running_loop():
        try:
            return asyncio.get_running_loop()
        except RuntimeError:
            return None

    def watch(k, ids):
        # Called where the caller is (its thread, its event loop if any: none in a worker), not
        # inside the backend's own event loop: a job writes its preview to the database from
        # here, which Django refuses inside an async context.
        where.add((threading.get_ident(), running_loop()))
        seen.append((k, list(ids)))

    [result] = backend.generate([GenerationRequest(prompt, 12, temperature=0.0)], on_tokens=watch)
    assert [sent["stream"] for sent in stub.seen] == [True]
    assert result.token_ids == stub.answered[0] and len(result.token_ids) == 12
    assert where == {(threading.get_ident(), running_loop())}
    lengths = [len(ids) for _, ids in seen]  # growing (reports may be coalesced), to the end
    assert lengths == sorted(set(lengths)) and lengths[-1] == 12
    assert seen[-1] == (0, result.token_ids)


def test_a_stream_that_held_back_an_id_is_asked_again_unstreamed(stub, tiny, tiny_model_path):
    """llama-server sends no event for a token ending inside a UTF-8 character: a stream whose
    ids fall short of the count generated is never stored; the same request goes again
    unstreamed and its exact ids are the result."""
    stub.hold_back = 3
    backend = load_backend(_spec(stub.url, tiny_model_path))
    prompt = tiny.encode("Maximize profit")
    [result] = backend.generate(
        [GenerationRequest(prompt, 12, temperature=0.0)], on_tokens=lambda k, ids: None
    )
    assert [sent["stream"] for sent in stub.seen] == [True, False]
    assert result.token_ids == stub.answered[1] and len(result.token_ids) == 12


def test_a_stop_string_in_the_ids_ends_at_the_closing_fence(tiny_model_path, tiny):
    """llama-server drops a matched stop string from its text but not from its tokens."""
    ids = tiny.encode("Here:\n```python\nprint(1)\n```\n and more")
    answers = [{"content": "Here:\n```python\nprint(1)", "tokens": ids, "stop_type": "word",
                "stopping_word": "\n```\n"}]  # fmt: skip

    class Fixed(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(h):
            h.rfile.read(int(h.headers["Content-Length"]))
            data = json.dumps(answers.pop(0)).encode()
            h.send_response(200)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Fixed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    backend = load_backend(_spec(url, tiny_model_path, stop_strings=["\n```\n"]))
    [result] = backend.generate([GenerationRequest([1, 2, 3], 100, stop_at_code=True)])
    server.shutdown()
    assert result.finish_reason == "code"
    assert result.text == "Here:\n```python\nprint(1)\n```"
    assert result.token_ids == ids[: len(result.token_ids)]


@pytest.mark.django_db
def test_a_continuation_from_a_hint_sends_the_stored_ids_and_stores_the_ids_returned(
    problem, stub, tiny_model_path, caplog
):
    endpoint = ModelEndpoint.objects.create(
        name="embedded (stub llama-server)", backend="openai", base_url=stub.url + "/v1",
        model="tiny", tokenizer=str(tiny_model_path),
        sampling={"temperature": 0.0, "max_new_tokens": 24}, is_default_reasoner=True,
        extra={"completion_api": "llama.cpp", "stop_strings": ["\n```\n"]},
    )  # fmt: skip
    job = trajectories_generate(problems=[problem], endpoint=endpoint, enqueue=False)
    done = generate_job_run(job_id=job.pk, worker="t")
    assert done.status == Job.Status.SUCCEEDED, done.error
    parent = Trajectory.objects.get(job=job)
    before = len(stub.seen)

    hint = hint_insert(trajectory=parent, step_index=0, char_offset=0, text=HINT,
                       by_user=None, enqueue=False)  # fmt: skip
    done = continue_job_run(job_id=hint.job_id, worker="t")
    assert done.status == Job.Status.SUCCEEDED, done.error
    hint.refresh_from_db()
    child = hint.branch
    parent_prompt = engine.TaggedTokens.from_bytes(bytes(parent.prompt_tokens)).ids
    parent_tokens = engine.TaggedTokens.from_bytes(bytes(parent.completion_tokens))
    child_prompt = engine.TaggedTokens.from_bytes(bytes(child.prompt_tokens)).ids
    child_tokens = engine.TaggedTokens.from_bytes(bytes(child.completion_tokens))
    cut = hint.token_offset

    continuation = stub.seen[before:]
    assert continuation and all(isinstance(i, int) for r in continuation for i in r["prompt"])
    # The first request of the continuation is the stored prefix, id for id, then the hint.
    first = continuation[0]["prompt"]
    assert first[: len(parent_prompt) + cut] == parent_prompt + parent_tokens.ids[:cut]
    hinted = [i for i, tag in zip(child_tokens.ids, child_tokens.tags, strict=True)
              if tag == engine.Tag.HINT]  # fmt: skip
    assert first[len(parent_prompt) + cut :] == hinted
    # What the model generated after the hint is stored exactly as the server returned it.
    model_after = [i for i, tag in zip(child_tokens.ids[cut:], child_tokens.tags[cut:],
                                       strict=True) if tag == engine.Tag.MODEL]  # fmt: skip
    assert model_after == [i for ids in stub.answered[before:] for i in ids]
    assert child_prompt == parent_prompt
    assert continuation[-1]["prompt"] + stub.answered[-1] == child_prompt + child_tokens.ids
    # The jobs streamed (their live preview), and writing the preview never failed (it runs
    # on the job's own thread, not inside the backend's event loop).
    assert all(sent["stream"] for sent in stub.seen)
    failed = [r for r in caplog.records if "failed" in r.getMessage() and r.levelname == "ERROR"]
    assert not failed, [r.getMessage() for r in failed]
    assert not any(w.get("kind") == "retokenized" for w in (child.warnings or []))
