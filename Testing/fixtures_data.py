"""Session fixtures with the generated DICOM sample sets (cached on disk between runs).

A cached set is reused only when its manifest carries the current generator version (a hash of
the generator's sources) and the same MR availability; otherwise it is regenerated into a temp
dir next to the cache and renamed into place, so an interrupted run never leaves half a set.
A file lock serialises concurrent sessions generating the same profile.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from support import CACHE_DIR, missing

from ProgressiveDicomFetchLib.sampledata import SampleManifest, generate, generator_version
from ProgressiveDicomFetchLib.sampledata.mr import COLIN27, source_available
from ProgressiveDicomFetchLib.sampledata.sample_cache import exclusive, swap_into_place

log = logging.getLogger(__name__)

SAMPLE_ROOT = CACHE_DIR / "sampledata"
MR_PACKAGE = "Debian package mricron-data"


def _valid(target: Path, profile: str) -> bool:
    try:
        manifest = SampleManifest.load(target)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return (
        manifest.profile == profile
        and manifest.generator_version == generator_version()
        and manifest.has("mr_t1") == source_available()
        and all(path.is_file() for path in manifest.all_files())
    )


def cached_sample(profile: str) -> SampleManifest:
    """The sample set of ``profile`` under the test cache, generated only when stale."""
    target = SAMPLE_ROOT / profile
    with exclusive(SAMPLE_ROOT / f".{profile}.lock"):
        if _valid(target, profile):
            log.info("sample set %r reused from %s", profile, target)
            return SampleManifest.load(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{profile}-tmp-", dir=str(SAMPLE_ROOT)))
        try:
            start = time.perf_counter()
            generate(tmp, profile)
            log.info("sample set %r generated in %.1f s", profile, time.perf_counter() - start)
            swap_into_place(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(str(tmp), ignore_errors=True)
    return SampleManifest.load(target)


@pytest.fixture(scope="session")
def sample_small() -> SampleManifest:
    """Small profile: every series kind at low resolution (seconds to generate)."""
    return cached_sample("small")


@pytest.fixture(scope="session")
def sample_full() -> SampleManifest:
    """Full profile: 512x512 CT with >= 200 thin slices, full-resolution MR brain."""
    return cached_sample("full")


@pytest.fixture
def sample_mr(sample_small: SampleManifest) -> SampleManifest:
    """The small set, for tests that need its MR series (skip locally / fail under CI without)."""
    if not sample_small.has("mr_t1"):
        missing(f"{MR_PACKAGE} ({COLIN27})")
    return sample_small
