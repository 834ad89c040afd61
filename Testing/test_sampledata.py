"""The sample-data generator: deterministic, valid DICOM, geometry and pixels equal to its truth."""
from __future__ import annotations

import filecmp
import logging
import time
import warnings
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pydicom
import pytest

from ProgressiveDicomFetchLib.sampledata import SampleManifest, generate
from ProgressiveDicomFetchLib.sampledata.transcode import progression_order

log = logging.getLogger(__name__)

PATIENT_TAGS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                "StudyTime", "StudyDescription", "AccessionNumber", "ReferringPhysicianName",
                "StudyID", "Modality", "SeriesNumber", "SeriesDescription", "BodyPartExamined",
                "InstanceNumber", "SOPClassUID", "Manufacturer", "FrameOfReferenceUID")
COPY_SUFFIXES = ("implicit", "rle", "jpegll", "jpegls", "j2k", "htj2k")


def _read(manifest: SampleManifest, rel: str) -> pydicom.Dataset:
    return pydicom.dcmread(str(manifest.root / rel))


def _frames(ds: pydicom.Dataset) -> np.ndarray:
    """Stored values via pydicom's own decoders; imagecodecs only if pydicom cannot (HTJ2K)."""
    try:
        return ds.pixel_array
    except Exception:  # pragma: no cover - depends on installed pydicom plugins
        if "1.2.840.10008.1.2.4.20" not in str(ds.file_meta.TransferSyntaxUID):
            raise
        import imagecodecs

        frames = [imagecodecs.htj2k_decode(f) for f in _encapsulated_frames(ds.PixelData)]
        return np.stack(frames) if len(frames) > 1 else frames[0]


def _encapsulated_frames(data: bytes):
    """pydicom 3 names it generate_frames, pydicom 2.4 generate_pixel_data_frame."""
    from pydicom import encaps

    generate = getattr(encaps, "generate_frames", None) or encaps.generate_pixel_data_frame
    return generate(data)


def _modality(ds: pydicom.Dataset, stored: np.ndarray) -> np.ndarray:
    slope = float(getattr(ds, "RescaleSlope", 1.0))
    intercept = float(getattr(ds, "RescaleIntercept", 0.0))
    return stored.astype(np.float64) * slope + intercept


def _normal(iop) -> np.ndarray:
    n = np.cross(np.asarray(iop[:3], float), np.asarray(iop[3:], float))
    return n / np.linalg.norm(n)


def _load_volume(manifest: SampleManifest, key: str) -> np.ndarray:
    """Single-frame series -> modality volume sorted along the slice normal (skips localizers)."""
    info = manifest.series(key)
    skip = info.expect.get("localizer_sop_uid")
    items: List[Tuple[float, np.ndarray]] = []
    for rel in info.files:
        ds = _read(manifest, rel)
        if ds.SOPInstanceUID == skip:
            continue
        dist = float(np.dot(_normal(ds.ImageOrientationPatient), ds.ImagePositionPatient))
        items.append((dist, _modality(ds, _frames(ds))))
    items.sort(key=lambda item: item[0])
    return np.stack([a for _, a in items])


def test_small_is_deterministic(tmp_path: Path, sample_small: SampleManifest) -> None:
    times = []
    roots = []
    for name in ("a", "b"):
        start = time.perf_counter()
        generate(tmp_path / name, "small", include_mr=sample_small.has("mr_t1"))
        times.append(time.perf_counter() - start)
        roots.append(tmp_path / name)
    log.info("small profile generated in %.2f s and %.2f s", *times)  # a figure, not a timed assert
    a, b = (SampleManifest.load(r) for r in roots)
    for m in (a, b):
        m.generation_seconds = 0.0
    assert a.to_json() == b.to_json()
    cached = sample_small.to_json()
    cached["generation_seconds"] = 0.0
    assert a.to_json() == cached, "the cached set differs from a fresh one of the same version"
    rels = [rel for s in a.series_list for rel in s.files] + sorted(
        {s.truth for s in a.series_list})
    assert len(rels) > 500
    for rel in rels:
        assert filecmp.cmp(str(roots[0] / rel), str(roots[1] / rel), shallow=False), rel
        assert filecmp.cmp(str(roots[0] / rel), str(sample_small.root / rel), shallow=False), rel
    uids = [u for s in a.series_list for u in s.sop_instance_uids]
    assert len(set(uids)) == len(uids)
    assert len({s.series_uid for s in a.series_list}) == len(a.series_list)


def test_studies_discriminate(sample_small: SampleManifest) -> None:
    studies = sample_small.studies
    assert len(studies) >= 2
    for field in ("patient_name", "patient_id", "study_date", "accession_number", "study_uid"):
        values = [getattr(s, field) for s in studies]
        assert len(set(values)) == len(values), field
    assert all("^" in s.patient_name for s in studies)
    modalities = {sample_small.series(k).modality for s in studies for k in s.series_keys}
    assert "CT" in modalities


def _check_file(manifest: SampleManifest, key: str, rel: str, index: int) -> None:
    info = manifest.series(key)
    study = manifest.study(info.study_key)
    raw = (manifest.root / rel).read_bytes()
    assert raw[128:132] == b"DICM", "preamble + DICM prefix"
    ds = pydicom.dcmread(str(manifest.root / rel))
    for tag in PATIENT_TAGS:
        assert tag in ds, f"{key}: {tag} missing"
    assert str(ds.PatientName) == study.patient_name
    assert ds.StudyInstanceUID == info.study_uid == study.study_uid
    assert ds.SeriesInstanceUID == info.series_uid
    assert ds.SOPInstanceUID == info.sop_instance_uids[index]
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.file_meta.TransferSyntaxUID == info.transfer_syntax_uid
    assert ds.SOPClassUID == info.sop_class_uid == ds.file_meta.MediaStorageSOPClassUID


def _check_geometry(manifest: SampleManifest, key: str) -> None:
    info = manifest.series(key)
    m = np.asarray(info.ijk_to_lps)
    positions = np.asarray(info.slice_positions)
    if not info.expect.get("irregular"):
        k = np.arange(len(positions))
        expected = m[:3, 3] + k[:, None] * m[:3, 2]
        np.testing.assert_allclose(positions, expected, atol=1e-3)
    seen = set()
    localizer = info.expect.get("localizer_sop_uid")
    for index, rel in enumerate(info.files):
        _check_file(manifest, key, rel, index)
        ds = _read(manifest, rel)
        if info.num_frames > 1 and info.num_instances == 1:
            iop = ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0]
            spacing = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
            ipps = [f.PlanePositionSequence[0].ImagePositionPatient
                    for f in ds.PerFrameFunctionalGroupsSequence]
            iop = iop.ImageOrientationPatient
            assert int(ds.NumberOfFrames) == info.num_frames
        else:
            iop, spacing, ipps = ds.ImageOrientationPatient, ds.PixelSpacing, [
                ds.ImagePositionPatient]
        if ds.SOPInstanceUID == localizer:
            assert "LOCALIZER" in ds.ImageType
            volume_normal = np.cross(m[:3, 0], m[:3, 1])
            volume_normal /= np.linalg.norm(volume_normal)
            assert abs(np.dot(_normal(iop), volume_normal)) < 0.5
            continue
        assert (int(ds.Rows), int(ds.Columns)) == (info.rows, info.columns)
        np.testing.assert_allclose([float(v) for v in spacing], info.pixel_spacing)
        np.testing.assert_allclose(np.asarray(iop[:3], float) * info.pixel_spacing[1], m[:3, 0],
                                   atol=1e-5)
        np.testing.assert_allclose(np.asarray(iop[3:], float) * info.pixel_spacing[0], m[:3, 1],
                                   atol=1e-5)
        for ipp in ipps:
            d = np.linalg.norm(positions - np.asarray(ipp, float), axis=1)
            k = int(np.argmin(d))
            assert d[k] < 1e-3, f"{key}: {rel} IPP {ipp} is not on the manifest's grid"
            seen.add(k)
    missing = set(info.expect.get("missing_indices", []))
    assert seen == set(range(len(positions))) - missing, key


def test_every_file_loads_with_consistent_geometry(sample_small: SampleManifest) -> None:
    for info in sample_small.series_list:
        _check_geometry(sample_small, info.key)
    assert len(sample_small.all_files()) == sum(s.num_instances for s in sample_small.series_list)


def _check_copies(manifest: SampleManifest) -> None:
    source = manifest.series("ct_thick")
    originals = [_read(manifest, rel).pixel_array for rel in source.files]
    for suffix in COPY_SUFFIXES:
        info = manifest.series(f"ct_thick_{suffix}")
        assert info.source_key == "ct_thick" and info.series_uid != source.series_uid
        assert info.truth == source.truth
        for rel, original in zip(info.files, originals):
            ds = _read(manifest, rel)
            assert ds.file_meta.TransferSyntaxUID == info.transfer_syntax_uid
            if suffix not in ("implicit",):
                assert ds.LossyImageCompression == "00"
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # e.g. a Bits Stored / J2K precision mismatch
                decoded = _frames(ds)
            assert decoded.dtype == original.dtype, suffix
            np.testing.assert_array_equal(decoded, original, err_msg=f"{suffix} {rel}")
    ht = manifest.series("ct_thick_htj2k")
    frame = next(_encapsulated_frames(_read(manifest, ht.files[0]).PixelData))
    rpcl = progression_order(frame) == 2
    assert ht.transfer_syntax_uid == ("1.2.840.10008.1.2.4.202" if rpcl else
                                      "1.2.840.10008.1.2.4.201")


def test_compressed_copies_are_pixel_identical(sample_small: SampleManifest) -> None:
    expected = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.70",
                "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90"}
    syntaxes = {sample_small.series(f"ct_thick_{s}").transfer_syntax_uid for s in COPY_SUFFIXES}
    assert expected <= syntaxes and len(syntaxes) == len(COPY_SUFFIXES)
    _check_copies(sample_small)


@pytest.mark.parametrize("key", ["ct_thin", "ct_thick", "ct_sagittal", "ct_thick_jpegls"])
def test_ct_series_match_truth(sample_small: SampleManifest, key: str) -> None:
    truth = sample_small.load_truth(key)
    volume = _load_volume(sample_small, key)
    np.testing.assert_array_equal(volume, truth.astype(np.float64))


PHANTOM_KEYS = ["ct_thin", "ct_thick", "ct_sagittal", "enhanced_ct", "edge_oblique",
                "edge_instance_order", "edge_gap", "edge_localizer", "edge_rescale_float",
                "edge_signed", "edge_unsigned16", "edge_padding", "edge_nonsquare", "edge_tilt",
                "edge_multiphase", "edge_irregular"]


def _phantom_agreement(image: np.ndarray, origin, col_step, row_step) -> float:
    """Fraction of in-FOV pixels within 60 HU of the noise-free phantom at their LPS centres."""
    from ProgressiveDicomFetchLib.sampledata import phantom

    j, i = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    pts = [origin[a] + col_step[a] * i + row_step[a] * j for a in range(3)]
    inside = phantom.fov_mask(pts[0], pts[1])
    diff = np.abs(image.astype(np.float64) - phantom.ct_hu(*pts))[inside]
    return float(np.mean(diff < 60.0))


@pytest.mark.parametrize("key", PHANTOM_KEYS)
def test_truth_is_the_phantom_at_the_manifest_geometry(sample_small: SampleManifest,
                                                       key: str) -> None:
    """Geometry cross-check against the anatomy itself: a swapped spacing, flipped axis or
    wrong origin puts lungs where soft tissue is (thick slices lose a little to averaging)."""
    info = sample_small.series(key)
    truth = sample_small.load_truth(key)
    truth = truth[0] if truth.ndim == 4 else truth
    m = np.asarray(info.ijk_to_lps)
    for k in range(0, truth.shape[0], max(1, truth.shape[0] // 8)):
        score = _phantom_agreement(truth[k], info.slice_positions[k], m[:3, 0], m[:3, 1])
        assert score > 0.85, f"{key} slice {k}: only {score:.0%} of pixels match the phantom"
    if "localizer_file" in info.expect:
        ds = _read(sample_small, info.expect["localizer_file"])
        iop = np.asarray(ds.ImageOrientationPatient, float)
        row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
        score = _phantom_agreement(_modality(ds, ds.pixel_array),
                                   np.asarray(ds.ImagePositionPatient, float),
                                   iop[:3] * col_spacing, iop[3:] * row_spacing)
        assert score > 0.85, f"localizer: only {score:.0%} of pixels match the phantom"


def test_mr_geometry_matches_the_nifti_source(sample_mr: SampleManifest) -> None:
    """MR voxels at the manifest's LPS positions equal the NIfTI voxels there (RAS = -x, -y)."""
    nibabel = pytest.importorskip("nibabel")
    info = sample_mr.series("mr_t1")
    img = nibabel.load(info.expect["source"])
    data = np.asarray(img.dataobj)
    inverse = np.linalg.inv(np.asarray(img.affine, float))
    m = np.asarray(info.ijk_to_lps)
    truth = sample_mr.load_truth("mr_t1")
    rng = np.random.default_rng(0)
    for _ in range(300):
        ijk = [rng.integers(truth.shape[2]), rng.integers(truth.shape[1]),
               rng.integers(truth.shape[0])]
        lps = m @ np.array([ijk[0], ijk[1], ijk[2], 1.0])
        ras = lps * np.array([-1.0, -1.0, 1.0, 1.0])
        src = np.rint(inverse @ ras)[:3].astype(int)
        expected = int(data[tuple(src)]) * info.expect["value_scale"]
        assert truth[ijk[2], ijk[1], ijk[0]] == expected, (ijk, src)


def test_mr_series_matches_truth(sample_mr: SampleManifest) -> None:
    info = sample_mr.series("mr_t1")
    assert info.modality == "MR" and info.num_slices == 91
    volume = _load_volume(sample_mr, "mr_t1")
    np.testing.assert_array_equal(volume, sample_mr.load_truth("mr_t1"))
    assert 1000 < volume.max() < 4096 and volume.min() == 0
    # Real anatomy: the brain is in the middle, air in the corners.
    mid = volume[volume.shape[0] // 2]
    assert mid[mid.shape[0] // 2 - 5:mid.shape[0] // 2 + 5, :].mean() > 5 * mid[:5, :5].mean() + 1


def test_enhanced_ct_frames_match_truth(sample_small: SampleManifest) -> None:
    info = sample_small.series("enhanced_ct")
    ds = _read(sample_small, info.files[0])
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2.1"
    shared = ds.SharedFunctionalGroupsSequence[0]
    pvt = shared.PixelValueTransformationSequence[0]
    frames = ds.pixel_array.astype(np.float64) * float(pvt.RescaleSlope) + float(pvt.RescaleIntercept)
    z = [float(f.PlanePositionSequence[0].ImagePositionPatient[2])
         for f in ds.PerFrameFunctionalGroupsSequence]
    assert z[0] > z[-1], "frames are written head first"
    np.testing.assert_array_equal(frames[np.argsort(z)], sample_small.load_truth("enhanced_ct"))


def _at(manifest: SampleManifest, key: str, volume: np.ndarray, lps) -> float:
    m = np.asarray(manifest.series(key).ijk_to_lps)
    i, j, k = np.rint(np.linalg.solve(m, np.append(np.asarray(lps, float), 1.0))[:3]).astype(int)
    return float(volume[k, j, i])


def test_full_profile(sample_full: SampleManifest) -> None:
    log.info("full profile generated in %.1f s", sample_full.generation_seconds)
    thin = sample_full.series("ct_thin")
    assert thin.num_slices >= 200 and (thin.rows, thin.columns) == (512, 512)
    assert thin.pixel_spacing[0] == thin.pixel_spacing[1] < 0.8
    volume = sample_full.load_truth("ct_thin")
    assert volume.shape == (thin.num_slices, 512, 512)
    assert -1030 < np.median(volume[:, 5, 256]) < -990  # air above the patient
    assert _at(sample_full, "ct_thin", volume, [-78, 5, -100]) < -500  # right lung
    assert _at(sample_full, "ct_thin", volume, [0, 66, -100]) > 150  # vertebral body (z=-110 is a disc)
    assert volume.max() > 1000 and volume.min() == -1024  # rib cortex; FOV padding
    assert -60 < _at(sample_full, "ct_thin", volume, [-55, -5, -205]) < 160  # liver
    assert 220 < _at(sample_full, "ct_thin", volume, [22, -30, -122]) < 380  # contrast blood
    air = volume[:, 40:60, 246:266]
    assert 8 < air.std() < 16 and abs(air.mean() + 1000) < 3  # Gaussian noise ~12 HU
    # One slice re-read from disk equals the truth (geometry: lowest z is k = 0).
    last = _read(sample_full, thin.files[-1])
    np.testing.assert_array_equal(_modality(last, last.pixel_array), volume[0])
    thick = sample_full.series("ct_thick")
    assert (thick.rows, thick.columns) == (512, 512) and thick.slice_thickness == 5.0
    _check_copies(sample_full)
    assert sample_full.series("ct_sagittal").ijk_to_lps[2][1] < 0  # rows run head to feet
    if sample_full.has("mr_t1"):
        mr = sample_full.series("mr_t1")
        assert (mr.num_slices, mr.rows, mr.columns) == (181, 217, 181)


def _stored_by_file(manifest: SampleManifest, key: str) -> Dict[str, pydicom.Dataset]:
    return {rel: _read(manifest, rel) for rel in manifest.series(key).files}


def test_edge_cases_are_what_the_manifest_says(sample_small: SampleManifest) -> None:
    m = sample_small
    # Gap: one grid position has no file, and it is the one named.
    gap = m.series("edge_gap")
    assert gap.num_instances == gap.num_slices - 1
    z_files = {round(float(ds.ImagePositionPatient[2]), 3) for ds in _stored_by_file(m, "edge_gap").values()}
    missing = gap.expect["missing_indices"][0]
    assert round(gap.slice_positions[missing][2], 3) not in z_files
    assert len(z_files) == gap.num_slices - 1
    # Localizer: other orientation and size, LOCALIZER image type, same series.
    loc = m.series("edge_localizer")
    ds = _read(m, loc.expect["localizer_file"])
    assert ds.SOPInstanceUID == loc.expect["localizer_sop_uid"]
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    assert abs(np.dot(_normal(ds.ImageOrientationPatient), [0, 0, 1])) < 0.1
    assert (ds.Rows, ds.Columns) != (loc.rows, loc.columns)
    assert ds.SeriesInstanceUID == loc.series_uid
    # Instance numbers do not follow position.
    by_file = _stored_by_file(m, "edge_instance_order")
    pairs = sorted((int(d.InstanceNumber), float(d.ImagePositionPatient[2])) for d in by_file.values())
    z = [p[1] for p in pairs]
    assert z != sorted(z) and z != sorted(z, reverse=True)
    # Storage variants decode to the truth after rescale.
    for key in ("edge_rescale_float", "edge_signed", "edge_unsigned16", "edge_padding",
                "edge_oblique", "edge_nonsquare", "edge_tilt", "edge_irregular",
                "edge_instance_order", "edge_localizer"):
        np.testing.assert_array_equal(_load_volume(m, key), m.load_truth(key), err_msg=key)
    assert m.series("edge_rescale_float").dtype == "float32"
    truth = m.load_truth("edge_rescale_float")
    assert np.any(truth != np.round(truth)), "a non-integer slope must give fractional values"
    signed = _read(m, m.series("edge_signed").files[0])
    assert signed.PixelRepresentation == 1 and signed.pixel_array.min() < 0
    unsigned = _read(m, m.series("edge_unsigned16").files[0])
    assert unsigned.PixelRepresentation == 0 and unsigned.pixel_array.max() > 32767
    pad = _read(m, m.series("edge_padding").files[0])
    assert pad.PixelPaddingValue == -3024 and pad["PixelPaddingValue"].VR == "SS"
    assert np.count_nonzero(m.load_truth("edge_padding") == -3024) == \
        m.series("edge_padding").expect["padding_voxels"] > 0
    ns = m.series("edge_nonsquare")
    ds = _read(m, ns.files[0])
    assert [float(v) for v in ds.PixelSpacing] == [4.0, 3.0] and (ds.Rows, ds.Columns) == (80, 112)
    tilt = m.series("edge_tilt")
    ds = _read(m, tilt.files[0])
    assert float(ds.GantryDetectorTilt) == 15.0
    step = np.asarray(tilt.ijk_to_lps)[:3, 2]
    np.testing.assert_allclose(step, [0, 0, 5.0], atol=1e-3)
    assert abs(np.dot(_normal(ds.ImageOrientationPatient), [0, 0, 1])) < 0.99  # sheared stack
    gaps = np.diff(np.asarray(m.series("edge_irregular").slice_positions)[:, 2])
    assert gaps.max() - gaps.min() > 1.0
    # Two phases at the same positions in one series.
    phases: Dict[int, List[float]] = {}
    for d in _stored_by_file(m, "edge_multiphase").values():
        phases.setdefault(int(d.TemporalPositionIdentifier), []).append(float(d.ImagePositionPatient[2]))
    assert sorted(phases) == [1, 2] and sorted(phases[1]) == sorted(phases[2])
    truth = m.load_truth("edge_multiphase")
    assert truth.shape[0] == 2
    enhanced = [np.count_nonzero((v > 200) & (v < 400)) for v in truth]
    assert enhanced[0] > 2 * enhanced[1], "the venous phase has less contrast enhancement"
