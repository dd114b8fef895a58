"""A/B tests of live retrieval settings (``serve.experiments``).

Each variant gets a fixed share of the API keys (``unit: key``) or of the chat sessions (``unit:
session``; a request without a session counts as its key). Assignment is sticky and needs no
table: a unit's SHA-256 is read as a number in [0, 1) and the variants take consecutive slices of
that range in the configured order; what no variant takes is ``control`` (the configured settings).
Every answer is logged with its variant (:func:`kb.operations.query_log.asked_by`), and ``kb stats --by
variant`` compares satisfaction, latency, tokens and cost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Optional

from kb.config import ExperimentSettings

CONTROL = "control"


def _position(unit: str) -> float:
    """Where a unit falls in [0, 1): the same for the same unit, everywhere, always."""
    return int.from_bytes(hashlib.sha256(unit.encode("utf-8")).digest()[:8], "big") / 2**64


class Experiments:
    def __init__(self, variants: Sequence[ExperimentSettings]) -> None:
        self.variants = list(variants)

    def assign(self, key_id: int, session: Optional[str] = None) -> tuple[Optional[str], dict[str, Any]]:
        """The variant for a key (and session), and the retrieval options it sets; None when no
        experiment runs."""
        start = 0.0
        for variant in self.variants:
            unit = f"key:{key_id}" if variant.unit == "key" or not session else f"key:{key_id}/session:{session}"
            position = _position(unit)
            if start <= position < start + variant.share:
                return variant.name, variant.retrieval.options()
            start += variant.share
        return (CONTROL, {}) if self.variants else (None, {})
