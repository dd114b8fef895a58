"""The embedding paths besides the default: the ONNX Runtime export of the shipped model, and a remote
OpenAI-compatible provider embedding batches concurrently through 429 and 5xx answers."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from scripted_llm import ScriptedLLM

from kb.knowledge_base import KnowledgeBase
from kb.models.onnx_embedding import OnnxEmbedding

TEXTS = [
    "Products can be returned within 30 days of delivery.",
    "The shop opens at nine o'clock on weekdays.",
    "Mitochondria are the powerhouse of the cell; ATP synthase turns a proton gradient into ATP. " * 12,
]


def docs_folder(tmp_path, count: int):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(count):
        (folder / f"note{i:02d}.md").write_text(f"# Note {i}\n\nFact number {i}: the code word is word{i}.\n")
    return folder


def test_onnx_runtime_gives_the_same_vectors_and_answers(db_url, local_embed, tmp_path):
    config = {
        "database": {"url": db_url.render_as_string(hide_password=False)},
        "sql": {"enabled": False},
        "router": {"selector": "offline"},
        "profiles": {"local": {"embedding": {"runtime": "onnx"}}},
    }
    kb = KnowledgeBase.from_config(config, llm=ScriptedLLM(lambda prompt: "Written answer."))
    try:
        assert isinstance(kb.embed_model, OnnxEmbedding), "runtime: onnx is a config change, not code"
        onnx = np.asarray(kb.embed_model.get_text_embedding_batch(TEXTS))
        torch = np.asarray(local_embed.get_text_embedding_batch(TEXTS))
        cosines = np.sum(onnx * torch, axis=1)
        assert np.all(cosines > 0.97), cosines  # int8 weights: close to, not equal to, the fp32 vectors
        assert np.allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-4)
        kb.index_directory(docs_folder(tmp_path, 5), progress=False)
        assert kb.retrieve("What is the code word of fact number 3?", mode="dense")[0].node.metadata["file_name"] == (
            "note03.md"
        )
    finally:
        kb.close()


class StubEmbeddings(BaseHTTPRequestHandler):
    """An OpenAI-compatible /embeddings endpoint: 8-d vectors from a hash of each text; the first
    batch is refused with 429 and the third with 503; records how many requests were in flight."""

    state: dict = {}

    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        state = self.state
        with state["lock"]:
            state["requests"] += 1
            number = state["requests"]
            state["in_flight"] += 1
            state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
        try:
            time.sleep(0.15)  # a remote call's latency, so concurrent batches overlap
            if number in (2, 4):  # request 1 is kb's dimension probe
                code = 429 if number == 2 else 503
                state["refused"].append(code)
                self._send(code, {"error": {"message": "slow down", "type": "rate_limit"}}, retry_after="0")
                return
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            data = []
            for i, text in enumerate(texts):
                digest = hashlib.sha256(text.encode()).digest()
                vector = np.frombuffer(digest[:32], dtype=np.uint8)[:8].astype(float) + 1.0
                data.append(
                    {"object": "embedding", "index": i, "embedding": (vector / np.linalg.norm(vector)).tolist()}
                )
            with state["lock"]:
                state["embedded"] += len(texts)
            self._send(
                200,
                {
                    "object": "list",
                    "data": data,
                    "model": body["model"],
                    "usage": {"prompt_tokens": 1, "total_tokens": 1},
                },
            )
        finally:
            with state["lock"]:
                state["in_flight"] -= 1

    def _send(self, code: int, payload: dict, retry_after: str | None = None) -> None:
        raw = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.end_headers()
        self.wfile.write(raw)


@pytest.fixture
def stub_server():
    StubEmbeddings.state = {
        "lock": threading.Lock(),
        "requests": 0,
        "in_flight": 0,
        "max_in_flight": 0,
        "embedded": 0,
        "refused": [],
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubEmbeddings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", StubEmbeddings.state
    server.shutdown()


def test_remote_embeddings_run_concurrently_and_survive_429_and_503(db_url, tmp_path, stub_server):
    api_base, state = stub_server
    config = {
        "profile": "openai_like",
        "database": {"url": db_url.render_as_string(hide_password=False)},
        "sql": {"enabled": False},
        "router": {"selector": "offline"},
        "profiles": {
            "openai_like": {
                "embedding": {
                    "provider": "openai_like",
                    "model": "stub-embed",
                    "api_base": api_base,
                    "batch_size": 4,
                    "concurrency": 4,
                    "max_retries": 3,
                }
            }
        },
    }
    kb = KnowledgeBase.from_config(config, llm=ScriptedLLM(lambda prompt: "Written answer."))
    try:
        report = kb.index_directory(docs_folder(tmp_path, 24), progress=False)
        assert report.embedded == 24 and report.chunks == 24
        assert sorted(state["refused"]) == [429, 503], (
            "both refusals happened (in either order: concurrent) and were retried"
        )
        assert state["max_in_flight"] >= 2, "batches were in flight at once"
        assert state["embedded"] == 24 + 1  # every chunk once, plus the dimension probe
        assert len(kb.retrieve("Which code word has fact 7?", mode="dense")) == 5
        assert state["embedded"] == 24 + 2, "the question was embedded by the same provider"
    finally:
        kb.close()


def test_concurrent_single_calls_are_served_in_batches_with_their_own_results():
    import threading
    import time

    from kb.models.coalescer import Coalescer

    sizes = []

    def batch(values):
        sizes.append(len(values))
        time.sleep(0.05)
        if "bad" in values:
            raise ValueError("a bad item")
        return [v.upper() for v in values]

    coalesce = Coalescer(batch, max_batch=8)
    results, errors = {}, {}

    def ask(value):
        try:
            results[value] = coalesce(value)
        except ValueError as exc:
            errors[value] = exc

    threads = [threading.Thread(target=ask, args=(f"q{i}",)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {f"q{i}": f"Q{i}" for i in range(20)} and not errors
    assert sum(sizes) == 20 and max(sizes) > 1 and max(sizes) <= 8  # batched, within the bound
    assert coalesce("alone") == "ALONE" and sizes[-1] == 1  # one caller: a batch of one, no waiting
    with pytest.raises(ValueError, match="a bad item"):
        coalesce("bad")
