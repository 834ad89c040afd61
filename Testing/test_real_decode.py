"""Every frame of the real-file corpus (pydicom's shipped test files) decoded straight from the file,
no server: equal to pydicom's own decoding (modality LUT / dose scaling for greyscale, RGB for colour,
the palette applied), bit-exact for lossless syntaxes, within LOSSY_LEVELS for lossy JPEG. Runs on
Slicer 5.8's stack too (pydicom 2.4). Prints the decode time per frame of each kind, beside pydicom's
(`pixel_array` and the same LUT/colour steps on the parsed file) measured in the same run."""
from __future__ import annotations

import time
import warnings
from collections import defaultdict

import numpy as np
import pydicom
import pytest

import real_corpus
from ProgressiveDicomFetchLib.pixels import PixelDescription, decode_frame, stored_to_modality
from ProgressiveDicomFetchLib.pixels.palette import Palette
from ProgressiveDicomFetchLib.sampledata.static_tree import split_frames

# Lossy JPEG decoded by two correct IDCTs (libjpeg-turbo here; libjpeg or Pillow in pydicom) and
# chroma upsamplers: measured up to 3 levels at 8 bits; 5 (2 %) leaves room, and is far below a
# colour-space or sign mistake (tens of levels).
LOSSY_LEVELS = 5


def _load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(str(path), force=True)


def _kind(ds, pixels: PixelDescription) -> str:
    if pixels.photometric_interpretation == "PALETTE COLOR":
        return "palette"
    if pixels.colour:
        return f"colour {pixels.photometric_interpretation}"
    if str(ds.get("Modality", "")).upper() == "RTDOSE":
        return "dose"
    return "greyscale"


def _swap_words(data: bytes) -> bytes:
    padded = bytes(data) + (b"\0" if len(data) % 2 else b"")
    return np.frombuffer(padded, "<u2").byteswap().tobytes()[:len(data)]


def decode_file(ds):
    """(frames as loaded, kind, seconds per frame) the way loading.py turns frames into voxels."""
    pixels = PixelDescription.from_dataset(ds)
    syntax = str(ds.file_meta.TransferSyntaxUID)
    palette = Palette.from_dataset(ds, {}) if pixels.photometric_interpretation == "PALETTE COLOR" else None
    scaling = ds.get("DoseGridScaling")
    slope = float(ds.get("RescaleSlope", scaling if scaling is not None else 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    frames, started = [], time.perf_counter()
    if syntax == "1.2.840.10008.1.2.2" and pixels.bits_allocated == 8 and ds["PixelData"].VR == "OW":
        # 8-bit values in OW words of a big endian file: each word's bytes are swapped (PS3.5 7.3),
        # the frame bytes a server sends (as little endian) are not
        ds.PixelData = _swap_words(ds.PixelData)
    stored_frames = split_frames(ds)
    for data in stored_frames:
        stored = decode_frame(data, syntax, pixels)
        if palette is not None:
            frames.append(palette.apply(stored))
        elif pixels.colour:
            frames.append(stored)
        else:
            frames.append(stored_to_modality(stored, slope, intercept, np.dtype(np.float64)))
    elapsed = (time.perf_counter() - started) / max(1, len(stored_frames))
    return np.stack(frames), _kind(ds, pixels), elapsed


@pytest.mark.compat
def test_every_corpus_frame_decodes_like_pydicom(tmp_path):
    times = defaultdict(list)
    problems, refused, checked = [], [], 0
    for path in real_corpus.pixel_files():
        ds = _load(path)
        if str(ds.get("Modality", "")).upper() == "SEG":
            continue  # segmentations are not image volumes (kept out with a message upstream)
        fresh = _load(path)  # the peer decodes an already parsed file, as we decode fetched frames
        started = time.perf_counter()
        reference = real_corpus.reference(path, fresh)
        peer = (time.perf_counter() - started) / real_corpus._int(ds.get("NumberOfFrames", 1))
        try:
            ours, kind, seconds = decode_file(ds)
        except (ValueError, NotImplementedError) as error:
            message = str(error)
            assert "\n" not in message.strip() and len(message) < 500, (path.name, message)
            if reference is not None:
                problems.append((path.name, "refused, pydicom decodes it:", message))
            else:
                refused.append((path.name, message))
            continue
        if reference is None:
            continue  # decoded where pydicom cannot: nothing to compare with (listed in docs/real-files.md)
        if "DoseGridScaling" in ds:  # RT dose: Gy = stored x DoseGridScaling
            reference = reference.astype(np.float64) * float(ds.DoseGridScaling)
        if ours.shape != reference.shape:
            problems.append((path.name, ours.shape, reference.shape))
            continue
        lossy = real_corpus.CorpusFile(path.name, path, "", str(ds.file_meta.TransferSyntaxUID), "", 1).lossy
        difference = float(np.abs(ours.astype(np.float64) - reference.astype(np.float64)).max())
        if difference > (LOSSY_LEVELS if lossy else 0):
            problems.append((path.name, "differs by", difference))
            continue
        times[kind].append((seconds, peer))
        checked += 1
    assert not problems, "\n".join(map(str, problems))
    print(f"\n{checked} files equal to pydicom; refused (pydicom cannot decode them either): "
          + "; ".join(f"{name}: {message[:120]}" for name, message in refused))
    for kind, values in sorted(times.items()):  # the peer: pydicom reading and decoding the same file
        ours, theirs = (float(np.median([v[i] for v in values])) for i in (0, 1))
        print(f"decode {kind}: {1e3 * ours:.3f} ms per frame, pydicom {1e3 * theirs:.3f} ms "
              f"(x{theirs / ours:.1f}; median of {len(values)} files)")
    assert checked >= 40  # the shipped set has ~55 decodable image files; a lost loader shows here


@pytest.mark.compat
def test_jpeg_colour_frames_come_out_rgb_whichever_decoder_runs():
    """A YBR_FULL_422 JPEG baseline frame decodes to RGB on every stack: pydicom 2.4's Pillow
    handler (Slicer 5.8 without imagecodecs or pylibjpeg) keeps JPEG's YCbCr, the other decoders
    convert; the frame is judged against the RGB image it was encoded from (an independent truth)."""
    import io

    from PIL import Image

    rows, columns = 64, 96
    y, x = np.mgrid[0:rows, 0:columns]
    truth = np.stack([x * 255 // (columns - 1), y * 255 // (rows - 1), np.full_like(x, 128)], -1).astype(np.uint8)
    truth[:16, :32] = (255, 0, 0)  # saturated red: YCbCr (76, 85, 255) if left unconverted
    encoded = io.BytesIO()
    Image.fromarray(truth, "RGB").save(encoded, "JPEG", quality=95, subsampling=1)  # 4:2:2, YCbCr in the stream
    ds = pydicom.Dataset()
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, columns, 3, "YBR_FULL_422"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation, ds.PlanarConfiguration = 8, 8, 7, 0, 0
    decoded = np.asarray(decode_frame(encoded.getvalue(), "1.2.840.10008.1.2.4.50", PixelDescription.from_dataset(ds)))
    assert decoded.shape == (rows, columns, 3)
    error = np.abs(decoded.astype(int) - truth.astype(int))
    assert error.mean() < 3 and error[4:12, 4:24].max() < 12, (error.mean(), decoded[8, 8])  # inside the red block
