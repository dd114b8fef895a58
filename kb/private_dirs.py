"""Folders only kb's own user may enter: kb's home holds the private server's data and passwords, the
models and the prompt cache (whole prompts, other collections' chunks included)."""

from __future__ import annotations

import os
from pathlib import Path


def make_private_dir(path: Path, *, below: Path | None = None) -> Path:
    """Create ``path`` (and missing parents) and make it owner-only (0700), with every folder between
    ``below`` (exclusive) and it: a folder made by an older kb with the default 0755 is tightened."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    folders = [path]
    if below is not None and below in path.parents:
        folders += [p for p in path.parents if below in p.parents]
    for folder in folders:
        if folder.stat().st_mode & 0o077:
            folder.chmod(0o700)
    return path


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``path`` owner-only (0600) through a partial file renamed into place."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(partial, path)


def make_private_file(path: Path) -> Path:
    """Make the file ``path`` owner-only (0600); a file made by an older kb with 0644 is tightened."""
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return path
