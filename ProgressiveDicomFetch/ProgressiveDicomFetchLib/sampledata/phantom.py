"""A continuous, anatomy-like chest/abdomen CT phantom in Hounsfield units.

The phantom is a function of patient coordinates (LPS, mm), so every series (axial, thick,
oblique, tilted, localizer) samples the same anatomy at its own geometry. Arguments broadcast:
an axial slice passes x as a row vector, y as a column vector and z as a scalar, which keeps the
cost of each structure to one 2D comparison.

z runs from 0 (upper thorax) down to -300 mm (lower abdomen); +x is the patient's left, +y
posterior (DICOM LPS).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

Z_TOP = 0.0
Z_BOTTOM = -300.0
FOV_RADIUS = 180.0  # reconstruction circle; outside it the scanner writes padding

AIR = -1000.0
FAT = -100.0
SOFT = 40.0
LUNG = -850.0
CONTRAST = 300.0


def _ellipse(x, y, cx, cy, a, b):
    """Inside test of an axis-aligned ellipse; a, b may vary with z (arrays), a <= 0 is empty."""
    a = np.maximum(a, 1e-3)
    b = np.maximum(b, 1e-3)
    return ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 < 1.0


def _bump(z, center, half):
    """1 at center, 0 beyond +-half: organ size profiles along z."""
    return np.sqrt(np.clip(1.0 - ((z - center) / half) ** 2, 0.0, 1.0))


def _paint(out, mask, value):
    np.putmask(out, np.broadcast_to(mask, out.shape), np.float32(value))


# Pulmonary vessels: deterministic line segments (x0, y0, dx/dz, dy/dz, radius).
_VESSELS = np.random.default_rng(20240115).uniform(
    [-130.0, -60.0, -0.6, -0.4, 1.5], [130.0, 60.0, 0.6, 0.4, 4.0], size=(18, 5)
).astype(np.float32)


def ct_hu(x, y, z) -> np.ndarray:
    """Noise-free HU at patient points (broadcastable arrays); float32."""
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32)
    z = np.asarray(z, np.float32)
    shape = np.broadcast(x, y, z).shape
    out = np.full(shape, AIR, np.float32)

    # Body with a subcutaneous fat layer whose thickness varies along z.
    body_a = 165.0 + 10.0 * np.sin(z / 45.0)
    body_b = 118.0 + 4.0 * np.cos(z / 60.0)
    body = _ellipse(x, y, 0.0, 0.0, body_a, body_b)
    fat_scale = 0.90 + 0.03 * np.sin(z / 30.0)
    inner = _ellipse(x, y, 0.0, 0.0, body_a * fat_scale, body_b * fat_scale)
    _paint(out, body, FAT)
    _paint(out, inner, SOFT)

    # Lungs above a domed diaphragm (the right dome is higher), tapering to the apex.
    lung_scale = np.sqrt(np.clip((-z - 5.0) / 70.0, 0.0, 1.0))
    for side, cx, floor in ((-1, -78.0, -160.0), (1, 78.0, -172.0)):
        in_lung = _ellipse(x, y, cx, 5.0, 55.0 * lung_scale, 82.0 * lung_scale)
        dome = floor + 22.0 * (1.0 - ((x - cx) / 60.0) ** 2 - (y / 85.0) ** 2)
        lung = in_lung & (z > dome)
        _paint(out, lung, LUNG)
        for x0, y0, dx, dy, radius in _VESSELS:
            if (x0 < 0) != (side < 0):
                continue
            vx = x0 + dx * (z + 100.0)
            vy = y0 + dy * (z + 100.0)
            _paint(out, lung & _ellipse(x, y, vx, vy, radius, radius), 180.0)

    # Heart: myocardium around a contrast-filled blood pool.
    heart_scale = _bump(z, -122.0, 45.0)
    _paint(out, _ellipse(x, y, 18.0, -28.0, 62.0 * heart_scale, 52.0 * heart_scale), 45.0)
    _paint(out, _ellipse(x, y, 22.0, -30.0, 40.0 * heart_scale, 32.0 * heart_scale), 250.0)

    # Aorta: ascending near the heart, descending beside the spine, drifting to the midline.
    asc = (z > -90.0) & (z < -30.0)
    _paint(out, asc & _ellipse(x, y, 0.0, -32.0, 15.0, 15.0), CONTRAST)
    desc_x = 24.0 + 0.06 * (z + 30.0)
    desc_y = 42.0 + 0.04 * (z + 30.0)
    _paint(out, (z < -25.0) & _ellipse(x, y, desc_x, desc_y, 12.0, 12.0), CONTRAST)
    # Inferior vena cava on the right.
    _paint(out, (z < -150.0) & _ellipse(x, y, -22.0, 30.0, 11.0, 9.0), 160.0)

    # Liver (right), spleen (left), kidneys, stomach with an air-fluid level.
    liver_scale = _bump(z, -205.0, 90.0)
    liver = _ellipse(x, y, -55.0, -5.0, 88.0 * liver_scale, 78.0 * liver_scale) & (z < -150.0)
    _paint(out, liver, 60.0)
    _paint(out, liver & _ellipse(x, y, -40.0, 10.0, 6.0, 6.0), 170.0)
    _paint(out, liver & _ellipse(x, y, -75.0, -20.0, 5.0, 5.0), 170.0)
    spleen_scale = _bump(z, -200.0, 40.0)
    _paint(out, _ellipse(x, y, 85.0, 45.0, 32.0 * spleen_scale, 42.0 * spleen_scale), 50.0)
    kidney_scale = _bump(z, -255.0, 40.0)
    for cx in (-68.0, 68.0):
        _paint(out, _ellipse(x, y, cx, 58.0, 26.0 * kidney_scale, 34.0 * kidney_scale), 150.0)
        _paint(out, _ellipse(x, y, cx, 58.0, 12.0 * kidney_scale, 16.0 * kidney_scale), 20.0)
    stomach_scale = _bump(z, -190.0, 28.0)
    stomach = _ellipse(x, y, 52.0, -38.0, 36.0 * stomach_scale, 30.0 * stomach_scale)
    _paint(out, stomach, 15.0)
    _paint(out, stomach & (y < -45.0), -950.0)

    # Spine: vertebral bodies with cortex, discs every 28 mm, canal, posterior elements.
    disc = np.mod(z, 28.0) < 6.0
    _paint(out, _ellipse(x, y, 0.0, 66.0, 21.0, 20.0), 900.0)
    _paint(out, _ellipse(x, y, 0.0, 66.0, 17.0, 16.0), 260.0)
    _paint(out, disc & _ellipse(x, y, 0.0, 66.0, 21.0, 20.0), 90.0)
    _paint(out, ~disc & _ellipse(x, y, 0.0, 106.0, 26.0, 9.0), 650.0)
    _paint(out, _ellipse(x, y, 0.0, 94.0, 9.0, 8.0), 15.0)

    # Ribs: a ring inside the body wall, in oblique bands (posterior ends higher).
    ring = _ellipse(x, y, 0.0, 0.0, body_a * 0.87, body_b * 0.86) & ~_ellipse(
        x, y, 0.0, 0.0, body_a * 0.81, body_b * 0.79
    )
    band = np.mod(z - 0.3 * y, 26.0) < 8.0
    thorax = (z > -215.0) & (z < -12.0)
    ribs = ring & band & thorax & ~((np.abs(x) < 30.0) & (y < 0.0))
    _paint(out, ribs, 1100.0)
    sternum = thorax & (z > -150.0) & _ellipse(x, y, 0.0, -body_b * 0.84, 16.0, 7.0)
    _paint(out, sternum, 500.0)

    # Patient table under the body.
    _paint(out, (y > 126.0) & (y < 134.0) & (np.abs(x) < 175.0), 150.0)
    return out


def axial_grid(rows: int, cols: int, spacing: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel-centre coordinates of an axial image centred on the patient axis.

    Returns (x row vector, y column vector, origin xy of pixel (0, 0)).
    """
    x0 = -spacing * (cols - 1) / 2.0
    y0 = -spacing * (rows - 1) / 2.0
    x = (x0 + spacing * np.arange(cols, dtype=np.float64)).astype(np.float32)[None, :]
    y = (y0 + spacing * np.arange(rows, dtype=np.float64)).astype(np.float32)[:, None]
    return x, y, np.array([x0, y0])


def fov_mask(x, y) -> np.ndarray:
    """Inside the circular reconstruction field of view (about the patient axis)."""
    return np.asarray(x, np.float32) ** 2 + np.asarray(y, np.float32) ** 2 <= FOV_RADIUS**2


def add_noise(hu: np.ndarray, rng: np.random.Generator, sigma: float = 12.0) -> np.ndarray:
    """Gaussian quantum-like noise; float32 in, float32 out."""
    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    noise *= np.float32(sigma)
    return hu + noise


def axial_volume(
    rows: int, cols: int, spacing: float, z_positions, seed: int, padding_hu: float = -1024.0
) -> np.ndarray:
    """Noisy HU volume [k, row, col] (float32) on an axial grid; padding outside the FOV."""
    x, y, _ = axial_grid(rows, cols, spacing)
    inside = fov_mask(x, y)
    rng = np.random.default_rng(seed)
    out = np.empty((len(z_positions), rows, cols), np.float32)
    for k, z in enumerate(z_positions):
        hu = add_noise(ct_hu(x, y, float(z)), rng)
        np.putmask(hu, ~inside, np.float32(padding_hu))
        out[k] = hu
    return out
