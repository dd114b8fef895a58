"""Every filter operator and condition, nested, against the real server, each compared with the
same filter evaluated in Python (LlamaIndex's in-memory semantics, extended to nesting)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)
from llama_index.core.vector_stores.types import (
    FilterOperator as Op,
)

from kb.stores import MariaDBVectorStore, UnsupportedFilterError

AUTHORS = ["ann", "Ann", "bob", "Émile", "zoë", "o'brien", "100%_done", ""]
TAGS = ["red", "green", "blue", "Red", "x_y", "a%b"]


def _python_leaf(flt: MetadataFilter, metadata: dict) -> bool:
    """LlamaIndex's build_metadata_filter_fn semantics; a TypeError there means "no match"."""
    value = metadata.get(flt.key)
    op, target = flt.operator, flt.value
    if op == Op.IS_EMPTY:
        return value is None or value == "" or value == []
    if value is None:
        return op in (Op.NE, Op.NIN)
    try:
        if op == Op.EQ:
            return value == target
        if op == Op.NE:
            return value != target
        if op == Op.GT:
            return value > target
        if op == Op.GTE:
            return value >= target
        if op == Op.LT:
            return value < target
        if op == Op.LTE:
            return value <= target
        if op == Op.IN:
            return value in target
        if op == Op.NIN:
            return value not in target
        if op == Op.CONTAINS:
            return target in value
        if op == Op.TEXT_MATCH:
            return isinstance(value, str) and target in value
        if op == Op.TEXT_MATCH_INSENSITIVE:
            return isinstance(value, str) and target.lower() in value.lower()
        if op == Op.ANY:
            return any(v in value for v in target)
        if op == Op.ALL:
            return all(v in value for v in target)
    except TypeError:
        return False
    raise AssertionError(op)


def python_match(filters: MetadataFilters, metadata: dict) -> bool:
    results = [
        python_match(f, metadata) if isinstance(f, MetadataFilters) else _python_leaf(f, metadata)
        for f in filters.filters
    ]
    if filters.condition == FilterCondition.OR:
        return any(results)
    if filters.condition == FilterCondition.NOT:
        return not any(results)
    return all(results)


def make_metadata(i: int, rng: random.Random) -> dict:
    md: dict = {}
    if i % 7:
        md["author"] = AUTHORS[i % len(AUTHORS)]
    if i % 5 == 0:
        md["author"] = None
    md["year"] = 1990 + (i * 3) % 35
    md["score"] = round(rng.uniform(0, 1), 2)
    if i % 4:
        md["tags"] = rng.sample(TAGS, k=i % 4)
    md["nums"] = [i % 3, i % 5]
    md["flag"] = i % 2 == 0
    md["title"] = f"Chapter {i}: The {'Quick' if i % 3 else 'lazy'} fox"
    if i % 6 == 0:
        md["note"] = ""
    md["mixed"] = str(i) if i % 2 else i  # a key holding strings on some nodes, numbers on others
    return md


@pytest.fixture(scope="module")
def corpus():
    rng = random.Random(7)
    return [
        TextNode(
            id_=f"node-{i}",
            text=f"text {i}",
            metadata=make_metadata(i, rng),
            embedding=list(np.random.default_rng(i).random(4)),
        )
        for i in range(80)
    ]


@pytest.fixture
def store(db_url, corpus):
    s = MariaDBVectorStore.from_params(db_url, table_name="filters", embed_dim=4)
    s.add(corpus)
    return s


def random_leaf(rng: random.Random) -> MetadataFilter:
    op = rng.choice(list(Op))
    key = rng.choice(["author", "year", "score", "tags", "nums", "flag", "title", "note", "mixed", "absent"])
    scalars = AUTHORS + TAGS + [1990, 2000, 2010.5, 0.5, 0, 1, 2, 3, "1", "3", "Quick", "fox"]
    if op in (Op.IN, Op.NIN, Op.ANY, Op.ALL):
        value = rng.sample(scalars, k=rng.randint(0, 3))
        if op in (Op.ANY, Op.ALL) or rng.random() < 0.5:
            kinds = {type(v) for v in value}
            if len(kinds) > 1:  # LlamaIndex's FilterValue takes a list of one type
                value = [v for v in value if isinstance(v, str)]
    elif op in (Op.TEXT_MATCH, Op.TEXT_MATCH_INSENSITIVE):
        value = rng.choice(["ann", "ANN", "quick", "Quick", "fox", "%", "_", "'", "É", "Chapter 1"])
    elif op == Op.IS_EMPTY:
        value = None
    else:
        value = rng.choice(scalars)
    try:
        return MetadataFilter(key=key, operator=op, value=value)
    except Exception:
        return MetadataFilter(key=key, operator=Op.EQ, value="ann")


def random_tree(rng: random.Random, depth: int = 0) -> MetadataFilters:
    children = []
    for _ in range(rng.randint(1, 3)):
        if depth < 3 and rng.random() < 0.35:
            children.append(random_tree(rng, depth + 1))
        else:
            children.append(random_leaf(rng))
    return MetadataFilters(filters=children, condition=rng.choice(list(FilterCondition)))


def ids(nodes) -> set[str]:
    return {n.node_id for n in nodes}


def expected(corpus, filters) -> set[str]:
    return {n.node_id for n in corpus if python_match(filters, n.metadata)}


@pytest.mark.parametrize("op", list(Op))
def test_each_operator_matches_python(store, corpus, op):
    rng = random.Random(op.value)
    checked = 0
    for _ in range(60):
        leaf = random_leaf(rng)
        if leaf.operator != op:
            continue
        filters = MetadataFilters(filters=[leaf])
        assert ids(store.get_nodes(filters=filters)) == expected(corpus, filters), leaf
        checked += 1
    # make sure each operator got exercised on every kind of key, not just once
    for key, value in [
        ("author", "ann"),
        ("year", 2000),
        ("score", 0.5),
        ("tags", "red"),
        ("title", "fox"),
        ("mixed", 3),
        ("mixed", "3"),
        ("absent", "x"),
    ]:
        if op in (Op.IN, Op.NIN, Op.ANY, Op.ALL):
            value = [value]
        if op in (Op.TEXT_MATCH, Op.TEXT_MATCH_INSENSITIVE) and not isinstance(value, str):
            continue
        if op == Op.IS_EMPTY:
            value = None
        filters = MetadataFilters(filters=[MetadataFilter(key=key, operator=op, value=value)])
        assert ids(store.get_nodes(filters=filters)) == expected(corpus, filters), (key, op, value)
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize("condition", list(FilterCondition))
def test_conditions(store, corpus, condition):
    filters = MetadataFilters(
        condition=condition,
        filters=[
            MetadataFilter(key="year", operator=Op.GTE, value=2005),
            MetadataFilter(key="tags", operator=Op.CONTAINS, value="red"),
        ],
    )
    found = ids(store.get_nodes(filters=filters))
    assert found == expected(corpus, filters)
    assert 0 < len(found) < len(corpus)


def test_random_nested_trees_match_python(store, corpus):
    rng = random.Random(2024)
    nonempty = 0
    for _ in range(300):
        tree = random_tree(rng)
        want = expected(corpus, tree)
        assert ids(store.get_nodes(filters=tree)) == want, tree
        assert store.count(tree) == len(want)
        nonempty += 0 < len(want) < len(corpus)
    assert nonempty > 25  # the trees are selective, not trivially all or nothing


def test_not_of_nested_and(store, corpus):
    inner = MetadataFilters(
        condition=FilterCondition.AND,
        filters=[
            MetadataFilter(key="author", operator=Op.EQ, value="ann"),
            MetadataFilter(key="flag", operator=Op.EQ, value=1),
        ],
    )
    tree = MetadataFilters(condition=FilterCondition.NOT, filters=[inner])
    found = ids(store.get_nodes(filters=tree))
    assert found == expected(corpus, tree)
    assert len(found) == len(corpus) - len(expected(corpus, inner))


def test_nested_key_path(db_url):
    store = MariaDBVectorStore.from_params(db_url, table_name="nested", embed_dim=2)
    store.add(
        [
            TextNode(id_="a", text="a", metadata={"source": {"page": 3}}, embedding=[1, 0]),
            TextNode(id_="b", text="b", metadata={"source": {"page": 9}}, embedding=[0, 1]),
        ]
    )
    filters = MetadataFilters(filters=[MetadataFilter(key="source.page", operator=Op.GT, value=5)])
    assert ids(store.get_nodes(filters=filters)) == {"b"}


@pytest.mark.parametrize("key", ["a b", "x') OR 1=1 --", 'a"b', "$.x", "a..b", "", "1abc", "a;b", "`k`"])
def test_bad_keys_are_refused_not_sql(store, key):
    with pytest.raises(UnsupportedFilterError, match="invalid metadata key"):
        store.get_nodes(filters=MetadataFilters(filters=[MetadataFilter(key=key, operator=Op.EQ, value=1)]))
    assert store.count() == 80


def test_filter_size_limits_name_the_limit_and_the_store_refuses_more_parameters_than_mariadb_binds(store):
    from dataclasses import replace

    from kb.stores import FilterLimits, FilterTooLarge
    from kb.stores.filters import check_filter_size

    names = MetadataFilters(filters=[MetadataFilter(key="author", operator=Op.IN, value=list(AUTHORS))])
    roomy = FilterLimits(values=1000, leaves=64, depth=8, parameters=4000)
    check_filter_size(names, roomy)  # within every limit: nothing said
    for limits, named in (
        (replace(roomy, values=len(AUTHORS) - 1), "max_filter_values"),
        (replace(roomy, leaves=0), "max_filter_leaves"),
        (replace(roomy, depth=0), "max_filter_depth"),
        (replace(roomy, parameters=len(AUTHORS)), "max_filter_parameters"),  # the IN's values and its paths
    ):
        with pytest.raises(FilterTooLarge, match=f"serve.{named}"):
            check_filter_size(names, limits, names="serve.")
    # Any caller of the store: more values than MariaDB numbers in one statement is a clear refusal,
    # before a packet is sent (the server would drop the connection).
    huge = MetadataFilters(
        filters=[MetadataFilter(key="author", operator=Op.NIN, value=[str(i) for i in range(70000)])]
    )
    with pytest.raises(FilterTooLarge, match="at most 65535"):
        store.query(VectorStoreQuery(query_embedding=[0.1, 0.2, 0.3, 0.4], similarity_top_k=3, filters=huge))
    assert isinstance(FilterTooLarge("x"), UnsupportedFilterError)  # callers catching the broader error still do
