"""kb as pip installs it from a wheel, not as a checkout: the demo finds its data inside the package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kb.business_database.provisioning import demo_data_version

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kb's wheel, built from this tree and unpacked into a folder of its own (no checkout beside it)."""
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(work), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = work.glob("kb-*.whl")
    site = work / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def test_the_wheel_carries_the_demo_data_and_the_model_pins(installed: Path):
    data = installed / "kb" / "demo_data"
    for name in ("business/schema.sql", "business/seed.py", "business/sql-examples.yaml", "eval-questions.yaml"):
        assert (data / name).is_file(), name
    shipped = sorted(p.relative_to(data / "docs") for p in (data / "docs").rglob("*") if p.is_file())
    in_checkout = sorted(
        p.relative_to(ROOT / "data" / "docs") for p in (ROOT / "data" / "docs").rglob("*") if p.is_file()
    )
    assert shipped == in_checkout and shipped
    assert (installed / "kb" / "models" / "qwen-gguf-parts.txt").is_file()


def test_the_installed_demo_reads_its_data_from_the_package(installed: Path, tmp_path: Path):
    probe = (
        "import json\n"
        "from kb.business_database.provisioning import DATA, demo_data_version\n"
        "from kb.demo_data.business import seed\n"
        "from kb.cli import demo\n"
        "print(json.dumps({'data': str(DATA), 'customers': len(seed.rows()['customers'][1]),\n"
        "                  'version': demo_data_version(), 'docs': (DATA / 'docs').is_dir()}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(installed)}
    # Run from an empty folder: nothing of the checkout is on the path but the unpacked wheel.
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert Path(found["data"]) == installed / "kb" / "demo_data"
    assert found["docs"] and found["customers"] == 400
    assert found["version"] == demo_data_version()  # the same schema and seed as the checkout's
