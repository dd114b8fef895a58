"""The lexical side stays equal to the chunks through upserts, deletes, failures and crashes."""

from __future__ import annotations

import pytest
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from kb.stores import MariaDBVectorStore
from kb.stores.lexical import Analyzer


def make(i: int, text: str | None = None, doc: str = "d") -> TextNode:
    node = TextNode(
        id_=f"n{i}",
        text=text or f"chunk number {i} about topic{i % 7} and more words",
        embedding=[1.0, float(i % 13), float(i % 5)],
        metadata={"i": i},
    )
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"{doc}{i % 4}")
    return node


@pytest.fixture
def store(db_url):
    return MariaDBVectorStore.from_params(db_url, table_name="lex", embed_dim=3, parallel_threshold=50)


def assert_consistent(store) -> None:
    conn = store.connection
    analyzer = Analyzer(min_token_size=int(conn.fetchall("SELECT @@innodb_ft_min_token_size")[0][0]))
    chunks = dict(conn.fetchall("SELECT node_id, text FROM lex"))
    lexical = {row[0]: (row[1], row[2]) for row in conn.fetchall("SELECT node_id, stems, length FROM lex_lexical")}
    assert set(lexical) == set(chunks)
    for node_id, text in chunks.items():
        stems = analyzer.stems(text)
        assert lexical[node_id] == (" ".join(stems), len(stems))
    docs, total = conn.fetchall("SELECT docs, total_length FROM lex_lexical_stats")[0]
    assert (docs, total) == (len(chunks), sum(length for _, length in lexical.values()))


def test_upserts_and_deletes_keep_the_statistics(store):
    store.add([make(i) for i in range(120)])  # parallel path
    assert_consistent(store)
    store.add([make(i, text=f"rewritten text {i}") for i in range(0, 120, 3)])  # upserts, parallel
    store.add([make(i, text="short") for i in range(5)])  # sequential path
    assert_consistent(store)
    store.delete("d1")
    store.delete_nodes(node_ids=["n2", "n6"])
    store.delete_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="i", operator=">", value=100)]))
    assert_consistent(store)
    store.clear()
    assert_consistent(store)


def test_failed_parallel_add_leaves_nothing_behind(store):
    store.add([make(i) for i in range(10)])
    # A real failure inside the chunk transaction: the server refuses one row (a trigger).
    store.connection.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON lex FOR EACH ROW "
        "IF NEW.node_id = 'n150' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused'; END IF"
    )
    batch = [make(i, text=f"new text {i}") for i in range(5, 200)]
    with pytest.raises(Exception, match="refused"):
        store.add(batch)
    assert store.count() == 10
    assert {n.get_content() for n in store.get_nodes(node_ids=["n5"])} == {make(5).get_content()}
    assert_consistent(store)


def test_repair_after_an_interrupted_write(store, db_url):
    store.add([make(i) for i in range(60)])
    conn = store.connection
    # what a kill -9 between the two commits can leave: lexical rows without chunks, stale rows
    conn.execute("DELETE FROM lex WHERE node_id IN ('n1', 'n2')")
    conn.execute(
        "UPDATE lex SET text = 'changed behind its back', text_hash = UNHEX(MD5('changed behind its back')) "
        "WHERE node_id = 'n3'"
    )
    reopened = MariaDBVectorStore.from_params(db_url, table_name="lex", embed_dim=3)  # repairs on open
    assert_consistent(reopened)
    assert reopened.repair() == (0, 0)


def test_opening_the_store_inside_a_parallel_write_window_deletes_nothing(store, db_url):
    """Deterministic: the chunk transaction is held open (a trigger waits on a lock the test holds)
    after the lexical rows committed; a reader opening the store then (which repairs) must not take
    those rows for orphans."""
    import threading
    import time

    conn = store.connection
    conn.execute(
        "CREATE TRIGGER hold BEFORE INSERT ON lex FOR EACH ROW "
        "IF NEW.node_id = 'n199' THEN SET @held = GET_LOCK('kb_test_gate', 60); END IF"
    )
    with conn.named_lock("kb_test_gate", 0) as gate:
        assert gate
        writer = threading.Thread(target=store.add, args=([make(i) for i in range(200)],))
        writer.start()
        deadline = time.monotonic() + 60
        while conn.fetchall("SELECT COUNT(*) FROM lex_lexical")[0][0] < 200:  # the lexical side committed
            assert time.monotonic() < deadline, "the lexical rows never committed"
            time.sleep(0.05)
        assert conn.fetchall("SELECT COUNT(*) FROM lex")[0][0] == 0  # the chunks have not
        reader = MariaDBVectorStore.from_params(db_url, table_name="lex", embed_dim=3)  # repairs on open
        assert reader.repair() == (0, 0)
    writer.join(60)
    assert not writer.is_alive()
    assert_consistent(store)
    hits = reader.query(
        VectorStoreQuery(query_str="topic3", mode=VectorStoreQueryMode.TEXT_SEARCH, similarity_top_k=200)
    )
    assert len(hits.nodes) == len([i for i in range(200) if i % 7 == 3])
