"""The demo's sample study on disk: generated once, served as a static DICOMweb tree, reused after.

A newcomer's first run (`python -m ProgressiveDicomFetchLib demo`, the module's "Sample server")
needs a realistic study without any set-up, so it is generated here (numpy and pydicom only, a
few seconds) and kept in the user's cache. A cached copy is reused only when it was made by the
current generator code (`generator_version()`) and is whole; otherwise it is rebuilt in a temp
folder next to it and renamed into place, so an interrupted run never leaves half a sample.

Layout of `<cache_dir>/<profile>/`: `dicom/` (the DICOM files, manifest.json with the ground
truth) and `tree/` (the static DICOMweb tree that SampleServer serves).
"""
from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Union

from ..cache.location import APP_FOLDER, user_cache_root
from . import generate, generator_version
from .manifest import SampleManifest
from .static_tree import StaticTree, write_static_tree

logger = logging.getLogger(__name__)

SAMPLE_FOLDER = "sample"
DICOM_FOLDER = "dicom"
TREE_FOLDER = "tree"
DEFAULT_PROFILE = "demo"


@dataclass
class SampleSet:
    """A ready sample: the tree to serve and the manifest with the truth (for checks and labels)."""

    tree: StaticTree
    manifest: SampleManifest
    generated_s: Optional[float] = None  # seconds it took now; None when reused from the cache

    @property
    def study_uid(self) -> str:
        return self.tree.study_uids[0]

    @property
    def content_identity(self) -> str:
        """A name for this data that outlives the server's random port (the frame cache's key)."""
        return f"sample-{self.manifest.profile}-{self.manifest.generator_version}"


def default_sample_dir() -> Path:
    """`$XDG_CACHE_HOME/ProgressiveDicomFetch/sample` (default `~/.cache/...`)."""
    return user_cache_root() / APP_FOLDER / SAMPLE_FOLDER


def ensure_sample(cache_dir: Optional[Union[str, Path]] = None, profile: str = DEFAULT_PROFILE) -> SampleSet:
    """The sample of `profile` under `cache_dir` (default: default_sample_dir()), made when missing or stale."""
    base = Path(cache_dir) if cache_dir is not None else default_sample_dir()
    if base.exists() and not base.is_dir():
        raise ValueError(f"sample cache {base} exists and is not a folder")
    target = base / profile
    generated = None
    with exclusive(base / f".{profile}.lock"):
        if not _valid(target, profile):
            generated = _build(base, target, profile)
        else:
            logger.info("sample %r reused from %s", profile, target)
    return SampleSet(StaticTree.load(target / TREE_FOLDER), SampleManifest.load(target / DICOM_FOLDER), generated)


def ensure_sample_tree(cache_dir: Optional[Union[str, Path]] = None, profile: str = DEFAULT_PROFILE) -> StaticTree:
    """Just the tree of `ensure_sample` (what SampleServer needs)."""
    return ensure_sample(cache_dir, profile).tree


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Processes starting at once generate a sample once (POSIX flock; no lock elsewhere). Test fixtures use it too."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None
    with open(lock_path, "a+") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def _valid(target: Path, profile: str) -> bool:
    """Made by this generator code, for this profile, with every file of the tree in place."""
    try:
        manifest = SampleManifest.load(target / DICOM_FOLDER)
        tree = StaticTree.load(target / TREE_FOLDER)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if manifest.profile != profile or manifest.generator_version != generator_version():
        return False
    if len(tree.instances) != sum(len(info.files) for info in manifest.series_list):
        return False
    return all(tree.frame_path(instance, n).is_file()
               for instance in tree.instances for n in range(1, instance.frames + 1))


def _build(base: Path, target: Path, profile: str) -> float:
    """Generate into a temp folder, write the tree, then swap it in; returns the seconds it took."""
    start = time.perf_counter()
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{profile}-tmp-", dir=str(base)))
    try:
        manifest = generate(tmp / DICOM_FOLDER, profile, include_mr=False, ct_only=True)
        tree = write_static_tree(manifest.all_files(), tmp / TREE_FOLDER)
        for instance in tree.instances:  # name the files where they will be, not in the temp folder
            instance.source = str(target / Path(instance.source).relative_to(tmp))
        tree.save()
        swap_into_place(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(str(tmp), ignore_errors=True)
    seconds = time.perf_counter() - start
    logger.info("sample %r generated in %s in %.1f s", profile, target, seconds)
    return seconds


def swap_into_place(new: Path, target: Path) -> None:
    """Replace the folder `target` by `new` (same parent): readers see the old or the new, never a mix."""
    if target.exists():
        stale = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=str(target.parent)))
        target.rename(stale / "set")
        shutil.rmtree(str(stale), ignore_errors=True)
    new.rename(target)
