"""Hostile and broken answers, over real HTTP: each gives a clear error for what it touched and nothing else.

A scripted DICOMweb server (real sockets; answers built from the generated files) serves two
series to the engine: `ct_thick` intact and `ct_sagittal` damaged in one way. The damaged series
must fail with a message naming the problem; the intact one must still load bit-exact.
Orthanc cannot be made to send any of this, hence the scripted server.
"""
from __future__ import annotations

import gzip
import json
import socket
import threading
from typing import Callable, Dict, Optional

import numpy as np
import pydicom
import pytest
from scripted_server import ScriptedServer

from ProgressiveDicomFetchLib.dicomweb import BadResponse, DicomwebServer, RetryPolicy, ServerUnreachable, series_metadata
from ProgressiveDicomFetchLib.dicomweb.body import BodyLimits, BodyTooLarge
from ProgressiveDicomFetchLib.engine import ProgressiveFetchEngine

pytestmark = pytest.mark.compat

GOOD, BAD = "ct_thick", "ct_sagittal"
BOUNDARY = "hostile-test-boundary"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
LIMITS = BodyLimits(json_bytes=4 * 1024 * 1024, frame_bytes=4 * 1024 * 1024, seconds=20)


class ScriptedDicomweb:
    """Metadata and frames of real files; `damage(kind, path, answer)` may replace any answer for BAD."""

    def __init__(self, sample_small, damage: Callable[[str, str, tuple], tuple]) -> None:
        self.damage = damage
        self.metadata: Dict[str, list] = {}
        self.frames: Dict[str, bytes] = {}
        self.bad_uid = sample_small.series(BAD).series_uid
        for key in (GOOD, BAD):
            items = []
            for path in sample_small.files(key):
                ds = pydicom.dcmread(str(path))
                self.frames[str(ds.SOPInstanceUID)] = bytes(ds.PixelData)
                del ds.PixelData
                items.append(ds.to_json_dict())
            self.metadata[sample_small.series(key).series_uid] = items

    def respond(self, n: int, path: str, headers: Dict[str, str]) -> tuple:
        parts = path.split("?")[0].strip("/").split("/")  # dicom-web/studies/S/series/X/...
        series = parts[4]
        if parts[-1] == "metadata":
            kind = "metadata"
            answer = (200, {"Content-Type": "application/dicom+json"}, json.dumps(self.metadata[series]).encode())
        else:
            kind = "frames"
            data = self.frames[parts[6]]
            body = (f"--{BOUNDARY}\r\nContent-Type: application/octet-stream; transfer-syntax={EXPLICIT_LE}\r\n\r\n"
                    ).encode() + data + f"\r\n--{BOUNDARY}--\r\n".encode()
            answer = (200, {"Content-Type": f'multipart/related; type="application/octet-stream"; '
                                            f'boundary={BOUNDARY}'}, body)
        return self.damage(kind, path, answer) if series == self.bad_uid else answer


def load_two(sample_small, damage, limits: BodyLimits = LIMITS, url: Optional[str] = None):
    """Engine over the scripted server; returns (engine, error events)."""
    scripted = ScriptedDicomweb(sample_small, damage)
    with ScriptedServer(scripted.respond) as server:
        # Generous timeouts: no case here is about them, and building a gzip bomb per request takes
        # seconds on two busy cores (a 2 s read timeout failed the bomb case under load).
        dicomweb = DicomwebServer(url or server.url, timeout=(5.0, 30.0), limits=limits,
                                  retry=RetryPolicy(attempts=2, backoff_s=0.01))
        engine = ProgressiveFetchEngine(dicomweb, connections=2)
        events = []
        try:
            for key in (BAD, GOOD):
                info = sample_small.series(key)
                engine.add_series(info.study_uid, info.series_uid)
            assert engine.run_until_finished(lambda u: events.extend(u.events), timeout=60)
        finally:
            assert engine.close(timeout=30)
    good = sample_small.series(GOOD)
    (load,) = engine.loads(good.series_uid)
    np.testing.assert_array_equal(load.volume.array, sample_small.load_truth(GOOD))
    errors = [e for e in events if e.event == "error"]
    assert [e.series_uid for e in errors] == [sample_small.series(BAD).series_uid], errors
    return engine, errors[0].message


def metadata_items(answer) -> list:
    return json.loads(answer[2])


def with_metadata(items) -> tuple:
    return 200, {"Content-Type": "application/dicom+json"}, json.dumps(items).encode()


def drop(tag: str, only_first: bool = False):
    def damage(kind, path, answer):
        if kind != "metadata":
            return answer
        items = metadata_items(answer)
        for item in items[:1] if only_first else items:
            item.pop(tag, None)
        return with_metadata(items)
    return damage


def gzip_bomb(decoded_bytes: int) -> bytes:
    return gzip.compress(b"\0" * decoded_bytes, compresslevel=9)


HOSTILE = {
    "malformed JSON": (lambda k, p, a: (200, a[1], b'[{"0020000D": {"vr": "UI", "Value": [') if k == "metadata" else a,
                       "not JSON"),
    "JSON that is not datasets": (lambda k, p, a: with_metadata([1, 2, 3]) if k == "metadata" else a,
                                  "JSON array of DICOM datasets"),
    "metadata without Rows": (drop("00280010"), "Rows"),
    "metadata without ImagePositionPatient": (drop("00200032"), "ImagePositionPatient"),
    "metadata without SOPInstanceUID": (drop("00080018", only_first=True), "SOPInstanceUID"),
    "malformed attribute value": (lambda k, p, a: with_metadata(
        [dict(i, **{"00280030": {"vr": "DS", "Value": ["abc", "x"]}}) for i in metadata_items(a)])
        if k == "metadata" else a, "PixelSpacing|malformed"),
    "absurd dimensions": (lambda k, p, a: with_metadata(
        [dict(i, **{"00280010": {"vr": "US", "Value": [65535]}, "00280011": {"vr": "US", "Value": [65535]}})
         for i in metadata_items(a)]) if k == "metadata" else a, "needs .* but only"),
    "frames of the wrong length": (lambda k, p, a: (200, a[1], a[2].replace(b"\r\n\r\n", b"\r\n\r\n\x00\x01\x02", 1))
                                   if k == "frames" else a, r"a raw frame needs 20480 bytes \(Rows 80 x Columns 128 x 2\), got 20483 bytes"),
    "undecodable codestream": (lambda k, p, a: (200, {"Content-Type": "image/jls"}, b"\xff\xd8garbage" * 50)
                               if k == "frames" else a, "JPEG-LS|jls|decode"),
    "metadata as text/html": (lambda k, p, a: (200, {"Content-Type": "text/html"}, b"<html>login</html>")
                              if k == "metadata" else a, "expected DICOM JSON, the answer is text/html"),
    "frames as text/html": (lambda k, p, a: (200, {"Content-Type": "text/html"}, b"<html>login</html>")
                            if k == "frames" else a, "text/html instead of pixel data"),
    "multipart without a boundary": (lambda k, p, a: (200, {"Content-Type": "multipart/related"}, b"\x00" * 64)
                                     if k == "frames" else a, "without a boundary"),
    "oversized metadata": (lambda k, p, a: with_metadata(metadata_items(a) * 200) if k == "metadata" else a,
                           "more than the 4194304 bytes allowed"),
    "gzip bomb as metadata": (lambda k, p, a: (200, {"Content-Type": "application/dicom+json",
                                                     "Content-Encoding": "gzip"}, gzip_bomb(64 * 1024 * 1024))
                              if k == "metadata" else a, "decompresses to more than"),
    "gzip bomb as frames": (lambda k, p, a: (200, {"Content-Type": a[1]["Content-Type"], "Content-Encoding": "gzip"},
                                             gzip_bomb(64 * 1024 * 1024)) if k == "frames" else a,
                            "decompresses to more than"),
    "corrupt gzip": (lambda k, p, a: (200, {"Content-Type": "application/dicom+json", "Content-Encoding": "gzip"},
                                      b"\x1f\x8b\x08\x00garbage-not-deflate") if k == "metadata" else a,
                     "cannot be decompressed"),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_answer_fails_only_its_series_with_a_clear_error(name, sample_small):
    damage, words = HOSTILE[name]
    engine, message = load_two(sample_small, damage)
    import re

    assert re.search(words, message), message
    assert sample_small.series(BAD).series_uid in message
    assert not any(w.is_alive() for w in engine._workers)  # its own: a thread another test left is that test's failure


class EndlessServer:
    """Answers every request with a chunked body that never ends (until the client goes away)."""

    def __enter__(self) -> "EndlessServer":
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sent = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/dicom-web"

    def _serve(self) -> None:
        try:
            client, _ = self.sock.accept()
        except OSError:
            return
        with client:
            client.recv(65536)
            client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/dicom+json\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
            try:
                while self.sent < 1024 * 1024 * 1024:
                    client.sendall(chunk)
                    self.sent += 65536
            except OSError:
                pass

    def __exit__(self, *exc) -> None:
        self.sock.close()
        self.thread.join(10)


@pytest.mark.timeout(60)
def test_an_endless_answer_is_cut_at_the_cap():
    with EndlessServer() as endless:
        server = DicomwebServer(endless.url, limits=LIMITS, retry=RetryPolicy(attempts=1))
        with pytest.raises(BodyTooLarge, match="more than the 4194304 bytes allowed") as error:
            series_metadata(server, "1.2.3", "1.2.3.4")
        assert isinstance(error.value, BadResponse) and error.value.status == 200
    assert endless.sent < 64 * 1024 * 1024  # the client stopped reading long before the end


@pytest.mark.timeout(60)
def test_a_slow_drip_is_cut_at_the_body_deadline():
    import time

    def respond(n, path, headers):
        return 200, {"Content-Type": "application/dicom+json"}, b"[]"

    class Dripping(EndlessServer):  # a byte every 0.1 s: never a read timeout, never an end
        def _serve(self) -> None:
            client, _ = self.sock.accept()
            with client:
                client.recv(65536)
                client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/dicom+json\r\nContent-Length: 100000\r\n\r\n")
                try:
                    for _ in range(600):
                        client.sendall(b" ")
                        time.sleep(0.1)
                except OSError:
                    pass

    # One timer thread watches every body: a body with a later deadline is already being read
    # when this one starts, so its earlier deadline must wake the thread.
    with Dripping() as drip, Dripping() as slow_drip:
        slow = DicomwebServer(slow_drip.url, timeout=(1.0, 1.0), limits=BodyLimits(seconds=8.0),
                              retry=RetryPolicy(attempts=1))
        outcome = []

        def read_slowly():
            try:
                series_metadata(slow, "1.2.3", "1.2.3.4")
            except ServerUnreachable as error:
                outcome.append(str(error))

        earlier = threading.Thread(target=read_slowly, daemon=True)
        earlier.start()
        time.sleep(0.5)
        server = DicomwebServer(drip.url, timeout=(1.0, 1.0), limits=BodyLimits(seconds=2.0),
                                retry=RetryPolicy(attempts=1))
        started = time.monotonic()
        with pytest.raises(ServerUnreachable, match="did not arrive within 2 s"):
            series_metadata(server, "1.2.3", "1.2.3.4")
        assert time.monotonic() - started < 5
        assert earlier.is_alive()  # its deadline has not come
        earlier.join(timeout=20)
        assert not earlier.is_alive() and "did not arrive within 8 s" in outcome[0]  # cut at its own deadline
