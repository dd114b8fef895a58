"""Which files under a folder kb indexes, and each file's content hash (incremental indexing)."""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from kb import readers


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(Path(rel).name, p) for p in patterns)


def scan(root: Path, include: Sequence[str] = (), exclude: Sequence[str] = (), recursive: bool = True) -> list[str]:
    """Supported, non-hidden files under ``root`` (relative POSIX paths, sorted)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")) if recursive else []
        for name in filenames:
            if name.startswith("."):
                continue
            rel = Path(dirpath, name).relative_to(root).as_posix()
            if include and not _matches(rel, include):
                continue
            if exclude and _matches(rel, exclude):
                continue
            if readers.is_supported(Path(name)):
                found.append(rel)
    return sorted(found)


def file_sha256(path: Path) -> str:
    """A file's SHA-256, read in 1 MB blocks: what tells a changed file from an unchanged one."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
