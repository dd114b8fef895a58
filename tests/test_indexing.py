"""Directory indexing: first run, no-change rerun, edits/additions/deletions, two roots, failures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import write_docx, write_text_pdf
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr

from kb.ingest.indexing import document_path
from kb.knowledge_base import KnowledgeBase


class CountingEmbedding(BaseEmbedding):
    """The real offline model, counting the texts it is asked to embed."""

    _inner: Any = PrivateAttr()
    _count: int = PrivateAttr(default=0)

    def __init__(self, inner: BaseEmbedding) -> None:
        super().__init__(model_name="counting-minilm", embed_batch_size=64)
        self._inner = inner

    @property
    def count(self) -> int:
        return self._count

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._inner.get_query_embedding(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        self._count += 1
        return self._inner.get_text_embedding(text)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        self._count += len(texts)
        return self._inner.get_text_embedding_batch(texts)


def kb_for(db_url, embed, **extra) -> KnowledgeBase:
    config = {"database": {"url": db_url.render_as_string(hide_password=False)}, "indexing": {"group_size": 4, **extra}}
    kb = KnowledgeBase.from_config(config, embed_model=embed)
    kb.vector_store  # opening it measures the model's dimension with one embedding: not counted below
    embed._count = 0
    return kb


def make_tree(root: Path) -> None:
    (root / "policies").mkdir(parents=True)
    (root / "policies" / "returns.md").write_text(
        "---\ntitle: Return policy\nowner: support\ntags: [policy, returns]\n---\n"
        "# Returns\n\nCustomers may return any item within 30 days of delivery for a full refund.\n"
    )
    (root / "notes.txt").write_text("The espresso machine needs descaling every two months.\n")
    (root / "faq.html").write_text(
        "<html><head><title>Shipping FAQ</title><script>var x=1;</script></head>"
        "<body><h1>Shipping</h1><p>Orders ship within two business days.</p></body></html>"
    )
    (root / "prices.csv").write_text("product,price\nBarista Pro,499\nMilk Frother,79\n")
    (root / "config.json").write_text(json.dumps({"warehouse": "Tampere", "open": "08-16"}))
    write_text_pdf(root / "warranty.pdf", ["Warranty: every machine carries a two year warranty."], title="Warranty")
    write_docx(root / "onboarding.docx", ["Onboarding checklist", "New staff receive a badge on day one."])
    (root / ".hidden.md").write_text("secret")
    (root / "image.png").write_bytes(b"\x89PNG\r\n")


def chunks(kb: KnowledgeBase) -> dict[str, tuple[str, str]]:
    """node id -> (document path, text) of everything stored."""
    return {n.node_id: (n.metadata["file_path"], n.get_content()) for n in kb.vector_store.get_nodes()}


@pytest.fixture
def embed(local_embed):
    return CountingEmbedding(local_embed)


def test_first_run_indexes_every_supported_type_with_metadata(db_url, embed, tmp_path):
    make_tree(tmp_path)
    kb = kb_for(db_url, embed)
    report = kb.index_directory(tmp_path)
    assert sorted(report.added) == [
        "config.json",
        "faq.html",
        "notes.txt",
        "onboarding.docx",
        "policies/returns.md",
        "prices.csv",
        "warranty.pdf",
    ]
    assert report.ok and report.chunks == len(chunks(kb)) and embed.count == report.embedded > 0
    nodes = {n.metadata["file_path"]: n for n in kb.vector_store.get_nodes()}
    returns = nodes["policies/returns.md"].metadata
    assert (
        returns["title"] == "Return policy"
        and returns["owner"] == "support"
        and returns["tags"] == ["policy", "returns"]
    )
    assert returns["file_type"] == "md" and returns["file_name"] == "returns.md"
    assert returns["file_size"] == (tmp_path / "policies" / "returns.md").stat().st_size
    assert len(returns["content_hash"]) == 64 and returns["modified"].endswith("+00:00")
    assert "title:" not in nodes["policies/returns.md"].get_content()  # front matter is metadata, not text
    assert nodes["faq.html"].metadata["title"] == "Shipping FAQ" and "var x" not in nodes["faq.html"].get_content()
    assert nodes["warranty.pdf"].metadata["title"] == "Warranty" and "two year" in nodes["warranty.pdf"].get_content()
    assert "badge" in nodes["onboarding.docx"].get_content()
    hits = kb.retrieve("How many days do customers have to return an item?", top_k=1)
    assert hits[0].node.metadata["file_path"] == "policies/returns.md"


def test_rerun_without_changes_embeds_nothing(db_url, embed, tmp_path):
    make_tree(tmp_path)
    kb = kb_for(db_url, embed)
    kb.index_directory(tmp_path)
    before, stored = embed.count, chunks(kb)
    report = kb.index_directory(tmp_path)
    assert embed.count == before and report.embedded == 0 and report.chunks == 0
    assert len(report.unchanged) == 7 and not (report.added or report.updated or report.deleted)
    assert chunks(kb) == stored
    # touched but identical: read and hashed, still nothing embedded
    (tmp_path / "notes.txt").touch()
    assert kb.index_directory(tmp_path).embedded == 0 and embed.count == before


def test_edit_add_delete(db_url, embed, tmp_path):
    make_tree(tmp_path)
    kb = kb_for(db_url, embed)
    kb.index_directory(tmp_path)
    (tmp_path / "notes.txt").write_text("The espresso machine needs descaling every month now.\n")
    (tmp_path / "new.md").write_text("# Parking\nVisitors park in bay C.\n")
    (tmp_path / "prices.csv").unlink()
    report = kb.index_directory(tmp_path)
    assert (report.added, report.updated, report.deleted) == (["new.md"], ["notes.txt"], ["prices.csv"])
    stored = chunks(kb)
    paths = {path for path, _ in stored.values()}
    assert "prices.csv" not in paths and "new.md" in paths
    notes = [text for path, text in stored.values() if path == "notes.txt"]
    assert notes == ["The espresso machine needs descaling every month now."]
    dry = kb.index_directory(tmp_path, dry_run=True)
    assert not (dry.added or dry.updated or dry.deleted)


def test_unchanged_chunks_of_an_edited_file_come_from_the_cache(db_url, embed, tmp_path):
    paragraphs = [f"Section {i}. " + " ".join(f"word{i}x{j}" for j in range(120)) for i in range(6)]
    (tmp_path / "long.md").write_text("\n\n".join(paragraphs))
    kb = kb_for(db_url, embed, chunk_size=128, chunk_overlap=0)
    first = kb.index_directory(tmp_path)
    assert first.embedded >= 6
    paragraphs[-1] = "Section 5. completely rewritten ending"
    (tmp_path / "long.md").write_text("\n\n".join(paragraphs))
    second = kb.index_directory(tmp_path)
    assert second.updated == ["long.md"]
    assert 1 <= second.embedded <= 2 and embed.count == first.embedded + second.embedded
    assert second.embeddings_cached == second.chunks - second.embedded and second.chunks > 10


def test_changing_the_chunk_size_rechunks_every_file_on_the_next_run(db_url, embed, tmp_path):
    paragraphs = [f"Section {i}. " + " ".join(f"word{i}x{j}" for j in range(120)) for i in range(6)]
    (tmp_path / "long.md").write_text("\n\n".join(paragraphs))
    (tmp_path / "short.txt").write_text("The espresso machine needs descaling every two months.\n")
    before = kb_for(db_url, embed, chunk_size=256, chunk_overlap=0)
    assert sorted(before.index_directory(tmp_path).added) == ["long.md", "short.txt"]
    old = [text for path, text in chunks(before).values() if path == "long.md"]
    kb = kb_for(db_url, embed, chunk_size=128, chunk_overlap=0)
    second = kb.index_directory(tmp_path)
    assert sorted(second.updated) == ["long.md", "short.txt"] and not second.unchanged
    new = [text for path, text in chunks(kb).values() if path == "long.md"]
    assert len(new) > len(old) >= 3  # smaller chunks, more of them; the old ones are gone
    assert max(len(text) for text in new) < max(len(text) for text in old)
    third = kb.index_directory(tmp_path)  # the same settings again: nothing to do
    assert sorted(third.unchanged) == ["long.md", "short.txt"] and third.chunks == 0


def test_two_roots_are_independent(db_url, embed, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root, name in ((a, "alpha"), (b, "beta")):
        root.mkdir()
        for i in range(3):
            (root / f"{name}{i}.txt").write_text(f"{name} document number {i}\n")
    kb = kb_for(db_url, embed)
    kb.index_directory(a)
    kb.index_directory(b)
    (a / "alpha1.txt").unlink()
    report = kb.index_directory(a)
    assert report.deleted == ["alpha1.txt"] and len(report.unchanged) == 2
    docs = {document_path(n.ref_doc_id) for n in kb.vector_store.get_nodes()}
    assert docs == {str(a / "alpha0.txt"), str(a / "alpha2.txt")} | {str(b / f"beta{i}.txt") for i in range(3)}


def test_unreadable_files_are_reported_and_the_run_goes_on(db_url, embed, tmp_path, run_kb):
    make_tree(tmp_path)
    (tmp_path / "binary.txt").write_bytes(b"abc\x00\x01\x02")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (tmp_path / "empty.md").write_text("   \n")
    kb = kb_for(db_url, embed)
    report = kb.index_directory(tmp_path)
    reasons = {f.path: f.reason for f in report.failed}
    assert set(reasons) == {"binary.txt", "latin1.txt", "broken.pdf", "empty.md"}
    assert "binary" in reasons["binary.txt"] and "UTF-8" in reasons["latin1.txt"]
    assert "PDF" in reasons["broken.pdf"] and "no text" in reasons["empty.md"]
    assert len(report.added) == 7 and not report.ok
    assert {path for path, _ in chunks(kb).values()} == set(report.added)
    # the same through the command line: listed with reasons, non-zero status, no traceback
    proc = run_kb(
        "index",
        str(tmp_path),
        env={
            "KB_DATABASE__URL": db_url.render_as_string(hide_password=False),
            "KB_VECTOR_STORE__TABLE_NAME": "cli_nodes",
        },
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "FAILED latin1.txt: not valid UTF-8" in proc.stdout and "4 failed" in proc.stdout


def test_dry_run_changes_nothing(db_url, embed, tmp_path):
    make_tree(tmp_path)
    kb = kb_for(db_url, embed)
    report = kb.index_directory(tmp_path, dry_run=True)
    assert len(report.added) == 7 and embed.count == 0 and kb.vector_store.count() == 0
    assert "add policies/returns.md" in report.summary()


def test_include_exclude_and_not_recursive(db_url, embed, tmp_path):
    make_tree(tmp_path)
    kb = kb_for(db_url, embed)
    assert kb.index_directory(tmp_path, include=["*.md", "*.txt"], dry_run=True).added == [
        "notes.txt",
        "policies/returns.md",
    ]
    assert "policies/returns.md" not in kb.index_directory(tmp_path, exclude=["policies/*"], dry_run=True).added
    assert kb.index_directory(tmp_path, recursive=False, include=["*.md", "*.txt"], dry_run=True).added == ["notes.txt"]


def test_not_a_directory(db_url, embed, tmp_path, run_kb):
    proc = run_kb(
        "index", str(tmp_path / "missing"), env={"KB_DATABASE__URL": db_url.render_as_string(hide_password=False)}
    )
    assert proc.returncode != 0 and "is not a directory" in proc.stderr and "Traceback" not in proc.stderr
