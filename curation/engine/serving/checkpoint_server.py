"""Serve a local checkpoint over a small OpenAI-compatible HTTP API (no vLLM needed).

    python -m curation.engine.serving.checkpoint_server --model var/checkpoints/sft-1 --port 8011
    # then an endpoint {"backend": "openai", "base_url": "http://127.0.0.1:8011/v1", ...}

Routes: GET /v1/models; POST /v1/completions (prompt as text or token ids; max_tokens,
temperature, top_p, stop, seed, include_stop_str_in_output, return_token_ids);
POST /v1/chat/completions; POST /tokenize (prompt, or messages + add_generation_prompt);
POST /detokenize. One generation at a time (a lock): it is for a reviewer or a test, not for
throughput. Binds to 127.0.0.1 unless told otherwise: it has no authentication.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet by default
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._send(200, {"object": "list", "data": [
                {"id": self.server.model_name, "object": "model", "owned_by": "calm-studio",
                 "max_model_len": self.server.backend.context_length}
            ]})  # fmt: skip
        elif self.path.rstrip("/") in ("/health", ""):
            self._send(200, {"status": "ok"})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._send(400, {"error": {"message": "the body is not JSON"}})
            return
        routes = {
            "/v1/completions": self.server.completions,
            "/v1/chat/completions": self.server.chat_completions,
            "/tokenize": self.server.tokenize,
            "/detokenize": self.server.detokenize,
        }
        route = routes.get(self.path.rstrip("/"))
        if route is None:
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        try:
            self._send(200, route(body))
        except (KeyError, TypeError, ValueError) as exc:
            self._send(400, {"error": {"message": f"{type(exc).__name__}: {exc}"}})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, backend, model_name: str, verbose: bool = False):
        super().__init__(address, _Handler)
        self.backend = backend
        self.model_name = model_name
        self.verbose = verbose
        self.lock = threading.Lock()  # one generate at a time on one model

    # --- routes ---------------------------------------------------------------------------

    def completions(self, body: dict[str, Any]) -> dict[str, Any]:
        from ..backends.transformers_backend import Row, StopStrings

        b = self.backend
        prompt = body["prompt"]
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], list):
            prompt = prompt[0]  # a batch of one
        if isinstance(prompt, list):
            if not all(isinstance(t, int) and 0 <= t < len(b.tokenizer) for t in prompt):
                raise ValueError("prompt token ids must be ints in the vocabulary")
            prompt_ids = list(prompt)
        else:
            prompt_ids = b.encode(str(prompt))
        stops = body.get("stop") or []
        stops = [stops] if isinstance(stops, str) else list(stops)
        row = Row(prompt_ids, int(body.get("max_tokens") or 16), StopStrings(b.decode, stops))
        with self.lock:
            b.generate_rows([row], **self._sampling(body))
        text = b.decode(row.ids)
        if row.reason == "eos":
            text = b.tokenizer.decode(row.ids, skip_special_tokens=True)
        stop_reason: str | None = None
        if row.reason == "stop":
            stop_reason = row.stopper.matched
            cut = text.find(stop_reason)
            end = cut + len(stop_reason) if body.get("include_stop_str_in_output") else cut
            text = text[:end]
        choice = {
            "index": 0,
            "text": text,
            "finish_reason": "length" if row.reason == "length" else "stop",
            "stop_reason": stop_reason,
            "logprobs": None,
        }
        if body.get("return_token_ids"):
            choice["token_ids"] = row.ids
            choice["prompt_token_ids"] = prompt_ids
        return self._envelope("text_completion", choice, len(prompt_ids), len(row.ids))

    def chat_completions(self, body: dict[str, Any]) -> dict[str, Any]:
        from ..backends.transformers_backend import Row

        b = self.backend
        prompt_ids = b.chat_prompt_ids(body["messages"])
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 512)
        row = Row(prompt_ids, max_tokens)
        with self.lock:
            b.generate_rows([row], **self._sampling(body))
        content = b.tokenizer.decode(row.ids, skip_special_tokens=True)
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "length" if row.reason == "length" else "stop",
        }
        return self._envelope("chat.completion", choice, len(prompt_ids), len(row.ids))

    def tokenize(self, body: dict[str, Any]) -> dict[str, Any]:
        b = self.backend
        if "messages" in body:
            text = b.tokenizer.apply_chat_template(
                body["messages"],
                add_generation_prompt=bool(body.get("add_generation_prompt", True)),
                tokenize=False,
                **(body.get("chat_template_kwargs") or {}),
            )
            ids = b.encode(text)
        else:
            ids = list(
                b.tokenizer.encode(
                    body["prompt"], add_special_tokens=bool(body.get("add_special_tokens"))
                )
            )
        return {"tokens": ids, "count": len(ids), "max_model_len": b.context_length}

    def detokenize(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"prompt": self.backend.decode([int(t) for t in body["tokens"]])}

    def _sampling(self, body: dict[str, Any]) -> dict[str, Any]:
        temperature = body.get("temperature")
        return {
            "temperature": 1.0 if temperature is None else float(temperature),
            "top_p": float(body.get("top_p") or 1.0),
            "seed": body.get("seed"),
        }

    def _envelope(self, kind: str, choice: dict, n_prompt: int, n_new: int) -> dict[str, Any]:
        return {
            "id": f"cmpl-{uuid.uuid4().hex[:16]}",
            "object": kind,
            "created": int(time.time()),
            "model": self.model_name,
            "choices": [choice],
            "usage": {
                "prompt_tokens": n_prompt,
                "completion_tokens": n_new,
                "total_tokens": n_prompt + n_new,
            },
        }


def make_server(
    model: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    name: str | None = None,
    device: str | None = None,
    verbose: bool = False,
) -> _Server:
    """A ready (not yet serving) server over ``model``; ``port=0`` picks a free port."""
    from ..backends.transformers_backend import TransformersBackend

    spec: dict[str, Any] = {"backend": "transformers", "model": model}
    if device:
        spec["device"] = device
    backend = TransformersBackend(spec)
    return _Server((host, port), backend, name or model, verbose=verbose)


def main(argv: list[str] | None = None) -> None:
    """``python -m curation.engine.serving.checkpoint_server --model PATH --port N``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="local checkpoint folder")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--name", default=None, help="served model name (default: the path)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    server = make_server(
        args.model, host=args.host, port=args.port, name=args.name, device=args.device,
        verbose=args.verbose,
    )  # fmt: skip
    host, port = server.server_address[:2]
    print(f"serving {args.model} on http://{host}:{port}/v1", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
