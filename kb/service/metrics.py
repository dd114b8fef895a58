"""``/metrics``: Prometheus counters and histograms of the service, with prometheus_client.

One registry per app (not the library's global one), so that several apps in one process (tests)
do not share or clash over counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "kb_requests", "HTTP requests by endpoint and status", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "kb_request_seconds",
            "request latency by endpoint and answering route",
            ["endpoint", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter("kb_llm_tokens", "LLM tokens by direction", ["direction"], registry=self.registry)
        self.cache = Counter(
            "kb_cache_lookups",
            "cache lookups by kind (answer, embedding) and result",
            ["kind", "result"],
            registry=self.registry,
        )

        self.model_queue = Gauge(
            "kb_model_queue_length", "requests waiting for the local model", registry=self.registry
        )
        self.model_wait = Histogram(
            "kb_model_wait_seconds", "time spent waiting for the model", buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.model_refused = Counter(
            "kb_model_queue_refused",
            "requests refused (503) because the model's queue was full",
            registry=self.registry,
        )

    def observe(self, endpoint: str, status: int, seconds: float, route: str | None) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint, route or "none").observe(seconds)

    def count_tokens(self, tokens_in: int, tokens_out: int) -> None:
        self.tokens.labels("in").inc(tokens_in)
        self.tokens.labels("out").inc(tokens_out)

    def cache_lookup(self, kind: str, hit: bool) -> None:
        self.cache.labels(kind, "hit" if hit else "miss").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
