"""The pieces of the prefix previews: codestream header parsing, preview sizing, decoding a real
HTJ2K prefix, the bilinear upsampling, and byte ranges on the real nginx."""
from __future__ import annotations

import numpy as np
import pydicom
import pytest

from ProgressiveDicomFetchLib import transfer_syntax as ts
from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
from ProgressiveDicomFetchLib.dicomweb.errors import BadResponse
from ProgressiveDicomFetchLib.dicomweb.frame_ranges import get_range
from ProgressiveDicomFetchLib.pixels import PixelDescription
from ProgressiveDicomFetchLib.pixels.htj2k_preview import (
    clip_to_stored, codestream_layout, decode_prefix, find_codestream, level_end, preview_level, preview_packages,
    previews_available)
from ProgressiveDicomFetchLib.pixels.resample import upsample
from ProgressiveDicomFetchLib.sampledata.static_tree import split_frames

KEY = "ct_thick_htj2k"
needs_decoder = pytest.mark.skipif(not previews_available(), reason="imagecodecs (HTJ2K) is not installed")


def first_frame(sample, key=KEY):
    ds = pydicom.dcmread(str(sample.files(key)[len(sample.files(key)) // 2]))
    return split_frames(ds)[0], PixelDescription.from_dataset(ds)


def test_layout_of_the_generated_rpcl_codestream(sample_small):
    frame, pixels = first_frame(sample_small)
    layout = codestream_layout(frame)
    assert (layout.rows, layout.columns, layout.tiles) == (pixels.rows, pixels.columns, 1)
    assert layout.progression == "RPCL" and layout.high_throughput and layout.levels >= 2
    assert layout.why_not_previewable() is None
    assert preview_level(layout, smallest_side=32) == 2  # 128 -> 32 pixels a side


@pytest.mark.parametrize("offset, value, reason", [(0, 0, "LRCP"), (5, 3, "tiles")])
def test_a_codestream_a_prefix_cannot_preview_says_why(sample_small, offset, value, reason):
    frame, _ = first_frame(sample_small)
    data = bytearray(frame)
    if reason == "LRCP":
        cod = data.find(b"\xff\x52")
        data[cod + 5] = value  # SGcod progression order
    else:  # shrink the tile width (XTsiz, SIZ bytes 22..25 after the marker) to a third
        siz = data.find(b"\xff\x51")
        width = int.from_bytes(data[siz + 24:siz + 28], "big")
        data[siz + 24:siz + 28] = (width // value).to_bytes(4, "big")
    assert reason in codestream_layout(bytes(data)).why_not_previewable()


@pytest.mark.compat
def test_malformed_headers_are_named():
    with pytest.raises(ValueError, match="no SOC/SIZ"):
        codestream_layout(b"\x00" * 64)
    with pytest.raises(ValueError, match="SIZ or COD"):
        codestream_layout(b"\xff\x4f\xff\x51\x00\x05abc")
    header = b"--b\r\nContent-Type: image/jphc\r\n\r\n"
    assert find_codestream(header + b"\xff\x4f\xff\x51") == len(header)
    assert find_codestream(b"not a codestream") == -1


@needs_decoder
def test_a_prefix_to_the_level_end_decodes_close_to_the_frame_and_shorter_ones_worse(sample_small):
    frame, pixels = first_frame(sample_small)
    exact = decode_prefix(frame, pixels).astype(float)  # the whole codestream: exact
    from ProgressiveDicomFetchLib.pixels import decode_frame
    np.testing.assert_array_equal(exact, decode_frame(frame, ts.HTJ2K_LOSSLESS_RPCL, pixels))
    end = level_end(frame, 2)
    assert 0 < end < len(frame) // 2
    errors = [np.abs(decode_prefix(frame[:n], pixels).astype(float) - exact).mean() for n in (end // 3, end, 2 * end)]
    assert errors[0] > errors[1] > errors[2] > 0


@pytest.mark.compat
def test_clip_to_stored_rereads_wrapped_undershoot_and_clips_to_bits_stored():
    pixels = PixelDescription(rows=1, columns=4, bits_allocated=16, bits_stored=12, high_bit=11, pixel_representation=0)
    wrapped = np.array([[65535, 0, 4095, 5000]], np.uint16)  # -1 wrapped, in range, max, overshoot
    assert clip_to_stored(wrapped, pixels).tolist() == [[0, 0, 4095, 4095]]
    signed = PixelDescription(rows=1, columns=2, bits_allocated=16, bits_stored=12, high_bit=11, pixel_representation=1)
    assert clip_to_stored(np.array([[-3000.4, 2047.6]]), signed).tolist() == [[-2048, 2047]]


@pytest.mark.compat
def test_upsample_keeps_constants_and_block_centres():
    assert np.all(upsample(np.full((4, 4), 7.0), (16, 16)) == 7.0)
    ramp = np.arange(4, dtype=float)[None, :].repeat(2, 0)
    wide = upsample(ramp, (2, 16))
    assert wide[0, 1] == pytest.approx(0.0) and wide[0, -1] == pytest.approx(3.0)
    assert np.all(np.diff(wide[0]) >= 0)  # monotone, no overshoot
    with pytest.raises(ValueError):
        upsample(np.zeros(5), (4, 4))


def _gathered(image: np.ndarray, shape) -> np.ndarray:
    """The bilinear resampling written out per output pixel (pixel centres aligned, edges clamped)."""
    def axis(size_in, size_out):
        position = np.clip((np.arange(size_out) + 0.5) * size_in / size_out - 0.5, 0, size_in - 1)
        low = np.floor(position).astype(int)
        return low, np.minimum(low + 1, size_in - 1), position - low
    (r0, r1, rw), (c0, c1, cw) = axis(image.shape[0], shape[0]), axis(image.shape[1], shape[1])
    rows = image[r0] * (1 - rw)[:, None] + image[r1] * rw[:, None]
    return rows[:, c0] * (1 - cw) + rows[:, c1] * cw


@pytest.mark.compat
@pytest.mark.parametrize("small, shape", [((256, 256), (512, 512)), ((128, 128), (512, 512)), ((3, 5), (9, 20)),
                                          ((1, 4), (3, 8)), ((100, 60), (300, 180)), ((64, 64), (96, 100))])
def test_upsample_whole_factors_take_the_sliced_path_with_the_same_values(small, shape):
    """Whole factors (a 256² rendering of a 512² frame) go through strided slices instead of
    gathers (~4x quicker): same bilinear values as the general path, edges clamped alike."""
    image = np.random.default_rng(7).normal(0, 1000, small).astype(np.float32)
    result = upsample(image, shape)
    assert result.dtype == np.float32 and result.shape == shape
    np.testing.assert_allclose(result, _gathered(image.astype(np.float64), shape), rtol=0, atol=2e-3)


@pytest.mark.compat
def test_clip_to_stored_leaves_the_callers_estimate_as_it_was():
    pixels = PixelDescription(rows=1, columns=3, bits_allocated=16, bits_stored=12, high_bit=11, pixel_representation=0)
    estimate = np.array([[-7.6, 100.4, 9000.0]], np.float32)
    assert clip_to_stored(estimate, pixels).tolist() == [[0, 100, 4095]]
    assert estimate.tolist() == [[pytest.approx(-7.6), pytest.approx(100.4), 9000.0]]


@pytest.mark.compat
def test_preview_packages_are_named_only_for_htj2k_without_a_prefix_decoder():
    assert preview_packages([ts.EXPLICIT_VR_LITTLE_ENDIAN, None]) == []
    expected = [] if previews_available() else ["imagecodecs"]
    assert preview_packages([ts.HTJ2K_LOSSLESS_RPCL]) == expected


def test_ranges_on_nginx_are_exact_and_a_lying_range_is_refused(static_server, sample_small):
    info = sample_small.series(KEY)
    instance = next(i for i in static_server.tree.instances if i.series_uid == info.series_uid)
    path = f"{instance.frames_dir}/1"
    whole = static_server.tree.frame_path(instance, 1).read_bytes()
    server = DicomwebServer(static_server.dicomweb_url)
    head = get_range(server, path, "*/*", 0, 99)
    assert head.partial and head.data == whole[:100] and head.total == len(whole) and head.validator
    rest = get_range(server, path, "*/*", 100, None, head.validator)
    assert rest.partial and rest.whole and head.data + rest.data == whole
    changed = get_range(server, path, "*/*", 100, None, '"not-the-etag"')
    assert not changed.partial and changed.data == whole  # If-Range failed: the whole object
    with pytest.raises(BadResponse):
        get_range(server, path, "*/*", len(whole) + 10, None)  # 416
    with pytest.raises(ValueError):
        get_range(server, path, "*/*", 10, 5)


@needs_decoder
@pytest.mark.parametrize("side, reduction", [(128, 2), (512, 4)])
def test_the_prefix_size_comes_with_the_preview_reduction_the_ladder_rule_uses(side, reduction):
    """The 128x128 level of a 512x512 frame is a 1/4-size preview (it yields to exact neighbours,
    volume/fill.py); the 64x64 level of a 128x128 one is 1/2 size (it does not)."""
    import imagecodecs

    from ProgressiveDicomFetchLib.previews.htj2k_prefixes import prefix_length

    y, x = np.mgrid[0:side, 0:side]
    image = (1000 * np.sin(x / 17.0) * np.cos(y / 23.0)).astype(np.int16)
    codestream = imagecodecs.htj2k_encode(image, reversible=True)
    length, note, found = prefix_length(codestream, len(codestream), whole=True)
    assert found == reduction and 0 < length < len(codestream)
    assert f"for {side // reduction}x{side // reduction}" in note
