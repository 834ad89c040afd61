"""The real-file corpus (pydicom's shipped test files, see real_corpus.py) through Orthanc and `fetch`:
every file pydicom decodes loads, and equals pydicom's own decoding (modality LUT for greyscale, RGB
for colour, the palette applied) bit-exactly for lossless syntaxes; lossy JPEG within a tolerance
(different IDCTs: libjpeg-turbo here, libjpeg/Pillow in pydicom). A file pydicom cannot decode
gets a one-line error naming its series, and no file."""
from __future__ import annotations

import re
import subprocess
import sys
import warnings

import numpy as np
import pydicom
import pytest

import real_corpus

# Lossy JPEG: two correct IDCTs (and chroma upsamplers) may round differently; measured up to 3
# levels for 8-bit colour (examples_ybr_color.dcm); 2 % of the range (5 levels at 8 bits) bounds
# that with room to spare and is far below any colour-space or sign mistake (tens of levels).
LOSSY_FRACTION = 0.02
# Orthanc 1.10 (DCMTK) serves 32-bit big endian pixel data (VR OW) as little endian by swapping
# 16-bit words, not 32-bit values: these files arrive with the halves of each value exchanged.
# What we load must be exactly what was served (pydicom's values, halves swapped).
WORD_SWAPPED_BY_ORTHANC = {"rtdose_expb.dcm", "rtdose_expb_1frame.dcm"}


# Files Orthanc 1.10 cannot serve as they are: each must get a one-line error naming the cause.
SERVER_PROBLEMS = {
    "J2K_pixelrep_mismatch.dcm": "ImagePositionPatient is missing",  # its metadata gives IPP/IOP empty
    "SC_ybr_full_422_uncompressed.dcm": "HTTP 400",  # it answers 400 to frames of uncompressed YBR_FULL_422
}


def _swap_halves(reference: np.ndarray) -> np.ndarray:
    values = reference.astype("<u4")
    return ((values >> 16) | (values << 16)).astype("<u4")


@pytest.fixture(scope="module")
def corpus(orthanc_empty, tmp_path_factory):
    files, unwritable = real_corpus.prepare(tmp_path_factory.mktemp("corpus"))
    # pydicom cannot save SC_rgb_jpeg.dcm back (a text element's encoding): test_real_decode.py covers it
    assert set(unwritable) <= {"SC_rgb_jpeg.dcm"}, unwritable
    refused = {}
    for item in files:
        try:
            orthanc_empty.upload([item.path])
        except Exception as error:  # Orthanc refuses a few odd files: they are listed, not loaded
            refused[item.name] = str(error).splitlines()[0]
    return files, refused


@pytest.fixture(scope="module")
def fetched(orthanc_empty, corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("nrrd")
    result = subprocess.run([sys.executable, "-m", "ProgressiveDicomFetchLib", "fetch", "--url",
                             orthanc_empty.dicomweb_url, "--study", real_corpus.STUDY_UID, "--out", str(out)],
                            capture_output=True, text=True, timeout=600)
    return out, result


def _dose_order(path):
    """Frame order along the normal for a dose grid (the volume is sorted along it, like Slicer)."""
    ds = pydicom.dcmread(str(path), force=True)
    offsets = ds.get("GridFrameOffsetVector")
    if offsets is None or int(ds.get("NumberOfFrames", 1) or 1) < 2:
        return None
    return np.argsort(np.asarray([float(v) for v in offsets]), kind="stable")


def _tolerance(item, reference):
    if not item.lossy:
        return 0
    bits = 8 if reference.dtype.itemsize == 1 else 12
    return max(2, int(LOSSY_FRACTION * (1 << bits)))


def test_every_decodable_file_loads_exactly(corpus, fetched):
    import nrrd
    files, refused = corpus
    out, result = fetched
    errors = result.stderr.splitlines()
    loaded, failed, problems, unverified, server_refused = [], [], [], [], []
    for item in files:
        if item.name in refused:
            continue
        target = out / f"{item.series_uid}.nrrd"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(str(item.path), force=True)
        if str(ds.get("Modality", "")).upper() == "SEG":
            assert not target.exists()  # not an image volume: left out of the study's series
            continue
        reference = real_corpus.reference(item.path)
        if reference is None:  # pydicom itself cannot decode it: a clear one-line error, or (another
            if target.exists():  # decoder reads it) a volume that nothing here can verify: listed
                unverified.append(item.name)
                continue
            lines = [line for line in errors if line.startswith(f"error: series {item.series_uid}")]
            assert len(lines) == 1 and len(lines[0]) < 500, (item.name, lines)
            failed.append(item.name)
            continue
        if item.name in SERVER_PROBLEMS:
            lines = [line for line in errors if line.startswith(f"error: series {item.series_uid}")]
            assert not target.exists() and len(lines) == 1 and SERVER_PROBLEMS[item.name] in lines[0], item.name
            server_refused.append(item.name)
            continue
        if not target.exists():
            problems.append((item.name, [line[:300] for line in errors if item.series_uid in line]))
            continue
        data, header = nrrd.read(str(target), index_order="C")
        if item.name in WORD_SWAPPED_BY_ORTHANC:
            reference = _swap_halves(reference)
        order = _dose_order(item.path)
        if order is not None:
            reference = reference[order]
        if data.shape != reference.shape:
            problems.append((item.name, data.shape, reference.shape))
            continue
        if reference.ndim == 4:
            assert header["kinds"] == ["RGB-color", "domain", "domain", "domain"], item.name
        if str(ds.get("Modality", "")).upper() == "RTDOSE":
            assert data.dtype == np.float32
            expected = reference.astype(np.float64) * float(ds.DoseGridScaling)
            np.testing.assert_allclose(data, expected.astype(np.float32), rtol=0, atol=0, err_msg=item.name)
        else:
            difference = np.abs(data.astype(np.float64) - reference.astype(np.float64)).max()
            if difference > _tolerance(item, reference):
                problems.append((item.name, "differs by", difference))
                continue
        loaded.append(item.name)
    assert not problems, "\n".join(map(str, problems))
    print(f"\n{len(loaded)} loaded, {len(failed)} refused (pydicom cannot decode: {', '.join(failed)}), "
          f"{len(unverified)} loaded but unverifiable ({', '.join(unverified)}), {len(refused)} refused by Orthanc")
    print(f"refused as Orthanc serves them: {', '.join(server_refused)}")
    assert len(loaded) + len(failed) + len(unverified) + len(refused) + len(server_refused) + sum(
        1 for f in files if "liver" in f.name) == len(files)
    assert re.search(r"error: series", result.stderr) or not failed
