"""What the panel offers to install: the package for each compressed syntax that no installed
decoder reads. Runs in both venvs: .venv has every codec, Slicer 5.8's stack has none of them."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from ProgressiveDicomFetchLib import transfer_syntax as ts
from ProgressiveDicomFetchLib.pixels.codecs import missing_packages

pytestmark = pytest.mark.compat


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def test_native_and_unknown_syntaxes_need_nothing():
    assert missing_packages([ts.EXPLICIT_VR_LITTLE_ENDIAN, ts.IMPLICIT_VR_LITTLE_ENDIAN, None, "1.2.3.4.5"]) == []


def test_each_compressed_syntax_without_a_decoder_names_one_package():
    wanted = missing_packages([ts.JPEG_LS_LOSSLESS, ts.HTJ2K_LOSSLESS])
    jpeg_ls_readable = any(installed(m) for m in ("jpeg_ls", "imagecodecs", "libjpeg"))
    htj2k_readable = any(installed(m) for m in ("imagecodecs", "openjpeg"))
    assert ("pyjpegls" in wanted) == (not jpeg_ls_readable)
    assert ("imagecodecs" in wanted) == (not htj2k_readable)
    assert len(wanted) == (not jpeg_ls_readable) + (not htj2k_readable)


COMPRESSED = ["ct_thick_rle", "ct_thick_jpegll", "ct_thick_jpegls", "ct_thick_j2k", "ct_thick_htj2k"]
# Packages whose absence the Slicer 5.8 stack (Testing/requirements-slicer58.txt) shows.
CODEC_MODULES = ("rle", "libjpeg", "openjpeg", "jpeg_ls", "imagecodecs")


def stored_frame(path):
    """(the file's frame bytes, its pixel description, its transfer syntax, its position)."""
    import pydicom

    from ProgressiveDicomFetchLib.pixels import PixelDescription
    from ProgressiveDicomFetchLib.sampledata.static_tree import split_frames

    ds = pydicom.dcmread(str(path))
    return split_frames(ds)[0], PixelDescription.from_dataset(ds), str(ds.file_meta.TransferSyntaxUID), \
        tuple(float(v) for v in ds.ImagePositionPatient)


def native_by_position(sample_small):
    """Stored values of the native copy, by slice position: what every compressed copy must decode to."""
    from ProgressiveDicomFetchLib.pixels import decode_frame

    found = {}
    for path in sample_small.files("ct_thick"):
        data, pixels, syntax, position = stored_frame(path)
        found[position] = decode_frame(data, syntax, pixels)
    return found


@pytest.mark.parametrize("key", COMPRESSED)
def test_compressed_frames_decode_exactly_or_name_the_package_to_install(sample_small, key):
    """On either stack: a family some installed backend reads decodes bit-exact; any other raises
    CodecUnavailable naming what to pip install (never wrong pixels, never a bare ImportError)."""
    from ProgressiveDicomFetchLib.pixels import decode_frame
    from ProgressiveDicomFetchLib.pixels.codecs import CodecUnavailable, can_decode, packages_for

    native = native_by_position(sample_small)
    data, pixels, syntax, position = stored_frame(sample_small.files(key)[3])
    family = ts.family(syntax)
    if can_decode(family):
        np.testing.assert_array_equal(decode_frame(data, syntax, pixels), native[position])
    else:
        with pytest.raises(CodecUnavailable, match=f"no {family} decoder is installed: pip install "
                                                   f"{packages_for(family)[0]}"):
            decode_frame(data, syntax, pixels)


def test_slicer58_stack_reads_rle_and_jpeg2000_with_pydicom_alone(sample_small):
    """Slicer 5.8 ships none of the codec packages: RLE (pydicom's numpy decoder) and JPEG 2000
    (pydicom's Pillow handler) still decode bit-exact; JPEG-LS, JPEG lossless and HTJ2K cannot and
    say so. In .venv (every codec installed) pydicom's own backend is called directly."""
    from ProgressiveDicomFetchLib.pixels import codecs

    native = native_by_position(sample_small)
    bare = not any(installed(m) for m in CODEC_MODULES)
    assert bare or pydicom_major() >= 3, "the Slicer 5.8 stack (pydicom 2) must run without codec packages"
    for key in ("ct_thick_rle", "ct_thick_j2k"):
        data, pixels, syntax, position = stored_frame(sample_small.files(key)[3])
        family = ts.family(syntax)
        decoded = codecs._pydicom(family)(data, pixels)
        np.testing.assert_array_equal(decoded.astype(native[position].dtype), native[position], err_msg=key)
        assert codecs.can_decode(family), key
    if bare:  # the Slicer 5.8 stack: the families pydicom cannot read without a plugin
        for key in ("ct_thick_jpegls", "ct_thick_jpegll", "ct_thick_htj2k"):
            data, pixels, syntax, _ = stored_frame(sample_small.files(key)[3])
            assert not codecs.can_decode(ts.family(syntax)), key
            with pytest.raises(codecs.CodecUnavailable, match="decoder is installed: pip install"):
                codecs.decode_compressed(ts.family(syntax), data, pixels, key)


def pydicom_major() -> int:
    import pydicom

    return int(pydicom.__version__.split(".")[0])
