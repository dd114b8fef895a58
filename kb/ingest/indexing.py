"""Directory -> documents -> chunks -> MariaDB, incrementally and safely.

Every file is one document per collection it is indexed into, whose id is its absolute path, ``//``
and the collection (:func:`document_id`; no path holds ``//``). A registry (collection ``files`` of
the KV store) remembers each document's content hash, size and modification time. A run:

1. scans the root (include/exclude globs, hidden files and folders skipped);
2. skips files whose size and mtime are unchanged, or whose content hash is (nothing is read
   further, nothing embedded), unless they were chunked with another ``chunk_size``/``chunk_overlap``
   than the settings' (a file recorded before the registry kept them counts as chunked with these):
   changing the chunking in the configuration re-chunks every file on the next run;
3. reads, chunks and embeds new and changed files in groups (reading runs ahead in worker
   threads; embeddings come from the cache when the same chunk text was embedded before);
4. for each group: upserts the new chunks, *then* deletes the document's chunks that are not among
   them, *then* records the new hash. Chunk ids are derived from the document and its content hash,
   so a run killed at any moment and run again rewrites the same ids: no duplicates; stale chunks
   are removed on the rerun; a changed file is searchable (old or new version) at every moment;
5. removes the run's collection's documents under this root that are gone from disk (known to the
   registry or only to the store, e.g. after a crash), and only those: other roots and other
   collections are never touched.

A collection owns its copy of a file: a run writes, changes and removes only documents of its own
collection, so the same folder can be indexed into several collections independently, each with its
own chunks, whoever indexed it first; another collection's copies are neither read nor named in the
run's report. (A document of an earlier kb, whose id is its path alone, is replaced by its
collection's copy the next time that collection's run sees the file.) ``forget`` drops the documents
under a folder of the collections it may write (``may_write``).

What the scan never reads (links leaving the root, kb's own home) is in :mod:`kb.ingest.file_scan`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llama_index.core import Document
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.node_parser import SentenceSplitter, TokenTextSplitter
from llama_index.core.schema import BaseNode, MetadataMode

from kb.collections import ALL_COLLECTIONS, DEFAULT_COLLECTION, CollectionVersions, check_collection
from kb.config import IndexingSettings
from kb.engines.timing import Stopwatch
from kb.errors import KBError
from kb.ingest import readers
from kb.ingest.embedding_cache import EmbeddingCache
from kb.ingest.file_scan import FolderIdentity, UnsafePath, file_sha256, open_checked, scan
from kb.ingest.report import FileNote, IndexReport
from kb.models.factories import embed_texts
from kb.stores import MariaDBKVStore, MariaDBVectorStore

log = logging.getLogger("kb.ingest.indexing")
FILES = "files"  # registry collection prefix; one registry per chunks table
_HIDDEN_FOR_EMBEDDING = ["file_size", "modified", "content_hash", "root", "file_type", "collection"]
_HIDDEN_FOR_LLM = [
    "file_size",
    "modified",
    "content_hash",
    "root",
    "file_name",
    "file_type",
    "collection",
]  # file_path says it


@dataclass
class _Parsed:
    rel: str
    doc_id: str
    record: dict[str, Any]
    identity: tuple[int, int] = (0, 0)  # (st_dev, st_ino) of the file that was hashed
    nodes: list[BaseNode] | None = None
    error: str | None = None


_COPY = "//"  # between a document's path and its collection in its id: no normalized path holds it


def document_id(path: Path | str, collection: str) -> str:
    """The id of ``path``'s document in ``collection`` (its chunks' ``ref_doc_id``)."""
    return f"{path}{_COPY}{collection}"


def document_path(doc_id: str) -> str:
    """The file of a document id (an earlier kb's ids are the path alone)."""
    return doc_id.split(_COPY, 1)[0]


def describe_document(doc_id: str) -> str:
    """``path (collection c)`` for a document id, as a user reads it."""
    path, _, collection = doc_id.partition(_COPY)
    return f"{path} (collection {collection})" if collection else path


def _unreadable(exc: OSError) -> str:
    return "permission denied" if isinstance(exc, PermissionError) else f"cannot read ({exc.strerror or exc})"


def _chunk_id(index: int, document: BaseNode) -> str:
    """A chunk's id from its document and the document's content hash: a rerun of the same file
    version (after a crash, say) writes the same ids, so it cannot duplicate anything."""
    doc_key = hashlib.sha1(document.node_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{doc_key}-{document.metadata['content_hash'][:16]}-{index}"


def fit_metadata(document: Document, exclude_first: dict[str, Any], budget: int) -> None:
    """Keep the metadata that goes into each chunk's text within ``budget`` tokens: the longest
    front-matter values are left out of the embedded and LLM text (they stay in the metadata), rather
    than the splitter refusing a file whose front matter is longer than a chunk."""
    from llama_index.core.utils import get_tokenizer

    tokenizer = get_tokenizer()
    candidates = sorted(exclude_first, key=lambda key: -len(str(exclude_first[key])))
    for mode in (MetadataMode.EMBED, MetadataMode.LLM):
        for key in candidates:
            if len(tokenizer(document.get_metadata_str(mode))) <= budget:
                break
            for excluded in (document.excluded_embed_metadata_keys, document.excluded_llm_metadata_keys):
                if key not in excluded:
                    excluded.append(key)


class DirectoryIndexer:
    """Indexes directory trees into one vector store (see the module docstring for the rules)."""

    def __init__(
        self,
        store: MariaDBVectorStore,
        kv: MariaDBKVStore,
        embed_model: Callable[[], BaseEmbedding],
        embed_model_name: str,
        settings: IndexingSettings,
        *,
        registry: str | None = None,
        protected: Sequence[Path] = (),
        progress: bool | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.kv = kv
        self._embed_model = embed_model  # a provider: a run with nothing to embed never loads the model
        self.cache = EmbeddingCache(kv, embed_model_name)
        self.settings = settings
        self.protected = [Path(p).resolve() for p in protected]  # never indexed (kb's home)
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.echo = echo or (lambda message: log.info(message))
        self.chunking = f"{settings.chunk_size}/{settings.chunk_overlap}"  # recorded with every file
        self.splitter = SentenceSplitter(
            chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap, id_func=_chunk_id
        )
        # For a text the sentence splitter cannot handle: fixed token windows, same sizes and ids.
        self.fallback_splitter = TokenTextSplitter(
            chunk_size=settings.chunk_size, chunk_overlap=settings.chunk_overlap, id_func=_chunk_id
        )
        # the file registry and collection versions belong to the knowledge base (its configured table
        # name), not to the table of one generation of vectors (kb.ingest.reembedding)
        self.files = f"{FILES}/{registry or store.table_name}"
        self.versions = CollectionVersions(kv, registry or store.table_name)
        self._root_identity: FolderIdentity | None = None  # the folder a run started on (set by index)

    # -- the run ---------------------------------------------------------------------------------
    def index(
        self,
        root: str | os.PathLike[str],
        *,
        include: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        recursive: bool | None = None,
        dry_run: bool = False,
        collection: str = DEFAULT_COLLECTION,
        expect_folder: FolderIdentity | None = None,
    ) -> IndexReport:
        """Index ``root`` into ``collection`` (its own copy of each file; see the module docstring).

        The folder the run starts on is the one it reads to the end: a file is read only while
        ``root`` is still that folder. ``expect_folder``: the run starts only if ``root`` is that
        folder (checked earlier, as ``kb serve`` checks a job's folder when it accepts the job), else
        :class:`KBError` and nothing is read or changed."""
        check_collection(collection)
        base = self._root(root)
        if not base.is_dir():
            raise KBError(
                f"{root} is not a directory; give the folder to index (to drop what was indexed from a folder "
                f"that is gone: kb index --forget {root})"
            )
        self._root_identity = FolderIdentity.of(base)
        if expect_folder is not None and self._root_identity != expect_folder:
            raise KBError(
                f"{root} is no longer the folder that was checked (it was replaced, or swapped for a link); "
                "nothing was indexed"
            )
        report = IndexReport(root=str(base), dry_run=dry_run)
        clock = Stopwatch(report.seconds)  # the report keeps the steps' times
        if dry_run:
            return self._run(base, report, include, exclude, recursive, dry_run, clock, collection)
        lock = f"kb_index:{self.store.connection.url.database}.{self.store.table_name}:{base}"
        with self.store.connection.named_lock(lock, 0) as held:
            if not held:
                raise KBError(
                    f"another kb index is indexing {base} into table {self.store.table_name} right now; "
                    "wait for it to finish (its work would be done twice)"
                )
            return self._run(base, report, include, exclude, recursive, dry_run, clock, collection)

    def _root(self, root: str | os.PathLike[str]) -> Path:
        """The folder a run works on, resolved; kb's own home (or a folder inside it) is refused."""
        try:
            base = Path(root).expanduser().resolve()
        except (OSError, ValueError) as exc:
            raise KBError(f"{str(root)[:200]!r} is not a usable path ({exc})") from None
        for home in self.protected:
            if base == home or home in base.parents:
                raise KBError(f"{root} is inside kb's own home folder ({home}), which is never indexed")
        return base

    def _known_documents(self, prefix: str) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """Under ``prefix``: the registry's records, and every document's collection (registry first,
        else the collection its stored chunks carry, for documents a crash left unregistered)."""
        registry = {k: v for k, v in self.kv.get_all(self.files).items() if k.startswith(prefix)}
        collections = {
            doc_id: str(value) if value is not None else DEFAULT_COLLECTION
            for doc_id, value in self.store.ref_doc_values("collection", prefix).items()
        }
        collections.update(
            {doc_id: record.get("collection", DEFAULT_COLLECTION) for doc_id, record in registry.items()}
        )
        return registry, collections

    def _run(
        self,
        base: Path,
        report: IndexReport,
        include: Sequence[str] | None,
        exclude: Sequence[str] | None,
        recursive: bool | None,
        dry_run: bool,
        clock: Stopwatch,
        collection: str,
    ) -> IndexReport:
        s = self.settings
        scanned = scan(
            base,
            include if include is not None else s.include,
            exclude if exclude is not None else s.exclude,
            s.recursive if recursive is None else recursive,
            follow_symlinks=s.follow_symlinks,
            protected=self.protected,
        )
        if self._root_identity is not None and FolderIdentity.of(base) != self._root_identity:
            raise KBError(f"{base} was replaced while it was being scanned; nothing was indexed")
        report.skipped += [FileNote(rel, reason) for rel, reason in scanned.skipped]
        prefix = str(base) + os.sep
        registry, collections = self._known_documents(prefix)
        todo: list[_Parsed] = []
        on_disk = set()
        for rel in scanned.files:
            path = base / rel
            doc_id = document_id(path, collection)
            on_disk.add(doc_id)
            if len(doc_id) > 512:
                report.failed.append(
                    FileNote(rel, "absolute path and collection name longer than 512 characters; move or rename it")
                )
                continue
            try:
                with open_checked(
                    base,
                    rel,
                    follow_symlinks=s.follow_symlinks,
                    protected=self.protected,
                    root_identity=self._root_identity,
                ) as handle:
                    stat = os.fstat(handle.fileno())
                    if stat.st_size > s.max_file_mb * 1024 * 1024:
                        report.failed.append(
                            FileNote(
                                rel,
                                f"{stat.st_size / 1024 / 1024:.1f} MB is over indexing.max_file_mb "
                                f"({s.max_file_mb:g} MB); raise the limit to index it",
                            )
                        )
                        continue
                    known = registry.get(doc_id)
                    rechunk = known is not None and known.get("chunking", self.chunking) != self.chunking
                    if (
                        known
                        and not rechunk
                        and known.get("size") == stat.st_size
                        and known.get("mtime_ns") == stat.st_mtime_ns
                    ):
                        report.unchanged.append(rel)
                        continue
                    content_hash = file_sha256(handle)
            except UnsafePath as exc:  # became a link (or something else) since the scan
                report.skipped.append(FileNote(rel, str(exc)))
                continue
            except OSError as exc:
                report.failed.append(FileNote(rel, _unreadable(exc)))
                continue
            record = {
                "hash": content_hash,
                "size": stat.st_size,
                "mtime_ns": stat.st_mtime_ns,
                "root": str(base),
                "path": rel,
                "collection": collection,
                "chunking": self.chunking,
            }
            if known and not rechunk and known.get("hash") == content_hash:
                report.unchanged.append(rel)
                if not dry_run:  # same content, new mtime: remember it so the next run skips the read
                    self.kv.put(doc_id, {**known, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}, self.files)
                continue
            (report.updated if known else report.added).append(rel)
            todo.append(_Parsed(rel, doc_id, record, identity=(stat.st_dev, stat.st_ino)))

        gone = []
        indexed_now = {document_path(doc_id) for doc_id in on_disk}
        for doc_id in sorted(set(collections) - on_disk):
            if collections[doc_id] != collection:
                continue  # another collection's copy: not this run's to read, change or name
            gone.append(doc_id)
            if document_path(doc_id) not in indexed_now:  # not an earlier kb's id of a file indexed anew
                report.deleted.append(str(Path(document_path(doc_id)).relative_to(base)))
        if dry_run:
            report.elapsed = clock.elapsed()
            return report

        failed_ids = self._process(base, todo, report, clock)
        for parsed in todo:
            if parsed.doc_id in failed_ids:
                (report.added if parsed.rel in report.added else report.updated).remove(parsed.rel)
        self._delete_documents(gone, clock)
        if report.added or report.updated or report.deleted:  # cached answers drawn from these are stale now
            touched = [collections[d] for d in gone]
            touched += [collections[p.doc_id] for p in todo if p.doc_id in collections]
            self.versions.bump([collection, *touched])
        report.elapsed = clock.elapsed()
        return report

    def forget(self, root: str | os.PathLike[str], *, may_write: Sequence[str] = (ALL_COLLECTIONS,)) -> list[str]:
        """Remove everything indexed from under ``root`` (which may no longer exist) in the collections
        of ``may_write`` (default: all); the documents removed."""
        base = self._root(root)
        prefix = str(base) + os.sep
        _, collections = self._known_documents(prefix)
        writable = set(may_write)
        gone = sorted(doc_id for doc_id, c in collections.items() if ALL_COLLECTIONS in writable or c in writable)
        self._delete_documents(gone, Stopwatch())
        if gone:
            self.versions.bump(collections[doc_id] for doc_id in gone)
        return gone

    def _delete_documents(self, doc_ids: Sequence[str], clock: Stopwatch) -> None:
        if not doc_ids:
            return
        with clock.step("database"):
            for doc_id in doc_ids:
                self.store.delete(doc_id)  # chunks first: a crash here is finished by the next run
            self.kv.delete_many(doc_ids, self.files)

    # -- reading, embedding, writing ---------------------------------------------------------------
    def _parse(self, base: Path, parsed: _Parsed) -> _Parsed:
        """Read the file hashed in the scan (the same inode and the same bytes, else it changed while
        indexing: reported, not indexed) and cut it into chunks."""
        limit = parsed.record["size"]
        try:
            with open_checked(
                base,
                parsed.rel,
                follow_symlinks=self.settings.follow_symlinks,
                protected=self.protected,
                root_identity=self._root_identity,
            ) as handle:
                opened = os.fstat(handle.fileno())
                data = handle.read(limit + 1)
            if (
                (opened.st_dev, opened.st_ino) != parsed.identity
                or len(data) != limit
                or (hashlib.sha256(data).hexdigest() != parsed.record["hash"])
            ):
                parsed.error = "changed while it was being indexed; run kb index again"
                return parsed
            content = readers.read(base / parsed.rel, data)
        except UnsafePath as exc:  # swapped for a link since it was hashed
            parsed.error = str(exc)
            return parsed
        except OSError as exc:
            parsed.error = _unreadable(exc)
            return parsed
        except readers.UnreadableFile as exc:
            parsed.error = str(exc)
            return parsed
        except Exception as exc:  # a reader's own bug or an unexpected format problem
            parsed.error = f"cannot read ({type(exc).__name__}: {str(exc)[:160]})"
            return parsed
        record = parsed.record
        modified = datetime.fromtimestamp(record["mtime_ns"] / 1e9, tz=timezone.utc).isoformat(timespec="seconds")
        metadata = {
            **content.metadata,
            "file_path": parsed.rel,
            "file_name": Path(parsed.rel).name,
            "title": content.title,
            "file_type": Path(parsed.rel).suffix.lower().lstrip("."),
            "file_size": record["size"],
            "modified": modified,
            "content_hash": record["hash"],
            "root": record["root"],
            "collection": record["collection"],
        }
        document = Document(
            text=content.text,
            id_=parsed.doc_id,
            metadata=metadata,
            excluded_embed_metadata_keys=list(_HIDDEN_FOR_EMBEDDING),
            excluded_llm_metadata_keys=list(_HIDDEN_FOR_LLM),
        )
        fit_metadata(document, exclude_first=content.metadata, budget=self.settings.chunk_size // 3)
        try:
            parsed.nodes = self.splitter.get_nodes_from_documents([document])
        except Exception:  # e.g. the sentence tokenizer's regex time limit on a huge text without breaks
            try:
                parsed.nodes = self.fallback_splitter.get_nodes_from_documents([document])
            except Exception as exc:
                parsed.error = f"cannot be split into chunks ({type(exc).__name__}: {str(exc)[:160]})"
        return parsed

    def _parsed_stream(self, base: Path, todo: list[_Parsed]) -> Iterator[_Parsed]:
        """Parsed files in order; the worker threads read ahead of the consumer."""
        with ThreadPoolExecutor(max_workers=self.settings.workers, thread_name_prefix="kb-read") as pool:
            window = max(self.settings.group_size * 2, self.settings.workers)
            futures = [pool.submit(self._parse, base, p) for p in todo[:window]]
            next_index = len(futures)
            while futures:
                result = futures.pop(0).result()
                if next_index < len(todo):
                    futures.append(pool.submit(self._parse, base, todo[next_index]))
                    next_index += 1
                yield result

    def _process(self, base: Path, todo: list[_Parsed], report: IndexReport, clock: Stopwatch) -> set[str]:
        failed: set[str] = set()
        if not todo:
            return failed
        bar = self._progress(len(todo))
        group: list[_Parsed] = []
        done = 0
        parsed_files = self._parsed_stream(base, todo)
        while True:
            with clock.step("read"):
                parsed = next(parsed_files, None)
            if parsed is None:
                break
            if parsed.error:
                report.failed.append(FileNote(parsed.rel, parsed.error))
                failed.add(parsed.doc_id)
            else:
                group.append(parsed)
            done += 1
            if len(group) >= self.settings.group_size or (done == len(todo) and group):
                self._write_group(group, report, clock)
                group = []
            bar(done, report.chunks)
        bar(None, report.chunks)
        return failed

    def _embed(self, nodes: list[BaseNode], report: IndexReport, clock: Stopwatch) -> None:
        embedded = self.cache.fill(nodes, lambda texts: embed_texts(self._embed_model(), texts), clock)
        report.embedded += embedded
        report.embeddings_cached += len(nodes) - embedded

    def _write_group(self, group: list[_Parsed], report: IndexReport, clock: Stopwatch) -> None:
        nodes = [node for parsed in group for node in parsed.nodes or []]
        self._embed(nodes, report, clock)
        with clock.step("database"):
            self.store.add(nodes)  # 1. the new version is in
            existing = self.store.node_ids_of([p.doc_id for p in group])
            stale = [
                node_id
                for p in group
                for node_id in existing[p.doc_id]
                if node_id not in {n.node_id for n in p.nodes or []}
            ]
            if stale:
                self.store.delete_nodes(node_ids=stale)  # 2. then the old one goes
            kept = [(p.doc_id, {**p.record, "chunks": len(p.nodes or [])}) for p in group]
            self.kv.put_all(kept, self.files)  # 3.
        report.chunks += len(nodes)

    def _progress(self, total: int) -> Callable[[int | None, int], None]:
        """A rich progress bar on a terminal, else a log line every few seconds."""
        clock = Stopwatch()
        if self.progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            progress = Progress(
                TextColumn("indexing"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                transient=True,
            )
            task = progress.add_task("index", total=total, rate="")
            progress.start()

            def update(done: int | None, chunks: int) -> None:
                if done is None:
                    progress.stop()
                    return
                elapsed = max(clock.elapsed(), 1e-6)
                progress.update(
                    task, completed=done, rate=f"{done / elapsed:.1f} files/s {chunks / elapsed:.0f} chunks/s"
                )

            return update

        last = [0.0]

        def log_line(done: int | None, chunks: int) -> None:
            now = clock.elapsed()
            if done is not None and now - last[0] < 5 and done != total:
                return
            last[0] = now
            if done is not None:
                elapsed = max(now, 1e-6)
                self.echo(
                    f"indexed {done}/{total} files, {chunks} chunks ({done / elapsed:.1f} files/s, "
                    f"{chunks / elapsed:.0f} chunks/s)"
                )

        return log_line
