"""Credentials stay with the server they belong to, and out of logs, messages and repr().

Two scripted servers on different loopback ports are two origins: redirects, BulkDataURIs and
RetrieveURLs that point from one to the other must never carry the first one's credentials.
requests strips `Authorization` on a cross-host redirect but not other headers (API keys), so
the client follows redirects itself (dicomweb/server.py).
"""
from __future__ import annotations

import base64
import logging

import numpy as np
import pytest
from scripted_server import ScriptedServer, json_answer
from test_hostile_input import BAD, GOOD, ScriptedDicomweb

from ProgressiveDicomFetchLib.dicomweb import (
    AuthenticationFailed, BearerToken, DicomwebServer, HeaderAuth, RetryPolicy, ServerUnreachable, search_studies,
)
from ProgressiveDicomFetchLib.dicomweb.auth import BasicAuth
from ProgressiveDicomFetchLib.engine import ProgressiveFetchEngine

pytestmark = pytest.mark.compat

SECRET = "s3cret-Pa55"
USER = "alice"
NO_RETRY = RetryPolicy(attempts=1)


def secrets_in(text: str):
    encoded = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
    return [s for s in (SECRET, encoded) if s in text]


AUTHS = {
    "basic in the URL": (None, {}),
    "basic": (BasicAuth(USER, SECRET), {}),
    "bearer": (BearerToken(SECRET), {}),
    "api-key header auth": (HeaderAuth({"X-Api-Key": SECRET}), {}),
    "extra headers": (None, {"X-Api-Key": SECRET}),
}


def make_server(url: str, name: str, **options) -> DicomwebServer:
    auth, headers = AUTHS[name]
    if name == "basic in the URL":
        url = url.replace("http://", f"http://{USER}:{SECRET}@")
    return DicomwebServer(url, auth=auth, headers=headers, **options)


def carried_credentials(headers) -> bool:
    return any(SECRET in value or secrets_in(value) for value in headers.values())


@pytest.mark.parametrize("name", list(AUTHS))
def test_a_redirect_to_another_origin_gets_no_credentials(name, caplog):
    caplog.set_level(logging.DEBUG)
    with ScriptedServer(lambda n, p, h: json_answer([])) as other:
        def respond(n, path, headers):
            if path.startswith("/dicom-web/studies") and "moved" not in path:
                return 302, {"Location": "/dicom-web/moved/studies"}, b""  # same origin first
            return 307, {"Location": other.url + "/studies"}, b""

        with ScriptedServer(respond) as first:
            server = make_server(first.url, name, retry=NO_RETRY)
            assert search_studies(server) is not None
        assert [carried_credentials(r.headers) for r in first.requests] == [True, True], "same origin keeps them"
        assert other.requests and not any(carried_credentials(r.headers) for r in other.requests)
    assert not secrets_in(caplog.text) and not secrets_in(repr(server))


@pytest.mark.parametrize("name", list(AUTHS))
def test_credentials_are_in_no_log_message_or_repr(name, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3's and requests' debug output included
    with ScriptedServer(lambda n, p, h: (401, {"WWW-Authenticate": "Basic"}, b"who are you")) as scripted:
        server = make_server(scripted.url, name, retry=NO_RETRY)
        with pytest.raises(AuthenticationFailed) as refused:
            search_studies(server)
        assert carried_credentials(scripted.requests[0].headers)  # they were sent, to the right server
    down = make_server("http://127.0.0.1:9/dicom-web", name, retry=RetryPolicy(attempts=2, backoff_s=0.01))
    with pytest.raises(ServerUnreachable) as unreachable:
        search_studies(down)
    texts = [str(refused.value), refused.value.url, str(unreachable.value), unreachable.value.url, repr(server),
             repr(server.auth), server.url, caplog.text]
    assert not [t for t in texts if secrets_in(t)]


def test_tls_verification_is_on_by_default():
    server = DicomwebServer("https://127.0.0.1:1/dicom-web")
    assert server.verify is True and server.connection().verify is True


def test_foreign_bulk_data_and_retrieve_urls_get_no_request(sample_small, caplog):
    """A BulkDataURI on another origin fails that series clearly (no request leaves for it); a
    RetrieveURL elsewhere is ignored (frames come from the configured server). The other loads."""
    with ScriptedServer(lambda n, p, h: (200, {"Content-Type": "application/octet-stream"}, b"\0" * 64)) as other:
        def damage(kind, path, answer):
            if kind != "metadata":
                return answer
            import json

            items = json.loads(answer[2])
            for item in items:
                sop = item["00080018"]["Value"][0]
                item["7FE00010"] = {"vr": "OW", "BulkDataURI": f"{other.url}/instances/{sop}/frames"}
            return 200, answer[1], json.dumps(items).encode()

        dicomweb = ScriptedDicomweb(sample_small, damage)
        for item in dicomweb.metadata[sample_small.series(GOOD).series_uid]:
            item["00081190"] = {"vr": "UR", "Value": [f"{other.url}/studies/x"]}
        with ScriptedServer(dicomweb.respond) as first:
            engine = ProgressiveFetchEngine(make_server(first.url, "bearer", retry=NO_RETRY), connections=2)
            events = []
            try:
                for key in (BAD, GOOD):
                    engine.add_series(sample_small.series(key).study_uid, sample_small.series(key).series_uid)
                assert engine.run_until_finished(lambda u: events.extend(u.events), timeout=60)
            finally:
                assert engine.close()
        assert other.requests == []
    errors = [e for e in events if e.event == "error"]
    assert [e.series_uid for e in errors] == [sample_small.series(BAD).series_uid]
    assert "not on this server" in errors[0].message and not secrets_in(errors[0].message)
    (load,) = engine.loads(sample_small.series(GOOD).series_uid)
    np.testing.assert_array_equal(load.volume.array, sample_small.load_truth(GOOD))
    assert not secrets_in(caplog.text)
