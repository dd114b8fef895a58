"""Start real ``kb serve`` processes (scripted LLM, real everything else) for the service's tests."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from kb.stores.connection import MariaDBConnection, quote_identifier

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServedKB:
    """One ``kb serve`` process on loopback; ``url`` is its base address."""

    def __init__(self, config: dict[str, Any], workdir: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config_file = workdir / f"serve-{self.port}.json"
        config_file.write_text(json.dumps(config))
        self.log = workdir / f"serve-{self.port}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
        full_env.update(env or {})
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "serve_scripted.py"), str(config_file), str(self.port)],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            env=full_env,
        )

    def wait_ready(self, timeout: float = 180) -> ServedKB:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"kb serve exited ({self.process.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"kb serve did not answer within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@contextmanager
def scratch_database(admin: MariaDBConnection, admin_url: Any) -> Iterator[tuple[str, str]]:
    """A new, empty database for a module's ``kb serve`` (its name and URL), dropped afterwards
    whatever happened."""
    name = f"kbtest_{secrets.token_hex(6)}"
    admin.execute(f"CREATE DATABASE {quote_identifier(name)} CHARACTER SET utf8mb4")
    try:
        yield name, admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {quote_identifier(name)}")


def call(site: dict[str, Any], method: str, path: str, key: str | None = None, **kwargs: Any) -> httpx.Response:
    """One request to ``site["server"]``, with the bearer header of ``site["keys"][key]`` when a key is named."""
    headers = {**(bearer(site["keys"][key]) if key else {}), **kwargs.pop("headers", {})}
    return httpx.request(
        method, site["server"].url + path, headers=headers, timeout=kwargs.pop("timeout", 60), **kwargs
    )


def wait_job(server: ServedKB, key: str, job_id: str, timeout: float = 120) -> dict[str, Any]:
    """The indexing job's record once it is done or failed."""
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = httpx.get(f"{server.url}/v1/jobs/{job_id}", headers=bearer(key), timeout=30).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} did not finish: {job}")


async def raw_request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None
) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a fresh loopback connection: the status and the body.

    A load generator that costs the client almost nothing (httpx's client spends about as much CPU
    per request as kb serve does, which on two cores would measure the client, not the server)."""
    import asyncio

    payload = json.dumps(body).encode() if body is not None else b""
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", f"Content-Length: {len(payload)}"]
    if body is not None:
        head.append("Content-Type: application/json")
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
    await writer.drain()
    response = await reader.read()  # Connection: close, so the body ends with the connection
    writer.close()
    status_line, _, rest = response.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]
