"""The panel's "Test connection" against real servers: Orthanc (plain and with HTTP Basic) and nginx."""
from __future__ import annotations

import socket

import pytest

from ProgressiveDicomFetchLib.dicomweb.server_check import check_server
from ProgressiveDicomFetchLib.dicomweb.urls import redact_url, validate_base_url

pytestmark = pytest.mark.compat  # also run on Slicer 5.8's stack (Makefile)


def test_orthanc_answers_with_its_studies(orthanc, sample_small):
    result = check_server(orthanc.dicomweb_url)
    assert result.ok, result.message
    assert result.status == 200
    assert result.studies_seen == 1  # limit=1 is honoured by Orthanc
    assert result.message.startswith("Connected to")


def test_static_server_ignores_limit_but_still_works(static_server, sample_small):
    result = check_server(static_server.dicomweb_url)
    assert result.ok, result.message
    assert result.studies_seen == len(sample_small.studies)  # a static tree returns the whole list


def test_credentials_are_checked_and_never_echoed(orthanc_auth):
    user, password = orthanc_auth.auth
    assert check_server(orthanc_auth.dicomweb_url, auth=(user, password)).ok
    refused = check_server(orthanc_auth.dicomweb_url, auth=(user, "wrong-" + password))
    assert not refused.ok and refused.status == 401
    assert "refused the credentials" in refused.message
    # Credentials written into the URL are used by requests, but never shown back.
    scheme, rest = orthanc_auth.dicomweb_url.split("://", 1)
    with_userinfo = f"{scheme}://{user}:{password}@{rest}"
    result = check_server(with_userinfo)
    assert result.ok, result.message
    assert password not in result.message and password not in result.url and password not in repr(result)


def test_unreachable_server_is_a_clear_message_not_an_exception():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = check_server(f"http://127.0.0.1:{port}/dicom-web")
    assert not result.ok
    assert "Cannot connect" in result.message and str(port) in result.message


def test_not_a_dicomweb_endpoint_is_reported(orthanc):
    result = check_server(orthanc.url + "/no-such-root")
    assert not result.ok and result.status == 404


@pytest.mark.parametrize(
    "url, words",
    [("", "empty"), ("localhost:8042", "http"), ("ftp://host/dicom-web", "http"),
     ("http:///dicom-web", "host"), ("http://host/dicom-web?x=1", "query")],
)
def test_bad_urls_are_rejected_with_a_reason(url, words):
    with pytest.raises(ValueError, match=words):
        validate_base_url(url)


def test_redact_url_removes_userinfo_only():
    assert redact_url("https://u:secret@pacs.example:8443/dicom-web") == "https://pacs.example:8443/dicom-web"
    assert redact_url("http://pacs/dicom-web") == "http://pacs/dicom-web"
