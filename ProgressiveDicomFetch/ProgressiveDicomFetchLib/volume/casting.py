"""Decoded pixels -> the volume's dtype, without silent wrap-around.

numpy's assignment casts unsafely: 40000 written into int16 becomes -25536 and a CT looks like
noise. The volume model validates the range first (cheap: one min/max per slice) and raises
with the numbers, so a wrong rescale or dtype choice upstream is caught at the first slice.
"""
from __future__ import annotations

import numpy as np


class PixelRangeError(ValueError):
    """Pixel values that the volume's dtype cannot hold."""


def _range_error(low: float, high: float, dtype: np.dtype, lo_ok: float, hi_ok: float) -> PixelRangeError:
    return PixelRangeError(
        f"slice values [{low:g}, {high:g}] do not fit the volume dtype {dtype} [{lo_ok:g}, {hi_ok:g}]; "
        "choose a wider volume dtype (rescale slope/intercept applied?)"
    )


def prepare_slice(data: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """`data` ready for `np.copyto(target, result, casting="unsafe")` to write it exactly.

    Integer volumes: floats are rounded to the nearest integer (rescaled pixels such as
    1023.9999 stay 1024) and every value must be finite and in range. Float volumes: values
    beyond the dtype's largest finite value are refused rather than turned into inf.
    """
    data = np.asarray(data)
    if data.dtype.kind not in "biuf":
        raise TypeError(f"slice dtype {data.dtype} cannot be written into a {dtype} volume")
    if data.size == 0 or np.can_cast(data.dtype, dtype, casting="safe"):
        return data
    if dtype.kind in "iu":
        if data.dtype.kind == "f":
            if not np.isfinite(data).all():
                raise PixelRangeError(f"slice has NaN or infinite values; the volume dtype {dtype} cannot hold them")
            data = np.rint(data)
        info = np.iinfo(dtype)
        low, high = data.min(), data.max()
        if low < info.min or high > info.max:
            raise _range_error(float(low), float(high), dtype, info.min, info.max)
        return data
    if dtype.kind == "f" and data.dtype.kind == "f":
        limit = float(np.finfo(dtype).max)
        low, high = float(np.nanmin(data)), float(np.nanmax(data))
        if low < -limit or high > limit:
            raise _range_error(low, high, dtype, -limit, limit)
        return data
    # Large integers into a float volume: rounding, never wrap-around; accepted.
    return data
