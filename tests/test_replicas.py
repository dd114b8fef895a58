"""The real topology on one machine: kb's private primary and one local replica (`kb db start --replicas 1`).

Reads of the stores go to the replica once it has applied this process's writes (GTID); a replica
that is stopped, lagging or dead is left out and its reads go to the primary, and it comes back into
rotation by itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import httpx
import numpy as np
import pytest
from conftest import kb_command
from llama_index.core.llms import ChatMessage
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters, VectorStoreQuery
from scripted_llm import ScriptedLLM
from serving import ServedKB

from kb.knowledge_base import KnowledgeBase
from kb.stores.chat_store import MariaDBChatStore
from kb.stores.connection import MariaDBConnection
from kb.stores.replication import ReplicatedConnection, covers, merge_gtids
from kb.stores.vector_store import MariaDBVectorStore

DIM = 16
EVERY_ROW = MetadataFilters(filters=[MetadataFilter(key="group", value="all")])


@pytest.fixture(scope="module")
def topology(start_spare_server, tmp_path_factory):
    """A fresh primary with one replica made by the CLI, as a user would; its config file."""
    primary = start_spare_server(41)
    config = tmp_path_factory.mktemp("replicas") / "config.json"
    config.write_text(
        json.dumps(
            {
                "home": str(primary.home),
                "database": {"server": {"port": primary.port}, "replica_retry_s": 1, "replica_wait_s": 1},
                "sql": {"enabled": False},
                "router": {"selector": "offline"},
            }
        )
    )
    return primary, config


@pytest.fixture(scope="module")
def started(topology):
    """`kb db start --replicas 1` (idempotent; the first call copies the primary and starts replicating)."""
    primary, config = topology
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    result = subprocess.run(
        [*kb_command(), "--config", str(config), "db", "start", "--replicas", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"replica 1 (127.0.0.1:{primary.port + 1}): replicating" in result.stdout, result.stdout
    return topology


def replicated(primary, **options) -> ReplicatedConnection:
    return ReplicatedConnection(
        primary.app_url(), [primary.replica(1).app_url()], **{"retry_s": 1.0, "check_s": 0.5, "wait_s": 2.0, **options}
    )


def node(i: int, rng: np.random.Generator) -> TextNode:
    vector = rng.normal(size=DIM)
    return TextNode(
        id_=f"n{i}", text=f"chunk {i}", metadata={"group": "all"}, embedding=(vector / np.linalg.norm(vector)).tolist()
    )


def test_gtid_positions_merge_per_domain():
    assert merge_gtids("0-1-5,1-2-9", "0-1-7") == "0-1-7,1-2-9"
    assert covers("0-1-7,1-2-9", "0-1-7") and not covers("0-1-6", "0-1-7") and not covers("", "0-1-1")
    assert covers("0-1-1", "")


def test_replica_top10_equals_the_primarys_through_upserts_and_deletes(started):
    primary, _ = started
    conn = replicated(primary)
    direct = MariaDBConnection(primary.app_url())
    try:
        store = MariaDBVectorStore(conn, table_name="rep_nodes", embed_dim=DIM, ef_search=1000)
        on_primary = MariaDBVectorStore(
            direct, table_name="rep_nodes", embed_dim=DIM, ef_search=1000, perform_setup=False
        )
        rng = np.random.default_rng(7)
        store.add([node(i, rng) for i in range(400)])
        next_id = 400
        for cycle in range(10):
            # upsert: 30 changed vectors of existing chunks and 20 new chunks; delete 15 others
            changed = [node(int(i), rng) for i in rng.choice(next_id, 30, replace=False)]
            store.add(changed + [node(next_id + j, rng) for j in range(20)])
            next_id += 20
            store.delete_nodes(node_ids=[f"n{int(i)}" for i in rng.choice(next_id, 15, replace=False)])
            reads_before = conn.replicas[0].reads
            for _ in range(3):
                vector = rng.normal(size=DIM).tolist()
                # A filter passing every row makes the search exact (kb's plan: few enough rows are
                # scanned, not searched in the graph), so the rows themselves are compared.
                exact = VectorStoreQuery(query_embedding=vector, similarity_top_k=10, filters=EVERY_ROW)
                assert store.query(exact).ids == on_primary.query(exact).ids, f"cycle {cycle}"
                # The HNSW graph is each server's own (built as rows arrive): approximate, both close.
                ann = VectorStoreQuery(query_embedding=vector, similarity_top_k=10)
                truth = set(on_primary.query(exact).ids)
                assert len(truth & set(store.query(ann).ids)) >= 8, f"cycle {cycle}"
            assert conn.replicas[0].reads == reads_before + 6, "the replica served every query"
        assert conn.primary_reads == 0
        assert store.count() == on_primary.count()
    finally:
        conn.dispose()
        direct.dispose()


def test_a_chat_turn_is_read_back_at_once_and_a_stalled_replica_is_bypassed(started):
    primary, _ = started
    conn = replicated(primary, wait_s=0.5)
    replica_admin = MariaDBConnection(primary.replica(1).admin_url())
    try:
        chats = MariaDBChatStore(conn, table_name="rep_chat")
        chats.add_message("s1", ChatMessage(role="user", content="first turn"))
        assert [m.content for m in chats.get_messages("s1")] == ["first turn"]
        assert conn.replicas[0].reads == 1 and conn.primary_reads == 0

        with replica_admin.connection() as held:
            # The replica's applier waits for this global read lock: it falls behind while its
            # replication status still says running (a lagging, not a broken, replica).
            lock = held.cursor()
            lock.execute("FLUSH TABLES WITH READ LOCK")
            try:
                chats.add_message("s1", ChatMessage(role="assistant", content="second turn"))
                assert [m.content for m in chats.get_messages("s1")] == ["first turn", "second turn"]
                assert conn.primary_reads == 1, "the replica had not applied the turn: the primary answered"

                # Another process that has written nothing: with own_writes it reads the lagging
                # replica; with global it waits for the primary's position, times out, reads the primary.
                for consistency, expected in (
                    ("own_writes", ["first turn"]),
                    ("global", ["first turn", "second turn"]),
                ):
                    other = replicated(primary, wait_s=0.3, consistency=consistency)
                    try:
                        other_chats = MariaDBChatStore(other, table_name="rep_chat")
                        assert [m.content for m in other_chats.get_messages("s1")] == expected, consistency
                    finally:
                        other.dispose()
            finally:
                lock.execute("UNLOCK TABLES")
                lock.close()

        assert [m.content for m in chats.get_messages("s1")] == ["first turn", "second turn"]
        assert conn.replicas[0].reads == 2, "caught up: back on the replica"
    finally:
        replica_admin.dispose()
        conn.dispose()


def test_knowledge_base_reads_on_the_replica_and_survives_its_death(started, tmp_path, run_kb):
    primary, config = started
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "hours.md").write_text("# Opening hours\n\nThe shop opens at nine o'clock on weekdays.\n")
    (docs / "returns.md").write_text("# Returns\n\nProducts can be returned within 30 days of delivery.\n")
    kb = KnowledgeBase.from_config(config, llm=ScriptedLLM(lambda prompt: "Written answer."))
    served_kb = None
    try:
        conn = kb.connection
        assert isinstance(conn, ReplicatedConnection), "the private server's replicas are used without a setting"
        kb.index_directory(docs, progress=False)
        assert "nine o'clock" in kb.retrieve("When does the shop open?")[0].node.get_content()
        kb.chat("visitor", "When does the shop open?")
        assert [m.content for m in kb.session_messages("visitor")][0] == "When does the shop open?"
        served = conn.replicas[0].reads
        assert served >= 2 and conn.primary_reads == 0

        answered, failures, stop = [], [], threading.Event()

        def ask() -> None:
            while not stop.is_set():
                try:
                    answered.append(kb.retrieve("How long do I have to return a product?")[0].node.get_content())
                except Exception as exc:  # a query lost to the replica's death would show here
                    failures.append(exc)

        served_kb = ServedKB(json.loads(config.read_text()), tmp_path).wait_ready()
        healthy = httpx.get(served_kb.url + "/healthz", timeout=30).json()
        assert healthy["status"] == "ok" and healthy["replicas"][0]["state"] == "ok", healthy

        worker = threading.Thread(target=ask)
        worker.start()
        time.sleep(0.5)
        replica = primary.replica(1)
        os.kill(replica._pid(), signal.SIGKILL)  # the replica dies mid-run
        time.sleep(1.5)
        status = run_kb("--config", str(config), "db", "status")
        health = httpx.get(served_kb.url + "/healthz", timeout=30)
        stop.set()
        worker.join()
        assert not failures, failures[:1]
        assert answered and all("30 days" in text for text in answered)
        assert conn.replicas[0].state == "down" and conn.primary_reads > 0, "the primary took over"
        assert f"replica 1 (127.0.0.1:{replica.port}): not running" in status.stdout
        # the service stays healthy (the primary answers) and says which replica is down
        assert health.status_code == 200 and health.json()["replicas"][0]["state"] == "down", health.text

        restarted = run_kb("--config", str(config), "db", "start")  # starts the replica it provisioned
        assert restarted.returncode == 0 and "replica 1" in restarted.stdout and "replicating" in restarted.stdout
        deadline = time.monotonic() + 30
        reads = conn.replicas[0].reads
        while conn.replicas[0].reads == reads:
            assert time.monotonic() < deadline, conn.replica_status()
            assert "30 days" in kb.retrieve("How long do I have to return a product?")[0].node.get_content()
            time.sleep(0.2)
        assert conn.replica_status()[0]["state"] == "ok"
        assert httpx.get(served_kb.url + "/healthz", timeout=30).json()["replicas"][0]["state"] == "ok"
    finally:
        if served_kb is not None:
            served_kb.stop()
        kb.close()


@pytest.mark.parametrize(
    "errno, message, down",
    [
        (5014, "Write error: Broken pipe (32)", True),  # the server died while a statement was being sent
        (5013, "Read error: Connection reset by peer (104)", True),
        (2013, "Lost connection to server during query", True),
        (1146, "Table 'kb.nope' doesn't exist", False),  # the statement's own error: the primary would raise it
    ],
)
def test_the_drivers_errors_on_a_dead_connection_mean_the_server_is_down(errno, message, down):
    """What sends a replica's read to the primary: Connector/C's socket errors (CR_ERR_NET_READ and
    CR_ERR_NET_WRITE) are a dead server, as its lost-connection codes are; a statement's error is not."""
    import mariadb

    from kb.stores.errors import is_database_down

    error = mariadb.OperationalError(message)
    error.errno = errno
    assert is_database_down(error) is down
