"""Draws the extension and module icon (128x128 RGBA PNG) with numpy only, so it is reproducible.

The picture: a stack of three slices, the back one coarse (big blocks), the front one fine,
the idea of the extension (coarse first, refined in place). Run: python Resources/make_icon.py
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

SIZE = 128


def _png_bytes(rgba: np.ndarray) -> bytes:
    height, width, _ = rgba.shape
    raw = b"".join(b"\x00" + rgba[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def _slice_image(block: int) -> np.ndarray:
    """A CT-like disc (body, lungs, spine) at a block size: big blocks = coarse preview."""
    n = 80
    y, x = np.mgrid[0:n, 0:n] / (n - 1) * 2 - 1
    img = np.where(x**2 / 0.9 + y**2 / 0.6 < 1, 0.55, 0.05)
    for cx in (-0.42, 0.42):
        img = np.where((x - cx) ** 2 / 0.08 + (y + 0.05) ** 2 / 0.2 < 1, 0.15, img)
    img = np.where(x**2 + (y - 0.45) ** 2 < 0.03, 0.95, img)
    img = np.where((x + 0.1) ** 2 + (y + 0.1) ** 2 < 0.012, 0.85, img)
    if block > 1:
        small = img.reshape(n // block, block, n // block, block).mean(axis=(1, 3))
        img = np.repeat(np.repeat(small, block, axis=0), block, axis=1)
    return img


def draw() -> np.ndarray:
    rgba = np.zeros((SIZE, SIZE, 4), np.uint8)
    # Three slices, back to front, each sheared into a parallelogram and offset.
    for depth, block in enumerate((16, 4, 1)):
        img = _slice_image(block)
        off_x, off_y = 4 + depth * 13, 6 + depth * 14
        tint = np.array([(0.55, 0.75, 1.0), (0.7, 0.9, 1.0), (1.0, 1.0, 1.0)][depth])
        for r in range(80):
            for c in range(80):
                px, py = off_x + c + r // 5, off_y + r
                if 0 <= px < SIZE - 1 and 0 <= py < SIZE - 1:
                    value = (img[r, c] * 255 * tint).astype(np.uint8)
                    rgba[py, px, :3] = value
                    rgba[py, px + 1, :3] = value
                    rgba[py, px : px + 2, 3] = 255
        # Frame around the slice so the stack reads as separate planes.
        for r in range(80):
            for c in (0, 79):
                px, py = off_x + c + r // 5, off_y + r
                rgba[py, px] = (40, 110, 200, 255)
        for c in range(80):
            for r in (0, 79):
                px, py = off_x + c + r // 5, off_y + r
                rgba[py, px : px + 2] = (40, 110, 200, 255)
    return rgba


def main() -> None:
    here = Path(__file__).resolve().parent
    data = _png_bytes(draw())
    for target in (here / "ProgressiveDicomFetch.png", here.parent / "ProgressiveDicomFetch/Resources/Icons/ProgressiveDicomFetch.png"):
        target.write_bytes(data)


if __name__ == "__main__":
    main()
