"""``kb serve`` against a hostile key holder, round two: real ``kb serve`` processes on loopback, a real
MariaDB, a scripted LLM (see serve_scripted.py: ``WRITE: <statement>`` asks for that statement). Each
test is one finding of the second security review, and fails on the code before its fix.

Collections ``a`` (the demo documents) and ``b`` (a secret note); the business database's allowed
tables are only ``customers``, while its read-only account can read every table (as the README allows:
``sql.tables`` narrows what the account can read).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from serving import ServedKB, bearer, call, raw_request, scratch_database, wait_job
from sqlalchemy.engine import make_url

from kb.business_database.provisioning import DATA
from kb.knowledge_base import KnowledgeBase
from kb.service.keys import KeyStore
from kb.service.ratelimit import WINDOW_S
from kb.stores.connection import MariaDBConnection

SECRET = "# Vault\n\nThe OSPREY-77 vault combination is 4412.\n"
OUTSIDE = "# Outside\n\nThe HERON-31 text lies outside the index roots.\n"


@pytest.fixture(scope="module")
def site(admin, admin_url, business, tmp_path_factory):
    """Collections a and b indexed, keys of every kind, and one `kb serve` process on them."""
    with scratch_database(admin, admin_url) as (_, url):
        work = tmp_path_factory.mktemp("hostile")
        roots = work / "roots"
        outside = work / "outside"
        outside.mkdir()
        (outside / "heron.md").write_text(OUTSIDE)
        shutil.copytree(DATA / "docs", roots / "a")
        (roots / "b").mkdir()
        (roots / "b" / "vault.md").write_text(SECRET)
        config = {
            "home": str(work / "kbhome"),
            "database": {"url": url},
            "sql": {"url": business.render_as_string(hide_password=False), "tables": ["customers"]},
            "router": {"selector": "offline"},
            "serve": {
                "index_roots": [str(roots)],
                "request_timeout_s": 30,
                "read_timeout_s": 3,
                "statement_timeout_s": 3,
            },
        }
        kb = KnowledgeBase.from_config(config)
        kb.index_directory(roots / "a", collection="a", progress=False)
        kb.index_directory(roots / "b", collection="b", progress=False)
        keys = KeyStore(kb.connection)
        made = {
            name: keys.create(name, requests_per_minute=100000, **options)[1]
            for name, options in {
                "reader_a": {"collections": ["a"]},
                "reader_b": {"collections": ["b"]},
                "chatty_a": {"collections": ["a"]},
                "patient_a": {"collections": ["a"]},
                "writer_a": {"collections": ["a"], "scope": "write"},
                "analyst": {"collections": ["a"], "sql": True},
                "admin": {"collections": ["*"], "scope": "admin", "sql": True},
            }.items()
        }
        kb.close()
        # Answers take about 3 s (100 words at 30 ms), so that twelve chat requests are still under way
        # when another key asks.
        server = ServedKB(config, work, env={"KB_TEST_TOKEN_DELAY": "0.03"}).wait_ready()
        try:
            yield {"server": server, "keys": made, "config": config, "url": url, "roots": roots, "outside": outside}
        finally:
            server.stop()


@pytest.fixture(scope="module")
def behind_proxy(site):
    """A second process on the same database, as an operator would run it behind a reverse proxy on
    this host, with the interactive API docs on."""
    config = json.loads(json.dumps(site["config"]))
    config["serve"].update(trusted_proxies=["127.0.0.1"], api_docs=True)
    server = ServedKB(config, site["roots"].parent).wait_ready()
    yield server
    server.stop()


# -- 1. HIGH: a read key's filters cannot take the database pool, nor /healthz -------------------------
def test_thirty_thousand_value_filters_are_refused_before_the_database_and_starve_nobody(site):
    port = site["server"].port
    values = [str(i) for i in range(30000)]
    hostile = {
        "question": "return policy",
        "filters": {"filters": [{"key": "title", "operator": "nin", "value": values}]},
    }
    assert len(json.dumps(hostile)) < 256 * 1024  # under serve.max_request_kb: only the filter's size is at fault

    async def attack():
        flood = [
            asyncio.ensure_future(raw_request(port, "POST", "/v1/retrieve", bearer(site["keys"]["reader_a"]), hostile))
            for _ in range(16)
        ]
        await asyncio.sleep(0.3)

        async def timed(*request):
            started = time.monotonic()
            status, body = await raw_request(port, *request)
            return status, time.monotonic() - started

        other = await timed("POST", "/v1/retrieve", bearer(site["keys"]["reader_b"]), {"question": "vault"})
        health = await timed("GET", "/healthz")
        return await asyncio.gather(*flood), other, health

    refused, (other_status, other_s), (health_status, health_s) = asyncio.run(attack())
    assert other_status == 200 and other_s < 2, (other_status, other_s)
    assert health_status == 200 and health_s < 2, (health_status, health_s)
    for status, body in refused:
        assert status == 422, (status, body[:300])
        assert "serve.max_filter_values" in json.loads(body)["error"]["message"]


def test_filters_over_each_limit_get_422_naming_it_and_ordinary_filters_still_work(site):
    def retrieve(filters):
        return call(site, "POST", "/v1/retrieve", "reader_a", json={"question": "return policy", "filters": filters})

    leaf = {"key": "title", "operator": "!=", "value": "nothing"}
    many_leaves = {"filters": [leaf] * 65}
    deep: dict = {"filters": [leaf]}
    for _ in range(9):
        deep = {"filters": [deep, leaf], "condition": "or"}
    for filters, limit in ((many_leaves, "serve.max_filter_leaves"), (deep, "serve.max_filter_depth")):
        refused = retrieve(filters)
        assert refused.status_code == 422 and limit in refused.json()["error"]["message"], refused.text
    ordinary = retrieve({"filters": [{"key": "title", "operator": "nin", "value": [f"t{i}" for i in range(300)]}]})
    assert ordinary.status_code == 200 and ordinary.json()["chunks"]


def test_a_statement_stuck_on_a_lock_ends_at_the_statement_limit_not_the_request_deadline(site):
    """A table locked by another session: the retrieval's statement is stopped by the server after
    serve.statement_timeout_s (3 s) and the request gets 504 then, not at its 30 s deadline; once the
    lock is gone the same pooled connections serve again."""
    holder = MariaDBConnection(site["url"])
    try:
        with holder.connection() as conn:
            cur = conn.cursor()
            cur.execute("LOCK TABLES kb_nodes WRITE")
            try:
                started = time.monotonic()
                stuck = call(site, "POST", "/v1/retrieve", "reader_a", json={"question": "warranty", "mode": "text"})
                waited = time.monotonic() - started
            finally:
                cur.execute("UNLOCK TABLES")
    finally:
        holder.dispose()
    assert stuck.status_code == 504 and "serve.statement_timeout_s" in stuck.json()["error"]["message"], stuck.text
    assert 2.5 < waited < 10, waited
    for _ in range(6):  # more than the pool's connections: none kept the limit's session state broken
        assert call(site, "POST", "/v1/retrieve", "reader_a", json={"question": "warranty"}).status_code == 200


# -- 2. MEDIUM: CTE names do not hide tables from the guard, through /v1/sql --------------------------
def test_cte_statements_cannot_read_a_table_outside_sql_tables(site):
    for statement in (
        "WITH a AS (SELECT * FROM order_items), order_items AS (SELECT 1 AS x) SELECT * FROM a",
        "SELECT * FROM orders WHERE EXISTS (WITH orders AS (SELECT 1) SELECT 1 FROM orders)",
    ):
        answered = call(site, "POST", "/v1/sql", "analyst", json={"question": f"WRITE: {statement}"})
        assert answered.status_code == 200, answered.text
        body = answered.json()
        assert body["refused"] and not body["rows"], body
        assert "not one of the allowed tables" in body["refusal_reason"]
    allowed = call(
        site,
        "POST",
        "/v1/sql",
        "analyst",
        json={"question": "WRITE: WITH c AS (SELECT id FROM customers) SELECT COUNT(*) AS n FROM c"},
    ).json()
    assert not allowed["refused"] and allowed["rows"][0]["n"] > 0


# -- 3. MEDIUM: an index job reads the folder that was checked, or nothing -----------------------------
def test_a_folder_swapped_for_a_link_after_the_check_is_not_indexed(site):
    folder = site["roots"] / "swap"
    folder.mkdir()
    (folder / "harmless.md").write_text("# Harmless\n\nA note about milk frothing.\n")
    lock = f"kb_generation:{make_url(site['url']).database}.kb_nodes"  # the URL may end with ?unix_socket=...
    holder = MariaDBConnection(site["url"])
    try:
        with holder.named_lock(lock, 0) as held:  # another indexing run: the job waits behind it
            assert held
            started = call(site, "POST", "/v1/index", "writer_a", json={"path": "swap", "collection": "a"})
            assert started.status_code == 202, started.text
            folder.rename(site["roots"] / "swap-before")
            folder.symlink_to(site["outside"], target_is_directory=True)
    finally:
        holder.dispose()
    job = wait_job(site["server"], site["keys"]["writer_a"], started.json()["id"])
    # refused before the scan (the usual order: the job waits behind the lock), or during it when a
    # loaded machine lets the scan start before the swap: either way nothing is read through the link
    assert job["status"] == "failed", job
    assert (
        "no longer the folder that was checked" in job["error"]
        or "was replaced while it was being scanned" in job["error"]
    ), job
    shown = json.dumps(job)
    assert str(site["outside"]) not in shown and str(site["roots"]) not in shown and "heron" not in shown.lower()
    for mode in ("dense", "text"):
        hits = call(
            site, "POST", "/v1/retrieve", "admin", json={"question": "HERON-31 outside the roots", "mode": mode}
        )
        assert "HERON-31" not in hits.text
    # a folder reached through a link is refused at the check itself
    linked = call(site, "POST", "/v1/index", "writer_a", json={"path": "swap", "collection": "a"})
    assert linked.status_code == 403 and "symbolic link" in linked.json()["error"]["message"], linked.text
    assert str(site["outside"]) not in linked.text


def test_every_path_a_job_cannot_use_gets_a_json_4xx(site):
    for path in ("a/" + "x" * 300, "x" * 300, "a/../../outside", "a/policies/return-policy.md", "missing"):
        refused = call(site, "POST", "/v1/index", "writer_a", json={"path": path, "collection": "a"})
        assert refused.status_code in (400, 403), (path, refused.status_code, refused.text)
        assert refused.headers["content-type"] == "application/json" and refused.json()["error"]["message"]
        assert str(site["roots"]) not in refused.text


# -- 4. MEDIUM: one key cannot fill the model's line ---------------------------------------------------
def test_twelve_chat_requests_from_one_key_leave_a_place_for_another(site):
    def chat(key, text):
        started = time.monotonic()
        answered = call(
            site, "POST", "/v1/chat/completions", key, json={"messages": [{"role": "user", "content": text}]}
        )
        return answered, time.monotonic() - started

    with ThreadPoolExecutor(13) as pool:
        flood = [pool.submit(chat, "chatty_a", f"What is the return policy? ({i})") for i in range(12)]
        time.sleep(1.5)
        other, other_s = pool.submit(chat, "patient_a", "What does the warranty cover?").result()
        results = [f.result()[0] for f in flood]
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(200) == 3 and statuses.count(429) == 9, statuses  # one answering, two waiting
    for refused in (r for r in results if r.status_code == 429):
        assert int(refused.headers["retry-after"]) > 0
        assert "serve.model_queue_per_key" in refused.json()["error"]["message"]
    assert other.status_code == 200, (other.status_code, other.text, other_s)


# -- 5. LOW: addresses, the embedding cache, the API docs ----------------------------------------------
def test_a_forged_x_forwarded_for_is_ignored_unless_the_proxy_is_trusted(site, behind_proxy):
    # Wrong keys are counted per minute of the clock: the forty requests must not straddle a minute's end
    time.sleep(max(0.0, 20 - (WINDOW_S - time.time() % WINDOW_S)))
    statuses = [
        call(
            site, "GET", "/v1/models", headers={"Authorization": "Bearer kb-wrong", "X-Forwarded-For": f"10.9.{i}.1"}
        ).status_code
        for i in range(40)
    ]
    assert statuses[:30] == [401] * 30 and set(statuses[30:]) == {429}, statuses  # one address: 127.0.0.1
    # behind a trusted proxy its header is believed, whatever it holds: never a 500
    for forged in ("1" * 100, "ünïcödé-адрес", "2001:db8::1, 10.0.0.1"):
        r = httpx.get(
            behind_proxy.url + "/v1/models",
            headers={"Authorization": "Bearer kb-wrong", "X-Forwarded-For": forged.encode("utf-8")},
            timeout=30,
        )
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error", (forged, r.text)


def _embedding_hits(site) -> float:
    metrics = call(site, "GET", "/metrics", "admin").text
    for line in metrics.splitlines():
        if line.startswith("kb_cache_lookups_total") and 'kind="embedding"' in line and 'result="hit"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_keys_of_other_collections_never_share_a_cached_question_embedding(site):
    question = {"question": f"Which grinder suits espresso? {secrets.token_hex(4)}"}
    before = _embedding_hits(site)
    assert call(site, "POST", "/v1/retrieve", "reader_a", json=question).status_code == 200
    assert call(site, "POST", "/v1/retrieve", "reader_b", json=question).status_code == 200
    assert _embedding_hits(site) == before  # b's key found nothing a's key had asked
    assert call(site, "POST", "/v1/retrieve", "chatty_a", json=question).status_code == 200
    assert _embedding_hits(site) == before + 1  # keys of the same collections still share it


def test_api_docs_are_off_by_default_and_served_from_kbs_own_files_when_on(site, behind_proxy):
    assert call(site, "GET", "/docs").status_code == 404 and call(site, "GET", "/redoc").status_code == 404
    docs = httpx.get(behind_proxy.url + "/docs", timeout=30)
    assert docs.status_code == 200
    policy = docs.headers["content-security-policy"]
    assert (
        "script-src 'self' 'sha256-" in policy and "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    )
    assert "http" not in docs.text.replace("http-equiv", "")  # every script, style and icon is this server's
    assert httpx.get(behind_proxy.url + "/docs/static/swagger-ui-bundle.js", timeout=30).status_code == 200

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium") or "/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page()
        foreign: list[str] = []
        page.on("request", lambda r: foreign.append(r.url) if not r.url.startswith(behind_proxy.url) else None)
        page.goto(behind_proxy.url + "/docs")
        page.locator('[data-path="/v1/chat/completions"]').first.wait_for(timeout=30_000)  # rendered from /openapi.json
        browser.close()
    assert not [u for u in foreign if not u.startswith("data:")], foreign


# -- 5. LOW: what the CLI prints from stored text --------------------------------------------------------
def test_the_cli_escapes_stored_text_and_says_when_a_key_has_expired(site, run_kb, tmp_path):
    config = tmp_path / "kb.json"
    config.write_text(json.dumps(site["config"]))
    kb = KnowledgeBase.from_config(site["config"])
    try:
        kb.chat_store.set_messages(
            "evil",
            [
                kb_message("user", "hi\x1b[2J\x1b]0;pwned\x07 there"),
                kb_message("assistant", "line one\nline two\x1b[31m red"),
            ],
        )
        keys = KeyStore(kb.connection)
        keys.create("short-lived", collections=["a"], expires_in_s=1)
        keys.create("long-lived", collections=["a"], expires_in_s=86400)
    finally:
        kb.close()
    time.sleep(1.5)
    shown = run_kb("--config", str(config), "sessions", "show", "evil")
    assert shown.returncode == 0, shown.stderr
    assert "\x1b" not in shown.stdout and "\x07" not in shown.stdout
    assert "\\x1b[2J" in shown.stdout and "line one\n" in shown.stdout  # escaped, its lines kept
    listed = run_kb("--config", str(config), "keys", "list")
    assert listed.returncode == 0, listed.stderr
    lines = {line.split()[0]: line for line in listed.stdout.splitlines() if line.strip()}
    assert " expired " in lines["short-lived"] and "active" not in lines["short-lived"]
    assert "active, expires" in lines["long-lived"]


def kb_message(role: str, content: str):
    from llama_index.core.llms import ChatMessage, MessageRole

    return ChatMessage(role=MessageRole.USER if role == "user" else MessageRole.ASSISTANT, content=content)
