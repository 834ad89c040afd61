"""pydicom's colour and modality-LUT helpers under one name: `pydicom.pixels` (3.x) or
`pydicom.pixel_data_handlers.util` (2.4, Slicer 5.8). Imported lazily by whoever needs them."""
from __future__ import annotations

try:  # pydicom >= 3
    from pydicom.pixels import apply_color_lut, apply_modality_lut, convert_color_space
except ImportError:  # pydicom 2.4
    from pydicom.pixel_data_handlers.util import (  # type: ignore[no-redef]
        apply_color_lut, apply_modality_lut, convert_color_space)

__all__ = ["apply_color_lut", "apply_modality_lut", "convert_color_space"]
