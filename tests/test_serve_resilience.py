"""``kb serve`` keeps serving while its database restarts; Redis carries limits and the cache when configured."""

from __future__ import annotations

import secrets
import time

import httpx
from serving import ServedKB, bearer

from kb.knowledge_base import KnowledgeBase
from kb.service.cache import ServiceCache
from kb.service.keys import KeyStore
from kb.service.ratelimit import WINDOW_S, RateLimiter
from kb.service.shared_state import MariaDBState, RedisState
from kb.stores.connection import MariaDBConnection

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
    processes = [RateLimiter(RedisState(REDIS, prefix=prefix)) for _ in range(2)]  # two clients, as two servers
    verdicts = [processes[i % 2].check_request(7, requests_per_minute=3, tokens_per_minute=1000) for i in range(4)]
    assert verdicts[:3] == [None, None, None] and isinstance(verdicts[3], int) and verdicts[3] >= 1
    processes[0].add_tokens(8, 500)
    processes[1].add_tokens(8, 500)
    assert processes[0].check_request(8, requests_per_minute=100, tokens_per_minute=1000) is not None


def test_redis_cache_keeps_answers_and_embeddings_with_their_ttl():
    prefix = f"kbtest:{secrets.token_hex(4)}:"
    lookups = []
    backend = RedisState(REDIS, prefix=prefix)
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


def test_mariadb_state_counts_every_process_and_restarts_an_expired_counter(db_url):
    import threading

    connections = [MariaDBConnection(db_url, pool_size=4) for _ in range(2)]  # two processes' pools
    try:
        states = [MariaDBState(c, "kb_cache") for c in connections]
        totals: list[int] = []

        def add_many(state: MariaDBState) -> None:
            totals.extend(state.add("rate:r:1:100", 3, 60) for _ in range(25))

        threads = [threading.Thread(target=add_many, args=(states[i % 2],)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert int(states[1].get("rate:r:1:100") or 0) == 4 * 25 * 3  # no increment lost
        assert sorted(totals) == list(range(3, 301, 3))  # each add saw its own new value
        states[0].put("answer", b"30 days", 60)  # values and counters share the table
        assert states[1].get("answer") == b"30 days"
        assert states[0].add("rate:t:2:100", 5, -1) == 5  # already expired when written
        assert states[0].get("rate:t:2:100") is None
        assert states[0].add("rate:t:2:100", 7, 60) == 7  # an expired counter starts again
    finally:
        for connection in connections:
            connection.dispose()


def test_the_rate_limiter_on_mariadb_refuses_the_request_over_the_limit(db):
    limiter = RateLimiter(MariaDBState(db, "kb_cache"))
    left = WINDOW_S - time.time() % WINDOW_S
    if left < 3:
        time.sleep(left + 0.2)
    verdicts = [limiter.check_request(9, requests_per_minute=2, tokens_per_minute=100) for _ in range(3)]
    assert verdicts[:2] == [None, None] and isinstance(verdicts[2], int) and 1 <= verdicts[2] <= WINDOW_S
    limiter.add_tokens(10, 100)
    assert limiter.tokens_used(10) == 100
    assert limiter.check_request(10, requests_per_minute=100, tokens_per_minute=100) is not None


def test_health_probe_late_on_a_busy_server_answers_a_recent_up_and_a_failed_probe_at_once(db_url):
    """A probe that is late (its thread runs late on a saturated CPU: here the replica listing inside
    the probe is slowed) is answered by an "up" at most ``max_age_s`` old, then, once that is older, by
    "down"; a probe that fails (nothing listens at the address) is "down" at once."""
    from kb.service.health import HealthProbe

    delay = {"s": 0.0}

    def replicas() -> list:
        time.sleep(delay["s"])
        return []

    probe = HealthProbe(db_url, replicas, timeout_s=0.2, max_age_s=1.0, refresh_s=3600)
    try:
        fresh = probe.check()
        assert fresh.database_ok
        delay["s"] = 2.5
        late = probe.check()  # the probe under way has not ended after 0.2 s
        assert late.database_ok and late.at == fresh.at
        time.sleep(1.2)  # the last "up" is now older than max_age_s; the probe under way is still late
        assert not probe.check().database_ok
        delay["s"] = 0.0
        time.sleep(1.5)  # the late probe ends: its "up" answers the next check
        assert probe.check().database_ok
    finally:
        probe.close()

    closed = HealthProbe(
        db_url.set(host="127.0.0.1", port=1, query={}), replicas, timeout_s=3.0, max_age_s=1.0, refresh_s=3600
    )
    try:
        started = time.monotonic()
        assert not closed.check().database_ok
        assert time.monotonic() - started < 3.0  # refused at once, not after the timeout
    finally:
        closed.close()
