"""``kb serve`` over real HTTP on loopback: two server processes on one MariaDB, a scripted LLM.

Two collections are indexed: ``public`` (the demo documents) and ``secret`` (a note with a marker
no other document holds). Every endpoint is asked for the secret with a key that sees only
``public``; the marker must never come back, in an answer, a source, a chat memory or a cache hit.
"""

from __future__ import annotations

import re
import shutil
import time

import httpx
import openai
import pytest
import yaml
from serving import ServedKB, bearer, scratch_database

from kb.business_database.provisioning import DATA
from kb.collections import DEFAULT_COLLECTION
from kb.knowledge_base import KnowledgeBase
from kb.service.keys import KeyStore
from kb.service.ratelimit import WINDOW_S
from kb.stores.connection import MariaDBConnection

MARKER = "ZEBRA-7"
SECRET_QUESTION = "What are the launch codes, and may I share them?"
# a part of the secret code: not within a longer hex string (a chunk's node id such as
# "5914471297583e0e-..." holds "4471" one run in a hundred or so)
CODE = re.compile(r"(?<![0-9a-f])4471(?![0-9a-f])")
SECRET_TEXT = f"# Launch codes\n\nThe {MARKER} launch codes are 4471-9921. Never share the {MARKER} codes.\n"
RETURN_QUESTION = "How many days do customers have to return a product?"


@pytest.fixture(scope="module")
def site(admin, admin_url, business, tmp_path_factory):
    """A database with both collections indexed, four keys, and two `kb serve` processes on it."""
    with scratch_database(admin, admin_url) as (name, url):
        work = tmp_path_factory.mktemp("serve")
        public, secret = work / "public", work / "secret"
        shutil.copytree(DATA / "docs", public)
        secret.mkdir()
        (secret / "codes.md").write_text(SECRET_TEXT)
        config = {
            "database": {"url": url},
            "sql": {"url": business.render_as_string(hide_password=False)},
            "router": {"selector": "offline"},
            "serve": {"index_roots": [str(work)]},
        }
        kb = KnowledgeBase.from_config(config)
        kb.index_directory(public, collection="public", progress=False)
        kb.index_directory(secret, collection="secret", progress=False)
        keys = KeyStore(kb.connection)
        made = {
            "reader": keys.create("reader", collections=["public"])[1],
            "writer": keys.create("writer", collections=["public"], scope="write")[1],
            "admin": keys.create("admin", collections=["*"], scope="admin", sql=True)[1],
            "limited": keys.create("limited", collections=["public"], requests_per_minute=4)[1],
        }
        kb.close()
        servers = [ServedKB(config, work), ServedKB(config, work)]
        try:
            for server in servers:
                server.wait_ready()
            yield {"servers": servers, "keys": made, "public": public, "config": config, "db": name}
        finally:
            for server in servers:
                server.stop()


def post(site, path, key, json=None, server=0, headers=None):
    headers = {**(bearer(site["keys"][key]) if key else {}), **(headers or {})}
    return httpx.post(site["servers"][server].url + path, json=json, headers=headers, timeout=120)


def get(site, path, key, server=0):
    headers = bearer(site["keys"][key]) if key else {}
    return httpx.get(site["servers"][server].url + path, headers=headers, timeout=60)


def test_openai_client_streams_and_completes_a_chat(site):
    client = openai.OpenAI(base_url=site["servers"][0].url + "/v1", api_key=site["keys"]["reader"])
    stream = client.chat.completions.create(
        model="kb", messages=[{"role": "user", "content": RETURN_QUESTION}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert len(chunks) >= 3 and "30 days" in text
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage.total_tokens > 0  # counted, so streams spend the key's token budget too
    extra = chunks[-1].model_extra["kb"]
    assert extra["route"] == "documents" and extra["sources"][0]["path"] == "policies/return-policy.md"

    done = client.chat.completions.create(model="kb", messages=[{"role": "user", "content": RETURN_QUESTION}])
    assert "30 days" in done.choices[0].message.content and done.model_extra["kb"]["route"] == "documents"


def test_a_named_session_remembers_and_belongs_to_its_key(site):
    headers = {"X-Session-Id": "s1"}
    first = post(
        site,
        "/v1/chat/completions",
        "reader",
        {"messages": [{"role": "user", "content": RETURN_QUESTION}]},
        headers=headers,
    )
    assert first.status_code == 200 and first.json()["kb"]["session_id"] == "s1"
    sessions = get(site, "/v1/sessions", "reader").json()["sessions"]
    assert [s["session"] for s in sessions] == ["s1"] and sessions[0]["messages"] == 2
    assert get(site, "/v1/sessions/s1", "reader", server=1).json()["turns"][0]["question"] == RETURN_QUESTION
    # another key sees no such session, cannot read or delete it
    assert get(site, "/v1/sessions", "writer").json()["sessions"] == []
    assert get(site, "/v1/sessions/s1", "writer").status_code == 404
    assert (
        httpx.delete(site["servers"][0].url + "/v1/sessions/s1", headers=bearer(site["keys"]["writer"])).status_code
        == 404
    )
    assert (
        httpx.delete(site["servers"][0].url + "/v1/sessions/s1", headers=bearer(site["keys"]["reader"])).status_code
        == 204
    )
    assert get(site, "/v1/sessions", "reader").json()["sessions"] == []


def test_clients_leaving_streams_early_do_not_block_the_model(site):
    url, headers = site["servers"][1].url + "/v1/chat/completions", bearer(site["keys"]["reader"])
    body = {"stream": True, "messages": [{"role": "user", "content": RETURN_QUESTION}]}
    for leave_after in (0, 1, 2):  # before the first event, after the role event, after some text
        with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as response:
            assert response.status_code == 200
            for _, _line in zip(range(leave_after), response.iter_lines()):
                pass
    # each stream held the one-at-a-time model lock; a question after them is answered at once
    later = post(site, "/v1/query", "reader", {"question": "Who pays for return shipping? (after streams)"}, server=1)
    assert later.status_code == 200 and later.json()["cache"] == "miss"


def test_requests_without_a_valid_key_are_refused(site):
    for key_header in ({}, bearer("kb-not-a-key"), {"Authorization": "Basic abc"}):
        r = httpx.post(site["servers"][0].url + "/v1/query", json={"question": "x"}, headers=key_header, timeout=30)
        assert r.status_code == 401 and "key" in r.json()["error"]["message"]
    store = KeyStore(MariaDBConnection(site["config"]["database"]["url"]))
    _, secret = store.create("short-lived", collections=["public"])
    assert (
        httpx.post(
            site["servers"][1].url + "/v1/retrieve", json={"question": "returns"}, headers=bearer(secret)
        ).status_code
        == 200
    )
    assert store.revoke("short-lived")
    assert (
        httpx.post(
            site["servers"][1].url + "/v1/retrieve", json={"question": "returns"}, headers=bearer(secret)
        ).status_code
        == 401
    )


def test_no_chunk_of_another_collection_leaks_through_any_endpoint(site):
    # the admin (all collections) asks first: its answer, with the secret, is cached
    seen = post(site, "/v1/query", "admin", {"question": SECRET_QUESTION, "route": "documents"})
    assert MARKER in seen.text  # the secret is there to be found
    bodies = [
        post(site, "/v1/query", "reader", {"question": SECRET_QUESTION}),
        post(site, "/v1/query", "reader", {"question": SECRET_QUESTION, "route": "documents"}, server=1),
        post(site, "/v1/retrieve", "reader", {"question": SECRET_QUESTION, "top_k": 50}),
        post(site, "/v1/retrieve", "reader", {"question": SECRET_QUESTION, "mode": "text", "top_k": 50}),
        post(site, "/v1/retrieve", "reader", {"question": SECRET_QUESTION, "filters": {"collection": "secret"}}),
        post(
            site,
            "/v1/retrieve",
            "reader",
            {
                "question": SECRET_QUESTION,
                "filters": {
                    "filters": [{"key": "collection", "value": "secret"}, {"key": "collection", "value": "public"}],
                    "condition": "or",
                },
            },
        ),
        post(site, "/v1/chat/completions", "reader", {"messages": [{"role": "user", "content": SECRET_QUESTION}]}),
        post(
            site,
            "/v1/chat/completions",
            "reader",
            {"stream": True, "user": "leak", "messages": [{"role": "user", "content": SECRET_QUESTION}]},
        ),
        post(
            site,
            "/v1/chat/completions",
            "reader",
            {"user": "leak", "messages": [{"role": "user", "content": "And the codes again?"}]},
        ),
        get(site, "/v1/sessions/leak", "reader"),
        post(site, "/v1/route", "reader", {"question": SECRET_QUESTION}),
    ]
    for body in bodies:
        assert body.status_code == 200, body.text
        assert MARKER not in body.text and not CODE.search(body.text)
    retrieved = post(site, "/v1/retrieve", "reader", {"question": SECRET_QUESTION, "top_k": 50}).json()["chunks"]
    assert retrieved and {c["collection"] for c in retrieved} == {"public"}
    # the database and the secret collection are refused outright
    assert post(site, "/v1/query", "reader", {"question": "How many orders?", "route": "database"}).status_code == 403
    assert post(site, "/v1/sql", "reader", {"question": "How many orders?"}).status_code == 403
    assert post(site, "/v1/index", "writer", {"path": "secret", "collection": "secret"}).status_code == 403
    assert post(site, "/v1/index", "reader", {"path": "public", "collection": "public"}).status_code == 403


def test_a_repeat_hits_the_cache_and_reindexing_the_cited_file_misses(site):
    ask = {"question": "What does error E3 mean on the espresso machine?", "route": "documents"}
    first = post(site, "/v1/query", "reader", ask).json()
    assert first["cache"] == "miss"
    again = post(site, "/v1/query", "reader", ask, server=1).json()  # the other process shares the cache
    assert again["cache"] == "hit" and again["text"] == first["text"]
    cited = site["public"] / first["sources"][0]["path"]
    cited.write_text(cited.read_text() + "\n\nUpdated: E3 now also covers a blocked steam wand.\n")
    job = post(site, "/v1/index", "writer", {"path": "public", "collection": "public"})
    assert job.status_code == 202
    deadline = time.monotonic() + 120
    while (state := get(site, f"/v1/jobs/{job.json()['id']}", "writer").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert state["status"] == "done" and state["report"]["updated"] == [first["sources"][0]["path"]]
    after = post(site, "/v1/query", "reader", ask).json()
    assert after["cache"] == "miss"  # the collection's version changed with the re-index
    metrics = get(site, "/metrics", "admin", server=1).text
    assert 'kb_cache_lookups_total{kind="answer",result="hit"}' in metrics
    assert get(site, "/metrics", "reader").status_code == 403


def test_the_rate_limit_holds_across_two_processes(site):
    left = WINDOW_S - time.time() % WINDOW_S
    if left < 8:  # the four requests and the refused fifth must fall in one window
        time.sleep(left + 0.5)
    statuses = [
        post(site, "/v1/retrieve", "limited", {"question": "returns"}, server=i % 2).status_code for i in range(5)
    ]
    assert statuses == [200, 200, 200, 200, 429]
    refused = post(site, "/v1/retrieve", "limited", {"question": "returns"}, server=1)
    assert refused.status_code == 429 and 1 <= int(refused.headers["Retry-After"]) <= WINDOW_S
    assert refused.json()["error"]["type"] == "rate_limit_error"


def test_bad_requests_get_json_errors(site):
    assert post(site, "/v1/query", "reader", {"question": ""}).status_code == 422
    assert post(site, "/v1/query", "reader", {"questoin": "typo"}).status_code == 422
    assert post(site, "/v1/query", "reader", {"question": "x", "route": "sideways"}).status_code == 422
    assert post(site, "/v1/retrieve", "reader", {"question": "x", "filters": {"a": {"nested": 1}}}).status_code == 422
    big = post(site, "/v1/query", "reader", {"question": "x" * 400_000})
    assert big.status_code == 413 and "max_request_kb" in big.json()["error"]["message"]
    assert get(site, "/v1/jobs/nope", "reader").status_code == 404
    assert get(site, "/v1/nothing-here", "reader").status_code == 404
    chat = post(site, "/v1/chat/completions", "reader", {"messages": [{"role": "assistant", "content": "hi"}]})
    assert chat.status_code == 422 and "user" in chat.json()["error"]["message"]
    too_long = post(site, "/v1/query", "reader", {"question": "why " * 2500})  # over the model's window
    assert too_long.status_code == 400 and "characters" in too_long.json()["error"]["message"]
    for r in (big, chat, too_long):
        assert "Traceback" not in r.text and set(r.json()["error"]) == {"message", "type", "code"}


def test_openapi_documents_every_endpoint(site):
    assert httpx.get(site["servers"][0].url + "/docs", timeout=30).status_code == 404  # serve.api_docs is off
    paths = httpx.get(site["servers"][0].url + "/openapi.json", timeout=30).json()["paths"]
    for path in (
        "/v1/chat/completions",
        "/v1/query",
        "/v1/retrieve",
        "/v1/sql",
        "/v1/route",
        "/v1/sessions",
        "/v1/sessions/{session}",
        "/v1/index",
        "/v1/jobs/{job_id}",
        "/healthz",
        "/metrics",
    ):
        assert path in paths


def test_the_token_limit_refuses_once_spent(site):
    store = KeyStore(MariaDBConnection(site["config"]["database"]["url"]))
    _, secret = store.create("thrifty", collections=["public"], tokens_per_minute=50)
    left = WINDOW_S - time.time() % WINDOW_S
    if left < 8:
        time.sleep(left + 0.5)
    url = site["servers"][0].url + "/v1/query"
    spent = httpx.post(url, json={"question": RETURN_QUESTION + " (thrifty)"}, headers=bearer(secret), timeout=60)
    assert spent.status_code == 200 and sum(spent.json()["tokens"].values()) > 50  # one answer spends the minute
    refused = httpx.post(url, json={"question": "Anything else?"}, headers=bearer(secret), timeout=60)
    assert refused.status_code == 429 and "Retry-After" in refused.headers


def test_access_log_and_stats(site, run_kb, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  url: {site['config']['database']['url']}\n")
    out = run_kb("--config", str(config), "stats")
    assert out.returncode == 0, out.stderr
    assert "kb serve requests by key" in out.stdout and "reader" in out.stdout


def test_feedback_is_stored_shown_and_only_the_asking_key_may_rate(site, run_kb, tmp_path):
    ask = {"question": "How long is the warranty on espresso machines?", "route": "documents"}
    first = post(site, "/v1/query", "reader", ask).json()
    answer_id = first["answer_id"]
    assert len(answer_id) == 32
    rated = post(site, "/v1/feedback", "reader", {"answer_id": answer_id, "rating": "negative", "comment": "too long"})
    assert rated.status_code == 204
    # another key with the same collections was not given that answer: it may not rate it, nor learn it exists
    other = post(site, "/v1/feedback", "writer", {"answer_id": answer_id, "rating": "positive"})
    assert other.status_code == 404 and answer_id in other.json()["error"]["message"]
    assert post(site, "/v1/feedback", "writer", {"answer_id": "f" * 32, "rating": "positive"}).status_code == 404
    assert post(site, "/v1/feedback", "reader", {"answer_id": answer_id, "rating": "great"}).status_code == 422
    # the writer is served the cached answer under an id of its own, which it may rate
    cached = post(site, "/v1/query", "writer", ask, server=1).json()
    assert cached["cache"] == "hit" and cached["answer_id"] != answer_id
    assert (
        post(site, "/v1/feedback", "writer", {"answer_id": cached["answer_id"], "rating": "positive"}).status_code
        == 204
    )
    streamed = post(
        site,
        "/v1/chat/completions",
        "reader",
        {"model": "kb", "messages": [{"role": "user", "content": ask["question"]}]},
    )
    chat_id = streamed.json()["kb"]["answer_id"]
    assert post(site, "/v1/feedback", "reader", {"answer_id": chat_id, "rating": "neutral"}).status_code == 204

    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  url: {site['config']['database']['url']}\n")
    stats = run_kb("--config", str(config), "stats")
    assert stats.returncode == 0, stats.stderr
    line = next(line for line in stats.stdout.splitlines() if line.strip().startswith("documents") and "%" in line)
    assert line.split()[1:5] == ["1", "1", "1", "50%"]  # positive, negative, neutral, satisfaction
    negative = run_kb("--config", str(config), "feedback", "list", "--negative")
    assert negative.returncode == 0 and "too long" in negative.stdout and answer_id in negative.stdout
    assert "positive" not in negative.stdout
    written = tmp_path / "from-feedback.yaml"
    made = run_kb("--config", str(config), "eval", "--from-feedback", str(written))
    assert made.returncode == 0, made.stderr
    entries = yaml.safe_load(written.read_text())
    assert {e["rating"] for e in entries} == {"positive", "negative", "neutral"}
    assert all(e["q"] == ask["question"] and e["files"] for e in entries)


def test_keys_cli_creates_lists_and_revokes(run_kb, tmp_path, site):
    config = tmp_path / "config.yaml"
    config.write_text(f"database:\n  url: {site['config']['database']['url']}\n")
    made = run_kb("--config", str(config), "keys", "create", "ops-bot", "--collections", "public,manuals", "--sql")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("kb-") and "shown only now" in made.stderr
    listed = run_kb("--config", str(config), "keys", "list").stdout
    assert "ops-bot" in listed and "manuals,public" in listed and secret not in listed
    again = run_kb("--config", str(config), "keys", "create", "ops-bot", "--collections", "public")
    assert again.returncode == 1 and "exists already" in again.stderr and "Traceback" not in again.stderr
    bad = run_kb("--config", str(config), "keys", "create", "x", "--collections", "no way")
    assert bad.returncode == 1 and "invalid collection name" in bad.stderr
    assert run_kb("--config", str(config), "keys", "revoke", "ops-bot").returncode == 0
    assert run_kb("--config", str(config), "keys", "revoke", "ops-bot").returncode == 1
    brief = run_kb(
        "--config", str(config), "keys", "create", "brief-bot", "--collections", "public", "--expires", "90d"
    )
    assert brief.returncode == 0 and "expires " in brief.stderr, brief.stderr
    assert "brief-bot" in (
        line := next(x for x in run_kb("--config", str(config), "keys", "list").stdout.splitlines() if "brief-bot" in x)
    )
    assert "active, expires " in line, line
    never = run_kb("--config", str(config), "keys", "create", "y", "--collections", "public", "--expires", "soon")
    assert never.returncode == 2 and "is not a lifetime" in never.stderr and "Traceback" not in never.stderr
    stored = MariaDBConnection(site["config"]["database"]["url"]).fetchall("SELECT key_hash FROM kb_api_keys")
    assert all(secret not in row[0] for row in stored)


def test_index_tags_chunks_with_their_collection_and_each_collection_owns_its_copy(db_url, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nAlpha text about warranties.\n")
    kb = KnowledgeBase.from_config({"database": {"url": db_url.render_as_string(hide_password=False)}})
    before = kb.collection_versions.current(["manuals"])
    kb.index_directory(folder, progress=False)
    assert {n.metadata["collection"] for n in kb.vector_store.get_nodes()} == {DEFAULT_COLLECTION}
    # another collection gets its own copy, whoever indexed the folder first; the first copy stays
    copied = kb.index_directory(folder, collection="manuals", progress=False)
    assert copied.added == ["a.md"] and copied.skipped == []
    by_collection = {}
    for node in kb.vector_store.get_nodes():
        by_collection.setdefault(node.metadata["collection"], set()).add(node.node_id)
    assert set(by_collection) == {DEFAULT_COLLECTION, "manuals"}
    assert not by_collection[DEFAULT_COLLECTION] & by_collection["manuals"]  # each its own chunks
    assert kb.collection_versions.current(["manuals"]) != before
    unchanged = kb.collection_versions.current(["manuals"])
    assert kb.index_directory(folder, collection="manuals", progress=False).unchanged == ["a.md"]
    assert kb.collection_versions.current(["manuals"]) == unchanged  # nothing changed: cached answers stay
    # a run that drops its copy (an include matching nothing) leaves the other collection's copy alone
    dropped = kb.index_directory(folder, collection="manuals", include=["nothing-*"], progress=False)
    assert dropped.deleted == ["a.md"]
    assert {n.metadata["collection"] for n in kb.vector_store.get_nodes()} == {DEFAULT_COLLECTION}
    kb.close()


def test_web_page_in_a_real_browser(site, tmp_path):
    """The page at / in Debian's chromium, headless: a key entered once, a streamed answer with its
    route, reason and sources (a cited chunk opened), then a database answer with its SQL and rows."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(site["servers"][0].url + "/")
        page.fill("#key", site["keys"]["admin"])
        page.click("#save-key")
        assert page.text_content("#key-state") == "key set"
        page.fill("#question", RETURN_QUESTION)
        page.keyboard.press("Enter")
        turn = page.locator(".turn").nth(0)
        turn.locator(".route").wait_for(timeout=60_000)
        assert turn.locator(".route").text_content() == "documents"
        assert "30 days" in turn.locator(".answer").text_content()
        turn.locator(".sources > summary").click()
        first = turn.locator(".source").nth(0)
        assert "policies/return-policy.md" in first.locator("summary").text_content()
        first.locator("summary").click()
        assert "30 days" in first.locator(".chunk").inner_text()

        page.fill("#question", "How many orders were placed in 2025?")
        page.click("#send")
        second = page.locator(".turn").nth(1)
        second.locator(".route").wait_for(timeout=60_000)
        assert second.locator(".route").text_content() == "database"
        assert "SELECT COUNT(*)" in second.locator(".sql pre").text_content()
        assert second.locator("table.rows td").count() == 1
        second.locator(".rate button[data-rating=positive]").click()
        second.locator(".rate span").filter(has_text="thanks").wait_for(timeout=10_000)
        shot = page.screenshot(path=str(tmp_path / "web-page.png"), full_page=True)
        browser.close()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000  # a rendered page, not a blank one
