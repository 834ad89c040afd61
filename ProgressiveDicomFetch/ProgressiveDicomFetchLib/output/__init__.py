"""Output files of the command line: one NRRD per volume, written atomically."""
from __future__ import annotations

from .atomic import atomic_write
from .requirements import MissingPackageError, require, require_nrrd
from .nrrd_writer import ENCODINGS, nrrd_header, output_names, validate_uid, write_series_nrrd, write_volume_nrrd

__all__ = ["ENCODINGS", "MissingPackageError", "atomic_write", "require", "require_nrrd", "nrrd_header", "output_names", "validate_uid", "write_series_nrrd",
           "write_volume_nrrd"]
