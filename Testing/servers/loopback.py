"""Builds the LD_PRELOAD shim (loopback_bind.c) that pins wildcard binds to loopback."""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("loopback_bind.c")
# Same place as support.CACHE_DIR / "bin" (this package does not import pytest helpers).
DEFAULT_CACHE = Path(os.environ.get("PDF_TEST_CACHE", Path(__file__).resolve().parents[2] / ".cache")) / "bin"


class ShimBuildError(RuntimeError):
    """gcc is missing or failed; the message carries its output."""


def build_shim(cache_dir: Path = DEFAULT_CACHE) -> Path:
    """Compile once per source version into cache_dir (content-hashed name, atomic rename)."""
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    target = cache_dir / f"loopback_bind-{digest}.so"
    if target.exists():
        return target
    compiler = shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise ShimBuildError("no C compiler (gcc) to build the loopback shim")
    cache_dir.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=".loopback_bind-", suffix=".so", dir=cache_dir)
    os.close(handle)
    command = [compiler, "-shared", "-fPIC", "-O2", "-Wall", "-o", partial, str(SOURCE), "-ldl"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        os.unlink(partial)
        raise ShimBuildError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    os.replace(partial, target)
    logger.info("built %s", target)
    return target
