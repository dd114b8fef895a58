"""LlamaIndex callback handlers as kb uses them: each sees every event, none keeps a trace."""

from __future__ import annotations

from typing import Any, Optional

from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.callbacks.schema import CBEventType
from llama_index.core.llms import LLM


class EventHandler(BaseCallbackHandler):
    """A callback handler that ignores no event type and does nothing by default: a subclass
    overrides :meth:`on_event_start` and/or :meth:`on_event_end`."""

    def __init__(self) -> None:
        super().__init__(event_starts_to_ignore=[], event_ends_to_ignore=[])

    def on_event_start(
        self,
        event_type: CBEventType,
        payload: Optional[dict[str, Any]] = None,
        event_id: str = "",
        parent_id: str = "",
        **kwargs: Any,
    ) -> str:
        return event_id

    def on_event_end(
        self, event_type: CBEventType, payload: Optional[dict[str, Any]] = None, event_id: str = "", **kwargs: Any
    ) -> None:
        return None

    def start_trace(self, trace_id: Optional[str] = None) -> None:
        return None

    def end_trace(self, trace_id: Optional[str] = None, trace_map: Optional[dict[str, list[str]]] = None) -> None:
        return None


def add_handler_once(llm: LLM, handler: BaseCallbackHandler) -> None:
    """Add ``handler`` to the LLM's own callback manager unless it is there, keeping the handlers it has."""
    manager = llm.callback_manager
    if not any(existing is handler for existing in manager.handlers):
        manager.add_handler(handler)
