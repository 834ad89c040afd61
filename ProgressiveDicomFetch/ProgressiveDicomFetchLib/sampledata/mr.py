"""An axial T1 MR series from a real brain: Colin27 (Debian package mricron-data).

Geometry comes from the NIfTI affine: NIfTI is RAS, DICOM is LPS (negate x and y). DICOM columns
run along the reversed NIfTI i axis and rows along the reversed j axis, so a canonical (RAS)
NIfTI gives the usual axial orientation (1,0,0 / 0,1,0).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np

from .manifest import SeriesInfo, StudyInfo
from .writer import MR_IMAGE_STORAGE, SeriesSpec, SeriesWriter, SliceSpec, Storage

log = logging.getLogger(__name__)

COLIN27 = Path("/usr/share/mricron/templates/ch2.nii.gz")
VALUE_SCALE = 8  # uint8 template -> 0..2032, a plausible T1 range in 12 bits
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def source_available(path: Optional[Path] = None) -> bool:
    return (path or COLIN27).is_file()


def write_mr_series(writer: SeriesWriter, study: StudyInfo, step: int = 1,
                    path: Optional[Path] = None) -> SeriesInfo:
    """Write the brain as axial slices (every ``step``-th voxel along each axis)."""
    try:
        import nibabel
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("the MR sample series needs the 'nibabel' package") from exc
    path = path or COLIN27
    if not path.is_file():
        raise FileNotFoundError(f"{path} (Debian package mricron-data) is not installed")
    img = nibabel.load(str(path))
    data = np.asarray(img.dataobj)[::step, ::step, ::step]
    affine = np.asarray(img.affine, float) @ np.diag([step, step, step, 1.0])
    lps = RAS_TO_LPS @ affine
    ni, nj, nk = data.shape
    col_vec, row_vec = -lps[:3, 0], -lps[:3, 1]  # reversed i -> columns, reversed j -> rows
    col_spacing, row_spacing = np.linalg.norm(col_vec), np.linalg.norm(row_vec)
    iop = list(col_vec / col_spacing) + list(row_vec / row_spacing)
    storage = Storage(bits_stored=12, signed=False, slope=1.0, intercept=0.0)
    spec = SeriesSpec(
        key="mr_t1", study=study, series_number=3, description=f"T1 3D AXIAL {step:g}mm",
        modality="MR", body_part="HEAD", iop=iop, pixel_spacing=(row_spacing, col_spacing),
        slice_thickness=float(np.linalg.norm(lps[:3, 2])),
        spacing_between=float(np.linalg.norm(lps[:3, 2])), storage=storage,
        window=(600.0, 1200.0), sop_class_uid=MR_IMAGE_STORAGE,
        image_type=("ORIGINAL", "PRIMARY", "M", "ND"),
        extra={"ScanningSequence": "GR", "SequenceVariant": "SP", "ScanOptions": "",
               "MRAcquisitionType": "3D", "RepetitionTime": "9.7", "EchoTime": "4",
               "FlipAngle": "30", "MagneticFieldStrength": "1.5", "ImagedNucleus": "1H",
               "EchoTrainLength": 1, "SequenceName": "*fl3d1"},
    )
    slices = []
    for k in range(nk):
        image = data[::-1, ::-1, k].T.astype(np.uint16) * VALUE_SCALE
        origin = lps @ np.array([ni - 1, nj - 1, k, 1.0])
        slices.append(SliceSpec(list(origin[:3]), np.ascontiguousarray(image), k + 1))
    info = writer.write(spec, slices, expect={"source": str(path), "value_scale": VALUE_SCALE})
    log.debug("wrote mr_t1: %d slices of %dx%d", nk, nj, ni)
    return info
