"""``POST /v1/index``: indexing runs as background jobs, their state kept in MariaDB.

A job runs in a thread of the process that accepted it; its state (queued, running, done, failed,
the last progress line, the report) is written to the KV store, so ``GET /v1/jobs/{id}`` answers
from any ``kb serve`` process on the same database. Only folders under ``serve.index_roots`` may be
indexed through the API: a key must not be able to read arbitrary server files into a collection.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

from kb.errors import KBError
from kb.knowledge_base import KnowledgeBase

log = logging.getLogger("kb.service")
_JOBS = "service_jobs"


class IndexJobs:
    def __init__(self, kb: KnowledgeBase, roots: list[str]) -> None:
        self.kb = kb
        self.roots = [kb.settings.resolve_path(r).resolve() for r in roots]

    def check_path(self, path: str) -> Path:
        """The folder to index, if it lies under an allowed root; else a clear refusal."""
        if not self.roots:
            raise PermissionError("indexing through the API is off: list the folders it may index in serve.index_roots")
        folder = Path(path).expanduser()
        if not folder.is_absolute():
            folder = self.roots[0] / folder
        folder = folder.resolve()
        if not any(folder == root or root in folder.parents for root in self.roots):
            raise PermissionError(f"{path} is not under serve.index_roots ({', '.join(map(str, self.roots))})")
        if not folder.is_dir():
            raise KBError(f"{path} is not a folder on the server")
        return folder

    def _save(self, job: dict[str, Any]) -> None:
        self.kb.kv_store.put(job["id"], job, _JOBS)

    def get(self, job_id: str) -> Optional[dict[str, Any]]:
        return self.kb.kv_store.get(job_id, _JOBS)

    def start(self, folder: Path, collection: str, key_name: str, **options: Any) -> dict[str, Any]:
        job = {
            "id": uuid.uuid4().hex,
            "status": "queued",
            "path": str(folder),
            "collection": collection,
            "key": key_name,
            "created": time.time(),
            "progress": None,
            "report": None,
            "error": None,
        }
        self._save(job)
        threading.Thread(target=self._run, args=(job, options), name=f"kb-index-{job['id'][:8]}", daemon=True).start()
        return job

    def _run(self, job: dict[str, Any], options: dict[str, Any]) -> None:
        job["status"] = "running"
        self._save(job)

        def progress(line: str) -> None:
            job["progress"] = line
            self._save(job)

        try:
            report = self.kb.index_directory(
                job["path"], collection=job["collection"], progress=False, echo=progress, **options
            )
            job.update(status="done" if report.ok else "failed", report=asdict(report), finished=time.time())
        except Exception as exc:  # reported in the job: the request that started it has long returned
            log.exception("index job %s failed", job["id"])
            job.update(status="failed", error=str(exc).splitlines()[0][:500], finished=time.time())
        self._save(job)
