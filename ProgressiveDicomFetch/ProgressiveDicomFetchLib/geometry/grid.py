"""Slices on a regular grid along the slice normal, as Slicer's DICOM import builds volumes.

Regular spacing gives one grid slice per frame. Missing slices and spacings that are multiples
of a smallest step give a finer grid with empty slices (filled later from neighbours), so a gap
never shifts the slices after it. Anything else keeps one slice per frame at the mean spacing,
like Slicer, with the largest position error reported. Gantry tilt (slices stepping sideways)
is measured: the volume matrix stays orthogonal like Slicer's, the exact sheared one is kept too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List

import numpy as np

from .frame_record import GeometryError

SPACING_EPSILON_MM = 0.01  # DICOMScalarVolumePlugin's spacingEpsilon
MAX_GRID_GROWTH = 4  # a finer grid may hold at most this many times the slices present
TILT_EPSILON_DEG = 0.01


@dataclass
class SliceGrid:
    """Where each sorted frame goes (`indices`) in a grid of `size` slices `spacing` mm apart."""

    indices: List[int]
    size: int
    spacing: float  # along the normal, mm
    step: np.ndarray  # LPS vector from one grid slice to the next (sheared when tilted)
    missing: List[int] = field(default_factory=list)
    tilt_deg: float = 0.0
    max_position_error_mm: float = 0.0
    messages: List[str] = field(default_factory=list)


def slice_grid(positions: np.ndarray, normal: np.ndarray, single_slice_spacing: float) -> SliceGrid:
    """`positions` (N, 3) sorted by distance along `normal` (ascending)."""
    count = len(positions)
    if count == 1:
        return SliceGrid(indices=[0], size=1, spacing=single_slice_spacing, step=normal * single_slice_spacing)
    distance = positions @ normal
    steps = np.diff(distance)
    if steps.min() < SPACING_EPSILON_MM:
        raise GeometryError(f"two frames at the same position ({distance[int(np.argmin(steps))]:.3f} mm along the normal)")
    mean = (distance[-1] - distance[0]) / (count - 1)
    messages: List[str] = []
    if np.abs(steps - mean).max() <= SPACING_EPSILON_MM:
        indices = list(range(count))
        spacing = mean
    else:
        indices, spacing = _finer_grid(distance, steps)
        if indices is None:
            indices, spacing = list(range(count)), mean
            error = float(np.abs(distance - (distance[0] + np.arange(count) * mean)).max())
            messages.append(f"irregular slice spacing ({steps.min():.3f} to {steps.max():.3f} mm): slices placed "
                            f"every {mean:.3f} mm like Slicer does, up to {error:.3f} mm from their true position")
        elif np.bincount(np.round(steps / spacing).astype(int)).argmax() != 1:  # not just a few gaps
            messages.append(f"irregular slice spacing ({steps.min():.3f} to {steps.max():.3f} mm): "
                            f"slices placed at their true positions on a {spacing:.3f} mm grid")
    size = indices[-1] + 1
    step = (positions[-1] - positions[0]) / indices[-1]
    grid = SliceGrid(indices=indices, size=size, spacing=spacing, step=step, messages=messages)
    present = set(indices)
    grid.missing = [k for k in range(size) if k not in present]
    if grid.missing:
        where = ", ".join(f"{distance[0] + k * spacing:.2f}" for k in grid.missing[:10])
        more = "" if len(grid.missing) <= 10 else f" and {len(grid.missing) - 10} more"
        grid.messages.append(f"{len(grid.missing)} missing slice(s) at {where}{more} mm along the normal "
                             "(indices " + ", ".join(str(k) for k in grid.missing[:10]) + more + "): filled from neighbours")
    expected = positions[0] + np.outer(indices, step)
    grid.max_position_error_mm = float(np.linalg.norm(positions - expected, axis=1).max())
    if grid.max_position_error_mm > max(SPACING_EPSILON_MM, 0.05 * spacing) and not messages:
        grid.messages.append(f"slice positions are not on a line (up to {grid.max_position_error_mm:.3f} mm off)")
    along = float(step @ normal)
    sideways = float(np.linalg.norm(step - along * normal))
    grid.tilt_deg = math.degrees(math.atan2(sideways, along))
    if grid.tilt_deg > TILT_EPSILON_DEG:
        grid.messages.append(f"gantry tilt of {grid.tilt_deg:.2f} degrees: slices are shifted sideways; the volume "
                             "grid is orthogonal (like Slicer without acquisition geometry regularization)")
    return grid


def _finer_grid(distance: np.ndarray, steps: np.ndarray):
    """Indices on a grid whose step is the smallest spacing, if every slice sits on it."""
    smallest = float(steps.min())
    indices = np.round((distance - distance[0]) / smallest).astype(int)
    if indices[-1] + 1 > MAX_GRID_GROWTH * len(distance):
        return None, None
    spacing = (distance[-1] - distance[0]) / indices[-1]
    error = np.abs(distance - distance[0] - indices * spacing).max()
    if error > max(SPACING_EPSILON_MM, 0.05 * spacing) or len(set(indices.tolist())) != len(indices):
        return None, None
    return indices.tolist(), float(spacing)


def ijk_to_lps(origin: np.ndarray, orientation, pixel_spacing, slice_vector: np.ndarray) -> np.ndarray:
    """Columns (i) along the row cosines by the column spacing, rows (j) along the column cosines by
    the row spacing (PixelSpacing is row spacing first), slices (k) along `slice_vector`. Cosines
    are normalised (DS strings round them), so the node's spacing is exactly PixelSpacing."""
    row, column = _unit(orientation[:3]), _unit(orientation[3:])
    matrix = np.eye(4)
    matrix[:3, 0] = row * pixel_spacing[1]
    matrix[:3, 1] = column * pixel_spacing[0]
    matrix[:3, 2] = slice_vector
    matrix[:3, 3] = origin
    return matrix


def normal_of(orientation) -> np.ndarray:
    """The slice normal: row cosines x column cosines (Slicer sorts along it, so IJK is right-handed)."""
    return _unit(np.cross(_unit(orientation[:3]), _unit(orientation[3:])))


def _unit(vector) -> np.ndarray:
    vector = np.asarray(vector, float)
    return vector / np.linalg.norm(vector)
