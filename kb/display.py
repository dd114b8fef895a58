"""Text fit for one line of a terminal: a name kb prints (a file's, a session's, a key's) may hold
newlines or terminal escape codes, which would forge output lines or move the cursor."""

from __future__ import annotations


def one_line(value: object) -> str:
    """``value`` as text with newlines, tabs and other control characters escaped (``\\n``, ``\\x1b``)."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
