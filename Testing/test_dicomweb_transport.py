"""Retries, Retry-After, token refresh, timeouts and filter validation, over real HTTP.

The scripted server (scripted_server.py) produces what Orthanc never does: 429/503 bursts with
Retry-After, and bearer tokens that expire.
"""
from __future__ import annotations

import email.utils
import shutil
import ssl
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import urllib3

from ProgressiveDicomFetchLib.dicomweb import (
    AuthenticationFailed, BadResponse, BasicAuth, BearerToken, DicomwebServer, HeaderAuth, RetryPolicy, ServerUnreachable,
    TokenProvider, make_auth, parse_filters, search_studies,
)
from ProgressiveDicomFetchLib.dicomweb.server import encode_query, retry_after_seconds
from scripted_server import ScriptedServer, json_answer

pytestmark = pytest.mark.compat  # also run on Slicer 5.8's stack (Makefile)

STUDY = {"0020000D": {"vr": "UI", "Value": ["1.2.3"]}, "00100010": {"vr": "PN", "Value": [{"Alphabetic": "DOE^J"}]}}


def test_retry_after_is_honoured_on_503_and_429():
    def respond(n, path, headers):
        if n == 1:
            return 503, {"Retry-After": "1"}, b""
        if n == 2:
            return 429, {"Retry-After": "0"}, b""
        return json_answer([STUDY] if "offset=0" in path else [])

    waits = []

    def sleep(seconds):
        waits.append(seconds)
        time.sleep(seconds)

    with ScriptedServer(respond) as scripted:
        server = DicomwebServer(scripted.url, retry=RetryPolicy(attempts=4, backoff_s=0.01), sleep=sleep)
        result = search_studies(server)
        assert [r.study_uid for r in result] == ["1.2.3"]
        assert waits == [1.0, 0.0]  # what the server advised, not the 10 ms backoff
        gaps = [b.at - a.at for a, b in zip(scripted.requests, scripted.requests[1:])]
        assert gaps[0] >= 0.95, "the 503's Retry-After: 1 was not honoured on the wire"


def test_retry_after_as_a_future_date_and_a_hostile_value_against_the_cap():
    """An HTTP-date 3 s ahead is waited for (1-3 s: the date has whole seconds, the test may be slow); a hostile
    `Retry-After: 999999` is cut to the policy's cap instead of stalling the load for 11 days."""
    future = email.utils.format_datetime(datetime.now(timezone.utc) + timedelta(seconds=3), usegmt=True)

    def respond(n, path, headers):
        if n == 1:
            return 503, {"Retry-After": future}, b""
        if n == 2:
            return 503, {"Retry-After": "999999"}, b""
        return json_answer([STUDY] if "offset=0" in path else [])

    waits = []
    with ScriptedServer(respond) as scripted:
        server = DicomwebServer(scripted.url, retry=RetryPolicy(attempts=4, backoff_s=0.01, max_wait_s=5.0),
                                sleep=waits.append)  # the waits asked for, recorded instead of slept
        assert [r.study_uid for r in search_studies(server)] == ["1.2.3"]
        assert len(scripted.requests) == 4  # two 503s, then the two pages
    assert 1.0 <= waits[0] <= 3.0 and waits[1] == 5.0, waits


def test_retries_give_up_with_the_status():
    with ScriptedServer(lambda n, p, h: (502, {}, b"bad gateway")) as scripted:
        server = DicomwebServer(scripted.url, retry=RetryPolicy(attempts=3, backoff_s=0.01))
        with pytest.raises(BadResponse, match="502") as error:
            search_studies(server)
        assert error.value.status == 502
        assert len(scripted.requests) == 3


def test_token_provider_is_asked_again_once_on_401():
    issued = []

    def provider():
        issued.append(f"token-{len(issued) + 1}")
        return issued[-1]

    def respond(n, path, headers):
        if headers.get("Authorization") != "Bearer token-2":
            return 401, {}, b""
        return json_answer([STUDY] if "offset=0" in path else [])

    with ScriptedServer(respond) as scripted:
        auth = TokenProvider(provider)
        result = search_studies(DicomwebServer(scripted.url, auth=auth))
        assert len(result) == 1 and issued == ["token-1", "token-2"]
        assert "token-" not in repr(auth)

    with ScriptedServer(lambda n, p, h: (401, {}, b"")) as scripted:
        issued.clear()
        with pytest.raises(AuthenticationFailed):
            search_studies(DicomwebServer(scripted.url, auth=TokenProvider(provider)))
        assert len(scripted.requests) == 2  # asked again once, not forever


def test_bearer_token_and_custom_headers_are_sent_and_hidden():
    with ScriptedServer(lambda n, p, h: json_answer([])) as scripted:
        search_studies(DicomwebServer(scripted.url, auth=BearerToken("s3cret")))
        search_studies(DicomwebServer(scripted.url, auth=HeaderAuth({"X-Api-Key": "k3y"})))
        assert scripted.requests[0].headers["Authorization"] == "Bearer s3cret"
        assert scripted.requests[-1].headers["X-Api-Key"] == "k3y"
    assert "s3cret" not in repr(BearerToken("s3cret")) and "k3y" not in repr(HeaderAuth({"X-Api-Key": "k3y"}))
    with pytest.raises(ValueError, match="one kind"):
        make_auth(user="u", password="p", token="t")


def test_a_server_that_caps_its_pages_is_read_to_the_end():
    """Servers may return fewer results than `limit` asks (a cap) and expect the client to go on."""
    studies = [dict(STUDY, **{"0020000D": {"vr": "UI", "Value": [f"1.2.{n}"]}}) for n in range(7)]

    def respond(n, path, headers):
        offset = int(path.split("offset=")[1].split("&")[0])
        return json_answer(studies[offset:offset + 3])  # cap: 3 whatever the limit

    with ScriptedServer(respond) as scripted:
        result = search_studies(DicomwebServer(scripted.url), page_size=100)
        assert [r.study_uid for r in result] == [f"1.2.{n}" for n in range(7)]
        assert result.pages == 4 and not result.ignored  # 3 + 3 + 1, then an empty page
        limited = search_studies(DicomwebServer(scripted.url), limit=5)
        assert len(limited) == 5 and limited.truncated


def test_a_server_repeating_one_page_forever_terminates():
    with ScriptedServer(lambda n, p, h: json_answer([STUDY])) as scripted:
        result = search_studies(DicomwebServer(scripted.url), page_size=1)
        assert len(result) == 1 and "offset" in result.ignored and len(scripted.requests) == 2


@pytest.fixture(scope="module")
def tls_certificate(tmp_path_factory):
    if shutil.which("openssl") is None:
        from support import missing

        missing("openssl (Debian package openssl)")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    return cert, context


def test_tls_is_verified_by_default_with_ca_bundle_and_explicit_opt_out(tls_certificate, caplog, monkeypatch):
    """Verified by default whatever this machine's environment says; an explicit CA bundle or
    opt-out wins over a REQUESTS_CA_BUNDLE (here: certifi's bundle, which lacks our certificate)."""
    import certifi

    cert, context = tls_certificate
    with ScriptedServer(lambda n, p, h: json_answer([]), tls=context) as scripted:
        assert scripted.url.startswith("https://")
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            monkeypatch.delenv(name, raising=False)
        with pytest.raises(ServerUnreachable, match="TLS verification failed"):
            search_studies(DicomwebServer(scripted.url, retry=RetryPolicy(attempts=1)))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
        with pytest.raises(ServerUnreachable, match="TLS verification failed"):
            search_studies(DicomwebServer(scripted.url, retry=RetryPolicy(attempts=1)))
        assert len(search_studies(DicomwebServer(scripted.url, verify=str(cert)))) == 0
        with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
            assert len(search_studies(DicomwebServer(scripted.url, verify=False))) == 0
        assert "TLS certificate verification is OFF" in caplog.text
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # requests' own rule: the environment's CAs
        assert len(search_studies(DicomwebServer(scripted.url))) == 0


@pytest.mark.timeout(120)
def test_a_stalled_server_times_out():
    """The read timeout gives up while the server is still silent: it answers only when released,
    after the client has raised (no wall-clock bound to flake on a loaded machine)."""
    release, answered = threading.Event(), threading.Event()

    def respond(n, path, headers):
        release.wait(60)
        answered.set()
        return json_answer([])

    with ScriptedServer(respond) as scripted:
        server = DicomwebServer(scripted.url, timeout=(5.0, 0.3), retry=RetryPolicy(attempts=1))
        try:
            with pytest.raises(ServerUnreachable, match="no answer within the timeout"):
                search_studies(server)
            assert not answered.is_set(), "the client waited for the stalled answer"
        finally:
            release.set()


def test_wildcards_unencoded_and_unmatchable_characters_as_single_wildcards():
    filters = parse_filters({"PatientName": "DOE^J* M?RY", "StudyDescription": "CT & MR/Ü"})
    query = encode_query([(f.tag, f.wire_value) for f in filters])
    assert "00100010=DOE?J*?M?RY" in query
    assert "00081030=CT???MR??" in query  # unsendable characters become `?`, checked exactly later


@pytest.mark.parametrize("filters, words", [
    ({"PatientNme": "X"}, "unknown DICOM attribute 'PatientNme'"),
    ({"StudyDate": "2024-01-01"}, "StudyDate"),
    ({"StudyDate": "20241301"}, "not a valid date"),
    ({"StudyDate": "20241231-20240101"}, "starts after it ends"),
    ({"StudyTime": "25h"}, "StudyTime"),
    ({"StudyInstanceUID": "1.2.abc"}, "not a UID"),
    ({"SeriesNumber": "two"}, "not an integer"),
    ({"limit": "3"}, "not a filter"),
    (["PatientName"], "KEY=VALUE"),
])
def test_bad_filters_are_rejected_with_a_reason(filters, words):
    with pytest.raises(ValueError, match=words):
        parse_filters(filters)


def test_retry_after_http_date():
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("soon") is None


def test_the_environment_still_counts_though_read_once(orthanc_auth, tmp_path, monkeypatch):
    """requests' environment (here ~/.netrc through NETRC) is read once per origin, not per request,
    and still applies: without it the authenticated Orthanc refuses; an explicit auth wins."""
    user, password = orthanc_auth.auth
    host = orthanc_auth.dicomweb_url.split("://", 1)[1].split("/", 1)[0].split(":")[0]
    with pytest.raises(AuthenticationFailed):
        search_studies(DicomwebServer(orthanc_auth.dicomweb_url, retry=RetryPolicy(attempts=1)))
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine {host} login {user} password {password}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    server = DicomwebServer(orthanc_auth.dicomweb_url, retry=RetryPolicy(attempts=1))
    assert len(search_studies(server)) > 0
    assert len(search_studies(server)) > 0  # the second request uses what the first read
    with pytest.raises(AuthenticationFailed):
        search_studies(DicomwebServer(orthanc_auth.dicomweb_url, auth=BasicAuth(user, "wrong"),
                                      retry=RetryPolicy(attempts=1)))
