"""Edge-case CT series (small images, one study): the geometry and storage a loader gets wrong.

Every case samples the same phantom at its own geometry; ``SeriesInfo.expect`` says what is
special about it so tests can check a loader against the generator, not against itself.
"""
from __future__ import annotations

import logging
import math
import zlib
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import phantom
from .manifest import SeriesInfo, StudyInfo
from .writer import SeriesSpec, SeriesWriter, SliceSpec, Storage, ds_value, ijk_matrix

log = logging.getLogger(__name__)

SIZE = 96
SPACING = 3.75
SLICES = 20
DZ = 5.0
Z_CENTER = -120.0  # heart and lungs: plenty of structure
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _rng(key: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(key.encode()))


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def _rounded_iop(row, col) -> List[float]:
    return [ds_value(v) for v in list(_unit(row)) + list(_unit(col))]


def render(rng, origin, iop, rows, cols, spacing, padding_hu=-1024.0, contrast_scale=1.0):
    """Noisy HU of one image plane: origin = centre of pixel (0, 0), spacing = (row, col)."""
    row_dir, col_dir = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    j = np.arange(rows, dtype=float)[:, None, None] * spacing[0]
    i = np.arange(cols, dtype=float)[None, :, None] * spacing[1]
    pts = np.asarray(origin, float) + i * row_dir + j * col_dir
    x, y, z = pts[..., 0], pts[..., 1], pts[..., 2]
    hu = phantom.ct_hu(x, y, z)
    if contrast_scale != 1.0:  # a later phase: vessels and blood pool less enhanced
        enhanced = (hu >= 150.0) & (hu <= 350.0)
        hu = np.where(enhanced, 40.0 + (hu - 40.0) * contrast_scale, hu).astype(np.float32)
    hu = phantom.add_noise(hu, rng)
    np.putmask(hu, ~phantom.fov_mask(x, y), np.float32(padding_hu))
    return hu


def _centred_origin(center, iop, rows, cols, spacing) -> np.ndarray:
    row_dir, col_dir = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    return (np.asarray(center, float) - row_dir * spacing[1] * (cols - 1) / 2.0
            - col_dir * spacing[0] * (rows - 1) / 2.0)


def _spec(study: StudyInfo, key: str, number: int, desc: str, iop, spacing=(SPACING, SPACING),
          storage: Optional[Storage] = None, thickness: float = DZ,
          spacing_between: Optional[float] = DZ, window: Optional[Tuple[float, float]] = (40.0, 400.0),
          **extra: Any) -> SeriesSpec:
    return SeriesSpec(key=key, study=study, series_number=number, description=desc,
                      modality="CT", body_part="CHEST", iop=iop, pixel_spacing=spacing,
                      slice_thickness=thickness, spacing_between=spacing_between,
                      storage=storage or Storage(), window=window, extra=dict(extra))


def _stack(key: str, iop, centers: Sequence[Sequence[float]], storage: Storage,
           rows: int = SIZE, cols: int = SIZE, spacing=(SPACING, SPACING),
           padding_hu: float = -1024.0) -> List[SliceSpec]:
    """Slices centred on ``centers`` (instance numbers in the given order)."""
    rng = _rng(key)
    out = []
    for n, center in enumerate(centers):
        origin = _centred_origin(center, iop, rows, cols, spacing)
        hu = render(rng, origin, iop, rows, cols, spacing, padding_hu)
        out.append(SliceSpec(list(origin), storage.to_stored(hu), n + 1))
    return out


def _axial_centers(n: int = SLICES, dz: float = DZ) -> List[List[float]]:
    z0 = Z_CENTER - dz * (n - 1) / 2.0
    return [[0.0, 0.0, z0 + k * dz] for k in range(n)]


def write_edge_cases(writer: SeriesWriter, study: StudyInfo) -> List[SeriesInfo]:
    out: List[SeriesInfo] = []
    cases = (_oblique, _instance_order, _gap, _localizer, _rescale_float, _signed, _unsigned16,
             _padding, _nonsquare, _tilt, _multiphase, _irregular)
    for number, case in enumerate(cases, start=1):
        out.append(case(writer, study, 100 + number))
    log.debug("wrote %d edge-case series", len(out))
    return out


def _oblique(writer, study, number) -> SeriesInfo:
    key = "edge_oblique"
    rot_x, rot_z = math.radians(20.0), math.radians(12.0)
    row = [math.cos(rot_z), math.sin(rot_z), 0.0]
    col = [-math.sin(rot_z) * math.cos(rot_x), math.cos(rot_z) * math.cos(rot_x), math.sin(rot_x)]
    iop = _rounded_iop(row, col)
    normal = np.cross(iop[:3], iop[3:])
    centers = [list(np.array([0.0, 0.0, Z_CENTER]) + normal * DZ * (k - SLICES / 2.0))
               for k in range(SLICES)]
    spec = _spec(study, key, number, "OBLIQUE 20/12 DEG", iop)
    return writer.write(spec, _stack(key, iop, centers, spec.storage),
                        expect={"oblique": True, "normal": [float(v) for v in normal]})


def _instance_order(writer, study, number) -> SeriesInfo:
    key = "edge_instance_order"
    spec = _spec(study, key, number, "INSTANCE NUMBERS SHUFFLED", AXIAL)
    slices = _stack(key, AXIAL, _axial_centers(), spec.storage)
    perm = _rng(key + "perm").permutation(len(slices))
    for s, inst in zip(slices, perm):
        s.instance_number = int(inst) + 1
    slices.sort(key=lambda s: s.instance_number)  # files written in instance order
    return writer.write(spec, slices, expect={"instance_numbers_follow_position": False})


def _gap(writer, study, number) -> SeriesInfo:
    key = "edge_gap"
    missing = 9
    spec = _spec(study, key, number, "AXIAL WITH MISSING SLICE", AXIAL)
    slices = _stack(key, AXIAL, _axial_centers(), spec.storage)
    positions = [[ds_value(v) for v in s.position] for s in slices]
    truth = spec.storage.to_modality(np.stack([s.stored for s in slices]))
    step = np.asarray(positions[1]) - np.asarray(positions[0])
    ijk = ijk_matrix(AXIAL, spec.pixel_spacing, positions[0], step)
    kept = [s for k, s in enumerate(slices) if k != missing]
    for n, s in enumerate(kept):
        s.instance_number = n + 1
    return writer.write(spec, kept, truth=truth, ijk=ijk, positions=positions,
                        expect={"missing_indices": [missing], "grid_slices": len(slices),
                                "missing_position": positions[missing]})


def _localizer(writer, study, number) -> SeriesInfo:
    key = "edge_localizer"
    spec = _spec(study, key, number, "AXIAL WITH LOCALIZER", AXIAL)
    slices = _stack(key, AXIAL, _axial_centers(), spec.storage)
    coronal = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    loc_rows, loc_cols, loc_spacing = 128, 80, (2.5, 4.5)
    origin = _centred_origin([0.0, 0.0, Z_CENTER], coronal, loc_rows, loc_cols, loc_spacing)
    hu = render(_rng(key + "loc"), origin, coronal, loc_rows, loc_cols, loc_spacing)
    localizer = SliceSpec(list(origin), spec.storage.to_stored(hu), 1, in_volume=False,
                          iop=coronal, pixel_spacing=loc_spacing,
                          extra={"ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"],
                                 "SliceThickness": "2"})
    for s in slices:
        s.instance_number += 1
    info = writer.write(spec, [localizer] + slices, expect={"localizer_index": 0})
    info.expect.update(localizer_sop_uid=info.sop_instance_uids[0], localizer_file=info.files[0],
                       localizer_iop=list(coronal), localizer_rows=loc_rows,
                       localizer_columns=loc_cols)
    return info


def _rescale_float(writer, study, number) -> SeriesInfo:
    key = "edge_rescale_float"
    storage = Storage(bits_stored=12, signed=False, slope=2.5, intercept=-1024.5)
    spec = _spec(study, key, number, "RESCALE SLOPE 2.5 INTERCEPT -1024.5", AXIAL, storage=storage)
    return writer.write(spec, _stack(key, AXIAL, _axial_centers(), storage),
                        expect={"dtype": "float32", "slope": 2.5, "intercept": -1024.5})


def _signed(writer, study, number) -> SeriesInfo:
    key = "edge_signed"
    storage = Storage(bits_stored=12, signed=True, slope=1.0, intercept=0.0)
    spec = _spec(study, key, number, "SIGNED 12 BIT", AXIAL, storage=storage)
    return writer.write(spec, _stack(key, AXIAL, _axial_centers(), storage),
                        expect={"dtype": "int16", "pixel_representation": 1, "bits_stored": 12})


def _unsigned16(writer, study, number) -> SeriesInfo:
    key = "edge_unsigned16"
    storage = Storage(bits_stored=16, signed=False, slope=1.0, intercept=-32768.0)
    spec = _spec(study, key, number, "UNSIGNED 16 BIT INTERCEPT -32768", AXIAL, storage=storage)
    return writer.write(spec, _stack(key, AXIAL, _axial_centers(), storage),
                        expect={"dtype": "int16", "pixel_representation": 0, "bits_stored": 16,
                                "stored_exceeds_int16": True})


def _padding(writer, study, number) -> SeriesInfo:
    key = "edge_padding"
    storage = Storage(bits_stored=16, signed=True, slope=1.0, intercept=0.0, padding=-3024)
    spec = _spec(study, key, number, "SIGNED WITH PIXEL PADDING -3024", AXIAL, storage=storage)
    slices = _stack(key, AXIAL, _axial_centers(), storage, padding_hu=-3024.0)
    count = int(sum(int(np.count_nonzero(s.stored == -3024)) for s in slices))
    return writer.write(spec, slices, expect={
        "padding_stored": -3024, "padding_value": -3024.0, "padding_voxels": count,
        "dtype": storage.out_dtype})


def _nonsquare(writer, study, number) -> SeriesInfo:
    key = "edge_nonsquare"
    spacing = (4.0, 3.0)  # (row spacing, column spacing)
    spec = _spec(study, key, number, "NON-SQUARE PIXELS 4.0 x 3.0", AXIAL, spacing=spacing, window=None)
    slices = _stack(key, AXIAL, _axial_centers(), spec.storage, rows=80, cols=112,
                    spacing=spacing)
    return writer.write(spec, slices, expect={"row_spacing": 4.0, "column_spacing": 3.0, "window_presets": False})


def _tilt(writer, study, number) -> SeriesInfo:
    key = "edge_tilt"
    tilt = math.radians(15.0)
    iop = _rounded_iop([1.0, 0.0, 0.0], [0.0, math.cos(tilt), math.sin(tilt)])
    spec = _spec(study, key, number, "GANTRY TILT 15 DEG", iop, spacing_between=None,
                 GantryDetectorTilt="15")
    # The table moves along z; each tilted plane is centred on the table axis.
    slices = _stack(key, iop, _axial_centers(), spec.storage)
    return writer.write(spec, slices, expect={"tilt_deg": 15.0, "sheared": True,
                                              "slice_step": [0.0, 0.0, DZ]})


def _multiphase(writer, study, number) -> SeriesInfo:
    key = "edge_multiphase"
    n = 16
    spec = _spec(study, key, number, "ARTERIAL AND VENOUS PHASES", AXIAL)
    centers = _axial_centers(n)
    slices: List[SliceSpec] = []
    volumes = []
    for phase, scale in ((1, 1.0), (2, 0.45)):
        rng = _rng(f"{key}{phase}")
        stack = []
        for center in centers:
            origin = _centred_origin(center, AXIAL, SIZE, SIZE, (SPACING, SPACING))
            hu = render(rng, origin, AXIAL, SIZE, SIZE, (SPACING, SPACING), contrast_scale=scale)
            extra: Dict[str, Any] = {
                "AcquisitionNumber": phase, "TemporalPositionIdentifier": phase,
                "NumberOfTemporalPositions": 2, "ContentTime": f"0800{phase * 20:02d}",
                "AcquisitionTime": f"0800{phase * 20:02d}",
                "ImageComments": "ARTERIAL" if phase == 1 else "VENOUS"}
            stack.append(SliceSpec(list(origin), spec.storage.to_stored(hu),
                                   len(slices) + len(stack) + 1, extra=extra))
        volumes.append(spec.storage.to_modality(np.stack([s.stored for s in stack])))
        slices.extend(stack)
    positions = [[ds_value(v) for v in s.position] for s in slices[:n]]
    step = (np.asarray(positions[-1]) - np.asarray(positions[0])) / (n - 1)
    ijk = ijk_matrix(AXIAL, spec.pixel_spacing, positions[0], step)
    return writer.write(spec, slices, truth=np.stack(volumes), ijk=ijk, positions=positions,
                        expect={"phases": 2, "phase_tag": "TemporalPositionIdentifier",
                                "slices_per_phase": n})


def _irregular(writer, study, number) -> SeriesInfo:
    key = "edge_irregular"
    gaps = [5.0] * 6 + [2.5] * 4 + [5.0] * 4 + [7.5] * 2 + [5.0] * 3
    z = [Z_CENTER - sum(gaps) / 2.0]
    for g in gaps:
        z.append(z[-1] + g)
    spec = _spec(study, key, number, "IRREGULAR SLICE SPACING", AXIAL, spacing_between=None)
    slices = _stack(key, AXIAL, [[0.0, 0.0, v] for v in z], spec.storage)
    return writer.write(spec, slices, expect={"irregular": True, "gaps": gaps})
