"""Approved question/SQL pairs for a business database: the example store.

The operators of a database keep the pairs they have checked (Vanna's training data, Dataherald's
"golden SQL"); for each new question the SQL engine shows the model the approved pairs closest to
it (:class:`kb.engines.sql.SQLEngine`, ``examples``): what the schema cannot say, such as which column
a verb means or how this company counts revenue.

Each pair is one node of a :class:`~kb.stores.MariaDBVectorStore` of its own (the question is the
text and what is embedded; the SQL, the database, who added it, when and from where are metadata),
in a table per embedding generation (:mod:`kb.ingest.reembedding`: ``kb reembed`` copies the pairs
with the chunks). Every pair is checked before it is stored: its SQL must pass the read-only guard
over the allowed tables and run on the business database (``verify``); a pair that fails is refused
with the reason and nothing is written.

``sql.examples`` names a YAML file of pairs, ``[{q: question, sql: statement}]``, which kb imports
into the store when it builds the SQL engine (pairs already there are left as they are).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
)

from kb.errors import KBError
from kb.stores import MariaDBVectorStore

ExampleSource = Literal["file", "feedback", "cli", "api", "answer"]
EXAMPLE_SOURCES: tuple[str, ...] = ("file", "feedback", "cli", "api", "answer")
_METADATA_KEYS = ["database", "sql", "source", "added_by", "added_at"]
MAX_QUESTION_CHARS = 2000
MAX_SQL_CHARS = 20000


class ExampleRefused(KBError):
    """A pair that is not stored, with the reason (the guard's refusal, the server's error, a bad field)."""


@dataclass(frozen=True)
class SQLExample:
    """One approved pair; ``score`` is its similarity to the question it was retrieved for."""

    id: str
    database: str
    question: str
    sql: str
    source: str
    added_by: Optional[str]
    added_at: str
    score: Optional[float] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_sql_examples(path: str) -> list[tuple[str, str]]:
    """[(question, sql), ...] from a YAML list of ``{q: ..., sql: ...}``; a clear error otherwise."""
    file = Path(path).expanduser()
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KBError(f"cannot read the examples file {file} ({exc.strerror or exc}); fix the path") from None
    except yaml.YAMLError as exc:
        raise KBError(f"the examples file {file} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, list):
        raise KBError(f"the examples file {file} must hold a list of {{q: question, sql: statement}} items")
    pairs = []
    for number, item in enumerate(data, 1):
        if not (isinstance(item, dict) and isinstance(item.get("q"), str) and isinstance(item.get("sql"), str)):
            raise KBError(f"item {number} of the examples file {file} needs a q and an sql, both text")
        pairs.append((item["q"].strip(), item["sql"].strip()))
    return pairs


def dump_sql_examples(examples: Iterable[SQLExample]) -> str:
    """The pairs as a YAML file :func:`load_sql_examples` reads back (``kb sql examples export``)."""
    return yaml.safe_dump(
        [{"q": e.question, "sql": e.sql} for e in examples], allow_unicode=True, sort_keys=False, width=100
    )


def _node_example(node: Any, score: Optional[float] = None) -> SQLExample:
    md = node.metadata
    return SQLExample(
        id=node.node_id,
        database=md["database"],
        question=node.get_content(),
        sql=md["sql"],
        source=md.get("source", "cli"),
        added_by=md.get("added_by"),
        added_at=md.get("added_at", ""),
        score=None if score is None else round(float(score), 4),
    )


def _of_database(database: str) -> MetadataFilters:
    return MetadataFilters(filters=[MetadataFilter(key="database", value=database)])


class SQLExampleStore:
    """The approved pairs of every business database, in ``store`` (one embedding generation's
    table of pairs), their questions embedded with ``embed_model`` (that generation's model)."""

    def __init__(self, store: MariaDBVectorStore, embed_model: BaseEmbedding) -> None:
        self.store = store
        self.embed_model = embed_model

    # -- writes ---------------------------------------------------------------------------------------
    def add(
        self,
        database: str,
        question: str,
        sql: str,
        *,
        verify: Callable[[str], str],
        source: ExampleSource = "cli",
        added_by: Optional[str] = None,
    ) -> tuple[SQLExample, bool]:
        """Store the pair after ``verify`` (which returns the statement as the guard normalised it,
        and raises with the reason when the guard refuses it or the server cannot run it) let it
        through; returns it and whether it is new (the same question with the same statement is
        stored once). :class:`ExampleRefused` says why a pair is not stored."""
        question, sql = " ".join(question.split()), sql.strip().rstrip(";").strip()
        if not question:
            raise ExampleRefused("the question is empty: give the question the statement answers")
        if not sql:
            raise ExampleRefused("the SQL is empty: give the statement that answers the question")
        if len(question) > MAX_QUESTION_CHARS or len(sql) > MAX_SQL_CHARS:
            raise ExampleRefused(
                f"a question may have {MAX_QUESTION_CHARS} characters and a statement {MAX_SQL_CHARS}; shorten it"
            )
        try:
            checked = verify(sql)
        except ExampleRefused:
            raise
        except Exception as exc:  # the guard's refusal or the server's error: the reason is the message
            raise ExampleRefused(f"not stored: {exc}") from None
        same_sql = MetadataFilters(
            filters=[MetadataFilter(key="database", value=database), MetadataFilter(key="sql", value=checked)]
        )
        for node in self.store.get_nodes(filters=same_sql):
            if node.get_content() == question:
                return _node_example(node), False
        example = SQLExample(
            id=uuid.uuid4().hex[:12],
            database=database,
            question=question,
            sql=checked,
            source=source,
            added_by=added_by,
            added_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        node = TextNode(
            id_=example.id,
            text=question,
            metadata={k: getattr(example, k) for k in _METADATA_KEYS},
            excluded_embed_metadata_keys=_METADATA_KEYS,
            excluded_llm_metadata_keys=_METADATA_KEYS,
        )
        node.embedding = self.embed_model.get_text_embedding(question)
        self.store.add([node])
        return example, True

    def remove(self, example_id: str, database: Optional[str] = None) -> bool:
        """Delete one pair (only of ``database`` when given); whether there was one."""
        found = self.get(example_id)
        if found is None or (database is not None and found.database != database):
            return False
        self.store.delete_nodes(node_ids=[example_id])
        return True

    # -- reads ----------------------------------------------------------------------------------------
    def get(self, example_id: str) -> Optional[SQLExample]:
        nodes = self.store.get_nodes(node_ids=[example_id])
        return _node_example(nodes[0]) if nodes else None

    def pairs(self, database: Optional[str] = None) -> list[SQLExample]:
        """Every pair (of ``database``), oldest first."""
        filters = _of_database(database) if database is not None else None
        return [_node_example(node) for node in self.store.get_nodes(filters=filters)]

    def count(self, database: str) -> int:
        return self.store.count(_of_database(database))

    def closest(self, database: str, question: str, k: int, min_similarity: float) -> list[SQLExample]:
        """The ``k`` pairs of ``database`` whose questions are most similar to ``question`` (HNSW), at
        least ``min_similarity`` (cosine), most similar last: the one nearest the question in the prompt."""
        if k <= 0 or self.store.count(_of_database(database)) == 0:
            return []
        result = self.store.query(
            VectorStoreQuery(
                query_embedding=self.embed_model.get_query_embedding(question),
                similarity_top_k=k,
                filters=MetadataFilters(
                    filters=[MetadataFilter(key="database", value=database)], condition=FilterCondition.AND
                ),
            )
        )
        found = [
            _node_example(node, score)
            for node, score in zip(result.nodes or [], result.similarities or [])
            if score >= min_similarity
        ]
        return list(reversed(found))

    def import_pairs(
        self,
        database: str,
        pairs: Sequence[tuple[str, str]],
        *,
        verify: Callable[[str], str],
        source: ExampleSource = "file",
        added_by: Optional[str] = None,
    ) -> tuple[int, int, list[tuple[str, str]]]:
        """Add every pair that passes: (added, already stored, [(question, why refused)])."""
        added = known = 0
        refused: list[tuple[str, str]] = []
        for question, sql in pairs:
            try:
                _, new = self.add(database, question, sql, verify=verify, source=source, added_by=added_by)
            except ExampleRefused as why:
                refused.append((question, str(why)))
                continue
            added, known = added + new, known + (not new)
        return added, known, refused

    def check(self, database: str, verify: Callable[[str], str]) -> list[tuple[SQLExample, str]]:
        """Every pair of ``database`` that no longer passes ``verify`` (after a schema change), with why."""
        failing = []
        for example in self.pairs(database):
            try:
                verify(example.sql)
            except Exception as exc:
                failing.append((example, str(exc)))
        return failing
