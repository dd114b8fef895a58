"""MariaDBKVStore: the KV interface, and as the backend of LlamaIndex's docstore, index store and cache."""

from __future__ import annotations

import pytest
from llama_index.core.data_structs.data_structs import IndexDict
from llama_index.core.ingestion import IngestionCache
from llama_index.core.schema import Document, TextNode
from llama_index.core.storage.docstore.keyval_docstore import KVDocumentStore
from llama_index.core.storage.index_store.keyval_index_store import KVIndexStore

from kb.stores import MariaDBKVStore


@pytest.fixture
def kv(db_url):
    return MariaDBKVStore.from_params(db_url, table_name="kv")


def test_put_get_delete_collections(kv):
    kv.put("a", {"x": 1})
    kv.put("a", {"x": 2})  # upsert
    kv.put("a", {"x": 3}, collection="other")
    kv.put_all([(f"k{i}", {"i": i, "text": "ünïcode ' \" \\ %"}) for i in range(2500)], batch_size=700)
    assert kv.get("a") == {"x": 2} and kv.get("a", "other") == {"x": 3} and kv.get("missing") is None
    assert len(kv.get_all()) == 2501 and kv.get("k7")["text"] == "ünïcode ' \" \\ %"
    assert kv.get_many(["k1", "k2", "nope"]) == {
        "k1": {"i": 1, "text": "ünïcode ' \" \\ %"},
        "k2": {"i": 2, "text": "ünïcode ' \" \\ %"},
    }
    assert kv.delete("a") is True and kv.delete("a") is False
    assert kv.get("a", "other") == {"x": 3}
    assert kv.delete_many(["k1", "k2", "nope"]) == 2


async def test_async_twins(kv):
    await kv.aput("x", {"v": 1})
    await kv.aput_all([("y", {"v": 2}), ("z", {"v": 3})])
    assert await kv.aget("x") == {"v": 1}
    assert set(await kv.aget_all()) == {"x", "y", "z"}
    assert await kv.adelete("y") is True
    assert await kv.aget_many(["x", "y"]) == {"x": {"v": 1}}


def test_backs_a_docstore(kv):
    docstore = KVDocumentStore(kv, namespace="ds")
    docs = [Document(text=f"doc {i}", id_=f"d{i}") for i in range(3)]
    docstore.add_documents(docs)
    docstore.set_document_hash("d1", "h1")
    assert docstore.get_document("d2").text == "doc 2"
    assert docstore.get_document_hash("d1") == "h1"
    assert docstore.document_exists("d0")
    docstore.delete_document("d0")
    assert not docstore.document_exists("d0")
    assert set(docstore.docs) == {"d1", "d2"}


def test_backs_an_index_store(kv):
    index_store = KVIndexStore(kv, namespace="is")
    struct = IndexDict()
    struct.add_node(TextNode(id_="n1", text="x"))
    index_store.add_index_struct(struct)
    loaded = index_store.get_index_struct(struct.index_id)
    assert loaded.index_id == struct.index_id and "n1" in loaded.nodes_dict.values()


def test_backs_an_ingestion_cache(kv):
    cache = IngestionCache(cache=kv, collection="ingest")
    nodes = [TextNode(text="cached node", id_="c1")]
    cache.put("hash-1", nodes)
    assert cache.get("hash-1")[0].text == "cached node"
    assert cache.get("hash-2") is None


def test_bad_keys_and_table_names(db_url, kv):
    kv.put("k" * 512, {"long": True})
    assert kv.get("k" * 512) == {"long": True}
    with pytest.raises(ValueError, match="at most 512"):
        kv.put("k" * 513, {})
    with pytest.raises(ValueError, match="invalid SQL identifier"):
        MariaDBKVStore.from_params(db_url, table_name="kv; DROP TABLE kv")
