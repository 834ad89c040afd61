"""Rendered previews (issue 25) against the real Orthanc: DICOMweb `/rendered` JPEGs calibrated on
the probe's exact anchor frame, and refused where the calibration fails.

Orthanc is reached through the fault relay (no fault scripted), whose request record counts what
went on the wire. For servers whose `/rendered` misbehaves, a scripted server relays everything
to Orthanc but answers `/rendered` with Orthanc's own JPEG for other parameters (a display window,
or no window at all): real pictures of the kind such servers send.
"""
from __future__ import annotations

import collections
import json
import logging
import re
import subprocess
import sys
import threading

import numpy as np
import pytest
import requests
from scripted_server import ScriptedServer
from test_in_plane_previews import WriteLog, run

from ProgressiveDicomFetchLib.engine import StagePlan
from ProgressiveDicomFetchLib.previews.rendered import MAX_MEAN_ERROR, Rendered, rendered_available
from ProgressiveDicomFetchLib.volume import Quality

logger = logging.getLogger(__name__)
pytestmark = pytest.mark.skipif(not rendered_available(), reason="no JPEG decoder is installed")

KEY = "ct_thin"  # 80 slices, 128x128, 12-bit CT, explicit little endian
FRAME = re.compile(r"/instances/([^/]+)/frames/(\d+)$")
RENDERED = re.compile(r"/instances/([^/]+)/frames/(\d+)/rendered\?")
NO_PREVIEWS = StagePlan.parse("anchors,8,4,2")


class PreviewLog(WriteLog):
    """The write log, plus the data of every accepted preview write (the previewed volume)."""

    def __init__(self, loads):
        self.previews = {}
        super().__init__(loads)

    def _wrap(self, index, volume):
        original = volume.write_slice
        lock = threading.Lock()

        def write_slice(k, data, quality=Quality.FULL, reduction=1):
            written = original(k, data, quality, reduction)
            with lock:
                self.writes.append((index, k, Quality(quality), written))
                if written and quality < Quality.FULL:
                    self.previews[k] = np.array(data, dtype=np.float64)
            return written
        volume.write_slice = write_slice


def load(url, info, plan=StagePlan()):
    engine, events, log, loads = run(url, info, plan, log_type=PreviewLog, rendered=True)
    return engine, events, log, loads[0]


def requested(paths, pattern):
    """How often each (instance, frame) was asked with this pattern."""
    return collections.Counter(m.groups() for m in map(pattern.search, paths) if m)


def psnr(estimate, truth):
    peak = float(truth.max() - truth.min())
    return 10 * np.log10(peak ** 2 / np.mean((estimate - truth) ** 2))


def test_orthanc_rendered_previews_calibrate_land_first_and_nothing_is_fetched_twice(orthanc_relay, sample_small):
    info = sample_small.series(KEY)
    engine, events, log, volume_load = load(orthanc_relay.dicomweb_url, info)
    state = engine._series[info.series_uid]
    source = state.preview
    assert isinstance(source, Rendered), state.preview_note
    assert source.calibration.mean_error < MAX_MEAN_ERROR * source.window.width
    n = volume_load.volume.num_slices
    probe_k = n // 2  # the probe's slice is the middle anchor: exact, never previewed
    accepted = log.accepted()
    first_other_full = next(i for i, (_, k, q) in enumerate(accepted) if q == Quality.FULL and k != probe_k)
    before = accepted[:first_other_full]
    assert {k for _, k, q in before if q == Quality.SUBRESOLUTION} == set(range(n)) - {probe_k}
    assert {k for _, k, q in before if q == Quality.FULL} == {probe_k}
    truth = sample_small.load_truth(KEY).astype(np.float64)
    np.testing.assert_array_equal(volume_load.volume.array, truth)  # exact at the end

    previewed = truth.copy()  # the volume at the moment every slice is previewed: previews + the probe's frame
    for k, data in log.previews.items():
        previewed[k] = data
    error = np.abs(previewed - truth).mean()
    nearest = np.abs(truth[::4].repeat(4, axis=0)[:n] - truth).mean()  # every 4th slice, copied
    logger.info("previewed volume: mean error %.1f HU, %.1f dB (every 4th slice copied: %.1f HU, %.1f dB)",
                error, psnr(previewed, truth), nearest, psnr(truth[::4].repeat(4, axis=0)[:n], truth))
    assert error < nearest and error < 2 * source.calibration.mean_error

    frames = requested([r.path for r in orthanc_relay.requests], FRAME)
    assert len(frames) == n and set(frames.values()) == {1}  # every frame once, the probe's included
    rendered = requested([r.path for r in orthanc_relay.requests], RENDERED)
    assert len(rendered) == n and set(rendered.values()) == {1}  # one rendering per slice (the probe's calibrates)
    assert [e.stage for e in events if e.event == "stage"] == StagePlan().stage_ids()


def _proxy(orthanc, replace_query):
    """A scripted server: Orthanc's answers, but `/rendered` asked with `replace_query(query)`."""
    def respond(number, path, headers):
        if "/rendered?" in path:
            base, query = path.split("?", 1)
            path = f"{base}?{replace_query(query)}"
        upstream = orthanc.dicomweb_url.rsplit("/dicom-web", 1)[0] + path
        reply = requests.get(upstream, headers={"Accept": headers.get("Accept", "*/*"),
                                                "Accept-Encoding": "identity"}, timeout=30)
        return reply.status_code, {"Content-Type": reply.headers.get("Content-Type", "")}, reply.content
    return ScriptedServer(respond)


DISPLAY_WINDOW = "window=40,400,linear"  # a soft-tissue picture, as a viewer asks


@pytest.mark.parametrize("misbehaviour, replace_query, reason", [
    ("ignores the window", lambda q: re.sub(r"&?window=[^&]*", "", q), "not the requested window"),
    ("returns a windowed picture", lambda q: re.sub(r"window=[^&]*", DISPLAY_WINDOW, q), "not the requested window"),
])
def test_a_rendered_resource_that_is_not_the_asked_map_is_refused_and_the_load_is_unchanged(
        misbehaviour, replace_query, reason, orthanc, sample_small):
    info = sample_small.series(KEY)
    with _proxy(orthanc, replace_query) as server:
        engine, events, log, volume_load = load(server.url, info)
        paths = [r.path for r in server.requests]
    note = engine._series[info.series_uid].preview_note
    assert engine._series[info.series_uid].preview is None and reason in note, note
    assert {q for _, _, q in log.accepted()} == {Quality.FULL}
    np.testing.assert_array_equal(volume_load.volume.array, sample_small.load_truth(KEY))
    assert [e.stage for e in events if e.event == "stage"] == NO_PREVIEWS.stage_ids()
    frames = requested(paths, FRAME)
    assert len(frames) == volume_load.volume.num_slices and set(frames.values()) == {1}  # the probe's frame kept
    assert sum(requested(paths, RENDERED).values()) == 1  # the probe's rendering only


def test_orthanc_renders_enhanced_ct_frames_without_their_rescale_and_the_probe_refuses(orthanc, sample_small):
    """Orthanc 1.10 windows the stored values of an enhanced multi-frame CT (its rescale sits in
    the functional groups): a real server whose greys are not the asked map."""
    info = sample_small.series("enhanced_ct")
    engine, events, log, volume_load = load(orthanc.dicomweb_url, info)
    note = engine._series[info.series_uid].preview_note
    assert engine._series[info.series_uid].preview is None and "not the requested window" in note, note
    assert {q for _, _, q in log.accepted()} == {Quality.FULL}
    np.testing.assert_array_equal(volume_load.volume.array, sample_small.load_truth("enhanced_ct"))


def test_without_a_jpeg_decoder_the_source_is_off_and_the_series_loads_by_frames(orthanc, sample_small):
    info = sample_small.series(KEY)
    code = (
        "import sys\n"
        "import pydicom  # its codec plugins load first; then the JPEG decoders are hidden from us\n"
        "for name in ('imagecodecs', 'libjpeg', 'PIL', 'PIL.Image'): sys.modules[name] = None\n"
        "from ProgressiveDicomFetchLib.dicomweb import DicomwebServer\n"
        "from ProgressiveDicomFetchLib.engine import ProgressiveFetchEngine\n"
        "engine = ProgressiveFetchEngine(DicomwebServer(sys.argv[1]), connections=2, rendered=True)\n"
        "engine.add_series(sys.argv[2], sys.argv[3])\n"
        "assert engine.run_until_finished(timeout=120)\n"
        "state = engine._series[sys.argv[3]]\n"
        "print(state.preview, state.preview_note, state.complete)\n"
        "engine.close()\n")
    result = subprocess.run([sys.executable, "-c", code, orthanc.dicomweb_url, info.study_uid, info.series_uid],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("None ") and "needs a JPEG decoder" in result.stdout
    assert result.stdout.strip().endswith("True")


@pytest.mark.parametrize("flag, stages", [
    (["--rendered-previews"], StagePlan().stage_ids()),
    ([], NO_PREVIEWS.stage_ids()),  # off by default: Orthanc loads as before
])
def test_fetch_command_takes_rendered_previews_only_when_asked(flag, stages, orthanc, sample_small, tmp_path):
    import nrrd
    info = sample_small.series(KEY)
    result = subprocess.run([sys.executable, "-m", "ProgressiveDicomFetchLib", "fetch", "--url", orthanc.dicomweb_url,
                             "--study", info.study_uid, "--series", info.series_uid, "--out", str(tmp_path / "out"),
                             "--timeline", str(tmp_path / "t.json"), *flag], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "t.json").read_text())["series"][info.series_uid]
    assert list(record["stages"]) == stages
    data, _ = nrrd.read(str(tmp_path / "out" / f"{info.series_uid}.nrrd"), index_order="C")
    np.testing.assert_array_equal(data, sample_small.load_truth(KEY))
