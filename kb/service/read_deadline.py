"""A deadline for reading a request's headers: a client that opens a connection and sends its
request line and headers slowly (or not at all) is dropped after ``serve.read_timeout_s``.

uvicorn bounds the headers' size but not the time they take, and its keep-alive timer stops at the
first byte of a request, so a client trickling a byte a second held a connection (and a slot of
``limit_concurrency``) for ever, with no key needed. The deadline runs from the connection's
opening, and again from the first byte of each later request on a kept-alive connection, until the
headers are complete; the body's own deadline is the gate's (:class:`kb.service.gate.RequestGate`).
uvicorn's protocol is the extension point it offers for this (``uvicorn.run(http=...)``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Optional

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("kb.service")


def protocol_with_read_deadline(read_timeout_s: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, dropping a connection whose request headers are not complete within
    ``read_timeout_s`` seconds of the connection opening or of the request's first byte."""

    class HeadersDeadlineProtocol(H11Protocol):
        _headers_deadline: Optional[asyncio.TimerHandle] = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._start_headers_deadline()

        def data_received(self, data: bytes) -> None:
            if self._headers_deadline is None and self.conn.their_state == h11.IDLE:
                self._start_headers_deadline()  # a later request on a kept-alive connection begins
            super().data_received(data)
            if self._headers_deadline is not None and self.conn.their_state != h11.IDLE:
                self._headers_deadline.cancel()  # the headers are complete: the gate takes over
                self._headers_deadline = None

        def connection_lost(self, exc: Optional[Exception]) -> None:
            if self._headers_deadline is not None:
                self._headers_deadline.cancel()
                self._headers_deadline = None
            super().connection_lost(exc)

        def _start_headers_deadline(self) -> None:
            self._headers_deadline = self.loop.call_later(read_timeout_s, self._headers_too_slow)

        def _headers_too_slow(self) -> None:
            self._headers_deadline = None
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            log.warning(
                "dropped %s: no complete request headers within %g s (serve.read_timeout_s)", client, read_timeout_s
            )
            self.transport.close()

    return HeadersDeadlineProtocol
