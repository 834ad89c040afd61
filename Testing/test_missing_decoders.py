"""What the panel offers to install: the package for each compressed syntax that no installed
decoder reads. Runs in both venvs: .venv has every codec, Slicer 5.8's stack has none of them."""
from __future__ import annotations

import importlib.util

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
