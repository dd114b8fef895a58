"""One file -> its text and metadata, or a clear reason why it cannot be read.

PDF files go through pypdf and Word files through docx2txt (as LlamaIndex's ``DocxReader`` does); HTML through
BeautifulSoup (text and ``<title>``); text formats are decoded here so that a bad encoding or binary
content is reported as such instead of being indexed as garbage, and Markdown front matter becomes
metadata.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TEXT_TYPES = {".md", ".markdown", ".txt", ".text", ".rst", ".csv", ".tsv", ".json", ".jsonl", ".yaml", ".yml", ".log"}
HTML_TYPES = {".html", ".htm"}
SUPPORTED = TEXT_TYPES | HTML_TYPES | {".pdf", ".docx"}
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S)
_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.M)


MAX_FRONT_MATTER = 64 * 1024  # characters of front matter read at most
MAX_FRONT_MATTER_VALUES = 10_000
MAX_FRONT_MATTER_DEPTH = 20


class UnreadableFile(Exception):
    """The file cannot be indexed; the message says why."""


@dataclass
class ReadFile:
    text: str
    title: str
    metadata: dict[str, Any] = field(default_factory=dict)


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED


def read(path: Path, data: bytes) -> ReadFile:
    """The text of one file whose bytes are ``data`` (read already, from a descriptor the indexer
    checked); ``path`` gives its type and a title when it has none. Raises :class:`UnreadableFile`
    with the reason."""
    suffix = path.suffix.lower()
    try:
        if suffix in TEXT_TYPES:
            result = _read_text(path, data, markdown=suffix in (".md", ".markdown"))
        elif suffix in HTML_TYPES:
            result = _read_html(path, data)
        elif suffix == ".pdf":
            result = _read_pdf(path, data)
        elif suffix == ".docx":
            result = _read_docx(path, data)
        else:
            raise UnreadableFile(f"unsupported file type {suffix or '(none)'}")
    except PermissionError:
        raise UnreadableFile("permission denied") from None
    except IsADirectoryError:
        raise UnreadableFile("is a directory") from None
    except FileNotFoundError:
        raise UnreadableFile("disappeared while indexing") from None
    if not result.text.strip():
        raise UnreadableFile("no text to index (empty, or a scanned document without a text layer)")
    return result


def _decode(data: bytes) -> str:
    if b"\x00" in data[: 1 << 16]:
        raise UnreadableFile("binary content (NUL bytes) in what should be a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8"
        ) from None


def _read_text(path: Path, data: bytes, *, markdown: bool) -> ReadFile:
    text = _decode(data)
    metadata: dict[str, Any] = {}
    if markdown:
        match = _FRONT_MATTER.match(text)
        if match:
            if len(match.group(1)) > MAX_FRONT_MATTER:
                raise UnreadableFile(f"front matter over {MAX_FRONT_MATTER // 1024} KB; shorten it")
            try:
                front = yaml.safe_load(match.group(1))
            except yaml.YAMLError:
                front = None  # not front matter after all: keep the text as it is
            if isinstance(front, dict):
                budget = [MAX_FRONT_MATTER_VALUES]
                metadata = {str(k): _plain(v, budget) for k, v in front.items() if v is not None}
                text = text[match.end() :]
    title = str(metadata.get("title") or "")
    if not title and markdown:
        heading = _HEADING.search(text)
        title = heading.group(1) if heading else ""
    return ReadFile(text=text, title=title or path.stem, metadata=metadata)


def _plain(value: Any, budget: list[int], depth: int = 0) -> Any:
    """Front matter values as JSON-friendly scalars and lists (dates become ISO strings).

    YAML aliases let a few hundred bytes name the same list millions of times over; copying that out
    would take gigabytes. ``budget`` counts the values copied, and nesting is bounded too."""
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_FRONT_MATTER_DEPTH:
        raise UnreadableFile(
            f"front matter too large once its YAML aliases are expanded (over {MAX_FRONT_MATTER_VALUES} values "
            f"or {MAX_FRONT_MATTER_DEPTH} levels)"
        )
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, budget, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, budget, depth + 1) for k, v in value.items()}
    return str(value)


def _read_html(path: Path, data: bytes) -> ReadFile:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode(data), "html.parser")
    for tag in soup(["script", "style", "noscript"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else ""
    text = "\n".join(line.strip() for line in soup.get_text("\n").splitlines() if line.strip())
    return ReadFile(text=text, title=title or path.stem)


def _read_pdf(path: Path, data: bytes) -> ReadFile:
    # pypdf directly: LlamaIndex's PDFReader retries any failure three times (seconds lost on a file that
    # is simply corrupt) and reports a RetryError that hides the reason.
    import logging

    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # a damaged file's warnings are the reason below
    try:
        reader = PdfReader(io.BytesIO(data))
        text = "\n\n".join(page.extract_text() or "" for page in reader.pages)
        info = reader.metadata
    except Exception as exc:  # pypdf raises many types for damaged files
        raise UnreadableFile(f"corrupt or unreadable PDF ({type(exc).__name__}: {str(exc)[:120]})") from None
    title = str(info.title or "") if info else ""
    return ReadFile(text=text, title=title or path.stem)


def _read_docx(path: Path, data: bytes) -> ReadFile:
    # docx2txt, as LlamaIndex's DocxReader uses it, on the bytes (the reader itself takes a path only)
    import docx2txt

    try:
        text = docx2txt.process(io.BytesIO(data))
    except Exception as exc:
        raise UnreadableFile(f"corrupt or unreadable Word file ({type(exc).__name__}: {str(exc)[:120]})") from None
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return ReadFile(text=text, title=first[:120] if first and len(first) < 120 else path.stem)
