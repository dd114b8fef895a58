"""Local stand-ins for hosted model APIs, on loopback: each speaks its provider's wire format over
real HTTP, so kb's real client code runs against it (no network on these machines).

Embeddings are word-hash vectors: each word of a text adds one to a coordinate chosen by its hash,
so texts that share words are near each other and retrieval by meaning-free word overlap works.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

WORD_HASH_DIM = 256


def word_hash_vector(text: str, dim: int = WORD_HASH_DIM) -> list[float]:
    vector = np.zeros(dim)
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        vector[int.from_bytes(hashlib.md5(word.encode()).digest()[:4], "little") % dim] += 1.0
    if not vector.any():
        vector[0] = 1.0
    return (vector / np.linalg.norm(vector)).tolist()


class StandIn:
    """Counters shared with the handler: requests, texts embedded, a delay per request."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.texts = 0
        self.delay_s = 0.0
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []


def _handler(state: StandIn, answer: Callable[[str, dict[str, Any]], dict[str, Any]]) -> type:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.requests += 1
                state.bodies.append(body)
                state.paths.append(self.path)
                state.headers.append({k.lower(): v for k, v in self.headers.items()})
            time.sleep(state.delay_s)
            raw = json.dumps(answer(self.path, body)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    return Handler


def openai_embeddings(state: StandIn) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
    """POST /v1/embeddings as OpenAI answers it."""

    def answer(path: str, body: dict[str, Any]) -> dict[str, Any]:
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        with state.lock:
            state.texts += len(texts)
        data = [{"object": "embedding", "index": i, "embedding": word_hash_vector(t)} for i, t in enumerate(texts)]
        return {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }

    return answer


@contextmanager
def serve(
    answer_for: Callable[[StandIn], Callable[[str, dict[str, Any]], dict[str, Any]]],
) -> Iterator[tuple[str, StandIn]]:
    """A stand-in server on a free loopback port: yields its base address and its counters."""
    state = StandIn()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state, answer_for(state)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()


def anthropic_messages(
    reply: Callable[[str], str],
) -> Callable[[StandIn], Callable[[str, dict[str, Any]], dict[str, Any]]]:
    """POST /v1/messages as Anthropic answers it, the text written by ``reply(prompt)``; POST
    /v1/embeddings as Voyage (and OpenAI) answer it."""

    def answer_for(state: StandIn) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
        embeddings = openai_embeddings(state)

        def answer(path: str, body: dict[str, Any]) -> dict[str, Any]:
            if path.endswith("/embeddings"):
                return embeddings(path, body)
            prompt = "\n".join(
                part["text"] if isinstance(part, dict) else str(part)
                for message in body["messages"]
                for part in (message["content"] if isinstance(message["content"], list) else [message["content"]])
            )
            text = reply(prompt)
            return {
                "id": f"msg_{state.requests}",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": len(prompt.split()), "output_tokens": len(text.split())},
            }

        return answer

    return answer_for
