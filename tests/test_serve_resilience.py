"""``kb serve`` keeps serving while its database restarts; Redis carries limits and the cache when configured."""

from __future__ import annotations

import secrets
import time

import httpx
from serving import ServedKB, bearer

from kb.knowledge_base import KnowledgeBase
from kb.service.cache import RedisCache, ServiceCache
from kb.service.keys import KeyStore
from kb.service.ratelimit import WINDOW_S, RateLimiter, RedisCounter

REDIS = "redis://127.0.0.1:6379/0"


def test_503_while_the_database_is_down_then_recovery(start_spare_server, tmp_path):
    spare = start_spare_server(29)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.md").write_text("# Opening hours\n\nThe shop opens at nine o'clock.\n")
    config = {
        "database": {"url": spare.app_url().render_as_string(hide_password=False)},
        "sql": {"enabled": False},
        "router": {"selector": "offline"},
    }
    kb = KnowledgeBase.from_config(config)
    kb.index_directory(docs, progress=False)
    _, key = KeyStore(kb.connection).create("ops", collections=["*"])
    kb.close()
    served = ServedKB(config, tmp_path).wait_ready()
    ask = {"question": "When does the shop open?"}
    try:
        assert httpx.post(served.url + "/v1/retrieve", json=ask, headers=bearer(key), timeout=60).status_code == 200
        spare.stop()
        down = httpx.post(served.url + "/v1/retrieve", json=ask, headers=bearer(key), timeout=60)
        assert down.status_code == 503 and down.headers["Retry-After"] == "5"
        assert "database is unavailable" in down.json()["error"]["message"] and "Traceback" not in down.text
        health = httpx.get(served.url + "/healthz", timeout=30)
        assert health.status_code == 503
        for body in (down.text, health.text):  # where the database is and who kb logs in as: the server log only
            for detail in (str(spare.port), "127.0.0.1", "socket", ".sock", spare.app_url().username):
                assert detail not in body, (detail, body)
        assert served.process.poll() is None  # still serving
        spare.start()
        deadline = time.monotonic() + 60
        while (
            again := httpx.post(served.url + "/v1/retrieve", json=ask, headers=bearer(key), timeout=60)
        ).status_code != 200:
            assert time.monotonic() < deadline, again.text
            time.sleep(0.5)
        assert "nine o'clock" in again.json()["chunks"][0]["text"]
    finally:
        served.stop()


def test_redis_counts_one_limit_for_every_process():
    prefix = f"kbtest:{secrets.token_hex(4)}:"
    left = WINDOW_S - time.time() % WINDOW_S
    if left < 3:
        time.sleep(left + 0.2)
    processes = [RateLimiter(RedisCounter(REDIS, prefix=prefix)) for _ in range(2)]  # two clients, as two servers
    verdicts = [processes[i % 2].check_request(7, requests_per_minute=3, tokens_per_minute=1000) for i in range(4)]
    assert verdicts[:3] == [None, None, None] and isinstance(verdicts[3], int) and verdicts[3] >= 1
    processes[0].add_tokens(8, 500)
    processes[1].add_tokens(8, 500)
    assert processes[0].check_request(8, requests_per_minute=100, tokens_per_minute=1000) is not None


def test_redis_cache_keeps_answers_and_embeddings_with_their_ttl():
    prefix = f"kbtest:{secrets.token_hex(4)}:"
    lookups = []
    backend = RedisCache(REDIS, prefix=prefix)
    cache = ServiceCache(
        backend, answer_ttl_s=30, embedding_ttl_s=60, on_lookup=lambda k, hit: lookups.append((k, hit))
    )
    assert cache.get_answer("q1") is None
    cache.put_answer("q1", {"text": "30 days", "route": "documents"})
    assert cache.get_answer("q1") == {"text": "30 days", "route": "documents"}
    assert 0 < backend.client.ttl(prefix + "a:q1") <= 30
    computed = []
    for _ in range(2):
        vector = cache.query_embedding("minilm", "return policy", lambda: computed.append(1) or [0.5, 0.25])
        assert vector == [0.5, 0.25]
    assert computed == [1]  # embedded once, read back the second time
    assert lookups == [("answer", False), ("answer", True), ("embedding", False), ("embedding", True)]
