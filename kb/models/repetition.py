"""Sentences a local model writes again, kept out of what it generates.

A small model decoding greedily can fall into a loop: asked for the tickets of 200 customers, the
1.5B model once wrote "The result has more than 200 rows. The first 5 rows are:" five times and
nothing else, until its token limit. Whether it does depends on numerical details (a prompt evaluated
from scratch or restored from the prompt cache takes another greedy path), so no prompt wording
rules it out. :class:`RepeatedSentences` watches the text as it is generated:

* a **sentence** is text ending at ``.``, ``!``, ``?`` or ``:`` followed by white space (so ``2.5`` and
  ``12:30`` end none); one of at least :data:`MIN_SENTENCE` characters is remembered once passed on;
* a sentence that is one already passed on, word for word (white space around it and a list marker
  before it aside: ``8. `` and ``- ``), is a **repeat**: it is dropped with the white space and the
  marker before it;
* while the sentence being written is still the beginning of a remembered one, it is held back, so
  a stream never shows the start of a repeat; it is passed on as soon as it differs;
* after :data:`LOOP_REPEATS` repeats the model is **looping** (:attr:`RepeatedSentences.looping`):
  its caller stops the generation (:class:`kb.models.local_llm.LocalLlamaCPP` then continues it once
  from the text kept, with llama.cpp's repetition penalty).

It does not drop a short sentence ("Yes."), a sentence said once, or a line of a table that has no
sentence end ("Ida Andersson | 2"). It does drop a sentence the user asked to have repeated word for
word: a knowledge base's answers never need that, and a loop costs a whole answer.

kb keeps its own because llama.cpp's remedies change every generation, not just loops: its
repetition penalty lowers the odds of every token already in the window (column names in SQL, the
values of a result that an answer must copy), and it has no stop on repeated text.
"""

from __future__ import annotations

import re
from typing import Optional

MIN_SENTENCE = 20  # characters: shorter sentences ("Yes.", "None.") may well be said twice
LOOP_REPEATS = 2  # repeats dropped before the generation counts as a loop
_SENTENCE_END = re.compile(r"[.!?:](?=\s)")
_LIST_MARKER = re.compile(r"^(?:\d+[.)]|[-*\u2022])\s*")  # "8. ", "- ": part of the sentence they mark
_MARKER_BEGUN = re.compile(r"\d+[.)]?|[-*\u2022]")  # "8" may become "8. "


def _words(sentence: str) -> str:
    """A sentence as compared: without the white space around it and a list marker before it."""
    return _LIST_MARKER.sub("", sentence.strip())


class RepeatedSentences:
    """The generated text with its repeated sentences left out: feed it with :meth:`push` as the
    model writes, pass on what that returns, and :meth:`finish` at the end."""

    def __init__(self) -> None:
        self.kept = ""  # the text passed on so far
        self.repeats = 0
        self._said: set[str] = set()  # sentences passed on, stripped, of at least MIN_SENTENCE characters
        self._sentence = ""  # the sentence being written, as written so far
        self._held = ""  # its end not yet passed on (all of it while it may be a repeat)

    @property
    def looping(self) -> bool:
        """Whether the model has repeated :data:`LOOP_REPEATS` sentences: stop generating."""
        return self.repeats >= LOOP_REPEATS

    def resume(self) -> None:
        """The generation is continued after a loop: repeats are counted anew (what was said stays
        remembered)."""
        self.repeats = 0

    def push(self, delta: str) -> str:
        """What of the text generated so far, ``delta`` its newest piece, can be passed on now."""
        passed = ""
        self._sentence += delta
        self._held += delta
        while (end := self._end()) is not None:
            # what follows the end came with this delta: ends are looked for at every push
            after = len(self._sentence) - end
            passed += self._close(self._sentence[:end], self._held[: len(self._held) - after])
            self._sentence = self._held = self._sentence[end:]
        if self._held and (len(self._held) < len(self._sentence) or not self._may_repeat(self._sentence)):
            passed += self._held  # it differs from every remembered sentence: it can no longer be a repeat
            self._held = ""
        self.kept += passed
        return passed

    def finish(self) -> str:
        """The rest of the generated text, when the generation ended: an unfinished sentence is passed
        on unless it is a remembered sentence or, at least :data:`MIN_SENTENCE` characters long, the
        beginning of one (a repeat cut by the token limit)."""
        rest, written = self._held, _words(self._sentence)
        whole_held = len(rest) == len(self._sentence)
        if whole_held and (
            written in self._said or (len(written) >= MIN_SENTENCE and self._may_repeat(self._sentence))
        ):
            self.repeats += 1
            rest = ""
        self._sentence = self._held = ""
        self.kept += rest
        return rest

    def _close(self, sentence: str, held: str) -> str:
        """A sentence ended (``held``: its part not yet passed on): passed on and remembered, or
        dropped as a repeat when none of it was passed on and it is a remembered one."""
        written = _words(sentence)
        if len(held) == len(sentence) and written in self._said:
            self.repeats += 1
            return ""
        if len(written) >= MIN_SENTENCE:
            self._said.add(written)
        return held

    def _end(self) -> Optional[int]:
        """Where the first sentence of the text not yet closed ends (a list marker ends none); None:
        it has not ended."""
        for end in _SENTENCE_END.finditer(self._sentence):
            if _words(self._sentence[: end.end()]):
                return end.end()
        return None

    def _may_repeat(self, unfinished: str) -> bool:
        if _MARKER_BEGUN.fullmatch(unfinished.strip()):
            return bool(self._said)
        written = _words(unfinished)
        return any(said.startswith(written) for said in self._said)
