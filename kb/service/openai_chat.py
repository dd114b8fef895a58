"""``POST /v1/chat/completions`` as OpenAI defines it, so the ``openai`` client and chat UIs work unchanged.

The request is OpenAI's (unknown fields such as ``temperature`` are accepted and ignored: kb's model
settings are the server's). What the conversation is:

* with a session (header ``X-Session-Id``, else the ``user`` field), kb keeps the history in MariaDB
  and only the last user message is new;
* without one, the request's messages are the whole history, as in OpenAI's API: they are loaded into
  a throw-away session for this one turn.

kb's route, sources, SQL and rows travel in an extra top-level field ``kb`` of the completion (and of
the last chunk when streaming), which OpenAI clients keep (``completion.model_extra["kb"]``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from kb.engines.answer import Answer

MODEL_NAME = "kb"


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: Union[str, list[dict[str, Any]], None] = None

    def text(self) -> str:
        """The message's text; OpenAI's list-of-parts form is joined (kb reads text parts only)."""
        if isinstance(self.content, list):
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = MODEL_NAME
    messages: list[ChatMessage] = Field(..., min_length=1)
    stream: bool = False
    user: Optional[str] = Field(None, max_length=200)

    def question(self) -> str:
        if self.messages[-1].role != "user" or not self.messages[-1].text().strip():
            raise ValueError("the last message must be the user's, with text")
        return self.messages[-1].text()

    def history(self) -> list[ChatMessage]:
        """The earlier user and assistant turns (system prompts are the server's business)."""
        return [m for m in self.messages[:-1] if m.role in ("user", "assistant") and m.text().strip()]


def kb_fields(answer: Answer, session_id: Optional[str]) -> dict[str, Any]:
    return {
        "route": answer.route,
        "route_reason": answer.route_reason,
        "sources": [
            {"node_id": s.node_id, "path": s.path, "title": s.title, "score": s.score, "text": s.text}
            for s in answer.sources
        ],
        "sql": answer.sql,
        "rows": answer.rows,
        "refused": answer.refused,
        "session_id": session_id,
        "answer_id": answer.answer_id,  # what POST /v1/feedback rates
    }


def usage(answer: Answer) -> dict[str, int]:
    tokens_in, tokens_out = int(answer.tokens.get("in", 0)), int(answer.tokens.get("out", 0))
    return {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}


def completion(answer: Answer, session_id: Optional[str]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": MODEL_NAME,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text}, "finish_reason": "stop"}],
        "usage": usage(answer),
        "kb": kb_fields(answer, session_id),
    }


class CompletionStream:
    """OpenAI's server-sent events for one streamed completion: a role chunk, content chunks, a last
    chunk with ``finish_reason`` (and kb's fields), then ``data: [DONE]``."""

    def __init__(self) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def _event(self, delta: dict[str, Any], finish: Optional[str] = None, **extra: Any) -> str:
        chunk = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": MODEL_NAME,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(chunk, default=str, ensure_ascii=False)}\n\n"

    def events(self, pieces: Iterable[str], finish: Callable[[], tuple[Answer, Optional[str], str]]) -> Iterator[str]:
        """``finish()`` is called after the last piece and returns the completed Answer, its session
        and the finish reason ("stop", or "length" when generation was cut short)."""
        yield self._event({"role": "assistant", "content": ""})
        for piece in pieces:
            if piece:
                yield self._event({"content": piece})
        answer, session_id, reason = finish()
        yield self._event({}, reason, usage=usage(answer), kb=kb_fields(answer, session_id))
        yield "data: [DONE]\n\n"


def error_event(message: str, status: int) -> str:
    """An error after the stream began (the status line is sent already): OpenAI's error object as an event."""
    return f"data: {json.dumps({'error': {'message': message, 'type': 'server_error', 'code': status}})}\n\n"
