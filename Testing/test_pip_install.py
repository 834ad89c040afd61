"""As a new user outside Slicer: a clean venv, `pip install .`, then `python -m
ProgressiveDicomFetchLib fetch` against the real Orthanc writes exact NRRD files. And a missing
writer is found before the first byte is downloaded (the relay counts the requests).

The venv is built once per pyproject.toml (its dependencies) under the test cache; the package
itself is reinstalled (no dependencies) whenever the Lib's sources change, so the test runs the
code under test in seconds after the first build."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from support import CACHE_DIR, REPO

from ProgressiveDicomFetchLib.cli import main
from ProgressiveDicomFetchLib.sampledata.sample_cache import exclusive

LIB = REPO / "ProgressiveDicomFetch" / "ProgressiveDicomFetchLib"


def digest(paths) -> str:
    hasher = hashlib.sha256()
    for path in paths:
        hasher.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return hasher.hexdigest()[:16]


def install(python, source, *options) -> None:
    """`pip install <source>` from a copy of the project (no build files left in the worktree)."""
    result = subprocess.run([str(python), "-m", "pip", "install", "-q", *options, str(source)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]


def project_copy(target):
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, target / name)
    shutil.copytree(LIB, target / "ProgressiveDicomFetch" / "ProgressiveDicomFetchLib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return target


@pytest.fixture(scope="module")
def installed_python():
    """bin/python of a venv holding `pip install .` of the current sources."""
    venv = CACHE_DIR / f"pip-install-venv-{digest([REPO / 'pyproject.toml'])}"
    python = venv / "bin" / "python"
    sources = digest(sorted(p for p in LIB.rglob("*.py")))
    with exclusive(CACHE_DIR / ".pip-install-venv.lock"):
        stamp = venv / ".built"
        if not stamp.exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
            install(python, project_copy(CACHE_DIR / "pip-install-source"))  # with its dependencies
            stamp.write_text("")
            (venv / ".sources").write_text(sources)
        elif (venv / ".sources").read_text() != sources:
            install(python, project_copy(CACHE_DIR / "pip-install-source"), "--no-deps", "--force-reinstall")
            (venv / ".sources").write_text(sources)
    return python


@pytest.mark.timeout(1200)
def test_a_plain_pip_install_fetches_exact_nrrd_files(installed_python, orthanc, sample_small, tmp_path):
    import nrrd

    info = sample_small.series("ct_thick")
    out = tmp_path / "volumes"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed copy runs, not the worktree
    result = subprocess.run(
        [str(installed_python), "-m", "ProgressiveDicomFetchLib", "fetch", "--url", orthanc.dicomweb_url,
         "--study", info.study_uid, "--series", info.series_uid, "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    origin = subprocess.run([str(installed_python), "-c", "import ProgressiveDicomFetchLib as m; print(m.__file__)"],
                            capture_output=True, text=True, cwd=str(tmp_path), env=env).stdout
    assert str(installed_python.parent.parent) in origin, "the venv's installed package ran, not the worktree"
    data, _ = nrrd.read(str(out / f"{info.series_uid}.nrrd"), index_order="C")
    np.testing.assert_array_equal(data, sample_small.load_truth("ct_thick"))


def test_a_missing_writer_is_named_before_any_download(orthanc_relay, sample_small, tmp_path, monkeypatch, capsys):
    info = sample_small.series("ct_thick")
    monkeypatch.setitem(sys.modules, "nrrd", None)  # `import nrrd` raises ImportError, as when not installed
    code = main(["fetch", "--url", orthanc_relay.dicomweb_url, "--study", info.study_uid,
                 "--out", str(tmp_path / "volumes")])
    assert code == 2 and "needs the package pynrrd (pip install pynrrd)" in capsys.readouterr().err
    assert orthanc_relay.counters["requests"] == 0, "nothing may be downloaded before the check"
    assert not (tmp_path / "volumes").exists()
