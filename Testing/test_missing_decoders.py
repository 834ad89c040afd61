"""What the panel offers to install: the package for each compressed syntax that no installed
decoder reads. Runs in both venvs: .venv has every codec, Slicer 5.8's stack has none of them."""
from __future__ import annotations

import importlib.util

import pytest

from ProgressiveDicomFetchLib import transfer_syntax as ts
from ProgressiveDicomFetchLib.pixels.codecs import can_decode as can_decode_before, missing_packages

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


@pytest.mark.parametrize("key, family", [("ct_thick_jpegls", ts.JPEG_LS), ("ct_thick_htj2k", ts.HTJ2K_FAMILY)])
def test_the_engine_advises_packages_for_the_series_it_loads(static_server, sample_small, monkeypatch, key, family):
    """As on a Slicer without codec packages: the engine names what its series' stored syntaxes need."""
    from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
    from ProgressiveDicomFetchLib.engine import ProgressiveFetchEngine
    from ProgressiveDicomFetchLib.engine.package_advice import PackageAdvice
    from ProgressiveDicomFetchLib.pixels import codecs, htj2k_preview
    from ProgressiveDicomFetchLib.retrieve import prepare_series

    monkeypatch.setattr(codecs, "can_decode", lambda f: f != family and can_decode_before(f))
    monkeypatch.setattr(htj2k_preview, "previews_available", lambda: False)
    info = sample_small.series(key)
    server = DicomwebServer(static_server.dicomweb_url)  # its metadata names the stored syntax (Orthanc 1.10's does not)
    loads = prepare_series(server, info.study_uid, info.series_uid)
    assert {ts.family(uid) for load in loads for uid in load.stored_transfer_syntaxes} == {family}
    engine = ProgressiveFetchEngine(server, connections=1)
    try:
        engine.pause()  # only the advice matters here
        engine.add_series(info.study_uid, info.series_uid, loads=loads)
        advice = engine.package_advice(info.series_uid)
        assert advice.required == [codecs.packages_for(family)[0]]
        assert advice.optional == (["imagecodecs"] if family == ts.HTJ2K_FAMILY else [])
        assert engine.package_advice("1.2.3") == PackageAdvice()
    finally:
        engine.close()
