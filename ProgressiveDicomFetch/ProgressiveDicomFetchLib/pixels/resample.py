"""Reduced images -> full-size slices: separable bilinear resampling in numpy (no scipy in Slicer 5.8).

Pixel centres are aligned (a reduced pixel covers `factor` full pixels), so a thumbnail made of
block means lands where its blocks were; edges are clamped.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np


def _axis_weights(size_in: int, size_out: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    scale = size_in / float(size_out)
    position = np.clip((np.arange(size_out) + 0.5) * scale - 0.5, 0, size_in - 1)
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, size_in - 1)
    return low, high, (position - low).astype(np.float32)


def upsample(image: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """`image` (h, w) resampled to `shape` (rows, columns) as float32, bilinear."""
    array = np.asarray(image, dtype=np.float32)
    if array.ndim != 2 or min(array.shape) < 1:
        raise ValueError(f"a reduced image must be 2-D and not empty, not of shape {array.shape}")
    if array.shape == tuple(shape):
        return array
    low, high, weight = _axis_weights(array.shape[1], shape[1])  # columns first, on the few rows (faster)
    columns = array[:, low]
    columns *= 1 - weight
    columns += array[:, high] * weight
    low, high, weight = _axis_weights(array.shape[0], shape[0])
    full = columns[low]
    full *= (1 - weight)[:, None]
    full += columns[high] * weight[:, None]
    return full
