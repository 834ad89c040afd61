"""Output files of the command line: one NRRD per volume, written atomically."""
from __future__ import annotations

from ..files import atomic_write
from .requirements import MissingPackageError, require, require_nrrd
from .nrrd_writer import ENCODINGS, nrrd_header, output_names, validate_uid, write_series_nrrd, write_volume_nrrd

__all__ = ["ENCODINGS", "MissingPackageError", "atomic_write", "nrrd_header", "output_names", "require", "require_nrrd",
           "validate_uid", "write_series_nrrd", "write_volume_nrrd"]
