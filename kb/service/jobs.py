"""``POST /v1/index``: indexing runs as background jobs, their state kept in MariaDB.

A job reads the folder that was checked when it was accepted, never another: the check walks from
the index root without following a link at any component (no ``..``), and records the folder's
identity; the run starts only on that same folder and reads each file only while its root is still
it (:func:`kb.ingest.file_scan.folder_below`, ``expect_folder``). A folder replaced by a link, or by
another folder, after the 202 fails the job, and nothing of it is read.

A job runs in a thread of the process that accepted it; its state (queued, running, done, failed,
the last progress line, the report) is written to the KV store, so ``GET /v1/jobs/{id}`` answers
from any ``kb serve`` process on the same database. Only folders under ``serve.index_roots`` may be
indexed through the API: a key must not be able to read arbitrary server files into a collection
(nor learn where those folders are: refusals do not name them). A job changes only its own
collection's copies of the files (see :mod:`kb.ingest.indexing`), which its key may write.

A running job's process writes a heartbeat every few seconds. A job whose process is gone (its
heartbeat stale, or its process id dead on this host) is reported, and recorded, as failed.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

from kb.errors import KBError
from kb.ingest.file_scan import FolderIdentity, UnsafePath, folder_below
from kb.knowledge_base import KnowledgeBase
from kb.service.gate import ApiError

log = logging.getLogger("kb.service")
_JOBS = "service_jobs"
HEARTBEAT_S = 5.0
STALE_AFTER_S = 30.0  # a running job not heard of for this long has lost its process
_PROCESS = {"host": socket.gethostname(), "pid": os.getpid(), "token": uuid.uuid4().hex}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


@dataclass(frozen=True)
class CheckedFolder:
    """A folder a request may index: where it is, and which folder it was when checked."""

    path: Path
    identity: FolderIdentity


class IndexJobs:
    """The indexing jobs of this process. A key may have ``max_per_key`` jobs queued or running at
    once (more get 429); a queued job waits for the knowledge base's indexing lock without holding a
    database connection (:meth:`KnowledgeBase._writing` polls)."""

    def __init__(self, kb: KnowledgeBase, roots: list[str], max_per_key: int = 2) -> None:
        self.kb = kb
        self.roots = [kb.settings.resolve_path(r).resolve() for r in roots]
        self.max_per_key = max_per_key
        self._active: dict[str, int] = {}  # key name -> jobs queued or running here
        self._active_lock = threading.Lock()

    def check_path(self, path: str) -> CheckedFolder:
        """The folder to index, if it is a real folder under an allowed root (relative paths: under the
        first), reached without a link or ``..``; else a refusal that names no server folder:
        PermissionError (403) for a path outside the roots or through a link, KBError (400) for one
        that is not a usable folder (missing, a file, a name too long)."""
        if not self.roots:
            raise PermissionError("indexing through the API is off: list the folders it may index in serve.index_roots")
        shown = path[:200]
        given = Path(path)
        if given.is_absolute():
            root = next((r for r in self.roots if given == r or r in given.parents), None)
            if root is None:
                raise PermissionError(f"{shown} is not under the folders this server may index (serve.index_roots)")
            below = given.relative_to(root)
        else:
            root, below = self.roots[0], given
        try:
            identity = folder_below(root, below)
        except UnsafePath as exc:
            raise PermissionError(f"{shown}: {exc}; give a real folder under serve.index_roots") from None
        except OSError as exc:  # missing, a file, a name too long, no permission
            raise KBError(f"{shown!r} is not a folder this server can index ({exc.strerror or exc})") from None
        return CheckedFolder(root / below, identity)

    def public(self, job: dict[str, Any]) -> dict[str, Any]:
        """What a key is shown of a job: no process (host, pid, token), no heartbeat, and every path
        relative to its index root, so that keys cannot learn where the roots are on the server."""
        view = {k: v for k, v in job.items() if k not in ("owner", "heartbeat")}
        text = json.dumps(view)
        for root in sorted(self.roots, key=lambda r: len(str(r)), reverse=True):
            quoted = json.dumps(str(root))[1:-1]  # the root as it is spelt inside a JSON string
            text = text.replace(quoted + "/", "").replace(quoted, ".")
        return json.loads(text)

    def _save(self, job: dict[str, Any]) -> None:
        self.kb.kv_store.put(job["id"], job, _JOBS)

    def get(self, job_id: str) -> Optional[dict[str, Any]]:
        """The job's record; one whose process is gone is marked failed (here and in the store)."""
        job = self.kb.kv_store.get(job_id, _JOBS)
        if job is not None and job["status"] in ("queued", "running") and self._orphaned(job):
            job.update(status="failed", error="its kb serve process stopped before the job finished; start it again")
            job["finished"] = time.time()
            self._save(job)
        return job

    @staticmethod
    def _orphaned(job: dict[str, Any]) -> bool:
        owner = job.get("owner") or {}
        if owner.get("token") == _PROCESS["token"]:
            return False  # this process runs it
        if owner.get("host") == _PROCESS["host"] and isinstance(owner.get("pid"), int) and not _pid_alive(owner["pid"]):
            return True
        return time.time() - float(job.get("heartbeat") or job.get("created") or 0) > STALE_AFTER_S

    def start(self, folder: CheckedFolder, collection: str, key_name: str, **options: Any) -> dict[str, Any]:
        """Index ``folder`` into ``collection`` in the background (that collection's copies only: see
        :mod:`kb.ingest.indexing`), if it is still the folder that was checked when the job runs. 429
        when the key has ``max_per_key`` jobs queued or running already."""
        with self._active_lock:
            if self._active.get(key_name, 0) >= self.max_per_key:
                raise ApiError(
                    429,
                    f"key {key_name!r} has {self.max_per_key} indexing jobs queued or running (serve.max_jobs_per_key); "
                    "retry when one has finished",
                    {"Retry-After": "30"},
                )
            self._active[key_name] = self._active.get(key_name, 0) + 1
        job: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "status": "queued",
            "path": str(folder.path),
            "collection": collection,
            "key": key_name,
            "owner": _PROCESS,
            "created": time.time(),
            "heartbeat": time.time(),
            "progress": None,
            "report": None,
            "error": None,
        }
        try:
            self._save(job)
            threading.Thread(
                target=self._run,
                args=(job, {**options, "expect_folder": folder.identity}),
                name=f"kb-index-{job['id'][:8]}",
                daemon=True,
            ).start()
        except BaseException:
            self._finished(key_name)
            raise
        return job

    def _finished(self, key_name: str) -> None:
        with self._active_lock:
            self._active[key_name] -= 1
            if not self._active[key_name]:
                del self._active[key_name]

    def _run(self, job: dict[str, Any], options: dict[str, Any]) -> None:
        try:
            self._work(job, options)
        finally:
            self._finished(job["key"])

    def _work(self, job: dict[str, Any], options: dict[str, Any]) -> None:
        job["status"] = "running"
        self._save(job)
        saving = threading.Lock()
        ended = threading.Event()

        def save() -> None:
            with saving:
                job["heartbeat"] = time.time()
                self._save(job)

        def progress(line: str) -> None:
            job["progress"] = line
            save()

        def beat() -> None:
            while not ended.wait(HEARTBEAT_S):
                try:
                    save()
                except Exception as exc:  # the database may be down for a moment
                    log.warning("index job %s: heartbeat not written: %s", job["id"], exc)

        threading.Thread(target=beat, name=f"kb-index-beat-{job['id'][:8]}", daemon=True).start()

        try:
            report = self.kb.index_directory(
                job["path"],
                collection=job["collection"],
                progress=False,
                echo=progress,
                **options,
            )
            job.update(status="done" if report.ok else "failed", report=asdict(report), finished=time.time())
        except Exception as exc:  # reported in the job: the request that started it has long returned
            log.exception("index job %s failed", job["id"])
            job.update(status="failed", error=str(exc).splitlines()[0][:500], finished=time.time())
        ended.set()
        save()
