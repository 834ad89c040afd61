"""Resume after an interruption, against the real servers: a `fetch` killed with SIGKILL mid-load
downloads again exactly the frames that were not complete; a cancelled engine's successor fetches
no frame twice; a large body resumes with Range/If-Range on nginx and is fetched whole again on
Orthanc 1.10, which has no Range support. Byte counts are exact, volumes bit-exact.

A throttling relay (loopback, in this file) slows the server's answers so that a kill or a
cancel reliably lands in the middle of a load; it forwards bytes untouched.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import pydicom
import pytest

from ProgressiveDicomFetchLib.cache import FrameCache
from ProgressiveDicomFetchLib.dicomweb.errors import BadResponse
from ProgressiveDicomFetchLib.dicomweb.frames import body_parts, frame_accept
from ProgressiveDicomFetchLib.dicomweb.ranged_download import DownloadCancelled, download_resumable
from ProgressiveDicomFetchLib.dicomweb.server import DicomwebServer
from ProgressiveDicomFetchLib.engine import ProgressiveFetchEngine

SERIES = ("ct_thin", "ct_thick")  # 120 single-frame instances of 32 KiB


class ThrottledRelay:
    """127.0.0.1 TCP relay to `port`; answers flow at `rate` bytes/s per connection (None: full speed)."""

    def __init__(self, port: int, rate: Optional[float]) -> None:
        self.upstream = port
        self.rate = rate
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name="relay-accept").start()

    def url(self, dicomweb_url: str) -> str:
        return re.sub(r"//127\.0\.0\.1:\d+", f"//127.0.0.1:{self.port}", dicomweb_url)

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, throttled: bool) -> None:
        try:
            while True:
                data = source.recv(4096)
                if not data:
                    break
                target.sendall(data)
                rate = self.rate if throttled else None
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()


@pytest.fixture
def relay(request):
    relays: List[ThrottledRelay] = []

    def make(server, rate):
        relays.append(ThrottledRelay(server.port, rate))
        return relays[-1]

    yield make
    for item in relays:
        item.close()


def fetch_command(url: str, sample, out: Path, cache: Path, *extra: str) -> List[str]:
    study = sample.series(SERIES[0]).study_uid
    series = sum((["--series", sample.series(key).series_uid] for key in SERIES), [])
    return [sys.executable, "-m", "ProgressiveDicomFetchLib", "fetch", "--url", url, "--study", study, *series,
            "--out", str(out), "--cache", str(cache), *extra]


def frame_bytes(sample, key: str) -> int:
    info = sample.series(key)
    return info.rows * info.columns * np.dtype(info.dtype).itemsize  # native syntaxes: the stored frame


def cached_frames(cache_dir: Path, sample) -> dict:
    """Series key -> number of frames of it the cache holds (read through the cache's verified keys)."""
    by_series = {sample.series(key).series_uid: key for key in SERIES}
    counts = {key: 0 for key in SERIES}
    for k in FrameCache(cache_dir).keys():
        counts[by_series[k.series_uid]] += 1
    return counts


def entry_count(cache_dir: Path) -> int:
    return sum(1 for _ in (cache_dir / "v1").glob("*/*.frame")) if (cache_dir / "v1").exists() else 0


def run_timed(command: List[str]):
    start = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    return result, time.monotonic() - start


@pytest.mark.parametrize("server_fixture", ["orthanc", "static_server"])
def test_kill_9_mid_fetch_then_a_new_fetch_downloads_only_what_was_missing(request, server_fixture, relay,
                                                                            sample_small, tmp_path):
    import nrrd

    server = request.getfixturevalue(server_fixture)
    slow = relay(server, rate=1.5e6)  # ~2.6 s for the two series: time to kill it halfway
    url = slow.url(server.dicomweb_url)
    cache_dir = tmp_path / "cache"
    total = sum(sample_small.series(k).num_slices for k in SERIES)
    first = subprocess.Popen(fetch_command(url, sample_small, tmp_path / "out1", cache_dir, "--connections", "2"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    start = time.monotonic()
    try:
        while entry_count(cache_dir) < total // 3 and first.poll() is None and time.monotonic() - start < 120:
            time.sleep(0.005)
        first.send_signal(signal.SIGKILL)
        _, stderr = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    interrupted_s = time.monotonic() - start
    assert first.returncode == -signal.SIGKILL, stderr
    have = cached_frames(cache_dir, sample_small)
    assert 0 < sum(have.values()) < total, have
    assert not list((tmp_path / "out1").glob("*.nrrd"))

    slow.rate = None  # the network is back: full speed, same URL (the cache is keyed on it)
    mark = server.access_log_mark() if server_fixture == "static_server" else None
    resumed, resumed_s = run_timed(fetch_command(url, sample_small, tmp_path / "out2", cache_dir,
                                                 "--timeline", str(tmp_path / "t.json")))
    assert resumed.returncode == 0, resumed.stderr
    timeline = json.loads((tmp_path / "t.json").read_text())
    for key in SERIES:
        info = sample_small.series(key)
        missing = info.num_slices - have[key]
        assert timeline["series"][info.series_uid]["bytes"] == missing * frame_bytes(sample_small, key)
        data, _ = nrrd.read(str(tmp_path / "out2" / f"{info.series_uid}.nrrd"), index_order="C")
        np.testing.assert_array_equal(data, sample_small.load_truth(key))
    refetched = timeline["bytes"]
    if mark is not None:  # what nginx sent, not what the client counted: each missing frame once
        sent = server.access_log(since=mark, path="/frames/")
        assert len(sent) == total - sum(have.values()) and all(r.status == 200 for r in sent)
        assert sum(r.body_bytes for r in sent) == refetched == sum(
            (sample_small.series(k).num_slices - have[k]) * frame_bytes(sample_small, k) for k in SERIES)
    assert f"cache {cache_dir}: {sum(have.values())} frames" in resumed.stdout

    cached, cached_s = run_timed(fetch_command(url, sample_small, tmp_path / "out3", cache_dir,
                                               "--timeline", str(tmp_path / "t3.json")))
    assert cached.returncode == 0 and json.loads((tmp_path / "t3.json").read_text())["bytes"] == 0
    clean, clean_s = run_timed(fetch_command(url, sample_small, tmp_path / "out4", tmp_path / "fresh",
                                             "--timeline", str(tmp_path / "t4.json")))
    full = json.loads((tmp_path / "t4.json").read_text())["bytes"]
    assert clean.returncode == 0 and full == sum(s.num_slices * frame_bytes(sample_small, s.key)
                                                   for s in map(sample_small.series, SERIES))
    print(f"\n[resume {server_fixture}] killed after {interrupted_s:.2f} s with {sum(have.values())}/{total} "
          f"frames cached; resume downloaded {refetched} of {full} bytes ({refetched / full:.0%}) in "
          f"{resumed_s:.2f} s; clean run {clean_s:.2f} s; all-cached run {cached_s:.2f} s (0 bytes)")


def test_a_cancelled_engine_leaves_frames_its_successor_never_fetches_again(orthanc, relay, sample_small, tmp_path):
    info = sample_small.series("ct_thin")
    slow = relay(orthanc, rate=1e6)
    server = DicomwebServer(slow.url(orthanc.dicomweb_url))
    first = ProgressiveFetchEngine(server, connections=2, cache=FrameCache(tmp_path))
    try:
        first.add_series(info.study_uid, info.series_uid)
        deadline = time.monotonic() + 60
        while first.progress()[0].bytes < 20 * frame_bytes(sample_small, "ct_thin") and time.monotonic() < deadline:
            time.sleep(0.01)
        first.cancel(info.series_uid)
    finally:
        assert first.close(timeout=10)
    fetched_first = first.progress()[0].bytes // frame_bytes(sample_small, "ct_thin")
    assert 20 <= fetched_first < info.num_slices
    slow.rate = None
    cache = FrameCache(tmp_path)  # a new session, as after a restart
    assert len(cache.keys()) == fetched_first
    second = ProgressiveFetchEngine(server, connections=4, cache=cache)
    try:
        second.add_series(info.study_uid, info.series_uid)
        assert second.run_until_finished(timeout=120)
    finally:
        second.close()
    progress = second.progress()[0]
    assert progress.state == "complete"
    fetched_second = progress.bytes // frame_bytes(sample_small, "ct_thin")
    assert fetched_first + fetched_second == info.num_slices  # every frame crossed the network once
    assert cache.stats.hits == fetched_first and cache.stats.stores == fetched_second
    np.testing.assert_array_equal(second.loads(info.series_uid)[0].volume.array, sample_small.load_truth("ct_thin"))


def last_request(server) -> tuple:
    """(path, status, body bytes sent) of the last request nginx logged."""
    record = server.access_log()[-1]
    return record.path, record.status, record.body_bytes


def interrupt_after(limit: int):
    cancel = threading.Event()

    def on_bytes(n: int) -> None:
        if n >= limit:
            cancel.set()

    return cancel, on_bytes


def interrupted_static_frame(static_server, sample_small, partial: Path, index: int, after: int):
    """Start downloading frame 1 of a ct_thin instance from nginx and cancel it after `after` bytes."""
    info = sample_small.series("ct_thin")
    instance = next(i for i in static_server.tree.instances if i.sop_uid == info.sop_instance_uids[index])
    server = DicomwebServer(static_server.dicomweb_url)
    path = f"{instance.frames_dir}/1"
    cancel, on_bytes = interrupt_after(after)
    with pytest.raises(DownloadCancelled):
        download_resumable(server, path, partial, cancel=cancel, on_bytes=on_bytes, chunk_size=4096)
    return server, path, static_server.tree.frame_path(instance, 1)


def test_range_resume_on_nginx_sends_only_the_missing_bytes(static_server, sample_small, tmp_path):
    server, path, file = interrupted_static_frame(static_server, sample_small, tmp_path / "f.part", 5, 12_000)
    truth = file.read_bytes()
    kept = (tmp_path / "f.part").stat().st_size
    assert 12_000 <= kept < len(truth)
    result = download_resumable(server, path, tmp_path / "f.part", chunk_size=4096)
    assert result.data == truth and result.resumed_from == kept and result.received == len(truth) - kept
    assert last_request(static_server) == (f"/dicom-web/{path}", 206, len(truth) - kept)  # what nginx sent
    assert not list(tmp_path.iterdir())  # partial and sidecar gone once verified


def test_a_changed_object_or_a_failed_check_starts_over(static_server, sample_small, tmp_path):
    server, path, file = interrupted_static_frame(static_server, sample_small, tmp_path / "f.part", 6, 8_000)
    truth = file.read_bytes()
    stat = file.stat()
    try:
        os.utime(str(file), (stat.st_atime, stat.st_mtime + 7))  # new Last-Modified and ETag: If-Range fails
        result = download_resumable(server, path, tmp_path / "f.part", chunk_size=4096)
    finally:
        os.utime(str(file), (stat.st_atime, stat.st_mtime))
    assert result.data == truth and result.resumed_from == 0 and result.received == len(truth)
    assert last_request(static_server) == (f"/dicom-web/{path}", 200, len(truth))

    def reject(data: bytes, content_type: str) -> None:
        raise ValueError("decodes to the wrong size")

    with pytest.raises(BadResponse, match="does not verify"):
        download_resumable(server, path, tmp_path / "g.part", verify=reject)
    assert not list(tmp_path.iterdir())


def test_orthanc_without_range_support_fetches_the_object_again_exactly(orthanc, sample_small, tmp_path):
    info = sample_small.series("ct_thin")
    sop = info.sop_instance_uids[5]
    pixels = pydicom.dcmread(str(sample_small.files("ct_thin")[5])).PixelData
    server = DicomwebServer(orthanc.dicomweb_url)
    path = f"studies/{info.study_uid}/series/{info.series_uid}/instances/{sop}/frames/1"
    accept = frame_accept("*")
    cancel, on_bytes = interrupt_after(12_000)
    with pytest.raises(DownloadCancelled):
        download_resumable(server, path, tmp_path / "o.part", accept=accept, cancel=cancel, on_bytes=on_bytes,
                           chunk_size=4096)
    sidecar = json.loads((tmp_path / "o.part.json").read_text())
    assert sidecar["resumable"] is False  # no Accept-Ranges: the partial is worthless
    result = download_resumable(server, path, tmp_path / "o.part", accept=accept, chunk_size=4096)
    assert result.resumed_from == 0 and result.received == len(result.data) > len(pixels)
    [part] = body_parts(result.data, result.content_type)
    assert part.data == pixels
    # A partial claiming a validator: Orthanc ignores Range and answers 200, which restarts cleanly.
    (tmp_path / "o.part").write_bytes(result.data[:5000])
    sidecar.update(resumable=True, validator='"forged"', total=len(result.data))
    (tmp_path / "o.part.json").write_text(json.dumps(sidecar))
    again = download_resumable(server, path, tmp_path / "o.part", accept=accept)
    assert again.resumed_from == 0 and body_parts(again.data, again.content_type)[0].data == pixels
