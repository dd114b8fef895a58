"""Text fit for a terminal: whatever kb prints from stored or generated text (a name, a question, an
answer, a chunk, a row) may hold terminal escape codes, which would clear the screen, set the
window's title or move the cursor, and newlines, which would forge output lines."""

from __future__ import annotations


def one_line(value: object) -> str:
    """``value`` as text with newlines, tabs and other control characters escaped (``\\n``, ``\\x1b``)."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def printable(value: object) -> str:
    """``value`` as text with control characters escaped (``\\x1b``, ``\\r``) but its line breaks
    and tabs kept: for text of several lines (an answer, a chat turn)."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(
        ch if ch.isprintable() or ch in "\n\t" else ch.encode("unicode_escape").decode("ascii") for ch in text
    )
