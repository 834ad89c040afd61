"""Filling slices that have not arrived from the loaded slices around them.

A FILLED slice is a function of its two nearest sources only (never of other FILLED slices), so
the fill after any sequence of arrivals equals the fill computed from scratch from the set of
sources: arrival order does not matter. The sources are the loaded slices, except a preview that
yields to the interpolation between exact slices close around it (`YIELD_RULE`). When
slice k arrives or improves, only the slices whose nearest sources include k change:
`dependents` names them, O(gap); they are recomputed in numpy, a few slices per step.

- linear: straight line along k between the two neighbours, computed in float32 (float64 for
  32/64-bit data), rounded to the nearest integer for integer volumes;
- nearest: a copy of the nearer neighbour; a slice exactly half-way copies the lower one;
- at either end (before the first / after the last loaded slice) both modes copy the one
  neighbour there is: extrapolating a gradient past the data would invent anatomy.
"""
from __future__ import annotations

from typing import Iterator, Optional, Tuple

import numpy as np

FILL_MODES = ("linear", "nearest")

#: When a reduced in-plane preview (SUBRESOLUTION) yields to the linear fill between the exact
#: slices around it: (smallest reduction per side of the preview, exact slices at most this far
#: apart). Measured by Testing/benchmarks/preview_ladder.py (docs/previews.md): with both
#: neighbours exact (2 apart) the interpolation beats a 1/4-size HTJ2K prefix (the 128x128 level of
#: the 512x512 CT: 16.4 against 25.5 HU, 30.4 against 29.3 dB), while 1/2-size prefixes win or tie
#: (MR 217x181: 13.2 / 13.1 HU, 37.5 / 37.3 dB; 128x128 CT: 38.1 / 39.0 HU but 23.7 / 27.2 dB);
#: 3 apart every preview measured wins or is mixed. So: 1/4 size or smaller, 2 apart; else never.
YIELD_RULE = ((4, 2),)
CHUNK_BYTES = 2 * 1024 * 1024  # work values per numpy step: slices of 512x512 float32 two at a time,
# 128x128 ones 32 at a time (measured: 0.16 ms a 512x512 slice, like one slice per step and 35 % less
# than 8 slices in a new temporary each step, whose page faults cost more than the arithmetic)


def check_mode(mode: str) -> str:
    if mode not in FILL_MODES:
        raise ValueError(f"fill must be one of {', '.join(FILL_MODES)}, not {mode!r}")
    return mode


def yield_reach(reduction: int) -> int:
    """How far apart exact slices may be for a preview reduced `reduction` times per side to yield
    to their interpolation (0: never; see YIELD_RULE)."""
    return max((reach for smallest, reach in YIELD_RULE if reduction >= smallest), default=0)


def work_dtype(dtype: np.dtype) -> np.dtype:
    """float32 where it is exact enough (8/16-bit integers, float16/32), float64 otherwise."""
    if (dtype.kind in "iub" and dtype.itemsize <= 2) or (dtype.kind == "f" and dtype.itemsize <= 4):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def dependents(
    k: int, below: Optional[int], above: Optional[int], num_slices: int, mode: str
) -> Tuple[range, range]:
    """The unloaded slices below and above loaded slice k whose fill depends on k.

    `below` / `above` are the nearest loaded slices on each side (None at an end).
    """
    if below is None:
        low_start = 0
    elif mode == "nearest":
        low_start = (below + k) // 2 + 1  # the half-way slice belongs to `below`
    else:
        low_start = below + 1
    if above is None:
        high_stop = num_slices
    elif mode == "nearest":
        high_stop = (k + above) // 2 + 1  # the half-way slice belongs to k
    else:
        high_stop = above
    return range(low_start, k), range(k + 1, high_stop)


def fill_chunks(array: np.ndarray, targets: range, below: Optional[int], above: Optional[int],
                mode: str) -> Iterator[Tuple[int, int, np.ndarray]]:
    """The values of `targets` (all strictly between `below` and `above`) from those two slices, as
    (start, stop, values) for `array[start:stop]`: copies are the source slice itself (broadcast on
    assignment), interpolation comes a few slices at a time, computed when asked for (store each
    chunk before asking for the next), so the caller may take a lock only to store it."""
    if not targets:
        return
    if below is None or above is None:
        source = above if below is None else below
        if source is None:
            raise ValueError("filling needs at least one loaded neighbour")
        yield targets.start, targets.stop, array[source]
    elif mode == "nearest":
        split = (below + above) // 2 + 1  # first slice that copies `above`
        low, high = range(targets.start, min(split, targets.stop)), range(max(split, targets.start), targets.stop)
        if low:
            yield low.start, low.stop, array[below]
        if high:
            yield high.start, high.stop, array[above]
    else:
        yield from _interpolated(array, targets, below, above)


def _interpolated(array: np.ndarray, targets: range, below: int, above: int) -> Iterator[Tuple[int, int, np.ndarray]]:
    """Linear along k, a few slices per numpy expression (CHUNK_BYTES; no Python step per slice of a
    small volume), in one reused buffer. Same arithmetic as one slice at a time: start + step * w
    with w = (j - below) / span rounded once to the work dtype. Each chunk is valid until the next."""
    work = work_dtype(array.dtype)
    start = array[below].astype(work)
    step = array[above].astype(work)
    step -= start
    span = float(above - below)
    integer = array.dtype.kind in "iub"
    chunk = max(1, min(len(targets), CHUNK_BYTES // max(1, start.nbytes)))
    buffer = np.empty((chunk,) + start.shape, work)
    trailing = (1,) * start.ndim
    for first in range(targets.start, targets.stop, chunk):
        last = min(first + chunk, targets.stop)
        weights = ((np.arange(first, last) - below) / span).astype(work).reshape((-1,) + trailing)
        value = buffer[:last - first]
        np.multiply(step, weights, out=value)
        value += start
        if integer:
            np.rint(value, out=value)
        yield first, last, value
