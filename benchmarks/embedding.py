"""Local embedding: today's torch path vs the ONNX Runtime path, same model, same chunks, same run.

1. Throughput: 2,000 chunks of SciFact, cut by kb's own splitter (256 tokens, overlap 32), embedded
   by each path at kb's batch size after a warm-up; chunks per second and the ratio.
2. Quality: SciFact nDCG@10 (exact cosine top-10 over all 5,183 abstracts, 300 test queries) with the
   vectors of each path, and how close the vectors are (cosine between the two paths' vectors).

Paths: ``torch`` = LlamaIndex's HuggingFaceEmbedding (sentence-transformers on torch,
``embedding.runtime: torch``); ``onnx`` = kb's OnnxEmbedding on the int8 export (``runtime: onnx``;
``auto`` picks it where the CPU has int8 dot-product instructions); ``onnx fp32`` = the export
before quantization, for reference (throughput only: its vectors equal torch's).
Target of the issue: onnx >= 2x the chunks/s of torch, nDCG@10 within 0.005.

Run: .venv/bin/python benchmarks/embedding.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cached_embeddings, doc_text, load_scifact
from retrieval_quality import ndcg_at

from kb.config import Settings, load_settings
from kb.models.factories import local_embedding_path, quiet_huggingface
from kb.models.onnx_embedding import OnnxEmbedding, cpu_has_vnni, export_onnx, onnx_model_path

ROOT = Path(__file__).resolve().parents[1]
CHUNKS = 2000


def chunks(corpus: list[dict], chunk_size: int, overlap: int) -> list[str]:
    from llama_index.core import Document
    from llama_index.core.node_parser import SentenceSplitter

    splitter = SentenceSplitter(chunk_size=chunk_size, chunk_overlap=overlap)
    texts: list[str] = []
    for doc in corpus:
        texts += [n.get_content() for n in splitter.get_nodes_from_documents([Document(text=doc_text(doc))])]
        if len(texts) >= CHUNKS:
            return texts[:CHUNKS]
    return texts


def models(settings: Settings, batch_size: int) -> dict[str, object]:
    quiet_huggingface(offline=True)
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    folder = local_embedding_path()
    built = {"torch": HuggingFaceEmbedding(model_name=str(folder), device="cpu", embed_batch_size=batch_size)}
    for name, precision in (("onnx", "int8"), ("onnx fp32", "fp32")):
        path = export_onnx(folder, onnx_model_path(folder, settings.model_cache_path, precision), precision)
        built[name] = OnnxEmbedding(model_dir=str(folder), onnx_path=str(path), embed_batch_size=batch_size)
    return built


def main() -> None:
    settings = load_settings(ROOT / "config.yaml", environ={})
    corpus, queries, qrels = load_scifact()
    texts = chunks(corpus, settings.indexing.chunk_size, settings.indexing.chunk_overlap)
    batch = settings.active_profile.embedding.batch_size
    print(
        f"{len(texts):,} SciFact chunks (kb's splitter), batch size {batch}, {os.cpu_count()} cores, "
        f"int8 dot-product instructions (VNNI/dotprod): {'yes' if cpu_has_vnni() else 'no'}"
    )
    built = models(settings, batch)
    rates: dict[str, float] = {}
    print(f"\n{'path':<12} {'chunks/s':>9} {'vs torch':>9}")
    for name, model in built.items():
        model.get_text_embedding_batch(texts[:64])  # warm-up
        started = time.perf_counter()
        model.get_text_embedding_batch(texts)
        rates[name] = len(texts) / (time.perf_counter() - started)
        print(f"{name:<12} {rates[name]:>9.1f} {rates[name] / rates['torch']:>8.2f}x", flush=True)

    print(f"\nSciFact: {len(corpus):,} abstracts, {len(queries)} test queries, exact cosine top-10")
    print(f"{'path':<12} {'nDCG@10':>8} {'vs torch':>9} {'cosine to torch (min / mean)':>30}")
    doc_texts = [doc_text(d) for d in corpus]
    query_texts = [q["text"] for q in queries]
    # torch's vectors are the ones the other benchmarks cache (same model, batch 64)
    reference = cached_embeddings("scifact-corpus", doc_texts)
    results = {"torch": (reference, cached_embeddings("scifact-queries", query_texts, query=True))}
    onnx = built["onnx"]
    results["onnx"] = (
        np.asarray(onnx.get_text_embedding_batch(doc_texts), dtype=np.float32),
        np.asarray([onnx.get_query_embedding(t) for t in query_texts], dtype=np.float32),
    )
    base = 0.0
    for name, (docs, qs) in results.items():
        top = np.argsort(-(qs @ docs.T), axis=1)[:, :10]
        ndcg = float(
            np.mean([ndcg_at([corpus[i]["_id"] for i in row], qrels[q["_id"]]) for q, row in zip(queries, top)])
        )
        base = ndcg if name == "torch" else base
        cosines = np.sum(docs * reference, axis=1)
        agreement = f"{cosines.min():.4f} / {cosines.mean():.5f}"
        print(f"{name:<12} {ndcg:>8.4f} {ndcg - base:>+9.4f} {agreement:>30}", flush=True)


if __name__ == "__main__":
    main()
