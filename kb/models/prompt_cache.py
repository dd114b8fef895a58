"""llama.cpp prompt states kept for reuse: in RAM, and on disk across processes.

On two CPU cores a 1.5B model reads a prompt at about 20 tokens a second, so the fixed start of a
prompt (the 800-token schema of every SQL question) costs 40 s each time it is evaluated from
scratch. llama-cpp-python restores the state of the longest cached prefix of a new prompt and
evaluates only the rest; this module is the store it asks. Written here because the library's own
stores do not fit: ``LlamaRAMCache`` keeps no pinned beginnings and nothing on disk, and
``LlamaDiskCache`` removes an entry when it is read, prints to stderr and stores pickles (code, when
loaded).

The states come from :class:`PromptStateLlama`, which leaves the logits buffer out of them (n_batch x
vocabulary floats, 311 MB for Qwen2.5 at n_batch 512): the library's ``Llama`` copies it into the
state it saves after every completion (0.1-1.3 s on two cores, a quarter of a warm SQL question's
time) and writes it back on every restore, although a restored state's logits are never read.

States are plain files without pickle: ``<digest>.tokens.npy`` (the token ids) and
``<digest>.state`` (llama.cpp's own state bytes), in a folder per model file and context size. A
state holds a whole prompt, chunks of whichever collection it was answered from included, so the
folders are owner-only (0700) and the files 0600, like the rest of kb's home.
"""

from __future__ import annotations

import ctypes
import hashlib
import io
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import llama_cpp
import numpy as np
from llama_cpp.llama import Llama, LlamaState
from llama_cpp.llama_cache import BaseLlamaCache

from kb.private_dirs import make_private_dir, write_private_file

MIN_DISK_TOKENS = 256  # shorter prompts are cheap to evaluate again: not worth a file
MAX_DISK_FILES = 8  # of pinned states, and of the others
PINNED_PREFIX = "pinned-"  # the file names of pinned states (PromptStateCache.pinning)
# The scores of every state kept here: none (PromptStateLlama); never read, so one array serves them all.
_NO_LOGITS = np.zeros((1, 1), dtype=np.single)


class PromptStateLlama(Llama):
    """A ``Llama`` whose saved states carry no logits (the library's ``save_state`` copies its
    n_batch x vocabulary buffer, 311 MB for Qwen2.5, into each one, and ``load_state`` writes it
    back). The logits of a restored state are never read: llama-cpp-python marks a restored model
    as needing evaluation and decodes at least the prompt's last token again before sampling. The
    two methods are written against the pinned llama-cpp-python (pyproject.toml)."""

    def save_state(self) -> LlamaState:
        size = llama_cpp.llama_state_get_size(self._ctx.ctx)
        buffer = np.empty(size, dtype=np.uint8)  # one copy of llama.cpp's state, not three
        written = llama_cpp.llama_state_get_data(
            self._ctx.ctx, buffer.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)), size
        )
        if written > size:
            raise RuntimeError("llama.cpp wrote more state than it said it would")
        return LlamaState(
            input_ids=self.input_ids.copy(),
            scores=_NO_LOGITS,
            n_tokens=self.n_tokens,
            llama_state=buffer[:written].tobytes(),
            llama_state_size=written,
            seed=self._seed,
        )

    def load_state(self, state: LlamaState) -> None:
        self.input_ids = state.input_ids.copy()
        self.n_tokens = state.n_tokens
        self._requires_eval = True  # the logits are stale: the next generation decodes before it samples
        self._seed = state.seed
        data = np.frombuffer(state.llama_state, dtype=np.uint8)
        pointer = data.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
        if llama_cpp.llama_state_set_data(self._ctx.ctx, pointer, state.llama_state_size) != state.llama_state_size:
            raise RuntimeError("llama.cpp did not take the whole saved state")


def _longest_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class PromptStateCache(BaseLlamaCache):
    """Token prefix -> llama state, least recently used evicted first (RAM bounded by the states'
    bytes: those of :class:`PromptStateLlama`, which hold no logits buffer)."""

    def __init__(
        self, capacity_bytes: int, directory: Optional[Path] = None, n_ctx: int = 4096, home: Optional[Path] = None
    ) -> None:
        """``directory``: where states are kept on disk (none: RAM only); it and the folders between
        ``home`` and it are made owner-only, and files left readable by an older kb are tightened."""
        super().__init__(capacity_bytes)
        self._n_ctx = n_ctx  # a restored state's token buffer must be as long as the context
        self._ram: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._pinned: set[tuple[int, ...]] = set()  # evicted only when nothing else is left (pinning)
        self._pinning = False
        self._dir = Path(directory) if directory else None
        self._lock = threading.Lock()
        if self._dir:
            make_private_dir(self._dir, below=home)
            for path in self._dir.iterdir():
                if path.is_file() and path.stat().st_mode & 0o077:
                    path.chmod(0o600)

    @property
    def cache_size(self) -> int:
        return sum(state.llama_state_size for state in self._ram.values())

    # -- disk ----------------------------------------------------------------------------------------
    def _disk_keys(self) -> dict[tuple[int, ...], Path]:
        if not self._dir:
            return {}
        keys = {}
        for path in self._dir.glob("*.tokens.npy"):
            try:
                keys[tuple(int(t) for t in np.load(path, allow_pickle=False))] = path
            except (OSError, ValueError):
                continue  # half-written or damaged: ignored, replaced by the next write
        return keys

    def _load(self, tokens_path: Path) -> Any:
        tokens = np.load(tokens_path, allow_pickle=False)
        data = tokens_path.with_name(tokens_path.name.replace(".tokens.npy", ".state")).read_bytes()
        os.utime(tokens_path)  # recently used: evicted last
        input_ids = np.zeros(max(self._n_ctx, len(tokens)), dtype=np.intc)
        input_ids[: len(tokens)] = tokens
        return LlamaState(
            input_ids=input_ids,
            scores=_NO_LOGITS,
            n_tokens=len(tokens),
            llama_state=data,
            llama_state_size=len(data),
            seed=0,
        )

    def _store(self, key: tuple[int, ...], state: Any, pinned: bool) -> None:
        """Write ``key``'s state; of the pinned states and of the others, only the ``MAX_DISK_FILES``
        most recently used of each are kept (whole prompts do not push a pinned beginning out)."""
        assert self._dir is not None
        digest = hashlib.sha1(np.asarray(key, dtype=np.int32).tobytes()).hexdigest()[:20]
        name = f"{PINNED_PREFIX}{digest}" if pinned else digest
        tokens_path = self._dir / f"{name}.tokens.npy"
        tokens = io.BytesIO()
        np.save(tokens, np.asarray(key, dtype=np.int32), allow_pickle=False)
        write_private_file(self._dir / f"{name}.state", state.llama_state)
        write_private_file(tokens_path, tokens.getvalue())  # written last: it is what makes an entry
        entries = sorted(
            (p for p in self._dir.glob("*.tokens.npy") if p.name.startswith(PINNED_PREFIX) == pinned),
            key=lambda p: p.stat().st_mtime,
        )
        for old in entries[:-MAX_DISK_FILES]:
            old.unlink(missing_ok=True)
            old.with_name(old.name.replace(".tokens.npy", ".state")).unlink(missing_ok=True)

    @contextmanager
    def pinning(self) -> Iterator[None]:
        """States stored within it are kept before any other, in RAM and on disk: the least recently
        used of the others is evicted first. The fixed beginnings of prompts (a schema before the question) are
        stored so (:meth:`kb.models.local_llm.LocalLlamaCPP.prefilling_until`), and the states of
        whole prompts, one per question, cannot push them out."""
        with self._lock:
            self._pinning = True
        try:
            yield
        finally:
            with self._lock:
                self._pinning = False

    def clear(self) -> None:
        """Forget every kept state, in RAM and on disk (the next prompts are evaluated in full)."""
        with self._lock:
            self._ram.clear()
            self._pinned.clear()
            if self._dir:
                for path in self._dir.glob("*.tokens.npy"):
                    path.unlink(missing_ok=True)
                    path.with_name(path.name.replace(".tokens.npy", ".state")).unlink(missing_ok=True)

    # -- the cache protocol llama-cpp-python uses ---------------------------------------------------
    def _find(self, key: tuple[int, ...]) -> tuple[int, Optional[tuple[int, ...]], Optional[Path]]:
        best, best_key, best_path = 0, None, None
        for candidate in self._ram:
            n = _longest_prefix(candidate, key)
            if n > best:
                best, best_key, best_path = n, candidate, None
        for candidate, path in self._disk_keys().items():
            n = _longest_prefix(candidate, key)
            if n > best:
                best, best_key, best_path = n, candidate, path
        return best, best_key, best_path

    def __getitem__(self, key: Sequence[int]) -> Any:
        with self._lock:
            _, found, path = self._find(tuple(key))
            if found is None:
                raise KeyError("no cached prefix")
            if path is not None:
                self._ram[found] = self._load(path)
                if path.name.startswith(PINNED_PREFIX):
                    self._pinned.add(found)
            self._ram.move_to_end(found)
            return self._ram[found]

    def __contains__(self, key: Sequence[int]) -> bool:
        with self._lock:
            return self._find(tuple(key))[1] is not None

    def __setitem__(self, key: Sequence[int], value: Any) -> None:
        key = tuple(key)
        with self._lock:
            self._ram[key] = value
            self._ram.move_to_end(key)
            if self._pinning:
                self._pinned.add(key)
            while self.cache_size > self.capacity_bytes and len(self._ram) > 1:
                unpinned = next((k for k in self._ram if k not in self._pinned and k != key), None)
                evicted = unpinned if unpinned is not None else next(iter(self._ram))
                del self._ram[evicted]
                self._pinned.discard(evicted)
            if self._dir and len(key) >= MIN_DISK_TOKENS:
                try:
                    self._store(key, value, pinned=key in self._pinned)
                except OSError:  # a full or read-only disk costs speed, never an answer
                    pass
