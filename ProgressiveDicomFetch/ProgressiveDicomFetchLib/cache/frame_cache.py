"""The persistent frame cache: verified entries on disk under a byte cap, least recently used out.

Why frames: the engine fetches frame by frame (or 8 frames of one multi-frame object), so a killed
or cancelled load resumes at frame granularity: every frame that was decoded is on disk and never
asked again. Writes are atomic (temp file + rename: output/atomic.py), so a kill -9 leaves either
a whole entry or a temp file, which the next FrameCache removes once its writer is gone.

Recency is the file's mtime (touched on every hit), so it survives restarts and is shared by
several processes; each process keeps an in-memory LRU index for eviction, built from a scan at
start. Another process's new entries are not in that index until the next start: the cap is then
exceeded by at most what the others wrote meanwhile. Thread-safe. Folders are private (0700):
a frame cache holds patient images.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Union

from ..dicomweb.frames import FrameData
from ..files import atomic_write, remove_stale_temps
from .entry import CorruptEntry, FrameKey, decode_entry, encode_entry
from .location import default_cache_dir

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 2 * 1024 ** 3
ENTRIES = "v1"
PARTIALS = "partial"
SUFFIX = ".frame"


@dataclass
class CacheStats:
    """Counters since the cache was opened (this process only)."""

    hits: int = 0
    hit_bytes: int = 0  # frame bytes served from disk instead of the network
    misses: int = 0
    stores: int = 0
    stored_bytes: int = 0
    evictions: int = 0
    corrupt: int = 0  # entries found damaged and removed


class FrameCache:
    """Frames on disk keyed by FrameKey; `max_bytes` caps the entries' total size."""

    def __init__(self, root: Union[str, "os.PathLike[str]", None] = None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError(f"cache size {max_bytes} must be positive")
        self.root = Path(root) if root is not None else default_cache_dir()
        if self.root.exists() and not self.root.is_dir():
            raise ValueError(f"cache folder {self.root} exists and is not a folder")
        self.max_bytes = int(max_bytes)
        self.stats = CacheStats()
        self._lock = threading.Lock()
        self._index: "OrderedDict[str, int]" = OrderedDict()  # digest -> file size, least recent first
        self._total = 0
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            (self.root / ENTRIES).mkdir(exist_ok=True, mode=0o700)
            (self.root / PARTIALS).mkdir(exist_ok=True, mode=0o700)
        except OSError as error:
            raise ValueError(f"cache folder {self.root} cannot be created: {error.strerror or error}") from None
        self._scan()

    def __repr__(self) -> str:
        return f"FrameCache({str(self.root)!r}, {self._total} of {self.max_bytes} bytes)"

    @property
    def total_bytes(self) -> int:
        return self._total

    def path(self, key: FrameKey) -> Path:
        digest = key.digest()
        return self.root / ENTRIES / digest[:2] / (digest + SUFFIX)

    def partial_path(self, name: str) -> Path:
        """Where a resumable download keeps its bytes (dicomweb/ranged_download.py); `name` is hashed."""
        return self.root / PARTIALS / (hashlib.sha256(name.encode("utf-8")).hexdigest() + ".part")

    # -- reading and writing ----------------------------------------------------------------------
    def get(self, key: FrameKey) -> Optional[FrameData]:
        """The frame, verified; None when absent or damaged (a damaged entry is removed)."""
        path = self.path(key)
        try:
            blob = path.read_bytes()
        except OSError:
            with self._lock:
                self.stats.misses += 1
            return None
        try:
            _, frame = decode_entry(blob, key)
        except CorruptEntry as error:
            logger.warning("cache entry %s dropped: %s", path.name, error)
            self._remove(path.name[:-len(SUFFIX)], path, corrupt=True)
            with self._lock:
                self.stats.misses += 1
            return None
        with contextlib.suppress(OSError):
            os.utime(str(path))  # most recently used, also for other processes
        with self._lock:
            self.stats.hits += 1
            self.stats.hit_bytes += len(frame.data)
            if key.digest() in self._index:
                self._index.move_to_end(key.digest())
        return frame

    def put(self, key: FrameKey, frame: FrameData) -> bool:
        """Store a frame (atomically); False when it is larger than the whole cap or the disk refused."""
        blob = encode_entry(key, frame)
        if len(blob) > self.max_bytes:
            return False
        path = self.path(key)
        digest = key.digest()
        # One lock over the write, the index and the evictions: otherwise a thread evicting a frame
        # could delete the file another thread has just stored again (index and disk would differ).
        with self._lock:
            try:
                path.parent.mkdir(exist_ok=True, mode=0o700)
                with atomic_write(path) as handle:
                    handle.write(blob)
            except OSError as error:
                logger.warning("cache %s: cannot store a frame (%s); loading goes on without it", self.root, error)
                return False
            self._total += len(blob) - self._index.pop(digest, 0)
            self._index[digest] = len(blob)
            self.stats.stores += 1
            self.stats.stored_bytes += len(frame.data)
            for victim in self._over_cap(keep=digest):
                self._unlink(victim)
        return True

    def discard(self, key: FrameKey) -> None:
        """Forget one frame (e.g. it no longer decodes)."""
        self._remove(key.digest(), self.path(key))

    def keys(self) -> List[FrameKey]:
        """The keys of every readable entry (reads each file: for tests and tools, not hot paths)."""
        found = []
        for path in self._entry_files():
            with contextlib.suppress(OSError, CorruptEntry):
                found.append(decode_entry(path.read_bytes())[0])
        return found

    def entry_size(self, key: FrameKey) -> Optional[int]:
        """Bytes of data of a stored frame (None: not stored)."""
        frame = self._peek(key)
        return None if frame is None else len(frame.data)

    def clear(self) -> None:
        for path in self._entry_files():
            with contextlib.suppress(OSError):
                path.unlink()
        with self._lock:
            self._index.clear()
            self._total = 0

    # -- internals ---------------------------------------------------------------------------------
    def _peek(self, key: FrameKey) -> Optional[FrameData]:
        try:
            return decode_entry(self.path(key).read_bytes(), key)[1]
        except (OSError, CorruptEntry):
            return None

    def _entry_files(self) -> Iterator[Path]:
        return (self.root / ENTRIES).glob("*/*" + SUFFIX)

    def _scan(self) -> None:
        """Build the LRU index from the files (oldest mtime first), remove abandoned temp files, evict."""
        found: List[tuple] = []
        for folder in [self.root / ENTRIES, self.root / PARTIALS] + list((self.root / ENTRIES).glob("??")):
            remove_stale_temps(folder)
        for path in self._entry_files():
            with contextlib.suppress(OSError):
                stat = path.stat()
                found.append((stat.st_mtime, path.name[:-len(SUFFIX)], stat.st_size))
        found.sort()
        sizes: Dict[str, int] = OrderedDict((digest, size) for _, digest, size in found)
        with self._lock:
            self._index = OrderedDict(sizes)
            self._total = sum(sizes.values())
            victims = self._over_cap(keep=None)
        for victim in victims:
            self._unlink(victim)
        logger.info("cache %s: %d entries, %.1f MB (cap %.1f MB)", self.root, len(self._index),
                    self._total / 1e6, self.max_bytes / 1e6)

    def _over_cap(self, keep: Optional[str]) -> List[str]:
        """Least recently used digests to delete until under the cap (call with the lock held)."""
        victims = []
        while self._total > self.max_bytes and self._index:
            digest, size = next(iter(self._index.items()))
            if digest == keep and len(self._index) == 1:
                break
            del self._index[digest]
            self._total -= size
            self.stats.evictions += 1
            victims.append(digest)
        return victims

    def _unlink(self, digest: str) -> None:
        with contextlib.suppress(OSError):
            (self.root / ENTRIES / digest[:2] / (digest + SUFFIX)).unlink()

    def _remove(self, digest: str, path: Path, corrupt: bool = False) -> None:
        with self._lock:
            with contextlib.suppress(OSError):
                path.unlink()
            self._total -= self._index.pop(digest, 0)
            if corrupt:
                self.stats.corrupt += 1
