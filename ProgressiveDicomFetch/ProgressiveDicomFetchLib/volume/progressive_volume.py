"""The progressive volume: one full-size buffer, refined slice by slice until it is exact.

Why it looks like this:
- the buffer has its final shape from the start and is never reallocated, so a Slicer volume
  node can show it (or *be* it: pass the node's array view as `buffer`) from the first slice on;
- each slice carries a `Quality`; a write of worse or equal data is refused, so a late lossy
  preview can never overwrite the exact pixels;
- slices that have not arrived are filled from the loaded ones (see fill.py), and refilled,
  O(gap), each time a neighbour arrives, so MPR and 3D look right early;
- `take_dirty()` tells the main thread which slices changed since it last looked.

Threads: any number of worker threads may call `write_slice` while the main thread reads. Writes
and fills are serialised by one lock; the dirty set has its own lock, held only for a set update,
so the main thread's `take_dirty()` never waits for a fill. Readers of `array` take no lock: a
slice being written or refilled may be seen half old, half new until its dirty notice arrives
(fine for display: the next notice redraws it); once all writers are done the buffer is exact.
Pixels are written before the quality is raised and before the dirty notice is posted.
`quality`, `qualities`, `covered` and `complete` read without a lock; qualities only ever rise,
so `covered` / `complete` are never reported early.
"""
from __future__ import annotations

import bisect
import logging
import operator
import threading
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from .casting import prepare_slice
from .coarseness import Coarseness, coarseness
from .fill import check_mode, dependents, fill_between
from .memory import VolumeTooLargeError, check_fits, format_bytes
from .quality import LOADED, Quality

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
        self._loaded: List[int] = []  # sorted indices of slices with quality >= LOADED
        self._write_lock = threading.Lock()
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
            array = np.zeros(self._shape, self._dtype)
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

    def write_slice(self, k: int, data: np.ndarray, quality: Quality = Quality.FULL) -> bool:
        """Write slice k unless it already has `quality` or better; refill its neighbours.

        Returns True when written. Raises on a wrong index, shape or quality, and on values
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
            if previous >= level:
                return False
            np.copyto(self._array[index], data, casting="unsafe")
            self._quality[index] = level
            if previous < LOADED:
                bisect.insort(self._loaded, index)
            changed = self._refill_around(index)
        self._mark_dirty(index, changed)
        return True

    def _refill_around(self, k: int) -> List[range]:
        """Recompute the FILLED slices that depend on loaded slice k (call with the write lock)."""
        position = bisect.bisect_left(self._loaded, k)
        below = self._loaded[position - 1] if position > 0 else None
        above = self._loaded[position + 1] if position + 1 < len(self._loaded) else None
        low, high = dependents(k, below, above, self.num_slices, self._fill)
        fill_between(self._array, low, below, k, self._fill)
        fill_between(self._array, high, k, above, self._fill)
        for targets in (low, high):
            self._quality[targets.start:targets.stop] = Quality.FILLED
        return [low, high]

    def _mark_dirty(self, k: int, ranges: List[range]) -> None:
        with self._dirty_lock:
            self._dirty.add(k)
            for targets in ranges:
                self._dirty.update(targets)

    def take_dirty(self) -> List[int]:
        """Slices written or refilled since the last call, sorted; the record is then cleared."""
        with self._dirty_lock:
            dirty, self._dirty = self._dirty, set()
        return sorted(dirty)

    # --- state ----------------------------------------------------------------------------

    def quality(self, k: int) -> Quality:
        return Quality(int(self._quality[self._index(k)]))

    def qualities(self) -> np.ndarray:
        """A copy of the per-slice qualities (int8 values of `Quality`)."""
        return self._quality.copy()

    def counts(self) -> Dict[Quality, int]:
        """How many slices are at each quality (every level present, zeros included)."""
        tally = np.bincount(self._quality, minlength=len(Quality))
        return {level: int(tally[level]) for level in Quality}

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
