"""mypy over kb as it is installed: the folders stores/ and engines/ are the packages kb.stores and
kb.engines (pyproject's package-dir), which mypy cannot follow from the source tree. So the package is
assembled from symlinks in a temporary folder, mypy checks that, and its paths are written back as
the project's own. Run by `make test`; exit status is mypy's."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="kb-mypy-") as tmp:
        package = Path(tmp) / "kb"
        package.mkdir()
        for item in (ROOT / "kb").iterdir():
            if item.suffix in (".py", ".txt") or (item / "__init__.py").is_file():
                (package / item.name).symlink_to(item, target_is_directory=item.is_dir())
        (package / "stores").symlink_to(ROOT / "stores", target_is_directory=True)
        (package / "engines").symlink_to(ROOT / "engines", target_is_directory=True)
        (package / "demo_data").symlink_to(ROOT / "data", target_is_directory=True)
        proc = subprocess.run(
            [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "-p", "kb"],
            cwd=tmp,
            capture_output=True,
            text=True,
        )
        for stream, out in ((proc.stdout, sys.stdout), (proc.stderr, sys.stderr)):
            out.write(stream.replace("kb/stores/", "stores/").replace("kb/engines/", "engines/"))
        return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
