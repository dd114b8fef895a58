"""``kb serve`` under attack and overload: real ``kb serve`` processes on loopback, a real MariaDB, a
scripted LLM (questions saying SLOW get a 400-word answer generated word by word; CRASH makes the
model fail). One test per defect of the security review, each failing before its fix, then the
bounded overload test and a property-based client of the OpenAPI document (schemathesis).

Collections: ``a`` (the demo documents) and ``b`` (a secret note), plus files in a folder shared by
both collections.
"""

from __future__ import annotations

import json
import re
import secrets
import select
import shutil
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from serving import ServedKB, bearer, call, raw_request, scratch_database, wait_job

from kb.business_database.provisioning import DATA
from kb.knowledge_base import KnowledgeBase
from kb.service.keys import KeyStore
from kb.stores.connection import MariaDBConnection

MARKER = "WALRUS-42"
SECRET = f"# Vault\n\nThe {MARKER} vault combination is 7719. Never share the {MARKER} combination.\n"
SECRET_QUESTION = "What is the vault combination?"
CREDENTIALS_MARKER = "PASSWORD-OF-THE-DATABASE-9931"


def access_rows(site, where="1=1", params=()):
    conn = MariaDBConnection(site["url"])
    try:
        return conn.fetchall(
            f"SELECT key_name, path, status, tokens FROM kb_access_log WHERE {where} ORDER BY id", params
        )
    finally:
        conn.dispose()


def process_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def site(admin, admin_url, business, tmp_path_factory):
    """Collections a and b indexed, keys of every scope, and a `kb serve` process on them."""
    with scratch_database(admin, admin_url) as (name, url):
        work = tmp_path_factory.mktemp("secure")
        roots = work / "roots"
        home = work / "kbhome"
        (home / "mariadb").mkdir(parents=True)
        (home / "mariadb" / "credentials.json").write_text(json.dumps({"admin": CREDENTIALS_MARKER}))
        outside = work / "outside"
        outside.mkdir()
        (outside / "secret.md").write_text(f"# Outside\n\nThe {MARKER} text outside the roots.\n")
        shutil.copytree(DATA / "docs", roots / "a")
        (roots / "b").mkdir()
        (roots / "b" / "vault.md").write_text(SECRET)
        config = {
            "home": str(home),
            "database": {"url": url},
            "sql": {"url": business.render_as_string(hide_password=False)},
            "router": {"selector": "offline"},
            "serve": {"index_roots": [str(roots)], "request_timeout_s": 20, "read_timeout_s": 3, "model_queue": 2},
        }
        kb = KnowledgeBase.from_config(config)
        kb.index_directory(roots / "a", collection="a", progress=False)
        kb.index_directory(roots / "b", collection="b", progress=False)
        keys = KeyStore(kb.connection)
        made = {
            "reader_a": keys.create("reader_a", collections=["a"], requests_per_minute=10000)[1],
            "analyst_a": keys.create("analyst_a", collections=["a"], sql=True, requests_per_minute=10000)[1],
            "writer_a": keys.create("writer_a", collections=["a"], scope="write", requests_per_minute=10000)[1],
            "admin_a": keys.create("admin_a", collections=["a"], scope="admin", requests_per_minute=10000)[1],
            "admin": keys.create("admin", collections=["*"], scope="admin", sql=True, requests_per_minute=100000)[1],
            "stingy": keys.create("stingy", collections=["a"], requests_per_minute=10000, tokens_per_minute=300)[1],
            "limited": keys.create("limited", collections=["a"], requests_per_minute=2)[1],
        }
        kb.close()
        server = ServedKB(config, work).wait_ready()
        try:
            yield {
                "server": server,
                "keys": made,
                "config": config,
                "url": url,
                "roots": roots,
                "home": home,
                "outside": outside,
                "work": work,
                "db": name,
            }
        finally:
            server.stop()


def secret_visible(site, key):
    hits = call(site, "POST", "/v1/retrieve", key, json={"question": SECRET_QUESTION, "top_k": 50}).json()["chunks"]
    return any(MARKER in h["text"] for h in hits)


# -- 1. HIGH: a collection owns its copies: another key's indexing neither moves, deletes nor names them --
def test_a_write_key_indexes_its_own_copies_and_never_touches_another_collections(site):
    assert not secret_visible(site, "reader_a") and secret_visible(site, "admin")
    b_chunks = {
        h["node_id"]
        for h in call(site, "POST", "/v1/retrieve", "admin", json={"question": SECRET_QUESTION, "top_k": 50}).json()[
            "chunks"
        ]
        if h["collection"] == "b"
    }
    assert b_chunks
    for body in (
        {"path": "b", "collection": "a", "include": ["nothing-matches-*"]},  # delete b's files "as gone"
        {"path": ".", "collection": "a", "include": ["nothing-matches-*"]},  # everything under the roots
    ):
        started = call(site, "POST", "/v1/index", "writer_a", json=body)
        assert started.status_code == 202, started.text
        job = wait_job(site["server"], site["keys"]["writer_a"], started.json()["id"])
        report = job["report"]
        assert not any("vault.md" in p for p in report["deleted"] + report["added"] + report["updated"])
        assert not any("vault.md" in s["path"] for s in report["skipped"])  # b's files are not even named
        assert not secret_visible(site, "reader_a"), body
        assert secret_visible(site, "admin"), body  # b's copy is still there
    # a's own documents were the writer's to remove: the include that matched nothing removed them
    assert report["deleted"] and all(p.startswith("a/") for p in report["deleted"])
    # a folder shared by two collections: a gets its own copy, b's copy is untouched
    copied = call(site, "POST", "/v1/index", "writer_a", json={"path": "b", "collection": "a"})
    job = wait_job(site["server"], site["keys"]["writer_a"], copied.json()["id"])
    assert job["status"] == "done" and job["report"]["added"] == ["vault.md"]
    assert secret_visible(site, "reader_a")  # a's own copy of a file under its index roots
    after = call(site, "POST", "/v1/retrieve", "admin", json={"question": SECRET_QUESTION, "top_k": 50}).json()[
        "chunks"
    ]
    assert b_chunks <= {h["node_id"] for h in after if h["collection"] == "b"}  # b's chunks, as they were
    removed = call(site, "POST", "/v1/index", "writer_a", json={"path": "b", "collection": "a", "include": ["x-*"]})
    assert wait_job(site["server"], site["keys"]["writer_a"], removed.json()["id"])["report"]["deleted"] == ["vault.md"]
    assert not secret_visible(site, "reader_a") and secret_visible(site, "admin")
    restored = call(site, "POST", "/v1/index", "writer_a", json={"path": "a", "collection": "a"})
    assert wait_job(site["server"], site["keys"]["writer_a"], restored.json()["id"])["status"] == "done"
    assert call(site, "POST", "/v1/retrieve", "reader_a", json={"question": "return policy"}).json()["chunks"]


def test_a_shared_folder_indexed_by_two_keys_into_two_collections(site):
    """Two write keys index one folder into their own collections, in either order: each collection
    gets its own copy, each job's report names its own collection's files only, and each reader sees
    its own collection's copy."""
    keys = KeyStore(MariaDBConnection(site["url"]))
    writer_b = keys.create(f"writer_b_{secrets.token_hex(3)}", collections=["b"], scope="write")[1]
    reader_b = keys.create(f"reader_b_{secrets.token_hex(3)}", collections=["b"])[1]
    shared = site["roots"] / "shared"
    shared.mkdir()
    (shared / "espresso-grind.md").write_text("# Grind\n\nThe SHARED-GRIND-7 setting suits a double espresso.\n")

    def index(secret, collection):
        started = httpx.post(
            site["server"].url + "/v1/index",
            headers=bearer(secret),
            json={"path": "shared", "collection": collection},
            timeout=60,
        )
        assert started.status_code == 202, started.text
        return wait_job(site["server"], secret, started.json()["id"])

    first = index(site["keys"]["writer_a"], "a")
    second = index(writer_b, "b")
    for job in (first, second):
        assert job["status"] == "done" and job["report"]["added"] == ["espresso-grind.md"], job
        assert job["report"]["skipped"] == [] and job["report"]["deleted"] == []

    def hits(secret):
        found = httpx.post(
            site["server"].url + "/v1/retrieve",
            headers=bearer(secret),
            json={"question": "SHARED-GRIND-7 setting", "mode": "text", "top_k": 20},
            timeout=60,
        ).json()["chunks"]
        return {(h["collection"], h["node_id"]) for h in found if "SHARED-GRIND-7" in h["text"]}

    seen_a, seen_b = hits(site["keys"]["reader_a"]), hits(reader_b)
    assert {c for c, _ in seen_a} == {"a"} and {c for c, _ in seen_b} == {"b"}
    assert not {n for _, n in seen_a} & {n for _, n in seen_b}  # two copies, each its own chunks
    assert index(site["keys"]["writer_a"], "a")["report"]["unchanged"] == ["espresso-grind.md"]


# -- 2. HIGH: symbolic links and kb's home -------------------------------------------------------------
def test_indexing_never_follows_links_out_of_the_root_nor_reads_kb_home(site):
    folder = site["roots"] / "linked"
    (folder / "sub").mkdir(parents=True)
    (folder / "plain.md").write_text("# Plain\n\nAn ordinary note about espresso grind sizes.\n")
    (folder / "creds.json").symlink_to(site["home"] / "mariadb" / "credentials.json")
    (folder / "outside.md").symlink_to(site["outside"] / "secret.md")
    (folder / "outside-folder").symlink_to(site["outside"], target_is_directory=True)
    (folder / "sub" / "inner.md").symlink_to(folder / "plain.md")  # inside the root: still a link
    started = call(site, "POST", "/v1/index", "writer_a", json={"path": "linked", "collection": "a"})
    report = wait_job(site["server"], site["keys"]["writer_a"], started.json()["id"])["report"]
    assert report["added"] == ["plain.md"]
    skipped = {s["path"]: s["reason"] for s in report["skipped"]}
    assert set(skipped) == {"creds.json", "outside.md", "outside-folder/", "sub/inner.md"}
    assert all("link" in reason for reason in skipped.values())
    for question in ("database password admin credentials", SECRET_QUESTION, "text outside the roots"):
        for mode in ("dense", "text"):
            hits = call(site, "POST", "/v1/retrieve", "admin", json={"question": question, "mode": mode, "top_k": 100})
            text = hits.text
            assert CREDENTIALS_MARKER not in text and "outside the roots" not in text

    # An operator's follow_symlinks follows links that stay inside the root, never the others.
    follow = KnowledgeBase.from_config({**site["config"], "indexing": {"follow_symlinks": True}})
    try:
        local = follow.index_directory(folder, collection="a", progress=False)
        assert local.added == ["sub/inner.md"]
        assert {s.path for s in local.skipped} == {"creds.json", "outside.md", "outside-folder/"}
        with pytest.raises(Exception, match="kb's own home"):
            follow.index_directory(site["home"], collection="a", progress=False)
    finally:
        follow.close()


# -- 3. MEDIUM: bodies are capped whatever their encoding, and the key comes first ---------------------
def _raw_chunked(port, headers, chunk, stop_after_bytes):
    """POST a chunked body until the server answers (or ``stop_after_bytes``); its status line and the
    bytes sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = "POST /v1/query HTTP/1.1\r\nHost: kb\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    sock.sendall((head + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode())
    sent = 0
    try:
        while sent < stop_after_bytes:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    sock.settimeout(30)
    reply = sock.recv(65536).split(b"\r\n", 1)[0].decode()
    sock.close()
    return reply, sent


def test_chunked_bodies_are_capped_and_the_key_is_checked_before_the_body(site):
    port = site["server"].port
    pid = site["server"].process.pid
    before = process_rss_kb(pid)
    # no key: refused after the headers, before the body (one 64 KB chunk sent, not 300 MB)
    reply, sent = _raw_chunked(port, {}, b"x" * 65536, 300 * 1024 * 1024)
    assert reply.startswith("HTTP/1.1 401"), reply
    assert sent < 8 * 1024 * 1024
    # a valid key: read as it comes, refused with 413 once over serve.max_request_kb (256 KB)
    for _ in range(3):
        reply, sent = _raw_chunked(port, bearer(site["keys"]["admin"]), b"y" * 65536, 300 * 1024 * 1024)
        assert reply.startswith("HTTP/1.1 413"), reply
        assert sent < 8 * 1024 * 1024
    assert process_rss_kb(pid) - before < 40 * 1024  # KB: nothing large was buffered
    big = call(
        site, "POST", "/v1/query", "admin", content=b"z" * (300 * 1024), headers={"Content-Type": "application/json"}
    )
    assert big.status_code == 413 and big.json()["error"]["type"] == "request_too_large"


# -- 4. MEDIUM: routing is judged within the key's collections -----------------------------------------
def _documents_similarity(reason):
    found = re.search(r"similarity: tables ([0-9.]+), documents ([0-9.]+)", reason)
    assert found, reason
    return found


def test_a_route_reason_says_nothing_about_other_collections(site):
    question = f"The {MARKER} vault combination is 7719"  # the secret's own words
    admin = call(site, "POST", "/v1/route", "admin", json={"question": question}).json()
    reader = call(site, "POST", "/v1/route", "analyst_a", json={"question": question}).json()
    best_visible = call(
        site, "POST", "/v1/retrieve", "reader_a", json={"question": question, "mode": "dense", "top_k": 1}
    ).json()["chunks"][0]["score"]
    admin_docs = float(_documents_similarity(admin["reason"]).group(2))
    reader_docs = float(_documents_similarity(reader["reason"]).group(2))
    figures = (admin["reason"], reader["reason"], best_visible)
    assert admin_docs > 0.6, figures  # the secret chunk itself
    assert reader_docs <= best_visible + 0.13, figures  # what a's documents give (plus a cue), not the secret
    assert admin_docs - reader_docs > 0.2, figures


# -- 5. MEDIUM: abandoned streams stop, are counted and logged ------------------------------------------
def _stream_some_then_leave(site, key, question, events=5):
    url = site["server"].url + "/v1/chat/completions"
    body = {"stream": True, "messages": [{"role": "user", "content": question}]}
    with httpx.stream("POST", url, json=body, headers=bearer(site["keys"][key]), timeout=60) as response:
        assert response.status_code == 200
        for _, _line in zip(range(events * 2), response.iter_lines()):
            pass


def test_an_abandoned_stream_stops_generating_and_is_logged_with_its_tokens(site):
    question = "SLOW: How many days do customers have to return a product? (abandoned)"
    started = time.monotonic()
    _stream_some_then_leave(site, "reader_a", question)
    # the full answer takes 400 words x 0.05 s = 20 s; a question right after is answered at once
    after = call(site, "POST", "/v1/query", "reader_a", json={"question": "Who pays return shipping? (after)"})
    assert after.status_code == 200 and time.monotonic() - started < 12
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rows = access_rows(site, "path = '/v1/chat/completions' AND key_name = 'reader_a' AND status = 499")
        if rows:
            break
        time.sleep(0.3)
    assert len(rows) == 1, access_rows(site, "path = '/v1/chat/completions'")
    (row,) = rows
    assert 0 < row[3] < 2000  # its prompt and the words produced, not the 400 it would have made


def test_a_stream_ends_at_the_keys_token_limit(site):
    url = site["server"].url + "/v1/chat/completions"
    body = {"stream": True, "messages": [{"role": "user", "content": "SLOW: What is the warranty? (limit)"}]}
    with httpx.stream("POST", url, json=body, headers=bearer(site["keys"]["stingy"]), timeout=60) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    last = events[-1]
    assert last["choices"][0]["finish_reason"] == "length"
    words = sum(1 for e in events if "word" in (e["choices"][0]["delta"].get("content") or ""))
    assert words < 300  # stopped well before the answer's 400 words
    assert call(site, "POST", "/v1/query", "stingy", json={"question": "and more?"}).status_code == 429


# -- 6. MEDIUM: deadlines, a bounded queue, and what never waits for the model ---------------------------
@pytest.fixture(scope="module")
def tight(site):
    """A second process on the same database: 4 s deadline, one request may wait for the model."""
    config = json.loads(json.dumps(site["config"]))
    config["serve"].update(request_timeout_s=4, model_queue=1)
    server = ServedKB(config, site["work"]).wait_ready()
    yield server
    server.stop()


def test_deadlines_a_bounded_queue_and_health_that_never_waits(site, tight):
    key = bearer(site["keys"]["admin"])
    url = tight.url

    def ask(tag):
        t = time.monotonic()
        r = httpx.post(
            url + "/v1/query",
            json={"question": f"SLOW: What is the return policy? ({tag})", "route": "documents"},
            headers=key,
            timeout=60,
        )
        return r, time.monotonic() - t

    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(ask, "holder")
        time.sleep(0.5)
        others = [pool.submit(ask, f"waiter {i}") for i in range(3)]
        time.sleep(0.5)
        quick = [
            httpx.get(url + "/healthz", timeout=5),
            httpx.post(url + "/v1/retrieve", json={"question": "return policy"}, headers=key, timeout=5),
            httpx.post(url + "/v1/route", json={"question": "How many orders in 2025?"}, headers=key, timeout=5),
        ]
        assert [r.status_code for r in quick] == [200, 200, 200]
        # none waited for the model: the generation holding it (4 s deadline) has not ended yet
        assert not first.done(), [r.elapsed for r in quick]
        results = [first.result()] + [f.result() for f in others]
    statuses = sorted(r.status_code for r, _ in results)
    assert statuses.count(503) == 2 and statuses.count(504) >= 1, statuses  # one waits (then times out), two refused
    for r, seconds in results:
        assert seconds < 4 + 2, seconds
        assert r.json()["error"]["type"] in ("service_unavailable", "timeout")
        if r.status_code == 503:
            assert r.headers["Retry-After"]
    metrics = httpx.get(url + "/metrics", headers=key, timeout=10).text
    assert "kb_model_queue_refused_total 2.0" in metrics and "kb_model_wait_seconds_count" in metrics
    assert "kb_model_queue_length 0.0" in metrics


def test_overload_one_slow_generation_and_a_hundred_mixed_requests(site, tight):
    """Bounded: /healthz and /v1/retrieve are not queued behind the slow generation (each ends before
    it does); every model request ends within its deadline with 200, 503 or 504; every request is in
    the access log. The load comes from one asyncio client (a hundred requests in flight at once from
    one thread)."""
    import asyncio

    key = bearer(site["keys"]["admin"])
    marker = secrets.token_hex(4)

    async def burst():
        port = tight.port

        async def slow_generation():
            answer = await raw_request(
                port, "POST", "/v1/query", key, {"question": f"SLOW: policy {marker}", "route": "documents"}
            )
            return answer[0], time.monotonic()

        slow = asyncio.ensure_future(slow_generation())
        await asyncio.sleep(0.5)

        async def request(i):
            kind = ("health", "retrieve", "query", "route", "chat")[i % 5]
            t = time.monotonic()
            if kind == "health":
                status, _ = await raw_request(port, "GET", "/healthz")
            elif kind == "retrieve":
                status, _ = await raw_request(port, "POST", "/v1/retrieve", key, {"question": f"returns {marker} {i}"})
            elif kind == "route":
                status, _ = await raw_request(port, "POST", "/v1/route", key, {"question": f"How many orders {i}?"})
            elif kind == "query":
                body = {"question": f"SLOW warranty {i}", "route": "documents"}
                status, _ = await raw_request(port, "POST", "/v1/query", key, body)
            else:
                body = {"messages": [{"role": "user", "content": f"hi {i}"}]}
                status, _ = await raw_request(port, "POST", "/v1/chat/completions", key, body)
            return kind, status, time.monotonic() - t, time.monotonic()

        outcomes = await asyncio.gather(*(request(i) for i in range(100)))
        return outcomes, await slow

    before = len(access_rows(site))
    outcomes, (slow_status, slow_ended) = asyncio.run(burst())
    for kind, status, seconds, ended in outcomes:
        if kind in ("health", "retrieve"):
            # Not queued behind the slow generation: each ends before it does (at its 4 s deadline, or
            # later). An order, not a bound in seconds: absolute bounds (1.0 s, then 2.0 s) failed on
            # loaded machines at 1.02 s and 2.16 s; their speed is measured in benchmarks/serve.py.
            assert status == 200 and ended < slow_ended, (kind, status, seconds, ended - slow_ended)
        elif kind == "route":
            assert status == 200, (kind, status, seconds)
        else:
            assert status in (200, 503, 504) and seconds < 4 + 2, (kind, status, seconds)
    assert slow_status in (200, 504)
    time.sleep(1.5)  # the last rows are written after their responses
    logged = len(access_rows(site)) - before
    assert logged == 1 + 100 - 20  # the slow one and the burst; /healthz is not an API request


# -- 7. MEDIUM: the prompt cache is owner-only ---------------------------------------------------------
def test_prompt_cache_files_and_folders_are_owner_only(tmp_path):
    import numpy as np

    from kb.models.prompt_cache import PromptStateCache

    home = tmp_path / "home"
    old = home / "cache" / "prompts" / "model-ctx4096"
    old.mkdir(parents=True)
    for folder in (home / "cache" / "prompts", old):
        folder.chmod(0o755)
    (old / "x.state").write_bytes(b"old")
    (old / "x.state").chmod(0o644)

    class State:
        llama_state = b"state bytes of a prompt with another collection's chunk"
        llama_state_size = len(llama_state)
        scores = np.zeros((1, 8), dtype=np.single)

    cache = PromptStateCache(1 << 20, old, home=home / "cache")
    cache[list(range(300))] = State()
    for path in [home / "cache" / "prompts", old]:
        assert path.stat().st_mode & 0o777 == 0o700, path
    files = list(old.iterdir())
    assert len(files) == 3 and all(f.stat().st_mode & 0o777 == 0o600 for f in files), files
    assert list(range(300)) in cache
    cache.clear()  # what benchmarks do to time cold answers
    assert list(range(300)) not in cache and [f.name for f in old.iterdir()] == ["x.state"]


# -- 8. LOW-MEDIUM: every error is logged, counted and in OpenAI's shape -------------------------------
def test_errors_are_logged_counted_and_shaped(site):
    crash = call(site, "POST", "/v1/query", "admin", json={"question": "CRASH now", "route": "documents"})
    assert crash.status_code == 500 and crash.json()["error"]["type"] == "server_error"
    assert "Traceback" not in crash.text
    time.sleep(0.5)
    assert access_rows(site, "status = 500 AND path = '/v1/query'")
    metrics = call(site, "GET", "/metrics", "admin").text
    assert 'kb_requests_total{endpoint="/v1/query",status="500"}' in metrics
    bad_filter = call(
        site,
        "POST",
        "/v1/retrieve",
        "admin",
        json={"question": "x", "filters": {"filters": [{"key": "a'b", "value": "x"}]}},
    )
    assert bad_filter.status_code == 400 and "invalid metadata key" in bad_filter.json()["error"]["message"]
    for body in ({"path": "a\x00b"}, {"path": "a/" + "x" * 4000}, {"path": "a", "collection": "no way!"}):
        r = call(site, "POST", "/v1/index", "writer_a", json=body)
        assert r.status_code in (400, 422) and r.json()["error"]["type"] == "invalid_request_error", (body, r.text)
    wrong_method = call(site, "PUT", "/v1/query", "admin", json={})
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["type"] == "invalid_request_error"


# -- 9. LOW ------------------------------------------------------------------------------------------------
def test_a_job_whose_process_died_is_reported_failed(site):
    conn = MariaDBConnection(site["url"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    job = {
        "id": secrets.token_hex(16),
        "status": "running",
        "path": str(site["roots"] / "a"),
        "collection": "a",
        "may_write": ["a"],
        "key": "writer_a",
        "owner": {"host": socket.gethostname(), "pid": dead.pid, "token": "gone"},
        "created": time.time(),
        "heartbeat": time.time(),
        "progress": None,
        "report": None,
        "error": None,
    }
    stale = {
        **job,
        "id": secrets.token_hex(16),
        "owner": {"host": "elsewhere", "pid": 1, "token": "x"},
        "heartbeat": time.time() - 120,
    }
    from kb.stores import MariaDBKVStore

    kv = MariaDBKVStore(conn, table_name="kb_kv")
    kv.put(job["id"], job, "service_jobs")
    kv.put(stale["id"], stale, "service_jobs")
    for record in (job, stale):
        seen = call(site, "GET", f"/v1/jobs/{record['id']}", "writer_a").json()
        assert seen["status"] == "failed" and "process stopped" in seen["error"]
        assert kv.get(record["id"], "service_jobs")["status"] == "failed"  # recorded, not only shown
    conn.dispose()


def test_refusals_sessions_and_bodies_say_only_what_they_should(site):
    # 429s are logged with the key's name (kb stats counts them)
    for _ in range(4):
        last = call(site, "POST", "/v1/retrieve", "limited", json={"question": "returns"})
    assert last.status_code == 429
    time.sleep(0.5)
    assert access_rows(site, "key_name = 'limited' AND status = 429")
    # a chat turn without a session stays in the query log
    conn = MariaDBConnection(site["url"])
    before = conn.fetchall("SELECT COUNT(*) FROM kb_query_log WHERE kind = 'chat'")[0][0]
    turn = call(
        site,
        "POST",
        "/v1/chat/completions",
        "reader_a",
        json={"messages": [{"role": "user", "content": "What is the warranty? (no session)"}]},
    )
    assert turn.status_code == 200
    assert conn.fetchall("SELECT COUNT(*) FROM kb_query_log WHERE kind = 'chat'")[0][0] == before + 1
    conn.dispose()
    # a 403 does not show the server's folders
    outside = call(site, "POST", "/v1/index", "writer_a", json={"path": "/etc", "collection": "a"})
    assert outside.status_code == 403 and str(site["roots"]) not in outside.text
    # an admin limited to a does not read the job reports of b
    b_job = call(site, "POST", "/v1/index", "admin", json={"path": "b", "collection": "b"}).json()
    assert call(site, "GET", f"/v1/jobs/{b_job['id']}", "admin_a").status_code == 404
    assert call(site, "GET", f"/v1/jobs/{b_job['id']}", "admin").status_code == 200


# -- 10. HIGH: queued indexing jobs cannot empty the connection pool -------------------------------------
def test_indexing_jobs_queued_behind_a_held_lock_starve_no_other_key(site, admin):
    """A run holds the knowledge base's indexing lock; one write key sends 18 jobs. Each key may have
    serve.max_jobs_per_key jobs queued or running (429 beyond), the queued ones wait without a
    database connection, and every other key is answered at once meanwhile, its requests logged."""
    lock = f"kb_generation:{site['db']}.kb_nodes"
    holder = MariaDBConnection(site["url"])
    before = len(access_rows(site, "path = '/v1/index'"))
    try:
        with holder.named_lock(lock, 0) as held:
            assert held
            started = [
                call(site, "POST", "/v1/index", "writer_a", json={"path": "a", "collection": "a"}) for _ in range(18)
            ]
            statuses = [r.status_code for r in started]
            assert statuses.count(202) == 2 and statuses.count(429) == 16, statuses
            assert all(int(r.headers["retry-after"]) > 0 for r in started if r.status_code == 429)
            accepted = [r.json()["id"] for r in started if r.status_code == 202]
            time.sleep(2.5)  # the jobs reach the lock and wait
            waiting = [
                call(site, "GET", f"/v1/jobs/{job}", "writer_a").json().get("progress") or "" for job in accepted
            ]
            assert any("waiting for another indexing run" in line for line in waiting), waiting
            waits_in_server = admin.fetchall(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT GET_LOCK(%'"
            )[0][0]
            assert waits_in_server == 0  # no connection sits in GET_LOCK for a queued job
            for _ in range(5):
                clock = time.monotonic()
                answered = call(site, "POST", "/v1/retrieve", "reader_a", json={"question": "return policy"})
                assert answered.status_code == 200 and time.monotonic() - clock < 5
            clock = time.monotonic()
            assert httpx.get(site["server"].url + "/healthz", timeout=10).status_code == 200
            assert time.monotonic() - clock < 5
    finally:
        holder.dispose()
    for job in accepted:
        assert wait_job(site["server"], site["keys"]["writer_a"], job)["status"] == "done"
    assert len(access_rows(site, "path = '/v1/index'")) - before == 18  # refused ones included


# -- 11. HIGH: a long chat request cannot hold the model past its deadline ------------------------------
def test_a_chat_request_of_thousands_of_messages_ends_within_its_deadline_and_starves_nobody(site):
    """3,000 short messages without a session (as many as fit the body limit; 1,000 forty-word ones
    held the model past the deadline): the newest serve.max_history_messages are read, the memory
    trims them in linear time, and the turn ends well within serve.request_timeout_s, while another
    key's question is answered meanwhile."""
    words = " ".join(["cup"] * 10)
    messages = [{"role": "user" if n % 2 == 0 else "assistant", "content": f"{n} {words}"} for n in range(3000)]
    messages.append({"role": "user", "content": "What is the return policy?"})
    deadline = site["config"]["serve"]["request_timeout_s"]
    with ThreadPoolExecutor(2) as pool:
        clock = time.monotonic()
        chat = pool.submit(
            call, site, "POST", "/v1/chat/completions", "reader_a", json={"model": "kb", "messages": messages}
        )
        time.sleep(0.3)
        other = pool.submit(call, site, "POST", "/v1/query", "admin_a", json={"question": "How do I descale it?"})
        answered, other_answered = chat.result(), other.result()
        elapsed = time.monotonic() - clock
    assert answered.status_code == 200, answered.text
    assert answered.json()["choices"][0]["message"]["content"]
    assert other_answered.status_code == 200, other_answered.text
    assert elapsed < deadline / 2, f"{elapsed:.1f} s for both, against a deadline of {deadline} s"


# -- 12. LOW: what a job record, the page and kb's home show ---------------------------------------------
def test_job_records_name_no_server_path_host_or_process(site):
    started = call(site, "POST", "/v1/index", "writer_a", json={"path": "a", "collection": "a"})
    assert started.status_code == 202
    job = wait_job(site["server"], site["keys"]["writer_a"], started.json()["id"])
    shown = json.dumps(job) + started.text
    assert job["path"] == "a" and job["report"]["root"] == "a", job
    for secret in (str(site["roots"]), str(site["work"]), socket.gethostname(), '"pid"', '"owner"', '"token"'):
        assert secret not in shown, secret


def test_the_page_forbids_frames_and_foreign_scripts_and_the_home_is_owner_only(site):
    import stat

    page = httpx.get(site["server"].url + "/", timeout=30)
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy and "script-src 'sha256-" in policy
    assert "unsafe-inline" not in policy and page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "localStorage" not in page.text  # the key is kept for the tab only
    assert stat.S_IMODE(site["home"].stat().st_mode) == 0o700


# -- 13. HIGH: a file swapped for a link while it is indexed is never read --------------------------------
def test_files_flipping_between_a_file_and_a_link_outside_are_never_indexed_through_the_link(site):
    """A thread swaps 40 files under an index root between a regular file and a link to a file
    outside the roots, as fast as it can, while the folder is indexed again and again: the outside
    text is never retrievable (every component is opened without following links, and the bytes
    indexed are those hashed)."""
    import os
    import threading

    folder = site["roots"] / "race"
    folder.mkdir()
    targets = [folder / f"flip{n}.md" for n in range(40)]
    for target in targets:
        target.write_text("# Flip\n\nAn innocent note about milk frothing.\n")
    outside = site["outside"] / "secret.md"
    stop, flips = threading.Event(), [0]

    def flip() -> None:
        link, plain = folder / ".flip-link", folder / ".flip-file"
        while not stop.is_set():
            for target in targets:
                link.unlink(missing_ok=True)
                link.symlink_to(outside)
                os.replace(link, target)
                plain.write_text(f"# Flip\n\nAn innocent note about milk frothing, number {flips[0]}.\n")
                os.replace(plain, target)
                flips[0] += 1

    flipper = threading.Thread(target=flip, daemon=True)
    flipper.start()
    try:
        for _ in range(10):
            started = call(site, "POST", "/v1/index", "writer_a", json={"path": "race", "collection": "a"})
            assert started.status_code == 202, started.text
            job = wait_job(site["server"], site["keys"]["writer_a"], started.json()["id"])
            assert job["status"] in ("done", "failed"), job
            for mode in ("dense", "text"):
                hits = call(
                    site,
                    "POST",
                    "/v1/retrieve",
                    "admin",
                    json={"question": "text outside the roots", "mode": mode, "top_k": 100},
                )
                assert "outside the roots" not in hits.text
    finally:
        stop.set()
        flipper.join(10)
    assert flips[0] >= 300, flips[0]


# -- 14. MEDIUM: slow clients are dropped ----------------------------------------------------------------
def _closed_by_server_after(sock: socket.socket, drip: bytes, every_s: float, give_up_s: float) -> tuple[float, bytes]:
    """Send ``drip`` a byte at a time every ``every_s`` until the server closes the connection; the
    seconds it took and whatever the server sent before closing."""
    sock.settimeout(every_s)
    clock, received = time.monotonic(), b""
    position = 0
    while time.monotonic() - clock < give_up_s:
        try:
            chunk = sock.recv(65536)
            if not chunk:
                return time.monotonic() - clock, received
            received += chunk
        except TimeoutError:
            pass
        except ConnectionResetError:  # closed while bytes of ours were unread
            return time.monotonic() - clock, received
        try:
            if position < len(drip):
                sock.sendall(drip[position : position + 1])
                position += 1
        except OSError:  # reset: closed
            return time.monotonic() - clock, received
    raise AssertionError(f"the server kept a slow connection open for {give_up_s} s (got {received[:200]!r})")


def test_a_client_sending_its_headers_or_body_slowly_is_dropped(site):
    read_timeout = site["config"]["serve"]["read_timeout_s"]
    port = site["server"].port
    # Headers trickled a byte every half second, no key: dropped, nothing answered.
    with socket.create_connection(("127.0.0.1", port)) as sock:
        elapsed, answer = _closed_by_server_after(
            sock, b"GET /v1/sessions HTTP/1.1\r\nHost: kb\r\nX-Padding: " + b"a" * 200, 0.5, read_timeout + 10
        )
    assert elapsed < read_timeout + 3 and answer == b"", (elapsed, answer)
    # A connection that sends nothing at all: dropped too.
    with socket.create_connection(("127.0.0.1", port)) as sock:
        elapsed, answer = _closed_by_server_after(sock, b"", 0.5, read_timeout + 10)
    assert elapsed < read_timeout + 3
    # Complete headers with a key, then a body that stops coming: 408 within the read deadline, logged.
    before = len(access_rows(site, "status = 408"))
    head = (
        "POST /v1/retrieve HTTP/1.1\r\nHost: kb\r\nContent-Type: application/json\r\nContent-Length: 400\r\n"
        f"Authorization: Bearer {site['keys']['reader_a']}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head.encode() + b'{"question": "')
        elapsed, answer = _closed_by_server_after(sock, b"", 0.5, read_timeout + 10)
    assert answer.startswith(b"HTTP/1.1 408") and elapsed < read_timeout + 3, (elapsed, answer[:200])
    assert b"serve.read_timeout_s" in answer
    logged_by = time.monotonic() + 5  # the access log is written after the connection is closed
    while len(access_rows(site, "status = 408")) == before and time.monotonic() < logged_by:
        time.sleep(0.1)
    assert len(access_rows(site, "status = 408")) == before + 1
    # Meanwhile a normal request is answered as ever.
    assert call(site, "POST", "/v1/retrieve", "reader_a", json={"question": "return policy"}).status_code == 200


# -- 15. LOW: wrong keys, expired keys, and how long the access log is kept ------------------------------
def test_wrong_keys_from_one_address_are_limited_and_valid_keys_still_served(site):
    limit = 30  # serve.wrong_keys_per_minute's default
    before = len(access_rows(site))
    statuses = [
        call(site, "GET", "/v1/sessions", headers={"Authorization": "Bearer kb-wrong"}).status_code
        for _ in range(limit + 20)
    ]
    assert statuses.count(401) <= limit and statuses[-20:] == [429] * 20, statuses
    logged = len(access_rows(site)) - before
    assert logged <= limit, logged  # the refused flood is not written row by row
    assert call(site, "GET", "/v1/sessions", "reader_a").status_code == 200  # a valid key from the same address
    metrics = call(site, "GET", "/metrics", "admin").text
    assert 'status="429"' in metrics


def test_an_expired_key_is_refused(site):
    keys = KeyStore(MariaDBConnection(site["url"]))
    _, secret = keys.create(f"brief_{secrets.token_hex(3)}", collections=["a"], expires_in_s=1.5)
    headers = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(site["server"].url + "/v1/sessions", headers=headers, timeout=30).status_code == 200
    time.sleep(2.0)
    refused = httpx.get(site["server"].url + "/v1/sessions", headers=headers, timeout=30)
    assert refused.status_code in (401, 429) and refused.status_code != 200


def test_access_log_rows_older_than_the_retention_are_deleted_at_start(site):
    conn = MariaDBConnection(site["url"])
    try:
        conn.execute(
            "INSERT INTO kb_access_log (key_name, method, path, status, latency_ms, created_at) "
            "VALUES ('ancient', 'GET', '/v1/sessions', 200, 1, CURRENT_TIMESTAMP(6) - INTERVAL 400 DAY), "
            "('recent', 'GET', '/v1/sessions', 200, 1, CURRENT_TIMESTAMP(6) - INTERVAL 2 DAY)"
        )
        config = {**site["config"], "serve": {**site["config"]["serve"], "access_log_days": 30}}
        second = ServedKB(config, site["work"]).wait_ready()
        try:
            deadline = time.monotonic() + 30
            while access_rows(site, "key_name = 'ancient'") and time.monotonic() < deadline:
                time.sleep(0.3)
        finally:
            second.stop()
        assert access_rows(site, "key_name = 'ancient'") == []
        assert len(access_rows(site, "key_name = 'recent'")) == 1
    finally:
        conn.dispose()


# -- the OpenAPI document, explored by a property-based client ----------------------------------------
def test_no_operation_of_the_openapi_document_answers_500(site):
    import schemathesis
    from hypothesis import HealthCheck, Phase, settings

    schema = schemathesis.openapi.from_url(site["server"].url + "/openapi.json")
    headers = bearer(site["keys"]["admin"])
    failures, calls, operations = [], [], 0
    started = time.monotonic()
    for result in schema.get_all_operations():
        operations += 1
        operation = result.ok()

        @settings(
            max_examples=12,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def exercise(case):
            response = case.call(base_url=site["server"].url, headers=headers, timeout=30)
            calls.append(response.status_code)
            if response.status_code >= 500 or "Traceback" in response.text:
                failures.append((case.method, case.formatted_path, response.status_code, response.text[:300]))

        from hypothesis import given

        given(operation.as_strategy())(exercise)()
        assert time.monotonic() - started < 240  # bounded
    assert not failures, failures
    print(f"schemathesis: {len(calls)} calls over {operations} operations, statuses {sorted(set(calls))}")
    assert operations >= 12 and len(calls) >= 5 * operations
