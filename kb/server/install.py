"""Unpacking MariaDB 11.8 from Debian 13 packages into a folder, without touching the system.

Debian 12 ships MariaDB 10.11, which has no VECTOR type, and installing Debian 13 packages into the
system would drag in a new libc. So the server and the libraries it needs are downloaded with a
private apt state (its own lists, cache and status file) and unpacked with ``dpkg -x`` into a prefix
folder; :mod:`kb.server.private_server` runs every binary through that prefix's own dynamic loader.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from kb.errors import ServerError

SUITE = "trixie"
PACKAGES = [
    "mariadb-server-core",
    "mariadb-client-core",
    "libc6",
    "libssl3t64",
    "libstdc++6",
    "libgcc-s1",
    "libpcre2-8-0",
    "libzstd1",
    "zlib1g",
    "libaio1t64",
    "liburing2",
    "libsystemd0",
    "libcrypt1",
    "libcap2",
    "libnuma1",
    "libncurses6",
    "libtinfo6",
    "libedit2",
    "libbsd0",
    "libmd0",
]
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
DEFAULT_MIRROR = "http://deb.debian.org/debian"

EXTERNAL_HELP = (
    "Point kb at an existing MariaDB 11.8 instead: set database.url in config.yaml or "
    "KB_DATABASE__URL=mariadb://user:password@host:3306/kb (the account needs CREATE, ALTER, INDEX, DROP, "
    "SELECT, INSERT, UPDATE, DELETE on that database)"
)


def unpack_mariadb(root: Path, prefix: Path, arch: str) -> None:
    """Download the Debian 13 packages into a private apt cache under ``root`` and unpack them into
    ``prefix`` (about 19 MB); only a complete prefix ever gets that name."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None or not KEYRING.is_file():
        raise ServerError(
            "kb's private MariaDB is unpacked from Debian packages, which needs apt-get, dpkg and "
            f"{KEYRING} (Debian or Ubuntu with debian-archive-keyring). {EXTERNAL_HELP}"
        )
    apt = root / "apt"
    for sub in ("lists/partial", "cache/archives/partial", "debs"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    sources = apt / "sources.list"
    sources.write_text(f"deb [arch={arch} signed-by={KEYRING}] {_debian_mirror()} {SUITE} main\n")
    options = [
        "-o",
        f"Dir::Etc::SourceList={sources}",
        "-o",
        "Dir::Etc::SourceParts=/dev/null",
        "-o",
        f"Dir::State::Lists={apt / 'lists'}",
        "-o",
        f"Dir::Cache={apt / 'cache'}",
        "-o",
        f"APT::Architecture={arch}",
        "-o",
        "Dir::State::status=/dev/null",
        "-o",
        "Debug::NoLocking=1",
    ]
    if os.geteuid() == 0:
        options += ["-o", "APT::Sandbox::User=root"]
    _run(["apt-get", *options, "update"], "download the Debian 13 package lists")
    _run(["apt-get", *options, "download", *PACKAGES], "download the MariaDB 11.8 packages", cwd=apt / "debs")
    staging = root / "prefix.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for deb in sorted((apt / "debs").glob("*.deb")):
        _run(["dpkg", "-x", str(deb), str(staging)], f"unpack {deb.name}")
    shutil.rmtree(prefix, ignore_errors=True)
    staging.rename(prefix)  # only a complete prefix ever has this name


def _debian_mirror() -> str:
    """The Debian mirror this machine already uses (not its security archive)."""
    candidates: list[str] = []
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for block in path.read_text(errors="replace").split("\n\n"):
            if "security" in block.lower():
                continue
            for line in block.splitlines():
                if line.strip().lower().startswith("uris:"):
                    candidates += line.split(":", 1)[1].split()
    legacy = Path("/etc/apt/sources.list")
    if legacy.is_file():
        for line in legacy.read_text(errors="replace").splitlines():
            match = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
            if match and "security" not in match[2]:
                candidates.append(match[1])
    for uri in candidates:
        if uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def _run(cmd: list[str], what: str, cwd: Path | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ServerError(f"could not {what}: {tail(proc.stderr or proc.stdout)}. {EXTERNAL_HELP}")


def tail(text: str, lines: int = 3) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept) or "(no output)"
