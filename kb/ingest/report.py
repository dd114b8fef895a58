"""What one ``kb index`` run did (or, with ``--dry-run``, would do), and its one-screen summary
(names with control characters escaped: :func:`kb.display.one_line`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from kb.display import one_line


@dataclass
class FileNote:
    """A file a run did not index, and why."""

    path: str
    reason: str


@dataclass
class IndexReport:
    """What one run did (or, with ``dry_run``, would do)."""

    root: str
    dry_run: bool = False
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: list[FileNote] = field(default_factory=list)
    # Passed over on purpose, not failures: links not followed, kb's home, other collections' files.
    skipped: list[FileNote] = field(default_factory=list)
    chunks: int = 0
    embedded: int = 0
    embeddings_cached: int = 0
    elapsed: float = 0.0
    seconds: dict[str, float] = field(default_factory=lambda: {"read": 0.0, "embed": 0.0, "database": 0.0})

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        verb = "would be " if self.dry_run else ""
        lines = [
            f"{one_line(self.root)}: {len(self.added)} added, {len(self.updated)} updated, {len(self.unchanged)} unchanged, "
            f"{len(self.deleted)} deleted, {len(self.failed)} failed, {len(self.skipped)} skipped {verb}"
            + (
                ""
                if self.dry_run
                else f"- {self.chunks} chunks written ({self.embedded} embedded, "
                f"{self.embeddings_cached} from cache) in {self.elapsed:.1f} s"
            )
        ]
        if self.dry_run:
            for label, paths in (("add", self.added), ("update", self.updated), ("delete", self.deleted)):
                lines += [f"  {label} {one_line(p)}" for p in paths]
        for failure in self.failed:
            lines.append(f"  FAILED {one_line(failure.path)}: {one_line(failure.reason)}")
        for skipped in self.skipped:
            lines.append(f"  skipped {one_line(skipped.path)}: {one_line(skipped.reason)}")
        return "\n".join(lines)
