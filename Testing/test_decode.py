"""Frame decoding: every transfer syntax copy fetched from every real server decodes to the stored
values pydicom reads from the same file; labels that lie are caught; errors never pass silently.
Needs the codec plugins (not compat: Slicer 5.8's stack has none)."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest

from ProgressiveDicomFetchLib import transfer_syntax as ts
from ProgressiveDicomFetchLib.dicomweb import DicomwebServer, RetryPolicy, ServerTraits, fetch_frames
from ProgressiveDicomFetchLib.pixels import (
    DecodeError, PixelDescription, UnsupportedPixels, decode_frame, identify, modality_dtype, padding_mask,
    stored_to_modality,
)
from ProgressiveDicomFetchLib.sampledata.static_tree import split_frames

COPIES = ["ct_thick", "ct_thick_implicit", "ct_thick_rle", "ct_thick_jpegll", "ct_thick_jpegls", "ct_thick_j2k",
          "ct_thick_htj2k"]
SERVERS = ["orthanc", "static_server", "static_server_multipart"]


def read(path):
    return pydicom.dcmread(str(path))


def pixels_of(ds) -> PixelDescription:
    return PixelDescription.from_dataset(ds)


@pytest.fixture(scope="module")
def traits():
    return ServerTraits()  # shared: each server/series negotiates once for the whole module


@pytest.mark.parametrize("server_name", SERVERS)
@pytest.mark.parametrize("key", COPIES)
def test_fetched_frames_decode_to_the_stored_values(request, sample_small, traits, server_name, key):
    running = request.getfixturevalue(server_name)
    api = DicomwebServer(running.dicomweb_url, retry=RetryPolicy(attempts=2, backoff_s=0.05))
    info = sample_small.series(key)
    for index in (0, len(info.files) - 1):
        ds = read(sample_small.files(key)[index])
        frame = fetch_frames(api, info.study_uid, info.series_uid, info.sop_instance_uids[index], [1], traits=traits)[0]
        decoded = decode_frame(frame.data, frame.transfer_syntax_uid, pixels_of(ds), frame.content_type)
        assert decoded.dtype == ds.pixel_array.dtype and decoded.flags.writeable
        np.testing.assert_array_equal(decoded, ds.pixel_array)


def test_orthanc_mislabelled_htj2k_is_recognised(orthanc, sample_small):
    info = sample_small.series("ct_thick_htj2k")
    api = DicomwebServer(orthanc.dicomweb_url)
    frame = fetch_frames(api, info.study_uid, info.series_uid, info.sop_instance_uids[2], [1],
                         transfer_syntax=ts.EXPLICIT_VR_LITTLE_ENDIAN, traits=ServerTraits())[0]
    ds = read(sample_small.files("ct_thick_htj2k")[2])
    kind = identify(frame.data, frame.transfer_syntax_uid, pixels_of(ds))
    assert frame.transfer_syntax_uid == ts.EXPLICIT_VR_LITTLE_ENDIAN
    assert kind.family == ts.HTJ2K_FAMILY and kind.mislabelled
    np.testing.assert_array_equal(decode_frame(frame.data, frame.transfer_syntax_uid, pixels_of(ds)), ds.pixel_array)


@pytest.mark.parametrize("key", COPIES[2:])
def test_truncated_codestream_names_the_syntax(sample_small, key):
    ds = read(sample_small.files(key)[0])
    data = split_frames(ds)[0]
    syntax = str(ds.file_meta.TransferSyntaxUID)
    with pytest.raises(DecodeError) as caught:
        decode_frame(data[: len(data) // 2], syntax, pixels_of(ds))
    assert ts.NAMES[syntax] in str(caught.value) or ts.family(syntax) in str(caught.value)


def test_stored_values_decode_whatever_the_label(sample_small):
    """The bytes decide: compressed frames labelled native, unlabelled, or by media type only."""
    for key in COPIES[2:]:
        ds = read(sample_small.files(key)[1])
        data = split_frames(ds)[0]
        for label, content_type in ((ts.EXPLICIT_VR_LITTLE_ENDIAN, None), (None, None),
                                    (None, ts.media_type(str(ds.file_meta.TransferSyntaxUID)))):
            np.testing.assert_array_equal(decode_frame(data, label, pixels_of(ds), content_type), ds.pixel_array)


def test_big_endian_signed_and_masked_native():
    pixels = PixelDescription(2, 3, 16, 12, 11, 1)
    values = np.array([[-2048, -1, 0], [1, 2047, -5]], np.int16)
    patterns = (values.view(np.uint16) & 0x0FFF) | 0xF000 * np.array([[0, 1, 0], [1, 0, 1]], np.uint16)  # junk high bits
    np.testing.assert_array_equal(decode_frame(patterns.astype(">u2").tobytes(), ts.EXPLICIT_VR_BIG_ENDIAN, pixels), values)
    unsigned = PixelDescription(2, 3, 16, 12, 11, 0)
    decoded = decode_frame(patterns.astype("<u2").tobytes(), ts.IMPLICIT_VR_LITTLE_ENDIAN, unsigned)
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, patterns & 0x0FFF)
    eight = PixelDescription(2, 2, 8, 8, 7, 1)
    assert decode_frame(bytes([0, 127, 128, 255]), None, eight).tolist() == [[0, 127], [-128, -1]]


def test_wrong_decoded_size_is_an_error(sample_small):
    ds = read(sample_small.files("ct_thick_htj2k")[0])
    data = split_frames(ds)[0]
    wrong = PixelDescription(ds.Rows, ds.Columns + 8, 16, 12, 11, 1)
    with pytest.raises(DecodeError, match="shape"):
        decode_frame(data, str(ds.file_meta.TransferSyntaxUID), wrong)


def test_garbage_under_a_compressed_label():
    pixels = PixelDescription(8, 8, 16, 16, 15, 0)
    with pytest.raises(DecodeError, match="JPEG-LS Lossless"):
        decode_frame(b"\x01\x02\x03" * 10, ts.JPEG_LS_LOSSLESS, pixels)


def test_description_errors(sample_small):
    ds = read(sample_small.files("ct_thick")[0])
    pixels = pixels_of(ds)
    assert pixels.native_frame_bytes == ds.Rows * ds.Columns * 2 and pixels.stored_dtype == np.uint16
    colour = pydicom.Dataset()
    colour.update({"Rows": 4, "Columns": 4, "BitsAllocated": 8, "BitsStored": 8, "HighBit": 7,
                   "PixelRepresentation": 0, "SamplesPerPixel": 3, "PhotometricInterpretation": "RGB"})
    assert PixelDescription.from_dataset(colour).components == 3  # RGB is decoded (test_real_files.py)
    colour.SamplesPerPixel = 1  # RGB with one sample is no valid layout
    with pytest.raises(UnsupportedPixels, match="PhotometricInterpretation RGB with SamplesPerPixel 1"):
        PixelDescription.from_dataset(colour)
    colour.update({"SamplesPerPixel": 1, "PhotometricInterpretation": "MONOCHROME2", "BitsAllocated": 1,
                   "BitsStored": 1, "HighBit": 0})
    with pytest.raises(UnsupportedPixels, match="BitsAllocated 1"):
        PixelDescription.from_dataset(colour)
    del ds.Rows
    with pytest.raises(ValueError, match="Rows"):
        PixelDescription.from_dataset(ds)
    no_image = pydicom.Dataset()
    no_image.Modality = "SR"
    with pytest.raises(ValueError, match="BitsAllocated"):
        PixelDescription.from_dataset(no_image)


def slice_index(info, ds) -> int:
    """The index along k of a single-frame file, from its position and the series' ijk->LPS matrix."""
    ijk = np.linalg.inv(np.array(info.ijk_to_lps)) @ np.append(np.asarray(ds.ImagePositionPatient, float), 1.0)
    assert abs(ijk[2] - round(ijk[2])) < 1e-3 and abs(ijk[0]) < 1e-3 and abs(ijk[1]) < 1e-3
    return int(round(ijk[2]))


def test_rescale_matches_truth(sample_small):
    for key in ("ct_thick", "edge_rescale_float", "edge_unsigned16", "edge_signed", "edge_padding"):
        info = sample_small.series(key)
        truth = sample_small.load_truth(key)
        ds = read(sample_small.files(key)[0])
        pixels = pixels_of(ds)
        slope, intercept = float(ds.get("RescaleSlope", 1)), float(ds.get("RescaleIntercept", 0))
        dtype = modality_dtype(slope, intercept, pixels.stored_range)
        assert dtype == np.dtype(info.dtype) or (info.expect.get("stored_exceeds_int16") and dtype == np.int32)
        values = stored_to_modality(decode_frame(split_frames(ds)[0], None, pixels), slope, intercept, dtype)
        k = slice_index(info, ds)  # the truth slice at this file's position, not any slice that matches
        np.testing.assert_array_equal(values, truth[k], err_msg=key)


def test_rescale_rules_and_padding():
    assert modality_dtype(1, -1024, (0, 4095)) == np.int16
    assert modality_dtype(1, 0, (0, 65535)) == np.int32
    assert modality_dtype(0.5, 0, (0, 4095)) == np.float32
    stored = np.array([[0, 4095]], np.uint16)
    assert stored_to_modality(stored, 1, -1024, np.int16).tolist() == [[-1024, 3071]]
    out = np.zeros((1, 2), np.float32)
    stored_to_modality(stored, 2.5, -1024.5, np.float32, out=out)
    assert out.tolist() == [[-1024.5, 9213.0]]
    with pytest.raises(ValueError, match="do not fit"):
        stored_to_modality(stored, 10, 0, np.int16)
    values = np.array([-3024, -2000, 5], np.int16)
    assert padding_mask(values, -3024).tolist() == [True, False, False]
    assert padding_mask(values, -1000, -3024).tolist() == [True, True, False]
    assert padding_mask(values, None) is None
