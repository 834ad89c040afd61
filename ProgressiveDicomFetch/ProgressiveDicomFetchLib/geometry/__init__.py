"""Geometry from series metadata: stacks, slice order, IJK->LPS/RAS, gaps, tilt (no pixel data)."""
from __future__ import annotations

from .frame_record import FrameGeometry, GeometryError
from .series_geometry import LPS_TO_RAS, SeriesGeometry, VolumeGeometry, series_geometry

__all__ = ["FrameGeometry", "GeometryError", "LPS_TO_RAS", "SeriesGeometry", "VolumeGeometry", "series_geometry"]
