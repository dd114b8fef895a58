"""Run ``kb serve`` with a scripted LLM: the service's tests and benchmark start it as a real process.

The LLM is the one part replaced (the point is the service around it); the database, the embedding
model, HTTP and everything else are real. Its documents answer repeats the context it was given, so
a chunk of a collection the key may not see would show in the answer text, not only in the sources.
A question saying ``WRITE: <statement>`` gets that statement as its SQL (a hostile key's request for
a statement of its choosing).

    python tests/serve_scripted.py CONFIG.json PORT
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from scripted_llm import ScriptedLLM

from kb.config import load_settings
from kb.knowledge_base import KnowledgeBase
from kb.service import serve

SLOW_ANSWER = " ".join(f"word{i}" for i in range(400))  # answers to questions saying SLOW: 400 words


def script(prompt: str) -> str:
    question = prompt.rsplit("Question:", 1)[-1]
    if "CRASH" in question:
        raise RuntimeError("the scripted model was asked to fail")
    if "SLOW" in question and "Context:\n" in prompt:
        return SLOW_ANSWER
    if "Standalone question" in prompt:
        return prompt.split("Follow Up Input:")[1].split("\n")[0].strip()
    if "one SELECT statement" in prompt and "WRITE:" in question:
        return question.split("WRITE:", 1)[1].splitlines()[0].strip()
    if "one SELECT statement" in prompt:
        return "SELECT COUNT(*) AS n FROM orders"
    if "Database (SQL" in prompt:
        return "Combined answer."
    if "Context:\n" in prompt:
        context = prompt.split("Context:\n", 1)[1].split("\n\nQuestion:", 1)[0]
        return "From the context: " + " ".join(context.split())[:600]
    return "Written answer."


def main() -> None:
    config, port = json.loads(Path(sys.argv[1]).read_text()), int(sys.argv[2])
    settings = load_settings(config, environ={})
    slow = float(os.environ.get("KB_TEST_SLOW_TOKEN_S", "0.05"))  # per word of a SLOW answer
    delay = float(os.environ.get("KB_TEST_TOKEN_DELAY", "0"))

    def delay_for(prompt: str) -> float:
        return slow if "SLOW" in prompt.rsplit("Question:", 1)[-1] else delay

    kb = KnowledgeBase(settings, llm=ScriptedLLM(script, delay_for=delay_for))
    serve(settings, port=port, kb=kb)


if __name__ == "__main__":
    main()
