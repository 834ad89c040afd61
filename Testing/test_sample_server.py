"""The embedded sample server (demo, Slicer's "Sample server") over real HTTP: loopback only, a
clean stop, bytes identical to the DICOM files, the project's client and engine on top, safe
paths, a paced total rate, and the cached sample it serves."""
from __future__ import annotations

import gzip
import http.client
import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import List

import numpy as np
import pydicom
import pytest
import requests
from servers.ports import assert_loopback_only, listening_sockets

from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
from ProgressiveDicomFetchLib.dicomweb.metadata import series_metadata
from ProgressiveDicomFetchLib.dicomweb.search import search_instances, search_series, search_studies
from ProgressiveDicomFetchLib.engine import ProgressiveFetchEngine
from ProgressiveDicomFetchLib.sampledata import generator_version
from ProgressiveDicomFetchLib.sampledata.manifest import SampleManifest
from ProgressiveDicomFetchLib.sampledata.sample_cache import default_sample_dir
from ProgressiveDicomFetchLib.sampledata.sample_server import SampleServer, ensure_sample, ensure_sample_tree
from ProgressiveDicomFetchLib.sampledata.static_tree import frame_bytes_from_body, split_frames, write_static_tree
from ProgressiveDicomFetchLib.sampledata.throttle import RateLimiter, format_rate, parse_rate

pytestmark = pytest.mark.compat  # standard library + the core: also on Slicer 5.8's stack
SERIES = ("ct_thick", "enhanced_ct", "ct_sagittal")  # single-frame, multi-frame, another geometry


@pytest.fixture(scope="module", params=[False, True], ids=["bare-frames", "multipart-frames"])
def tree(request, sample_small, tmp_path_factory):
    files = [path for key in SERIES for path in sample_small.files(key)]
    return write_static_tree(files, tmp_path_factory.mktemp("tree"), multipart_frames=request.param)


@pytest.fixture
def server(tree):
    with SampleServer(tree.root) as running:
        yield running


def port_refuses(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def raw_get(port: int, path: str, method: str = "GET") -> http.client.HTTPResponse:
    """A request sent as written (requests and urllib3 would normalise '..' away)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.putrequest(method, path, skip_accept_encoding=True)
    connection.endheaders()
    response = connection.getresponse()
    response.body = response.read()
    connection.close()
    return response


# ---------------------------------------------------------------- life cycle

def test_listens_on_loopback_only_and_stop_frees_everything(tree):
    server = SampleServer(tree.root)
    url = server.start()
    port = server.port
    assert url == server.url == f"http://127.0.0.1:{port}/dicom-web"
    ours = [s for s in listening_sockets(os.getpid()) if s.port == port]
    assert [(s.protocol, s.address) for s in ours] == [("tcp", "127.0.0.1")]
    assert_loopback_only(os.getpid(), port)
    session = requests.Session()  # a keep-alive connection still open when the server stops
    assert session.get(f"{url}/studies", timeout=10).status_code == 200
    assert server.running and server._thread.daemon
    threads = set(threading.enumerate())
    server.stop()
    server.stop()  # idempotent
    assert not server.running and not any(t.is_alive() for t in server._handlers)
    assert port_refuses(port)
    assert port not in [s.port for s in listening_sockets(os.getpid())]
    assert not [t for t in threads if t.is_alive() and t.name.startswith("pdf-sample-server")]
    with pytest.raises(requests.ConnectionError):
        session.get(f"{url}/studies", timeout=5)  # the old connection was closed, nobody listens
    session.close()
    with SampleServer(tree.root) as again:  # start/stop by context, a fresh port each time
        assert requests.get(f"{again.url}/studies", timeout=10).status_code == 200
        second_port = again.port
    assert port_refuses(second_port)


# ---------------------------------------------------------------- what it serves

def test_frames_are_the_stored_bytes_with_their_content_type(server, tree):
    session = requests.Session()
    for instance in tree.instances:
        frames = split_frames(pydicom.dcmread(instance.source))
        assert len(frames) == instance.frames
        for number, frame in enumerate(frames, start=1):
            reply = session.get(f"{server.url}/{instance.frames_dir}/{number}", headers={"Accept-Encoding": "identity"},
                                timeout=10)
            assert reply.status_code == 200
            assert reply.headers["Content-Type"] == tree.frame_content_type(instance)
            assert int(reply.headers["Content-Length"]) == len(reply.content)
            assert frame_bytes_from_body(reply.content) == frame
    head = session.head(f"{server.url}/{tree.instances[0].frames_dir}/1", timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["Content-Length"]) == tree.frame_path(tree.instances[0], 1).stat().st_size
    assert head.headers.get("Connection", "keep-alive").lower() != "close"


def test_json_answers_gzip_when_asked_and_ignore_query_strings(server, tree):
    study = tree.study_uids[0]
    series = tree.series_uids(study)[0]
    path = f"studies/{study}/series/{series}/metadata"
    plain = requests.get(f"{server.url}/{path}", headers={"Accept-Encoding": "identity"}, timeout=10)
    assert plain.headers["Content-Type"] == "application/dicom+json" and "Content-Encoding" not in plain.headers
    assert plain.content == (tree.root / path).read_bytes()
    packed = raw_get(server.port, f"/dicom-web/{path}")  # no Accept-Encoding: plain
    assert packed.getheader("Content-Encoding") is None
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", f"/dicom-web/{path}", headers={"Accept-Encoding": "gzip;q=1.0, br;q=0"})
    reply = connection.getresponse()
    assert reply.getheader("Content-Encoding") == "gzip" and reply.getheader("Vary") == "Accept-Encoding"
    assert gzip.decompress(reply.read()) == plain.content
    connection.close()
    everything = requests.get(f"{server.url}/studies?PatientName=NOBODY&includefield=all&limit=1", timeout=10)
    assert everything.json() == json.loads((tree.root / "studies/index.json").read_text())


def test_the_projects_client_and_engine_read_it_exactly(server, tree, sample_small):
    client = DicomwebServer(server.url)
    study = sample_small.series("ct_thick").study_uid
    assert [s.study_uid for s in search_studies(client).records] == [study]
    found = search_series(client, study).records
    assert sorted(s.series_uid for s in found) == sorted(sample_small.series(k).series_uid for k in SERIES)
    info = sample_small.series("ct_thick")
    assert len(search_instances(client, study, info.series_uid).records) == info.num_instances
    assert len(series_metadata(client, study, info.series_uid)) == info.num_instances
    engine = ProgressiveFetchEngine(client, connections=3)
    try:
        for key in SERIES:
            engine.add_series(study, sample_small.series(key).series_uid)
        assert engine.run_until_finished(timeout=120)
        for key in SERIES:
            loads = engine.loads(sample_small.series(key).series_uid)
            assert len(loads) == 1
            np.testing.assert_array_equal(loads[0].volume.array, sample_small.load_truth(key))
            np.testing.assert_allclose(loads[0].geometry.ijk_to_lps, np.array(sample_small.series(key).ijk_to_lps),
                                       atol=1e-4)
    finally:
        engine.close()


@pytest.mark.parametrize("path, status", [
    ("/dicom-web/studies/../../../../etc/passwd", 400),
    ("/dicom-web/studies/%2e%2e/%2e%2e/static_tree.json", 400),
    ("/dicom-web/studies/..%2f..%2fetc/series", 400),
    ("/dicom-web/studies/1.2.3/series/%00/metadata", 400),
    ("/dicom-web/studies/abc/series", 400),
    ("/dicom-web/studies//series", 400),
    ("/dicom-web/static_tree.json", 404),
    ("/etc/passwd", 404),
    ("/dicom-web/studies/1.2.3/series", 404),
    ("/dicom-web/studies/1.2.3", 404),
    ("/dicom-web/", 404),
])
def test_bad_and_unknown_paths_are_400_or_404(server, path, status):
    reply = raw_get(server.port, path)
    assert reply.status == status, (path, reply.body)
    assert reply.getheader("Content-Type", "").startswith("text/plain")
    assert int(reply.getheader("Content-Length")) == len(reply.body) > 0
    assert b"root:" not in reply.body and b"multipart_frames" not in reply.body
    assert raw_get(server.port, path, "HEAD").status == status


def test_frame_lists_and_bad_frame_numbers(server, tree):
    frames_dir = next(i for i in tree.instances if i.frames > 1).frames_dir
    assert raw_get(server.port, f"/dicom-web/{frames_dir}/1,2").status == 404  # the client then asks one by one
    assert raw_get(server.port, f"/dicom-web/{frames_dir}/0").status == 400
    assert raw_get(server.port, f"/dicom-web/{frames_dir}/x").status == 400
    assert raw_get(server.port, f"/dicom-web/{frames_dir}/99999").status == 404
    assert raw_get(server.port, f"/dicom-web/{frames_dir}/2").status == 200


def test_a_link_out_of_the_tree_is_not_followed(tree, tmp_path):
    root = tmp_path / "tree"
    shutil.copytree(str(tree.root), str(root))
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    instance = tree.instances[0]
    link = root / instance.frames_dir / "1"
    link.unlink()
    link.symlink_to(secret)
    with SampleServer(root) as server:
        assert raw_get(server.port, f"/dicom-web/{instance.frames_dir}/1").status == 404
        assert raw_get(server.port, f"/dicom-web/{instance.frames_dir}/2").status in (200, 404)


# ---------------------------------------------------------------- pacing

def test_the_rate_is_shared_by_all_connections(tree):
    """~2.4 MB over 3 connections at 8 Mbit/s must take at least ~2.4 s in total (lower bound only:
    a loaded machine may be slower, never faster)."""
    paths = [f"{i.frames_dir}/{n}" for i in tree.instances for n in range(1, i.frames + 1)]
    rate = 8e6
    received: List[int] = []
    lock = threading.Lock()
    with SampleServer(tree.root, rate_bps=rate) as server:
        def fetch(share: List[str]) -> None:
            session = requests.Session()
            for path in share:
                size = len(session.get(f"{server.url}/{path}", timeout=30).content)
                with lock:
                    received.append(size)
            session.close()

        workers = [threading.Thread(target=fetch, args=(paths[n::3],)) for n in range(3)]
        start = time.monotonic()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120)
        elapsed = time.monotonic() - start
    total = sum(received)
    assert len(received) == len(paths) and total > 2_000_000
    assert elapsed >= 0.9 * total * 8 / rate, (total, elapsed)


def test_a_throttled_transfer_ends_at_stop(tree):
    server = SampleServer(tree.root, rate_bps=2e5)  # 25 kB/s: a frame takes seconds
    server.start()
    instance = max(tree.instances, key=lambda i: tree.frame_path(i, 1).stat().st_size)
    outcome = []

    def slow_get() -> None:
        try:
            outcome.append(len(requests.get(f"{server.url}/{instance.frames_dir}/1", timeout=30).content))
        except requests.RequestException as error:
            outcome.append(error)

    reader = threading.Thread(target=slow_get)
    reader.start()
    time.sleep(0.3)
    started = time.monotonic()
    server.stop()
    reader.join(30)
    assert not reader.is_alive() and time.monotonic() - started < 5
    assert outcome and not (isinstance(outcome[0], int) and outcome[0] == tree.frame_path(instance, 1).stat().st_size)


@pytest.mark.parametrize("text, bits", [("30mbit", 30e6), ("500kbit", 5e5), ("2.5Mbps", 2.5e6), ("8000000", 8e6),
                                        ("1gbit", 1e9), (" 64 kbit ", 64e3), ("off", None), ("None", None)])
def test_rates_parse(text, bits):
    assert parse_rate(text) == bits


@pytest.mark.parametrize("text", ["30MB", "fast", "-1mbit", "0", "1e6", "", "30 mbit/s"])
def test_bad_rates_say_what_is_expected(text):
    with pytest.raises(ValueError, match="30mbit"):
        parse_rate(text)


def test_limiter_books_slots_back_to_back():
    now = [100.0]
    limiter = RateLimiter(8000.0, clock=lambda: now[0])  # 1000 bytes/s
    limiter._stop.set()  # no real sleeping: wait() reports the stop instead
    assert limiter.wait(500) is False
    assert limiter._booked_until == pytest.approx(100.5)
    limiter.wait(1500)
    assert limiter._booked_until == pytest.approx(102.0)  # after the first, not in parallel
    now[0] = 200.0
    limiter.wait(1000)
    assert limiter._booked_until == pytest.approx(201.0)  # an idle link saved up nothing
    assert format_rate(30e6) == "30 Mbit/s" and format_rate(None) == "unthrottled"
    with pytest.raises(ValueError):
        RateLimiter(0)


# ---------------------------------------------------------------- the cached sample

def test_sample_is_generated_once_then_reused_and_rebuilt_when_stale(tmp_path):
    first = ensure_sample(tmp_path, "small")
    assert first.generated_s is not None and first.study_uid == first.manifest.studies[0].study_uid
    assert [i.key for i in first.manifest.series_list] == ["ct_thin", "ct_thick", "ct_sagittal"]
    assert all(Path(i.source).is_file() for i in first.tree.instances)  # named where they are now
    again = ensure_sample(tmp_path, "small")
    assert again.generated_s is None and again.tree.root == first.tree.root
    assert ensure_sample_tree(tmp_path, "small").root == first.tree.root
    manifest_file = tmp_path / "small" / "dicom" / "manifest.json"
    record = json.loads(manifest_file.read_text())
    record["generator_version"] = "older"
    manifest_file.write_text(json.dumps(record))
    rebuilt = ensure_sample(tmp_path, "small")
    assert rebuilt.generated_s is not None
    assert SampleManifest.load(tmp_path / "small" / "dicom").generator_version == generator_version()
    frame = rebuilt.tree.frame_path(rebuilt.tree.instances[5], 1)
    frame.unlink()
    assert ensure_sample(tmp_path, "small").generated_s is not None and frame.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".small.lock", "small"]  # no temp folder left
    with pytest.raises(ValueError, match="profile"):
        ensure_sample(tmp_path, "huge")


def test_default_sample_folder_honours_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_sample_dir() == tmp_path / "ProgressiveDicomFetch" / "sample"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_sample_dir() == tmp_path / "home" / ".cache" / "ProgressiveDicomFetch" / "sample"
