"""The progressive volume: one full-size buffer, refined slice by slice until it is exact.

Why it looks like this:
- the buffer has its final shape from the start and is never reallocated, so a Slicer volume
  node can show it (or *be* it: pass the node's array view as `buffer`) from the first slice on;
- each slice carries a `Quality`; a write of worse or equal data is refused, so a late lossy
  preview can never overwrite the exact pixels;
- slices that have not arrived are filled from the sources around them (see fill.py), and
  refilled, O(gap), when a source arrives or changes, so MPR and 3D look right early;
- the better estimate wins: a reduced preview whose exact neighbours are close enough for its
  reduction (fill.YIELD_RULE, linear fill) is replaced by the interpolation between them and
  becomes FILLED again (a late preview there is refused); exact slices are never replaced;
- `take_dirty()` tells the main thread which slices changed since it last looked.

Threads: any number of worker threads may call `write_slice` while the main thread reads. Writes
and fills are serialised by one lock (so is `touch_memory`, which the engine runs on its own
thread to map a new buffer's pages in before the first fill). Refills are coalesced: a write marks its slice stale and one
writer at a time (the drainer) refills every stale neighbourhood, so a burst of arrivals costs one
refill per gap, not one per arrival; a writer that finds a drainer at work leaves its refill to it
and waits for it, so the fill is current when `write_slice` returns (the engine's covered and
coarse checks follow each write: returning at once let "covered" come ~0.4 s late).
The dirty set has its own lock, held only for a set update, so the main thread's `take_dirty()`
never waits for a fill. Readers of `array` take no lock: a slice being written or refilled may be
seen half old, half new until its dirty notice arrives (fine for display: the next notice redraws
it); once all writers are done the buffer is exact. Pixels are written before the quality is
raised and before the dirty notice is posted. `quality`, `qualities`, `covered` and `complete`
read without a lock; qualities only ever rise, except a yielding preview's (SUBRESOLUTION ->
FILLED), so `covered` / `complete` are never reported early.
"""
from __future__ import annotations

import bisect
import logging
import operator
import threading
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from .casting import prepare_slice
from .coarseness import Coarseness, coarseness, run_bounds
from .fill import check_mode, dependents, fill_chunks, yield_reach
from .memory import VolumeTooLargeError, check_fits, format_bytes, zeroed_buffer
from .quality import LOADED, Quality, quality_counts

#: Preview qualities that yield to the interpolation between close exact slices (fill.py).
YIELDING = (Quality.SUBRESOLUTION,)

TOUCH_CHUNK_BYTES = 8 << 20  # touch_memory: the write lock is held for about this much at a time

log = logging.getLogger(__name__)


def _checked_shape(shape: Sequence[int]) -> Tuple[int, ...]:
    """(K, J, I), or (K, J, I, C) for voxels of C components (RGB: the fill works per channel)."""
    dims = tuple(operator.index(n) for n in shape)
    if len(dims) not in (3, 4) or min(dims) < 1:
        raise ValueError(f"volume shape must be three positive sizes (K, J, I) and maybe components C, "
                         f"not {tuple(shape)}")
    return dims


def _adopted(buffer: np.ndarray, shape: Tuple[int, int, int], dtype: np.dtype) -> np.ndarray:
    """The caller's buffer itself (no copy), after checking it is the volume it claims to be."""
    if not isinstance(buffer, np.ndarray):
        raise TypeError(f"buffer must be a numpy array (e.g. slicer.util.arrayFromVolume(node)), not {type(buffer).__name__}")
    if buffer.shape != shape:
        raise ValueError(f"buffer shape {buffer.shape} does not match the volume shape {shape} (K, J, I)")
    if buffer.dtype != dtype:
        raise ValueError(f"buffer dtype {buffer.dtype} does not match the volume dtype {dtype}")
    if not buffer.flags.writeable:
        raise ValueError("buffer is read-only; the volume model writes slices into it")
    return buffer


class ProgressiveVolume:
    """A (K, J, I) volume whose slices arrive in any order, from any thread, at rising quality."""

    def __init__(self, shape: Sequence[int], dtype, fill: str = "linear", buffer: Optional[np.ndarray] = None) -> None:
        self._shape = _checked_shape(shape)
        self._dtype = np.dtype(dtype)
        if self._dtype.kind not in "iuf":
            raise ValueError(f"volume dtype must be integer or float, not {self._dtype}")
        self._fill = check_mode(fill)
        if buffer is not None:
            self._array = _adopted(buffer, self._shape, self._dtype)
        else:
            self._array = self._allocate()
        num_slices = self._shape[0]
        self._quality = np.zeros(num_slices, np.int8)
        self._loaded: List[int] = []  # sorted sources of the fill: the slices with quality >= LOADED
        self._reach = np.zeros(num_slices, np.int8)  # per preview: exact slices this far apart replace it
        self._write_lock = threading.Lock()
        self._stale: Set[int] = set()  # sources added, changed or removed since the last refill (write lock)
        self._drain_guard = threading.Condition()
        self._draining = False
        self._dirty_lock = threading.Lock()
        self._dirty: Set[int] = set()

    @classmethod
    def adopt(cls, buffer: np.ndarray, fill: str = "linear") -> "ProgressiveVolume":
        """A volume over an existing (K, J, I) buffer, such as a volume node's array view."""
        return cls(buffer.shape, buffer.dtype, fill=fill, buffer=buffer)

    def _allocate(self) -> np.ndarray:
        nbytes = self.nbytes
        what = "a {} {} volume".format("x".join(map(str, self._shape)), self._dtype)
        check_fits(nbytes, what)
        try:
            array = zeroed_buffer(self._shape, self._dtype)
        except MemoryError as error:
            raise VolumeTooLargeError(f"{what} needs {format_bytes(nbytes)}, which could not be allocated") from error
        log.debug("allocated %s for %s", format_bytes(nbytes), what)
        return array

    # --- geometry of the buffer ---------------------------------------------------------

    @property
    def array(self) -> np.ndarray:
        """The buffer itself (K, J, I): read it, never write it directly (use `write_slice`)."""
        return self._array

    @property
    def shape(self) -> Tuple[int, ...]:
        return self._shape

    @property
    def components(self) -> int:
        return self._shape[3] if len(self._shape) == 4 else 1

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def num_slices(self) -> int:
        return self._shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes of the buffer (Python ints: no overflow for absurd shapes)."""
        count = 1
        for size in self._shape:
            count *= size
        return count * self._dtype.itemsize

    @property
    def fill(self) -> str:
        return self._fill

    # --- writes ---------------------------------------------------------------------------

    def _index(self, k: int) -> int:
        try:
            index = operator.index(k)
        except TypeError:
            raise TypeError(f"slice index must be an integer, not {type(k).__name__}") from None
        if not 0 <= index < self.num_slices:
            raise IndexError(f"slice index {index} is outside the volume's 0..{self.num_slices - 1}")
        return index

    def write_slice(self, k: int, data: np.ndarray, quality: Quality = Quality.FULL, reduction: int = 1) -> bool:
        """Write slice k unless it already has `quality` or better, or is a reduced preview that
        yields to the exact slices around it; refill its neighbours (coalesced, see above).

        `reduction`: how many times smaller per side the data was before it was brought to full
        size (a preview's; 1: full size). Returns True when written. Raises on a wrong index, shape or quality, and on values
        the volume dtype cannot hold (`casting.PixelRangeError`), writing nothing.
        """
        index = self._index(k)
        level = Quality(quality)
        if level < LOADED:
            raise ValueError(f"only loaded data can be written ({', '.join(q.name for q in Quality if q >= LOADED)}), not {level.name}")
        data = np.asarray(data)
        if data.shape != self._shape[1:]:
            raise ValueError(f"slice {index} has shape {data.shape}; the volume's slices are (J, I) = {self._shape[1:]}")
        if self._quality[index] >= level:  # qualities only rise: no lock needed to say no
            return False
        data = prepare_slice(data, self._dtype)
        with self._write_lock:
            previous = Quality(int(self._quality[index]))
            reach = self._reach_of(level, reduction)
            if previous >= level or self._yields(index, reach):
                return False
            np.copyto(self._array[index], data, casting="unsafe")
            self._quality[index] = level
            self._reach[index] = reach
            if previous < LOADED:
                bisect.insort(self._loaded, index)
            self._stale.add(index)
            if level == Quality.FULL:
                self._stale.update(self._demote_around(index))
        self._mark_dirty([(index,)])
        self._drain()
        return True

    def _reach_of(self, level: Quality, reduction: int) -> int:
        return yield_reach(operator.index(reduction)) if level in YIELDING and self._fill == "linear" else 0

    def _yields(self, k: int, reach: int) -> bool:
        """The ladder's rule: exact slices below and above k at most `reach` apart."""
        if reach < 2:
            return False
        low = max(0, k - reach + 1)
        below = np.flatnonzero(self._quality[low:k] == Quality.FULL)
        above = np.flatnonzero(self._quality[k + 1:k + reach] == Quality.FULL)
        return bool(below.size and above.size and (k + 1 + above[0]) - (low + below[-1]) <= reach)

    def _demote_around(self, k: int) -> List[int]:
        """Previews near a new exact slice k that now yield: FILLED again, no longer sources (write lock)."""
        reach = int(self._reach.max())
        if reach < 2:
            return []
        window = range(max(0, k - reach + 1), min(self.num_slices, k + reach))
        demoted = [j for j in window if self._quality[j] in YIELDING and self._yields(j, int(self._reach[j]))]
        for j in demoted:
            self._quality[j] = Quality.FILLED
            self._reach[j] = 0
            del self._loaded[bisect.bisect_left(self._loaded, j)]
        return demoted

    def _drain(self) -> None:
        """Refill around every stale slice until none is left; one writer at a time does it. The
        fill values are computed without the lock, which is held only to store each chunk."""
        with self._drain_guard:
            if self._draining:
                while self._draining:  # the drainer at work takes this write's refill too
                    self._drain_guard.wait()
                return
            self._draining = True
        stale: Set[int] = set()
        try:
            while True:
                with self._write_lock:
                    stale, self._stale = self._stale, set()
                    if not stale:  # a writer adds under the write lock: none can slip in now
                        with self._drain_guard:
                            self._draining = False
                            self._drain_guard.notify_all()
                        return
                    gaps = self._gaps(stale)
                for (below, above), targets in gaps.items():
                    self._refill(below, above, targets)
        except BaseException:  # e.g. MemoryError: the next write refills what this round left
            with self._write_lock:
                self._stale.update(stale)
            with self._drain_guard:
                self._draining = False
                self._drain_guard.notify_all()
            raise

    def _gaps(self, stale: Set[int]) -> Dict[Tuple[Optional[int], Optional[int]], range]:
        """The FILLED slices whose nearest sources are among `stale`, per gap between consecutive
        sources (write lock held): each gap once, however many of its ends changed."""
        loaded, n, mode = self._loaded, self.num_slices, self._fill
        gaps: Dict[Tuple[Optional[int], Optional[int]], range] = {}

        def add(below: Optional[int], above: Optional[int], targets: range) -> None:
            if targets:
                known = gaps.get((below, above), targets)
                gaps[(below, above)] = range(min(known.start, targets.start), max(known.stop, targets.stop))

        for k in stale:
            position = bisect.bisect_left(loaded, k)
            is_source = position < len(loaded) and loaded[position] == k
            below = loaded[position - 1] if position > 0 else None
            after = position + 1 if is_source else position
            above = loaded[after] if after < len(loaded) else None
            if is_source:
                low, high = dependents(k, below, above, n, mode)
                add(below, k, low)
                add(k, above, high)
            elif below is not None or above is not None:  # a source removed: its whole gap
                add(below, above, range(0 if below is None else below + 1, n if above is None else above))
        return gaps

    def _refill(self, below: Optional[int], above: Optional[int], targets: range) -> None:
        """Store the fill of one gap chunk by chunk while the gap still exists: a source that came
        into it or left it is stale, and the next round refills around it."""
        for start, stop, values in fill_chunks(self._array, targets, below, above, self._fill):
            with self._write_lock:
                if not self._consecutive(below, above):
                    return
                np.copyto(self._array[start:stop], values, casting="unsafe")
                self._quality[start:stop] = Quality.FILLED
            self._mark_dirty([range(start, stop)])

    def _consecutive(self, below: Optional[int], above: Optional[int]) -> bool:
        """`below` and `above` are sources with none between them (None: the end; write lock held)."""
        loaded = self._loaded
        position = 0
        if below is not None:
            position = bisect.bisect_left(loaded, below)
            if position == len(loaded) or loaded[position] != below:
                return False
            position += 1
        return (loaded[position] if position < len(loaded) else None) == above

    def _mark_dirty(self, ranges: Sequence[Sequence[int]]) -> None:
        with self._dirty_lock:
            for targets in ranges:
                self._dirty.update(targets)

    def take_dirty(self) -> List[int]:
        """Slices written or refilled since the last call, sorted; the record is then cleared."""
        with self._dirty_lock:
            dirty, self._dirty = self._dirty, set()
        return sorted(dirty)

    def touch_memory(self, chunk_bytes: int = TOUCH_CHUNK_BYTES) -> int:
        """Write zeros into the slices nothing has reached yet (MISSING: their content means
        nothing), a few MB at a time under the write lock; returns the slices touched.

        Why: the OS maps a new buffer's pages at their first write, and the first fill (one
        slice copied into all others) pays for the whole buffer at once -- measured ~0.3 s for a
        120 MB volume on the test machines, inside the first view. The engine runs this in a
        thread while the first requests wait on the network; numpy releases the GIL while it
        writes, so the other threads go on."""
        per_slice = max(1, self.nbytes // self.num_slices)
        step = max(1, chunk_bytes // per_slice)
        touched = 0
        for start in range(0, self.num_slices, step):
            with self._write_lock:
                firsts, stops = run_bounds(self._quality[start:start + step] == Quality.MISSING)
                for first, stop in zip(firsts + start, stops + start):
                    self._array[first:stop].fill(0)
                    touched += int(stop - first)
        return touched

    # --- state ----------------------------------------------------------------------------

    def quality(self, k: int) -> Quality:
        return Quality(int(self._quality[self._index(k)]))

    def qualities(self) -> np.ndarray:
        """A copy of the per-slice qualities (int8 values of `Quality`)."""
        return self._quality.copy()

    def counts(self) -> Dict[Quality, int]:
        """How many slices are at each quality (every level present, zeros included)."""
        return quality_counts(self._quality)

    @property
    def covered(self) -> bool:
        """No slice is MISSING: the whole volume shows something."""
        return bool(self._quality.min() > Quality.MISSING)

    @property
    def complete(self) -> bool:
        """Every slice is FULL: the buffer is exact."""
        return bool(self._quality.min() == Quality.FULL)

    def coarseness(self, present: Optional[Sequence[bool]] = None) -> Coarseness:
        """How far apart the exact slices are (see coarseness.py); `present` leaves out slices
        that have no frame. Reads the qualities once, without a lock (they only rise)."""
        return coarseness(self._quality.copy(), present)

    def loaded_slices(self) -> List[int]:
        """Sorted indices of the slices with real pixels (quality >= SUBRESOLUTION)."""
        with self._write_lock:
            return list(self._loaded)

    def __repr__(self) -> str:
        counts = ", ".join(f"{level.name}={n}" for level, n in self.counts().items() if n)
        return f"ProgressiveVolume(shape={self._shape}, dtype={self._dtype}, fill={self._fill!r}, {counts})"
