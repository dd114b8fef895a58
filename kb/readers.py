"""One file -> its text and metadata, or a clear reason why it cannot be read.

PDF and Word files go through LlamaIndex's readers (``llama_index.readers.file``); HTML through
BeautifulSoup (text and ``<title>``); text formats are decoded here so that a bad encoding or binary
content is reported as such instead of being indexed as garbage, and Markdown front matter becomes
metadata.
"""

from __future__ import annotations

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


class UnreadableFile(Exception):
    """The file cannot be indexed; the message says why."""


@dataclass
class ReadFile:
    text: str
    title: str
    metadata: dict[str, Any] = field(default_factory=dict)


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED


def read(path: Path) -> ReadFile:
    """Read one file; raises :class:`UnreadableFile` with the reason."""
    suffix = path.suffix.lower()
    try:
        if suffix in TEXT_TYPES:
            result = _read_text(path, markdown=suffix in (".md", ".markdown"))
        elif suffix in HTML_TYPES:
            result = _read_html(path)
        elif suffix == ".pdf":
            result = _read_pdf(path)
        elif suffix == ".docx":
            result = _read_docx(path)
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
    if b"\x00" in data[:1 << 16]:
        raise UnreadableFile("binary content (NUL bytes) in what should be a text file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(
            f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as UTF-8") from None


def _read_text(path: Path, *, markdown: bool) -> ReadFile:
    text = _decode(path.read_bytes())
    metadata: dict[str, Any] = {}
    if markdown:
        match = _FRONT_MATTER.match(text)
        if match:
            try:
                front = yaml.safe_load(match.group(1))
            except yaml.YAMLError:
                front = None  # not front matter after all: keep the text as it is
            if isinstance(front, dict):
                metadata = {str(k): _plain(v) for k, v in front.items() if v is not None}
                text = text[match.end():]
    title = str(metadata.get("title") or "")
    if not title and markdown:
        heading = _HEADING.search(text)
        title = heading.group(1) if heading else ""
    return ReadFile(text=text, title=title or path.stem, metadata=metadata)


def _plain(value: Any) -> Any:
    """Front matter values as JSON-friendly scalars and lists (dates become ISO strings)."""
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


def _read_html(path: Path) -> ReadFile:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode(path.read_bytes()), "html.parser")
    for tag in soup(["script", "style", "noscript"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else ""
    text = "\n".join(line.strip() for line in soup.get_text("\n").splitlines() if line.strip())
    return ReadFile(text=text, title=title or path.stem)


def _read_pdf(path: Path) -> ReadFile:
    from llama_index.readers.file import PDFReader

    try:
        pages = PDFReader(return_full_document=True).load_data(path)
    except Exception as exc:  # pypdf raises many types for damaged files
        raise UnreadableFile(f"corrupt or unreadable PDF ({type(exc).__name__}: {str(exc)[:120]})") from None
    text = "\n\n".join(page.text for page in pages)
    title = ""
    try:
        from pypdf import PdfReader

        info = PdfReader(str(path)).metadata
        title = (info.title or "") if info else ""
    except Exception:
        pass
    return ReadFile(text=text, title=title or path.stem)


def _read_docx(path: Path) -> ReadFile:
    from llama_index.readers.file import DocxReader

    try:
        docs = DocxReader().load_data(path)
    except Exception as exc:
        raise UnreadableFile(f"corrupt or unreadable Word file ({type(exc).__name__}: {str(exc)[:120]})") from None
    text = "\n".join(doc.text for doc in docs)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return ReadFile(text=text, title=first[:120] if first and len(first) < 120 else path.stem)
