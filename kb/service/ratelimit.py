"""Per-key rate limits (requests and LLM tokens per minute), shared by every ``kb serve`` process.

Fixed one-minute windows: a counter per (key, kind, minute) in the shared state
(:mod:`kb.service.shared_state`: Redis, or a MariaDB table), where concurrent increments from several
processes add up. A fixed window lets a client spend up to twice its limit across a window boundary;
that is the usual trade for one round trip per request.
"""

from __future__ import annotations

import hashlib
import time
from typing import Optional

from kb.service.shared_state import SharedState

WINDOW_S = 60


class RateLimiter:
    """``check_request`` before a request, ``add_tokens`` after it; a number is seconds to wait."""

    def __init__(self, state: SharedState) -> None:
        self.state = state

    def _used(self, name: str, window: int) -> int:
        return int(self.state.get(f"rate:{name}:{window}") or 0)

    def _add(self, name: str, amount: int, window: int) -> int:
        return self.state.add(f"rate:{name}:{window}", amount, WINDOW_S * 2)

    @staticmethod
    def _window() -> tuple[int, int]:
        now = time.time()
        window = int(now // WINDOW_S)
        return window, max(1, int((window + 1) * WINDOW_S - now + 0.999))

    def check_request(self, key_id: int, requests_per_minute: int, tokens_per_minute: int) -> Optional[int]:
        """Count one request; the seconds until the next window when the key is over a limit, else None."""
        window, retry_after = self._window()
        if self._used(f"t:{key_id}", window) >= tokens_per_minute:
            return retry_after
        if self._add(f"r:{key_id}", 1, window) > requests_per_minute:
            return retry_after
        return None

    def tokens_used(self, key_id: int) -> int:
        """The LLM tokens ``key_id`` has used in the current window."""
        return self._used(f"t:{key_id}", self._window()[0])

    def add_tokens(self, key_id: int, tokens: int) -> None:
        if tokens > 0:
            self._add(f"t:{key_id}", tokens, self._window()[0])

    def count_wrong_key(self, client: str) -> int:
        """Count one request with a wrong key from ``client`` (its :func:`address_tag`: whatever the
        address holds, the counter's name has a fixed length and alphabet); how many it has sent this
        window."""
        return self._add(f"a:{client}", 1, self._window()[0])

    def seconds_left(self) -> int:
        """Seconds until the current window ends."""
        return self._window()[1]


def address_tag(address: str) -> str:
    """A fixed-length name for a client address (any text), fit for a counter's or a map's key."""
    return hashlib.sha256(address.encode("utf-8", "surrogateescape")).hexdigest()[:32]
