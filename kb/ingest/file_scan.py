"""Which files under a folder kb indexes, and each file's content hash (incremental indexing).

Symbolic links are where a folder reaches outside itself: a link inside an indexed folder to
``~/.ssh/id_rsa`` or to kb's own credentials file would put that file's text into the index, where
every key that reads the collection can retrieve it. So:

* with ``follow_symlinks`` off (the default) a link, to a file or a folder, is never followed;
* with it on, a link is followed only when its target lies inside the indexed folder (and each
  real folder is walked once, so a link to an ancestor cannot loop);
* nothing under a protected folder (kb's home: the private server's data and passwords, the models,
  the caches) is ever indexed, whichever way it is reached.

:func:`open_checked` opens a file for hashing and reading without following a link at any component
below the root (``O_NOFOLLOW`` from the root's descriptor down, ``openat``), so a file swapped for a
link after the scan, even at the instant it is opened, is refused, never read. The indexer checks
that the file it reads is the one it hashed (same inode, same content), and that the root it opens
is the folder the run started on (:class:`FolderIdentity`): a root swapped for another folder or a
link during the run is refused, never read.

:func:`folder_below` finds a folder under a trusted root the same way (no link at any component, no
``..``), for a caller that checks a path now and indexes it later (``kb serve``'s indexing jobs).
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from kb.ingest import readers

_LINK_ERRORS = (errno.ELOOP, errno.ENOTDIR, errno.EMLINK)  # what O_NOFOLLOW / O_DIRECTORY say of a link


class UnsafePath(Exception):
    """A path that indexing must not read (a link leaving the root, a protected folder)."""


@dataclass(frozen=True)
class FolderIdentity:
    """Which folder a path named when it was looked at (device and inode): the same path naming
    another folder later, or a link, has another identity."""

    device: int
    inode: int

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> FolderIdentity:
        found = os.stat(path)
        return cls(found.st_dev, found.st_ino)

    @classmethod
    def of_descriptor(cls, fd: int) -> FolderIdentity:
        found = os.fstat(fd)
        return cls(found.st_dev, found.st_ino)


def folder_below(root: Path, rel: str | os.PathLike[str]) -> FolderIdentity:
    """The identity of the folder ``root / rel``, reached from ``root``'s descriptor one component at a
    time with ``O_NOFOLLOW``: :class:`UnsafePath` when a component is a link or ``..``, :class:`OSError`
    when it is missing, not a folder or cannot be opened (a name too long)."""
    parts = Path(rel).parts
    if Path(rel).is_absolute() or ".." in parts:
        raise UnsafePath("a path below the root may not be absolute or contain '..'")
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts:
            try:
                below = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
            except OSError as exc:
                if exc.errno in _LINK_ERRORS and _is_link(part, folder):
                    raise UnsafePath("passes through a symbolic link (never followed)") from None
                raise
            os.close(folder)
            folder = below
        return FolderIdentity.of_descriptor(folder)
    finally:
        os.close(folder)


def _is_link(name: str, folder: int) -> bool:
    """Whether ``name`` in the folder open as ``folder`` is a symbolic link (itself, not its target)."""
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode)
    except OSError:
        return False


@dataclass
class ScanResult:
    """The files to index (relative POSIX paths, sorted) and what was passed over on purpose, with why."""

    files: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _matches(rel: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(Path(rel).name, p) for p in patterns)


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def checked_path(root: Path, rel: str, *, follow_symlinks: bool = False, protected: Sequence[Path] = ()) -> Path:
    """``root / rel`` if indexing may read it, else :class:`UnsafePath` saying why.

    ``root`` must be resolved already. Without ``follow_symlinks`` the path may contain no link at
    all (its resolved form is itself); with it, its target must still lie inside ``root``.
    """
    path = root / rel
    try:
        real = path.resolve()
    except (OSError, RuntimeError) as exc:  # a link loop, a name too long, a folder gone meanwhile
        raise UnsafePath(f"cannot be resolved ({getattr(exc, 'strerror', None) or exc})") from None
    if not follow_symlinks and real != path:
        raise UnsafePath("symbolic link (not followed: indexing.follow_symlinks is off)")
    if not _is_within(real, root):
        raise UnsafePath("symbolic link to a file outside the indexed folder (never followed)")
    if any(_is_within(real, p) for p in protected):
        raise UnsafePath("inside kb's own home folder (never indexed)")
    return path


def scan(
    root: Path,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    recursive: bool = True,
    *,
    follow_symlinks: bool = False,
    protected: Sequence[Path] = (),
) -> ScanResult:
    """Supported, non-hidden files under ``root`` (resolved), minus links and protected folders
    as the module docstring says."""
    result = ScanResult()
    protected = [p.resolve() for p in protected]
    seen_dirs: set[Path] = set()

    def unreadable(error: OSError) -> None:  # a folder that cannot be listed: reported, the rest goes on
        where = Path(error.filename or root)
        rel = where.relative_to(root).as_posix() if _is_within(where, root) and where != root else str(where)
        result.skipped.append((rel + "/", f"cannot be read ({error.strerror or error})"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=follow_symlinks):
        here = Path(dirpath)
        real_here = here.resolve()
        if real_here in seen_dirs:  # reached a second time through a link: walked already
            dirnames[:] = []
            continue
        seen_dirs.add(real_here)
        kept = []
        for name in sorted(dirnames) if recursive else []:
            if name.startswith("."):
                continue
            rel = (here / name).relative_to(root).as_posix()
            try:
                checked_path(root, rel, follow_symlinks=follow_symlinks, protected=protected)
            except UnsafePath as exc:
                result.skipped.append((rel + "/", str(exc)))
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in filenames:
            if name.startswith("."):
                continue
            rel = (here / name).relative_to(root).as_posix()
            if include and not _matches(rel, include):
                continue
            if exclude and _matches(rel, exclude):
                continue
            if not readers.is_supported(Path(name)):
                continue
            try:
                checked_path(root, rel, follow_symlinks=follow_symlinks, protected=protected)
            except UnsafePath as exc:
                result.skipped.append((rel, str(exc)))
                continue
            result.files.append(rel)
    result.files.sort()
    result.skipped.sort()
    return result


def open_checked(
    root: Path,
    rel: str,
    *,
    follow_symlinks: bool = False,
    protected: Sequence[Path] = (),
    root_identity: FolderIdentity | None = None,
) -> BinaryIO:
    """``root / rel`` opened for reading if indexing may read it, else :class:`UnsafePath` saying why.
    With ``root_identity``, ``root`` must still be that folder (not replaced since it was recorded).

    Without ``follow_symlinks`` every folder below ``root`` and the file itself are opened with
    ``O_NOFOLLOW`` relative to their parent's descriptor: no link is followed at any step, whatever
    is swapped meanwhile. With it, the file is opened by name and what was opened (the descriptor's
    own path) must lie inside ``root``. Either way it must be a regular file outside ``protected``.
    ``root`` and ``protected`` must be resolved already (the indexer resolves them once per run). :class:`OSError` for a file that cannot be opened.
    """
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK  # O_NONBLOCK: a FIFO put there does not hang the run
    replaced = UnsafePath("the indexed folder was replaced (by another folder or a link) since the run began")
    if follow_symlinks:
        if root_identity is not None and FolderIdentity.of(root) != root_identity:
            raise replaced
        fd = os.open(checked_path(root, rel, follow_symlinks=True, protected=protected), flags)
    else:
        folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            if root_identity is not None and FolderIdentity.of_descriptor(folder) != root_identity:
                raise replaced
            *folders, name = Path(rel).parts
            for part in folders:
                below = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
                os.close(folder)
                folder = below
            fd = os.open(name, flags | os.O_NOFOLLOW, dir_fd=folder)
        except OSError as exc:
            if exc.errno in _LINK_ERRORS:
                raise UnsafePath("symbolic link (not followed: indexing.follow_symlinks is off)") from None
            raise
        finally:
            os.close(folder)
    handle = os.fdopen(fd, "rb")
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePath("not a regular file")
        opened = Path(os.readlink(f"/proc/self/fd/{fd}")) if os.path.isdir("/proc/self/fd") else root / rel
        if not _is_within(opened, root):
            raise UnsafePath("symbolic link to a file outside the indexed folder (never followed)")
        if any(_is_within(opened, p) for p in protected):
            raise UnsafePath("inside kb's own home folder (never indexed)")
    except BaseException:
        handle.close()
        raise
    return handle


def file_sha256(handle: BinaryIO) -> str:
    """The SHA-256 of an open file from its start, read in 1 MB blocks: what tells a changed file
    from an unchanged one."""
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()
