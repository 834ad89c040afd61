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
import time
import types

import numpy as np
import pytest
import requests
from scripted_server import ScriptedServer
from test_in_plane_previews import WriteLog, run

from ProgressiveDicomFetchLib.engine import StagePlan
from ProgressiveDicomFetchLib.pixels import PixelDescription
from ProgressiveDicomFetchLib.previews import RenderedPreviews
from ProgressiveDicomFetchLib.previews.rendered import MAX_MEAN_ERROR, Rendered, rendered_available
from ProgressiveDicomFetchLib.previews.rendered_link import (MAX_PREVIEW_SHARE, OPTIONS, FrameTiming,
                                                             choose_option)
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


def load(url, info, plan=StagePlan(), mode=True):
    engine, events, log, loads = run(url, info, plan, log_type=PreviewLog, rendered=mode)
    return engine, events, log, loads[0]


def requested(paths, pattern):
    """How often each (instance, frame) was asked with this pattern."""
    return collections.Counter(m.groups() for m in map(pattern.search, paths) if m)


def psnr(estimate, truth):
    peak = float(truth.max() - truth.min())
    return 10 * np.log10(peak ** 2 / np.mean((estimate - truth) ** 2))


@pytest.mark.compat
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
    (["--rendered-previews"], StagePlan().stage_ids()),  # the flag alone: on
    (["--rendered-previews", "on"], StagePlan().stage_ids()),
    (["--rendered-previews", "auto"], NO_PREVIEWS.stage_ids()),  # loopback: they do not pay
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


def test_fetch_command_names_the_choices_of_rendered_previews(tmp_path):
    result = subprocess.run([sys.executable, "-m", "ProgressiveDicomFetchLib", "fetch", "--url", "http://127.0.0.1:9",
                             "--study", "1.2.3", "--out", str(tmp_path), "--rendered-previews", "sometimes"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "--rendered-previews" in result.stderr and "auto" in result.stderr
    with pytest.raises(ValueError, match="off, auto, on"):
        RenderedPreviews.parse("sometimes")
    assert [RenderedPreviews.parse(v) for v in (True, False, "AUTO")] == [
        RenderedPreviews.ON, RenderedPreviews.OFF, RenderedPreviews.AUTO]


AUTO_KEY = "ct_thick"  # 40 slices of 128x128 CT, 33 KB frames
SLOW_LINK_BPS = 0.5e6  # a frame takes ~520 ms on it, a rendering (~1.5 KB) ~25-35 ms
SLOW_LINK_BURST = 2048  # the relay's default 16 KB burst would carry half a frame at once


def test_auto_skips_rendered_previews_on_loopback_and_says_why(orthanc_relay, sample_small):
    info = sample_small.series(AUTO_KEY)
    engine, events, log, volume_load = load(orthanc_relay.dicomweb_url, info, mode="auto")
    state = engine._series[info.series_uid]
    assert state.preview is None and "not worth it on this link" in state.preview_note, state.preview_note
    assert {q for _, _, q in log.accepted()} == {Quality.FULL}
    assert [e.stage for e in events if e.event == "stage"] == NO_PREVIEWS.stage_ids()
    paths = [r.path for r in orthanc_relay.requests]
    assert sum(requested(paths, RENDERED).values()) <= 1  # none, or the one the probe measured
    frames = requested(paths, FRAME)
    assert len(frames) == volume_load.volume.num_slices and set(frames.values()) == {1}
    np.testing.assert_array_equal(volume_load.volume.array, sample_small.load_truth(AUTO_KEY))


def test_auto_takes_rendered_previews_where_the_link_is_the_limit(orthanc, sample_small):
    """At 0.5 Mbit/s the renderings pay: every slice is previewed before any is exact but the probe's
    (the load is cancelled then: the exact part is as tested above, and slow here)."""
    from servers.latency_relay import LatencyRelay

    from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
    from ProgressiveDicomFetchLib.engine import ProgressiveFetchEngine
    from test_in_plane_previews import prepared_loads

    info = sample_small.series(AUTO_KEY)
    with LatencyRelay(orthanc.port, 0.0, SLOW_LINK_BPS, lifetime_s=120.0, burst=SLOW_LINK_BURST) as relay:
        loads = prepared_loads(DicomwebServer(relay.dicomweb_url), info)
        log = PreviewLog(loads)
        engine = ProgressiveFetchEngine(DicomwebServer(relay.dicomweb_url), connections=3, rendered="auto")
        stages = []
        try:
            engine.add_series(info.study_uid, info.series_uid, loads=loads)
            deadline = time.monotonic() + 60
            while "preview-rest" not in stages and not engine.finished() and time.monotonic() < deadline:
                stages += [e.stage for e in engine.process_events().events if e.event == "stage"]
                time.sleep(0.02)
            engine.cancel(info.series_uid)
        finally:
            assert engine.close(timeout=5)
    state = engine._series[info.series_uid]
    assert isinstance(state.preview, Rendered) and "the link: frame" in state.preview_note, state.preview_note
    assert stages == ["preview-every-4", "preview-rest"]
    n = loads[0].volume.num_slices
    accepted = log.accepted()
    last_preview = max(i for i, (_, _, q) in enumerate(accepted) if q == Quality.SUBRESOLUTION)
    assert {k for _, k, q in accepted[:last_preview + 1] if q == Quality.SUBRESOLUTION} | {n // 2} == set(range(n))
    assert {k for _, k, q in accepted[:last_preview] if q == Quality.FULL} == {n // 2}  # the probe's anchor
    # small frames on a slow link get the smallest rendering (its bytes stay a small share)
    assert state.preview.size == (128, 128) and state.preview.jpeg_quality == OPTIONS[-1][1]


CT_512 = PixelDescription(512, 512, 16, 12, 11, 1)


@pytest.mark.compat
@pytest.mark.parametrize("mbit, expected", [(1000, (256, 90)), (100, (256, 90)), (10, (256, 75)), (2, (128, 75))])
def test_slower_links_get_smaller_renderings(mbit, expected):
    """240 frames of a 512² CT of 524 KB, each taking its link time: the renderings of every slice
    must cross the link within a second and stay within 3 % of the frame's bytes."""
    frame = FrameTiming(524288, 524288 * 8 / (mbit * 1e6))
    assert choose_option(CT_512, 240, frame) == expected
    assert choose_option(CT_512, 240, None) == (256, 90)  # not measured: the default


@pytest.mark.compat
def test_the_pay_rule_compares_the_rendering_with_the_frame():
    from ProgressiveDicomFetchLib.previews.rendered_link import BESIDE_MAX_SHARE, does_not_pay, too_quick_to_render
    frame = FrameTiming(524288, 0.048)  # ~100 Mbit/s
    small, link_filling = 8300, int(0.6 * frame.rate() * 0.2 * frame.seconds)  # 256 q90; bytes for 60 % of its time
    assert too_quick_to_render(frame) is None
    assert does_not_pay(frame, 0.8 * MAX_PREVIEW_SHARE * frame.seconds, link_filling) is None
    # between the two shares they pay only where whole frames can flow beside them
    assert does_not_pay(frame, 0.2 * frame.seconds, small) is None
    assert "with whole frames beside" in does_not_pay(frame, 0.2 * frame.seconds, link_filling)
    assert "not worth it" in does_not_pay(frame, 1.1 * BESIDE_MAX_SHARE * frame.seconds, small)
    assert "not worth it" in too_quick_to_render(FrameTiming(524288, 0.006))  # loopback


@pytest.mark.compat
def test_frames_flow_beside_where_the_previews_leave_the_link_idle_on_windows_of_one_renderings_bytes():
    from ProgressiveDicomFetchLib.previews.rendered_link import (BESIDE_CONNECTIONS, MIN_BESIDE_WINDOW,
                                                                 FramesBeside, frames_beside)
    frame = FrameTiming(524288, 0.0436)  # 100 Mbit/s, as the benchmark's probe measured it
    beside = frames_beside(frame, 0.0059, 8300)  # together: the link's bytes in half a rendering's time
    assert beside == FramesBeside(BESIDE_CONNECTIONS, int(frame.rate() * 0.0059 / 2 / BESIDE_CONNECTIONS))
    assert 15_000 < beside.window < 20_000 and "2 connections, 17 KB windows" in beside.describe()
    assert frames_beside(FrameTiming(524288, 0.0053), 0.0118, 8300) is None  # loopback: frames are quicker
    thirty = FrameTiming(524288, 0.139)  # 30 Mbit/s: windows of what this link carries in a rendering's time
    assert frames_beside(thirty, 0.0095, 8300) == FramesBeside(BESIDE_CONNECTIONS, int(thirty.rate() * 0.0095 / 4))
    assert frames_beside(FrameTiming(33000, 0.52), 0.035, 1500) is None  # 0.5 Mbit/s: renderings fill the link
    assert frames_beside(FrameTiming(65536, 0.0436), 0.0045, 10).window == MIN_BESIDE_WINDOW  # a slow small frame


COLOUR_FRAMES, COLOUR_SIDE = 12, 320  # a 320² frame is rendered at 256² (rendered_link.py) and upsampled


def smooth_rgb_cine(frames=COLOUR_FRAMES, side=COLOUR_SIDE):
    """The sample US RGB cine's header with smooth colour frames (red across, green down, a blue
    disc growing along the cine): what an ultrasound or endoscopy clip looks like to a JPEG. Values
    90..170 only: a window narrowed to them would not be the identity Orthanc renders colour with."""
    from ProgressiveDicomFetchLib.sampledata.image_kinds import uid, us_rgb_cine
    item = us_rgb_cine(np.random.default_rng(25), frames)
    ds = item.datasets[0]
    j, i = np.mgrid[0:side, 0:side].astype(np.float64)
    cine = []
    for k in range(frames):
        disc = np.hypot(i - side / 2, j - side / 2) < side * (0.15 + 0.02 * k)
        cine.append(np.stack([90 + 80 * i / side, 95 + 70 * j / side, np.where(disc, 160.0, 100.0)], axis=-1))
    values = np.rint(np.array(cine)).astype(np.uint8)
    ds.Rows = ds.Columns = side
    ds.PixelData = values.transpose(0, 3, 1, 2).tobytes()  # planar configuration 1, as the sample's
    ds.SeriesInstanceUID, ds.SOPInstanceUID = uid("smooth_rgb", "series"), uid("smooth_rgb", "sop")
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return item, ds, values


@pytest.fixture(scope="module")
def colour_series(orthanc_empty, tmp_path_factory):
    """On a module's own Orthanc: the smooth RGB cine, and the sample's noise RGB cine as generated."""
    from ProgressiveDicomFetchLib.sampledata.image_kinds import us_rgb_cine
    from ProgressiveDicomFetchLib.sampledata.writer import save_dataset
    folder = tmp_path_factory.mktemp("colour")
    _, smooth, smooth_truth = smooth_rgb_cine()
    noise = us_rgb_cine(np.random.default_rng(17))
    paths = [folder / "smooth.dcm", folder / "noise.dcm"]
    save_dataset(smooth, paths[0])
    save_dataset(noise.datasets[0], paths[1])
    orthanc_empty.upload(paths)
    found = {"smooth": (smooth, smooth_truth), "noise": (noise.datasets[0], noise.truth[0])}
    return orthanc_empty, {key: (types.SimpleNamespace(study_uid=ds.StudyInstanceUID, series_uid=ds.SeriesInstanceUID),
                                 truth) for key, (ds, truth) in found.items()}


def test_colour_series_get_rgb_previews_calibrated_channel_by_channel(colour_series):
    server, series = colour_series
    info, truth = series["smooth"]
    engine, events, log, volume_load = load(server.dicomweb_url, info)
    state = engine._series[info.series_uid]
    assert isinstance(state.preview, Rendered) and state.preview.channels == 3, state.preview_note
    assert "RGB" in state.preview_note and state.preview.size == (256, 256)
    n = volume_load.volume.num_slices
    accepted = log.accepted()
    first_other_full = next(i for i, (_, k, q) in enumerate(accepted) if q == Quality.FULL and k != n // 2)
    assert {k for _, k, q in accepted[:first_other_full] if q == Quality.SUBRESOLUTION} == set(range(n)) - {n // 2}
    previewed = np.array([log.previews[k] for k in sorted(log.previews)])
    error = np.abs(previewed - truth[sorted(log.previews)]).mean(axis=(0, 1, 2))  # per channel
    logger.info("RGB previews: mean error per channel %s (of 255)", np.round(error, 2))
    assert previewed.shape[-1] == 3 and (error < MAX_MEAN_ERROR * 255).all()
    np.testing.assert_array_equal(volume_load.volume.array, truth)  # exact at the end


def test_a_colour_rendering_that_misses_the_frame_is_refused_naming_the_channel(colour_series):
    """The sample's US cine is per-pixel noise: no JPEG keeps it, the calibration says so."""
    server, series = colour_series
    info, truth = series["noise"]
    engine, events, log, volume_load = load(server.dicomweb_url, info)
    note = engine._series[info.series_uid].preview_note
    assert engine._series[info.series_uid].preview is None and "no rendered previews: R channel: " in note, note
    assert {q for _, _, q in log.accepted()} == {Quality.FULL}
    np.testing.assert_array_equal(volume_load.volume.array, truth)


def probed_slice(orthanc_relay, sample_small):
    """The small CT's volume, its fetcher, the probe's slice and that slice's real frame from Orthanc."""
    from test_in_plane_previews import prepared_loads

    from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
    from ProgressiveDicomFetchLib.previews.probe import probe_task
    from ProgressiveDicomFetchLib.retrieve import fetcher_for

    server = DicomwebServer(orthanc_relay.dicomweb_url)
    load = prepared_loads(server, sample_small.series(AUTO_KEY))[0]
    fetcher = fetcher_for(server, load, None)
    task = probe_task(fetcher, load)
    return load, fetcher, task, fetcher.fetch([task])[0]


@pytest.mark.parametrize("mode, frame_s, taken, renderings", [
    (RenderedPreviews.AUTO, 0.001, False, 0),  # too quick a frame: nothing rendered
    (RenderedPreviews.AUTO, 10.0, True, 1),  # a frame this slow: the rendering pays
    (RenderedPreviews.ON, 0.001, True, 1),  # forced
])
def test_the_probe_decides_from_the_timed_frame(mode, frame_s, taken, renderings, orthanc_relay, sample_small):
    """The real frame and rendering from Orthanc; only the frame's time is given (a link of choice)."""
    from ProgressiveDicomFetchLib.previews.probe import Probe, _probe_rendered

    load, fetcher, task, frame = probed_slice(orthanc_relay, sample_small)
    probe = _probe_rendered(fetcher, load, task, Probe(None, frame=(task, frame, len(frame.data)), frame_s=frame_s), mode)
    assert isinstance(probe.source, Rendered) is taken, probe.reason
    assert probe.frame[1] is frame  # kept for its turn
    assert sum(requested([r.path for r in orthanc_relay.requests], RENDERED).values()) == renderings
    if not taken:
        assert "a rendering takes at least" in probe.reason and probe.bytes == 0


def test_a_rendering_timed_near_the_bounds_is_timed_on_a_second_slice_which_keeps_it_as_its_preview(
        orthanc, orthanc_relay, sample_small):
    """The real renderings from Orthanc; the link is given: a frame 4x one rendering's time measured
    here, of 2 KB (so the renderings' bytes would fill the link: no frames beside). A rendering
    then does not pay alone by the rule but lies within 2x of it whether it takes half or twice the
    measured time, so the probe times a second one, once the first view's write has settled. The
    slice is rendered once before, straight from Orthanc (not through the relay, which counts): a
    first rendering can take twice the later ones (seen: 5.7 ms measured here where the probe's
    were under 2.8), and the probe's then fell below the window (1 of ~20 full runs)."""
    from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
    from ProgressiveDicomFetchLib.previews.probe import Probe, _probe_rendered

    load, fetcher, task, frame = probed_slice(orthanc_relay, sample_small)
    DicomwebServer(orthanc.dicomweb_url).get(f"{fetcher.frame_path(task)}/rendered", accept="image/jpeg")

    settled = []

    def probe(frame_s, frame_bytes=len(frame.data)):
        return _probe_rendered(fetcher, load, task, Probe(None, frame=(task, frame, frame_bytes), frame_s=frame_s),
                               RenderedPreviews.ON,
                               lambda: settled.append(sum(requested([r.path for r in orthanc_relay.requests],
                                                                    RENDERED).values())))

    once = probe(10.0)  # far from the bounds: one rendering
    assert once.preview is None and "quicker of two" not in once.reason
    rendering_s = float(re.search(r"rendering ([0-9.]+) ms", once.reason).group(1)) / 1e3
    twice = probe(4.1 * rendering_s, 2000)
    assert "(the quicker of two)" in twice.reason, twice.reason
    assert settled == [2]  # waited for once, after this probe's first rendering (the one before counts too)
    other, got = twice.preview
    n = load.volume.num_slices
    assert other.k == n // 4 != task.k and got.preview.shape == (128, 128) and got.size > 0
    truth = sample_small.load_truth(AUTO_KEY)[other.k].astype(np.float64)
    values = got.preview.astype(np.float64) * twice.source.slope + twice.source.intercept  # stored -> modality
    assert np.abs(values - truth).mean() < 2 * twice.source.calibration.mean_error  # a calibrated preview of that slice
    rendered = requested([r.path for r in orthanc_relay.requests], RENDERED)
    assert sum(rendered.values()) == 3 and len(rendered) == 2  # the probe's slice twice (two probes), the other once


@pytest.mark.parametrize("mode", [RenderedPreviews.ON, RenderedPreviews.OFF])
def test_the_probes_first_view_comes_once_before_any_rendering(mode, orthanc_relay, sample_small):
    """The first view is not held back by the renderings (a retiming waits for its write instead)."""
    from test_in_plane_previews import prepared_loads

    from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
    from ProgressiveDicomFetchLib.previews import find_preview_source
    from ProgressiveDicomFetchLib.retrieve import fetcher_for

    info = sample_small.series(AUTO_KEY)
    server = DicomwebServer(orthanc_relay.dicomweb_url)
    load = prepared_loads(server, info)[0]
    views = []

    def on_frame(task, frame):
        views.append((task.k, sum(requested([r.path for r in orthanc_relay.requests], RENDERED).values())))

    probe = find_preview_source(fetcher_for(server, load, None), load, mode, on_frame)
    assert (probe.source is not None) == (mode is RenderedPreviews.ON), probe.reason
    renderings = sum(requested([r.path for r in orthanc_relay.requests], RENDERED).values())
    assert (renderings > 0) == (mode is RenderedPreviews.ON)  # one, or two when timed again
    assert views == [(load.volume.num_slices // 2, 0)]
