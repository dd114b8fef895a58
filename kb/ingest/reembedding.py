"""Embedding generations: which table of vectors a knowledge base answers from, and moving it to
another embedding model without downtime (``kb reembed``).

A knowledge base's chunks live in one table of vectors from one embedding model (the store refuses
to mix models). Its *live generation* -- the table, the profile whose embedding model made the
vectors, that model's name, the dimension and a version number -- is recorded in the KV store
under the configured ``vector_store.table_name``. With no record, the live generation is that table
with the active profile's embedding model, version 1: a knowledge base that never switched.

:class:`Reembedding` builds generation n+1 in a table beside the live one (``<table>__e<n+1>``): it
copies every chunk's id, text and metadata from the live table with a vector from the new model
(no file is read again; texts embedded before with that model come from the embedding cache). The
build is resumable: a run that died half-way copies only what its table lacks. Indexing and
questions go on meanwhile, from and into the live table; the build catches up with indexing in
passes, and its last pass and the switch run under the knowledge base's *generation lock*, which
every indexing run holds while it writes, so no write falls between them. The switch is one KV
write; every process follows it within :data:`REFRESH_S` seconds (the question embedding model and
the table change together). The old table is kept, and can be switched back to, until ``--drop-old``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Optional

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import BaseNode
from pydantic import BaseModel

from kb.config import Settings
from kb.errors import ConfigError, KBError
from kb.ingest.embedding_cache import EmbeddingCache
from kb.models.factories import embed_texts, embedding_model_name
from kb.stores import MariaDBKVStore, MariaDBVectorStore

REFRESH_S = 1.0  # how long a process may keep answering from a generation after a switch
_REGISTRY = "embedding_generations"
_LOCK_WAIT_S = 3600.0  # an indexing run waits this long for a switch (and a switch for a run) to end
FINAL_PASS_MAX = 256  # chunks the last catch-up pass, which indexing waits for, may have to embed
BATCH = 64  # chunks read, embedded and written together: what a killed build can lose


class Generation(BaseModel):
    """One table of vectors from one embedding model."""

    version: int
    table: str
    profile: Optional[str]  # None: the active profile's model (a knowledge base that never switched)
    model: str  # provider:model, as stored with each vector
    dim: int


def embedding_profile_of(
    generation: Generation, settings: Settings, configured_model: str, model_given: bool
) -> Optional[str]:
    """The profile whose embedding model makes vectors comparable with ``generation``'s: None for the
    configured model (``configured_model``; ``model_given``: the application handed one in), else the
    profile ``kb reembed`` switched to. A KBError says what to do when no model here can."""
    if generation.model == configured_model and (
        generation.profile is None or model_given or generation.profile == settings.profile
    ):
        return None
    if generation.profile is None:
        raise KBError(
            f"the index in table {generation.table} was built with {generation.model}, but the configured "
            f"embedding model is {configured_model}: vectors from different models cannot be "
            "compared. Switch back, or move the index to the new model with kb reembed --profile NAME"
        )
    try:
        name = embedding_model_name(settings, generation.profile)
    except ConfigError:
        raise KBError(
            f"the knowledge base answers from vectors of {generation.model} (profile "
            f"{generation.profile!r}, switched to by kb reembed), and this configuration has no profile "
            f"{generation.profile!r}: add it, or kb reembed --profile to a configured one"
        ) from None
    if name != generation.model:
        raise KBError(
            f"the knowledge base answers from vectors of {generation.model} (profile "
            f"{generation.profile!r}), but that profile's embedding model is now {name}: change it back, "
            f"or move the index to it with kb reembed --profile {generation.profile}"
        )
    return generation.profile


class GenerationRecord(BaseModel):
    live: Generation
    building: Optional[Generation] = None
    old: list[Generation] = []


class GenerationRegistry:
    """The generation record of one knowledge base (its configured table name) in the KV store."""

    def __init__(self, kv: MariaDBKVStore, logical_table: str) -> None:
        self.kv = kv
        self.key = logical_table

    def read(self) -> Optional[GenerationRecord]:
        raw = self.kv.get(self.key, _REGISTRY)
        return GenerationRecord.model_validate(raw) if raw else None

    def write(self, record: GenerationRecord) -> None:
        self.kv.put(self.key, record.model_dump(mode="json"), _REGISTRY)

    def lock(self, wait: float) -> AbstractContextManager[bool]:
        """The generation lock: every indexing run holds it while it writes, the switch while it
        switches (yields False when it could not be had within ``wait`` seconds)."""
        connection = self.kv.connection
        return connection.named_lock(f"kb_generation:{connection.url.database}.{self.key}", wait)

    def build_lock(self) -> AbstractContextManager[bool]:
        """Held by the one ``kb reembed`` of this knowledge base that may run (taken without waiting)."""
        connection = self.kv.connection
        return connection.named_lock(f"kb_reembed:{connection.url.database}.{self.key}", 0)


def table_for(logical_table: str, version: int) -> str:
    """The table of generation ``version``: the configured name for 1, ``<name>__e<version>`` after."""
    if version == 1:
        return logical_table
    suffix = f"__e{version}"
    return logical_table[: 64 - len(suffix) - len("_lexical_stats")] + suffix


ProgressFn = Callable[[int, int], None]


@dataclass
class ReembedReport:
    """What ``kb reembed`` did: the generation before and the live one after (the same when the
    model was live already), chunks in the live table, chunks copied, texts the model embedded
    (the rest came from the embedding cache), whether an earlier build or table was taken up."""

    previous: Generation
    live: Generation
    chunks: int
    copied: int = 0
    embedded: int = 0
    resumed: bool = False
    seconds: float = 0.0

    @property
    def switched(self) -> bool:
        return self.previous.table != self.live.table


class Reembedding:
    """Builds the next generation of a knowledge base's vectors and switches to it.

    ``live`` is the live generation's store, ``new`` the store of ``target`` (the new generation),
    ``embed_model`` the new generation's model.
    """

    def __init__(
        self,
        *,
        registry: GenerationRegistry,
        record: GenerationRecord,
        live: MariaDBVectorStore,
        new: MariaDBVectorStore,
        target: Generation,
        embed_model: BaseEmbedding,
    ) -> None:
        self.registry = registry
        self.record = record
        self.live = live
        self.new = new
        self.target = target
        self.embed_model = embed_model
        self.cache = EmbeddingCache(registry.kv, target.model)
        self.embedded = 0  # texts the model embedded (the rest came from the cache)
        self.copied = 0  # chunks written to the new table

    def run(self, progress: Optional[ProgressFn] = None) -> GenerationRecord:
        """Copy and embed every chunk, catch up with indexing, switch; returns the new record."""
        self.record.building = self.target
        self.registry.write(self.record)  # a run that dies now is resumed into the same table
        stale, gone = self.live.differences(self.new)
        total = self.live.count()
        done = total - len(stale)  # a resumed build has copied the rest
        if progress:
            progress(done, total)
        while len(stale) > FINAL_PASS_MAX:  # passes: indexing may add chunks while one runs
            done = self._copy(stale, gone, progress, done, total)
            stale, gone = self.live.differences(self.new)
        with self.registry.lock(_LOCK_WAIT_S) as held:
            if not held:
                raise KBError("an indexing run held the knowledge base for an hour; run kb reembed again later")
            for _attempt in range(3):  # a read replica may lag behind what differences() saw
                stale, gone = self.live.differences(self.new)
                if not stale and not gone:
                    break
                done = self._copy(stale, gone, progress, done, max(total, done + len(stale)))
            else:
                raise KBError("the new table could not catch up with the live one; run kb reembed again")
            record = self.registry.read() or self.record
            previous = record.live
            record.old = [g for g in record.old if g.table != self.target.table and g.table != previous.table]
            record.old.append(previous)
            record.live, record.building = self.target, None
            self.registry.write(record)
        return record

    def catch_up(self) -> None:
        """Copy what the new table lacks and remove what the live one no longer has, without the lock
        or the switch: for a table that follows the chunks' generations (the approved SQL examples)."""
        stale, gone = self.live.differences(self.new)
        self._copy(stale, gone, None, 0, len(stale))

    def _copy(self, stale: list[str], gone: list[str], progress: Optional[ProgressFn], done: int, total: int) -> int:
        if gone:
            self.new.delete_nodes(node_ids=gone)
        for start in range(0, len(stale), BATCH):
            nodes = self.live.get_nodes(stale[start : start + BATCH])
            self._embed(nodes)
            self.new.add(nodes)
            self.copied += len(nodes)
            done += len(nodes)
            if progress:
                progress(min(done, total), total)
        return done

    def _embed(self, nodes: list[BaseNode]) -> None:
        """The new model's vectors for ``nodes``, from the same text the indexer embeds."""
        self.embedded += self.cache.fill(nodes, lambda texts: embed_texts(self.embed_model, texts))


def wait_for_followers() -> None:
    """Give every process time to follow a switch before a table it may still read is dropped."""
    time.sleep(2 * REFRESH_S)
