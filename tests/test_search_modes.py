"""TEXT_SEARCH (BM25), HYBRID (each fusion strategy) and MMR on corpora where the answer is known."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)
from llama_index.core.vector_stores.types import (
    VectorStoreQueryMode as Mode,
)

from kb.stores import MariaDBVectorStore
from kb.stores.lexical import Analyzer

DOCS = {
    "ssl-error": "Chrome shows ERR_SSL_PROTOCOL_ERROR when the office proxy certificate is missing; "
    "reinstall the corporate root certificate from the IT portal.",
    "tls-1": "TLS handshake failures and SSL protocol errors occur when client and server disagree on "
    "protocol versions or cipher suites.",
    "tls-2": "Secure connection errors in web browsers: how SSL and TLS negotiation fails and what the "
    "error messages mean.",
    "tls-3": "An SSL protocol error in the browser usually means the HTTPS connection could not be "
    "established securely.",
    "remote": "Staff may work from home up to three days in every week, agreed with their manager.",
    "parking": "The car park opens at seven; visitors register at the front desk for a parking permit.",
    "espresso": "Descale the espresso machine every two months with the citric acid tablets in the kitchen.",
    "payroll": "Salaries are paid on the 25th of each month; payslips appear in the HR system.",
    "holiday": "Annual leave requests go through the HR system at least two weeks in advance.",
    "security": "Report lost badges to security immediately so that they can be deactivated.",
}
IDENTIFIER_QUERY = "ERR_SSL_PROTOCOL_ERROR"
PARAPHRASE_QUERY = "How often are employees allowed to telecommute?"


@pytest.fixture
def corpus_store(db_url, local_embed):
    store = MariaDBVectorStore.from_params(db_url, table_name="modes", embed_dim=384)
    texts = list(DOCS.values())
    vectors = local_embed.get_text_embedding_batch(texts)
    store.add(
        [
            TextNode(
                id_=key,
                text=text,
                embedding=vec,
                metadata={"topic": "it" if key.startswith(("ssl", "tls")) else "office"},
            )
            for (key, text), vec in zip(DOCS.items(), vectors)
        ]
    )
    return store


def ask(store, local_embed, text, mode, k=3, **options):
    query = VectorStoreQuery(
        query_str=text, query_embedding=local_embed.get_query_embedding(text), similarity_top_k=k, mode=mode
    )
    return store.query(query, **options)


def test_identifier_found_by_full_text_missed_by_vectors(corpus_store, local_embed):
    dense = ask(corpus_store, local_embed, IDENTIFIER_QUERY, Mode.DEFAULT, k=1)
    text = ask(corpus_store, local_embed, IDENTIFIER_QUERY, Mode.TEXT_SEARCH, k=1)
    assert text.ids == ["ssl-error"]
    assert dense.ids != ["ssl-error"]


def test_paraphrase_found_by_vectors_missed_by_full_text(corpus_store, local_embed):
    dense = ask(corpus_store, local_embed, PARAPHRASE_QUERY, Mode.DEFAULT, k=1)
    text = ask(corpus_store, local_embed, PARAPHRASE_QUERY, Mode.TEXT_SEARCH, k=1)
    assert dense.ids == ["remote"]
    assert "remote" not in text.ids


@pytest.mark.parametrize("fusion", ["rrf", "weighted"])
def test_hybrid_finds_both(corpus_store, local_embed, fusion):
    for question, answer in ((IDENTIFIER_QUERY, "ssl-error"), (PARAPHRASE_QUERY, "remote")):
        result = ask(corpus_store, local_embed, question, Mode.HYBRID, k=3, fusion=fusion)
        assert answer in result.ids, (fusion, question, result.ids)
        retrieval = result.nodes[result.ids.index(answer)].metadata["retrieval"]
        assert (
            retrieval["fusion"] == fusion and retrieval["lists"] and set(retrieval["ranks"]) == set(retrieval["lists"])
        )
        assert "retrieval" in result.nodes[0].excluded_llm_metadata_keys


def test_hybrid_reports_lists_and_ranks(corpus_store, local_embed):
    result = ask(corpus_store, local_embed, "SSL protocol error in the browser", Mode.HYBRID, k=5, fusion="rrf")
    both = [n for n in result.nodes if set(n.metadata["retrieval"]["lists"]) == {"vector", "text"}]
    assert both, "a query with shared words and meaning is found by both lists"
    dense = ask(corpus_store, local_embed, "SSL protocol error in the browser", Mode.DEFAULT, k=10)
    for node in both:
        assert node.metadata["retrieval"]["ranks"]["vector"] == dense.ids.index(node.node_id) + 1
    assert result.similarities == sorted(result.similarities, reverse=True)


def test_rrf_scores_follow_the_formula(corpus_store, local_embed):
    question = "SSL protocol error in the browser"
    result = ask(corpus_store, local_embed, question, Mode.HYBRID, k=10, fusion="rrf", rrf_k=10, weights=(2.0, 1.0))
    for node, score in zip(result.nodes, result.similarities):
        ranks = node.metadata["retrieval"]["ranks"]
        expected = 2.0 / (10 + ranks["vector"]) if "vector" in ranks else 0.0
        expected += 1.0 / (10 + ranks["text"]) if "text" in ranks else 0.0
        assert score == pytest.approx(expected)


def test_weighted_alpha_extremes_reproduce_each_side(corpus_store, local_embed):
    question = "SSL protocol error in the browser"
    vector = VectorStoreQuery(
        query_str=question,
        query_embedding=local_embed.get_query_embedding(question),
        similarity_top_k=4,
        mode=Mode.HYBRID,
        alpha=1.0,
    )
    only_vector = corpus_store.query(vector, fusion="weighted")
    assert only_vector.ids == ask(corpus_store, local_embed, question, Mode.DEFAULT, k=4).ids
    vector.alpha = 0.0
    only_text = corpus_store.query(vector, fusion="weighted")
    assert only_text.ids[:3] == ask(corpus_store, local_embed, question, Mode.TEXT_SEARCH, k=3).ids


def test_cascades(corpus_store, local_embed):
    question = "SSL protocol error in the browser"
    text = ask(corpus_store, local_embed, question, Mode.TEXT_SEARCH, k=10)
    dense = ask(corpus_store, local_embed, question, Mode.DEFAULT, k=10)
    t2v = ask(corpus_store, local_embed, question, Mode.HYBRID, k=10, fusion="text_then_vector")
    assert set(t2v.ids) == set(text.ids)  # the full-text candidates...
    order = [i for i in dense.ids if i in set(text.ids)]
    assert t2v.ids == order  # ...in vector order
    v2t = ask(corpus_store, local_embed, question, Mode.HYBRID, k=10, fusion="vector_then_text", vector_pool=10)
    assert set(v2t.ids) == set(dense.ids)
    matched = [i for i in text.ids if i in set(dense.ids)]
    assert v2t.ids[: len(matched)] == matched  # BM25 order first; non-matching candidates score 0 after


def test_both_boost_only_lifts_chunks_found_twice(corpus_store, local_embed):
    question = "SSL protocol error in the browser"
    plain = ask(corpus_store, local_embed, question, Mode.HYBRID, k=10, fusion="rrf")
    boosted = ask(corpus_store, local_embed, question, Mode.HYBRID, k=10, fusion="rrf", both_boost=1.0)
    before = dict(zip(plain.ids, plain.similarities))
    for node, score in zip(boosted.nodes, boosted.similarities):
        factor = 2.0 if len(node.metadata["retrieval"]["lists"]) == 2 else 1.0
        assert score == pytest.approx(before[node.node_id] * factor)


@pytest.mark.parametrize("mode", [Mode.DEFAULT, Mode.TEXT_SEARCH, Mode.HYBRID, Mode.MMR])
def test_filters_work_in_every_mode(corpus_store, local_embed, mode):
    question = "SSL protocol error in the HR system"
    query = VectorStoreQuery(
        query_str=question,
        query_embedding=local_embed.get_query_embedding(question),
        similarity_top_k=10,
        mode=mode,
        filters=MetadataFilters(filters=[MetadataFilter(key="topic", value="office")]),
    )
    result = corpus_store.query(query)
    assert result.ids and all(not i.startswith(("ssl", "tls")) for i in result.ids)


def test_unknown_options_and_modes_are_errors(corpus_store, local_embed):
    with pytest.raises(ValueError, match="unknown query option"):
        ask(corpus_store, local_embed, "x", Mode.DEFAULT, ef_serach=10)
    with pytest.raises(ValueError, match="unknown fusion strategy"):
        ask(corpus_store, local_embed, "x", Mode.HYBRID, fusion="magic")
    with pytest.raises(NotImplementedError, match="svm"):
        ask(corpus_store, local_embed, "x", Mode.SVM)


def test_bm25_scores_equal_a_reference_implementation(db_url):
    texts = [
        "the cat sat on the mat",
        "dogs and cats living together",
        "a mat for a dog",
        "cats cats cats everywhere",
        "nothing relevant here at all",
        "the dog chased the cat up a tree",
    ]
    store = MariaDBVectorStore.from_params(db_url, table_name="bm25", embed_dim=2)
    store.add([TextNode(id_=f"d{i}", text=t, embedding=[1.0, float(i)]) for i, t in enumerate(texts)])
    analyzer = Analyzer(min_token_size=int(store.connection.fetchall("SELECT @@innodb_ft_min_token_size")[0][0]))
    docs = [analyzer.stems(t) for t in texts]
    avg = sum(map(len, docs)) / len(docs)
    question = "cat on a mat"
    q = analyzer.stems(question)

    def reference(doc):
        score, counts = 0.0, Counter(doc)
        for term in set(q):
            df = sum(term in d for d in docs)
            idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
            tf = counts[term]
            score += idf * tf * 1.9 / (tf + 0.9 * (0.6 + 0.4 * len(doc) / avg))
        return score

    expected = sorted(((reference(d), f"d{i}") for i, d in enumerate(docs) if reference(d) > 0), reverse=True)
    result = store.query(VectorStoreQuery(query_str=question, similarity_top_k=10, mode=Mode.TEXT_SEARCH))
    assert result.ids == [i for _, i in expected]
    assert result.similarities == pytest.approx([s for s, _ in expected])


def test_mmr_diversifies(db_url):
    rng = np.random.default_rng(3)
    base = rng.normal(size=16)
    near_duplicates = [base + rng.normal(scale=0.01, size=16) for _ in range(5)]
    others = [base + rng.normal(scale=0.9, size=16) for _ in range(15)]
    store = MariaDBVectorStore.from_params(db_url, table_name="mmr", embed_dim=16, full_text=False)
    store.add(
        [TextNode(id_=f"dup{i}", text="d", embedding=v.tolist()) for i, v in enumerate(near_duplicates)]
        + [TextNode(id_=f"other{i}", text="o", embedding=v.tolist()) for i, v in enumerate(others)]
    )
    query = VectorStoreQuery(query_embedding=base.tolist(), similarity_top_k=5, mode=Mode.MMR, mmr_threshold=1.0)
    pure = store.query(query)
    dense = store.query(VectorStoreQuery(query_embedding=base.tolist(), similarity_top_k=5))
    assert pure.ids == dense.ids and all(i.startswith("dup") for i in pure.ids)
    query.mmr_threshold = 0.3
    diverse = store.query(query)
    assert diverse.ids[0].startswith("dup")
    assert sum(i.startswith("dup") for i in diverse.ids) == 1  # one of the near-duplicates is enough


def test_text_search_needs_full_text_side(db_url):
    store = MariaDBVectorStore.from_params(db_url, table_name="dense_only", embed_dim=2, full_text=False)
    store.add([TextNode(id_="a", text="alpha", embedding=[1.0, 0.0])])
    with pytest.raises(ValueError, match="full_text=False"):
        store.query(VectorStoreQuery(query_str="alpha", similarity_top_k=1, mode=Mode.TEXT_SEARCH))
