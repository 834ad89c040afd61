"""Filling slices that have not arrived from the loaded slices around them.

A FILLED slice is a function of its two nearest loaded neighbours only (never of other FILLED
slices), so the fill after any sequence of arrivals equals the fill computed from scratch from
the set of loaded slices: arrival order does not matter. When slice k arrives or improves,
only the slices whose nearest neighbours include k change: `dependents` names them, O(gap).

- linear: straight line along k between the two neighbours, computed in float32 (float64 for
  32/64-bit data), rounded to the nearest integer for integer volumes;
- nearest: a copy of the nearer neighbour; a slice exactly half-way copies the lower one;
- at either end (before the first / after the last loaded slice) both modes copy the one
  neighbour there is: extrapolating a gradient past the data would invent anatomy.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

FILL_MODES = ("linear", "nearest")


def check_mode(mode: str) -> str:
    if mode not in FILL_MODES:
        raise ValueError(f"fill must be one of {', '.join(FILL_MODES)}, not {mode!r}")
    return mode


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


def fill_between(array: np.ndarray, targets: range, below: Optional[int], above: Optional[int], mode: str) -> None:
    """Recompute `targets` (all strictly between `below` and `above`) from those two slices."""
    if not targets:
        return
    if below is None or above is None:
        source = above if below is None else below
        if source is None:
            raise ValueError("filling needs at least one loaded neighbour")
        array[targets.start:targets.stop] = array[source]
    elif mode == "nearest":
        split = (below + above) // 2 + 1  # first slice that copies `above`
        low, high = range(targets.start, min(split, targets.stop)), range(max(split, targets.start), targets.stop)
        if low:
            array[low.start:low.stop] = array[below]
        if high:
            array[high.start:high.stop] = array[above]
    else:
        _interpolate(array, targets, below, above)


def _interpolate(array: np.ndarray, targets: range, below: int, above: int) -> None:
    """Linear along k, one slice at a time: two slice-sized temporaries, whatever the gap."""
    work = work_dtype(array.dtype)
    start = array[below].astype(work)
    step = array[above].astype(work)
    step -= start
    value = np.empty_like(start)
    span = float(above - below)
    integer = array.dtype.kind in "iub"
    for j in targets:
        np.multiply(step, (j - below) / span, out=value)
        value += start
        if integer:
            np.rint(value, out=value)
        np.copyto(array[j], value, casting="unsafe")
