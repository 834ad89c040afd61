"""A decoder installed while the program runs is used by the next load, without a restart: a
package first absent is made importable mid-session (a real copy of pyjpegls put into a folder
already on sys.path, as pip would), then the session's next load decodes with it.

Runs in a subprocess whose sys.path holds this venv's packages except the codecs (symlinks), so
the codec packages are really absent at first; the parent process keeps its own imports."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from support import REPO

CODEC_ENTRIES = ("jpeg_ls", "_CharLS", "imagecodecs", "libjpeg", "_libjpeg", "openjpeg", "_openjpeg", "pylibjpeg",
                 "rle", "PIL", "pillow", "pyjpegls")


def site_packages() -> Path:
    return Path(np.__file__).resolve().parents[1]


def site_without_codecs(target):
    """A folder with every package of this venv but the decoders (symlinks: nothing copied)."""
    target.mkdir()
    for entry in site_packages().iterdir():
        if not entry.name.startswith(CODEC_ENTRIES):
            (target / entry.name).symlink_to(entry)
    return target


SCRIPT = textwrap.dedent("""
    import json, shutil, sys
    import numpy as np
    site, lib, frame_path, truth_path, packages = sys.argv[1:6]
    from ProgressiveDicomFetchLib import transfer_syntax as ts
    from ProgressiveDicomFetchLib.pixels import decode_frame
    from ProgressiveDicomFetchLib.pixels.codecs import missing_packages
    from ProgressiveDicomFetchLib.pixels.description import PixelDescription
    from ProgressiveDicomFetchLib.pixels.errors import CodecUnavailable
    from ProgressiveDicomFetchLib.scene.fetch_session import FetchSession
    data, truth = open(frame_path, "rb").read(), np.load(truth_path)
    pixels = PixelDescription(truth.shape[0], truth.shape[1], 16, 16, 15, 0)
    report = {"before": missing_packages([ts.JPEG_LS_LOSSLESS])}
    try:
        decode_frame(data, ts.JPEG_LS_LOSSLESS, pixels)
        report["decoded_before"] = True
    except CodecUnavailable as error:
        report["decoded_before"] = str(error)
    for entry in json.loads(packages):  # the install: the real package lands in a folder on sys.path
        source = __import__("pathlib").Path(entry)
        (shutil.copytree if source.is_dir() else shutil.copy2)(str(source), f"{site}/{source.name}")
    report["still_missing_without_retry"] = missing_packages([ts.JPEG_LS_LOSSLESS])
    FetchSession().packages_installed()  # what the module calls after pip
    report["after"] = missing_packages([ts.JPEG_LS_LOSSLESS])
    report["decoded_after"] = bool((decode_frame(data, ts.JPEG_LS_LOSSLESS, pixels) == truth).all())
    print(json.dumps(report))
""")


def test_a_decoder_installed_mid_session_is_used_without_restart(tmp_path):
    jpeg_ls = pytest.importorskip("jpeg_ls")
    site = site_without_codecs(tmp_path / "site")
    truth = (np.arange(64 * 48, dtype=np.uint16).reshape(64, 48) * 13) % 4096
    (tmp_path / "frame.jls").write_bytes(bytes(jpeg_ls.encode(truth)))
    np.save(tmp_path / "truth.npy", truth)
    installs = [str(p) for p in site_packages().iterdir()  # what pip puts there: package, extension, metadata
                if p.name == "jpeg_ls" or p.name.startswith(("_CharLS", "pyjpegls-"))]
    lib = str(REPO / "ProgressiveDicomFetch")
    code = f"import sys; sys.path[:] = [p for p in sys.path if 'site-packages' not in p] + [{lib!r}, {str(site)!r}]\n"
    result = subprocess.run([sys.executable, "-S", "-c", code + SCRIPT, str(site), lib, str(tmp_path / "frame.jls"),
                             str(tmp_path / "truth.npy"), json.dumps(installs)],
                            capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["before"] == ["pyjpegls"] and "pip install pyjpegls" in report["decoded_before"]
    assert report["still_missing_without_retry"] == ["pyjpegls"], "the failed import was remembered"
    assert report["after"] == [] and report["decoded_after"] is True
