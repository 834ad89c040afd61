"""PALETTE COLOR: stored indices -> RGB through the instance's LUTs (8- or 16-bit entries, segmented
LUTs), applied by pydicom's own `apply_color_lut`, so the result is what pydicom gives."""
from __future__ import annotations

from typing import Callable, Mapping, Optional

import numpy as np
from pydicom import Dataset

from .description import UnsupportedPixels

DESCRIPTORS = ("RedPaletteColorLookupTableDescriptor", "GreenPaletteColorLookupTableDescriptor",
               "BluePaletteColorLookupTableDescriptor")
# keyword -> tag (hex, as in DICOM JSON); the data may come inline or as a BulkDataURI
DATA = {"RedPaletteColorLookupTableData": "00281201", "GreenPaletteColorLookupTableData": "00281202",
        "BluePaletteColorLookupTableData": "00281203",
        "SegmentedRedPaletteColorLookupTableData": "00281221",
        "SegmentedGreenPaletteColorLookupTableData": "00281222",
        "SegmentedBluePaletteColorLookupTableData": "00281223"}


class Palette:
    """The three LUTs of one instance, ready to apply to any number of frames."""

    def __init__(self, luts: Dataset) -> None:
        self._luts = luts

    @classmethod
    def from_dataset(cls, ds: Dataset, bulk_data: Mapping[str, str],
                     fetch: Optional[Callable[[str], bytes]] = None) -> "Palette":
        """From metadata: descriptors inline, data inline or fetched by its BulkDataURI (`fetch`)."""
        luts = Dataset()
        luts.PhotometricInterpretation = "PALETTE COLOR"
        for keyword in ("BitsAllocated", "BitsStored", "PixelRepresentation"):
            if keyword in ds:
                setattr(luts, keyword, ds.get(keyword))
        for keyword in DESCRIPTORS:
            if ds.get(keyword) in (None, ""):
                raise UnsupportedPixels(f"PALETTE COLOR image without {keyword}")
            setattr(luts, keyword, ds.get(keyword))
        for keyword, tag in DATA.items():
            value = ds.get(keyword)
            if value in (None, "") and tag in bulk_data and fetch is not None:
                value = fetch(bulk_data[tag])
            if value not in (None, ""):
                luts.add_new(int(tag, 16), "OW", bytes(value))
        if not any(k in luts for k in list(DATA)[:3]) and not any(k in luts for k in list(DATA)[3:]):
            raise UnsupportedPixels("PALETTE COLOR image without its lookup table data")
        return cls(luts)

    @property
    def entry_dtype(self) -> np.dtype:
        return np.dtype(np.uint8 if int(self._luts.RedPaletteColorLookupTableDescriptor[2]) == 8 else np.uint16)

    def apply(self, indices: np.ndarray) -> np.ndarray:
        """(rows, columns) stored indices -> (rows, columns, 3) RGB in the entries' dtype."""
        from .compat import apply_color_lut

        return np.asarray(apply_color_lut(indices, self._luts)).astype(self.entry_dtype, copy=False)
