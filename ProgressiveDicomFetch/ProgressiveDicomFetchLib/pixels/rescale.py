"""Stored values -> modality values (Rescale Slope/Intercept), in the narrowest exact dtype.

The volume's dtype is chosen once per series, from what the stored values *can* be, not from
what the first frames happen to hold, so later frames never overflow it. Like Slicer's scalar
volumes (and the sample generator's ground truth):
- integral slope and intercept whose every rescaled value fits int16 -> int16 (CT in HU);
- integral, but not fitting int16 (e.g. unsigned 16-bit) -> int32, still exact;
- a fractional slope or intercept -> float32.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

INT16 = np.iinfo(np.int16)
INT32 = np.iinfo(np.int32)


def _integral(value: float) -> bool:
    return float(value).is_integer()


def rescaled_range(slope: float, intercept: float, stored_range: Tuple[int, int]) -> Tuple[float, float]:
    """Smallest and largest modality value of stored values in `stored_range` (inclusive)."""
    ends = (stored_range[0] * slope + intercept, stored_range[1] * slope + intercept)
    return min(ends), max(ends)


def modality_dtype(slope: float, intercept: float, stored_range: Tuple[int, int]) -> np.dtype:
    """int16, int32 or float32 (module docstring); `stored_range` is e.g. PixelDescription.stored_range."""
    if _integral(slope) and _integral(intercept):
        low, high = rescaled_range(slope, intercept, stored_range)
        if INT16.min <= low and high <= INT16.max:
            return np.dtype(np.int16)
        if INT32.min <= low and high <= INT32.max:
            return np.dtype(np.int32)
    return np.dtype(np.float32)


def stored_to_modality(stored: np.ndarray, slope: float, intercept: float, out_dtype: np.dtype,
                       out: Optional[np.ndarray] = None) -> np.ndarray:
    """slope * stored + intercept as `out_dtype` (into `out` when given, e.g. a slice of the volume).

    Integer output is exact (integer arithmetic, range checked: ValueError instead of wrapping);
    float output is computed in float64 and rounded once to float32.
    """
    out_dtype = np.dtype(out_dtype)
    if out is not None and (out.shape != stored.shape or out.dtype != out_dtype):
        raise ValueError(f"out is {out.dtype}{out.shape}, expected {out_dtype}{stored.shape}")
    if out_dtype.kind in "iu":
        if not (_integral(slope) and _integral(intercept)):
            raise ValueError(f"slope {slope} / intercept {intercept} are not integral: use float32, not {out_dtype}")
        # The range is checked on the stored values' ends (two passes in their own dtype); the
        # arithmetic then runs in int32 where every step fits it (half the memory of int64).
        slope, intercept = int(slope), int(intercept)
        low, high = (int(stored.min()), int(stored.max())) if stored.size else (0, 0)
        ends = sorted((low * slope + intercept, high * slope + intercept))
        limits = np.iinfo(out_dtype)
        if ends[0] < limits.min or ends[1] > limits.max:
            raise ValueError(f"rescaled values {ends[0]}..{ends[1]} do not fit {out_dtype}")
        steps = (low, high, low * slope, high * slope, ends[0], ends[1])
        work = np.int32 if INT32.min <= min(steps) and max(steps) <= INT32.max else np.int64
        if out is not None and slope == 1 and intercept == 0:
            out[...] = stored
            return out
        values = stored.astype(work)
        if slope != 1:
            values *= slope
        if intercept != 0:
            values += intercept
    elif out_dtype.kind == "f":
        values = stored.astype(np.float64)
        if slope != 1:
            values *= slope
        if intercept != 0:
            values += intercept
    else:
        raise ValueError(f"unsupported modality dtype {out_dtype}")
    if out is None:
        return values.astype(out_dtype)
    out[...] = values
    return out


def padding_mask(stored: np.ndarray, padding_value: Optional[int],
                 padding_range_limit: Optional[int] = None) -> Optional[np.ndarray]:
    """True where a stored value is padding (PixelPaddingValue, or the range up to
    PixelPaddingRangeLimit, either order, inclusive; PS3.3 C.7.5.1.1.2); None without padding."""
    if padding_value is None:
        return None
    if padding_range_limit is None:
        return stored == padding_value
    low, high = sorted((int(padding_value), int(padding_range_limit)))
    return (stored >= low) & (stored <= high)
