"""Test helpers: files of each supported type, written for real; answers and schemas of the SQL engine."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kb.engines.sql.schema import SchemaDescriber


def write_text_pdf(path: Path, lines: list[str], title: str | None = None) -> None:
    """A small valid PDF with real text (Helvetica), readable by pypdf."""

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    content = "BT /F1 11 Tf 50 780 Td 14 TL " + " ".join(f"({escape(line)}) '" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(content.encode('latin-1'))} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    if title:
        objects.append(f"<< /Title ({escape(title)}) >>")
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    info = f" /Info {len(objects)} 0 R" if title else ""
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R{info} >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(out)


def write_docx(path: Path, paragraphs: list[str]) -> None:
    import docx

    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    document.save(str(path))


def sql_answer(engine, question: str):
    """What the SQL engine (a LlamaIndex query engine) answers, as kb's Answer view."""
    from kb.engines.answer import Answer

    return Answer.from_response(question, engine.query(question))


def described(db: Any, statements: Sequence[str], tables: list[str]) -> SchemaDescriber:
    """``tables``, created (and filled) by ``statements`` in the test's database, as kb describes them."""
    for statement in statements:
        db.execute(statement)
    return SchemaDescriber(db, db.fetchall("SELECT DATABASE()")[0][0], tables)
