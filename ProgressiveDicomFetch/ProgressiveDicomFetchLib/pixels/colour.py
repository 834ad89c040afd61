"""Colour frames as RGB: YBR_FULL_422 chroma expanded, YBR_FULL(_422) converted exactly as pydicom
does (its own `convert_color_space`), never twice: JPEG decoders already convert YCbCr themselves,
and JPEG 2000 decoders undo YBR_RCT/YBR_ICT (the codestream's colour transform)."""
from __future__ import annotations

import numpy as np

from .. import transfer_syntax as ts
from .description import PixelDescription

CONVERTED_BY_DECODER = (ts.JPEG,)  # lossy JPEG: libjpeg(-turbo) outputs RGB for YCbCr streams


def expand_ybr422(samples: np.ndarray, pixels: PixelDescription) -> np.ndarray:
    """Y0 Y1 Cb Cr per pixel pair (PS3.3 C.7.6.3.1.2) -> Y Cb Cr per pixel, (rows * columns * 3,)."""
    pairs = samples.reshape(-1, 4)
    out = np.empty((pairs.shape[0], 2, 3), samples.dtype)
    out[:, 0, 0], out[:, 1, 0] = pairs[:, 0], pairs[:, 1]
    out[:, :, 1] = pairs[:, 2:3]
    out[:, :, 2] = pairs[:, 3:4]
    return out.reshape(-1)


def to_rgb(stored: np.ndarray, pixels: PixelDescription, family: str) -> np.ndarray:
    """(rows, columns, 3) samples in the frame's colour space -> RGB of the same dtype."""
    if pixels.photometric_interpretation not in ("YBR_FULL", "YBR_FULL_422") or family in CONVERTED_BY_DECODER:
        return stored
    from .compat import convert_color_space

    return np.ascontiguousarray(convert_color_space(stored, "YBR_FULL", "RGB")).astype(stored.dtype, copy=False)
