"""One Enhanced CT multi-frame object: geometry lives in functional groups, not top-level tags.

Frames are written head first (descending z), so a loader that trusts frame order instead of
PlanePositionSequence gets the volume upside down.
"""
from __future__ import annotations

import logging
from typing import List

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian

from .manifest import SeriesInfo, StudyInfo
from .writer import (SeriesSpec, SeriesWriter, Storage, base_dataset, ds_text, ds_value,
                     ijk_matrix, save_dataset, uid)

log = logging.getLogger(__name__)

ENHANCED_CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2.1"
FRAME_CONTENT_SEQUENCE = Tag(0x0020, 0x9111)
STACK_ID = Tag(0x0020, 0x9056)
IN_STACK_POSITION = Tag(0x0020, 0x9057)


def _item(**values) -> Dataset:
    item = Dataset()
    for name, value in values.items():
        setattr(item, name, value)
    return item


def _shared_groups(spacing: List[float], thickness: float, iop: List[float],
                   storage: Storage) -> Dataset:
    return _item(
        PixelMeasuresSequence=DicomSequence([_item(
            PixelSpacing=[ds_text(v) for v in spacing], SliceThickness=ds_text(thickness),
            SpacingBetweenSlices=ds_text(thickness))]),
        PlaneOrientationSequence=DicomSequence([_item(
            ImageOrientationPatient=[ds_text(v) for v in iop])]),
        PixelValueTransformationSequence=DicomSequence([_item(
            RescaleIntercept=ds_text(storage.intercept), RescaleSlope=ds_text(storage.slope),
            RescaleType="HU")]),
        FrameVOILUTSequence=DicomSequence([_item(WindowCenter="40", WindowWidth="400")]),
        CTImageFrameTypeSequence=DicomSequence([_item(
            FrameType=["ORIGINAL", "PRIMARY", "AXIAL", "NONE"], PixelPresentation="MONOCHROME",
            VolumetricProperties="VOLUME", VolumeBasedCalculationTechnique="NONE")]),
    )


def _dimensions(ds: Dataset, org_uid: str) -> None:
    ds.DimensionOrganizationSequence = DicomSequence([_item(DimensionOrganizationUID=org_uid)])
    ds.DimensionIndexSequence = DicomSequence([
        _item(DimensionOrganizationUID=org_uid, DimensionIndexPointer=STACK_ID,
              FunctionalGroupPointer=FRAME_CONTENT_SEQUENCE, DimensionDescriptionLabel="Stack"),
        _item(DimensionOrganizationUID=org_uid, DimensionIndexPointer=IN_STACK_POSITION,
              FunctionalGroupPointer=FRAME_CONTENT_SEQUENCE,
              DimensionDescriptionLabel="In-Stack Position"),
    ])


def write_enhanced_ct(writer: SeriesWriter, study: StudyInfo, source: SeriesInfo,
                      step: int = 1) -> SeriesInfo:
    """Multi-frame copy of ``source`` (an axial CT series), in-plane downsampled by ``step``."""
    key = "enhanced_ct"
    storage = Storage()
    truth_src = np.load(str(writer.root / source.truth))[:, ::step, ::step]
    stored_asc = storage.to_stored(truth_src.astype(np.float32))
    truth = storage.to_modality(stored_asc)
    m_src = np.asarray(source.ijk_to_lps)
    spacing = [ds_value(v * step) for v in source.pixel_spacing]
    iop = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    positions_asc = [list(p) for p in source.slice_positions]
    n, rows, cols = stored_asc.shape
    thickness = float(source.slice_thickness or abs(m_src[2, 2]))
    spec = SeriesSpec(key=key, study=study, series_number=5, description="ENHANCED CT MULTIFRAME",
                      modality="CT", body_part="CHEST", iop=iop, pixel_spacing=spacing,
                      slice_thickness=thickness, storage=storage, window=(40.0, 400.0),
                      sop_class_uid=ENHANCED_CT_STORAGE,
                      image_type=("ORIGINAL", "PRIMARY", "AXIAL", "NONE"))
    sop = uid("sop", key)
    ds = base_dataset(study, spec, sop, ExplicitVRLittleEndian)
    ds.KVP = "120"
    ds.InstanceNumber = 1
    ds.ContentQualification = "PRODUCT"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    ds.AcquisitionContextSequence = DicomSequence([])
    ds.NumberOfFrames = n
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, storage.bits_stored, storage.bits_stored - 1
    ds.PixelRepresentation = 0
    _dimensions(ds, uid("dimorg", key))
    ds.SharedFunctionalGroupsSequence = DicomSequence([
        _shared_groups(spacing, thickness, iop, storage)])
    frames = []
    order = list(range(n - 1, -1, -1))  # head first: frame 1 is the highest z
    for frame_no, k in enumerate(order, start=1):
        frames.append(_item(
            PlanePositionSequence=DicomSequence([_item(
                ImagePositionPatient=[ds_text(v) for v in positions_asc[k]])]),
            FrameContentSequence=DicomSequence([_item(
                StackID="1", InStackPositionNumber=k + 1, DimensionIndexValues=[1, k + 1],
                FrameAcquisitionNumber=frame_no)]),
        ))
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(frames)
    ds.PixelData = np.ascontiguousarray(stored_asc[order]).tobytes()
    ds["PixelData"].VR = "OW"
    rel = f"{study.key}/{key}/IM00001.dcm"
    save_dataset(ds, writer.root / rel)
    ijk = ijk_matrix(iop, spacing, positions_asc[0], m_src[:3, 2])
    info = SeriesInfo(
        key=key, study_key=study.key, study_uid=study.study_uid, series_uid=spec.series_uid,
        series_number=spec.series_number, modality="CT", description=spec.description,
        sop_class_uid=ENHANCED_CT_STORAGE, transfer_syntax_uid=ExplicitVRLittleEndian,
        files=[rel], sop_instance_uids=[sop], num_instances=1, num_slices=n, num_frames=n,
        rows=rows, columns=cols, pixel_spacing=spacing, slice_thickness=thickness,
        ijk_to_lps=ijk.tolist(), slice_positions=positions_asc,
        truth=writer.save_truth(key, truth), truth_shape=list(truth.shape), dtype=str(truth.dtype),
        source_key=None, expect={"frame_order": "descending_z", "multiframe": True})
    writer.add(info, study)
    log.debug("wrote %s: %d frames", key, n)
    return info

