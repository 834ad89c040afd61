"""QIDO search and series metadata against real servers: Orthanc (a full server with quirks) and
nginx over a static DICOMweb tree (ignores every filter and paging). Both must give the same answers.
"""
from __future__ import annotations

import datetime
import logging

import pydicom
import pytest

from ProgressiveDicomFetchLib.dicomweb import (
    AuthenticationFailed, BasicAuth, DicomwebServer, NotFound, RetryPolicy, ServerUnreachable,
    search_instances, search_series, search_studies, series_metadata, sort_records,
)

pytestmark = pytest.mark.compat  # also run on Slicer 5.8's stack (Makefile)

FAST_RETRY = RetryPolicy(attempts=2, backoff_s=0.05)


@pytest.fixture(params=["orthanc", "static_server"])
def server(request):
    running = request.getfixturevalue(request.param)
    return DicomwebServer(running.dicomweb_url, retry=FAST_RETRY, timeout=(2.0, 20.0))


def _study_uids(result):
    return {r.study_uid for r in result}


def _expected(sample, predicate):
    return {s.study_uid for s in sample.studies if predicate(s)}


def test_all_studies_with_filled_columns(server, sample_small):
    result = search_studies(server)
    assert _study_uids(result) == {s.study_uid for s in sample_small.studies}
    for record in result:
        study = next(s for s in sample_small.studies if s.study_uid == record.study_uid)
        assert record.patient_name == study.patient_name
        assert record.patient_id == study.patient_id
        assert record.study_date == datetime.datetime.strptime(study.study_date, "%Y%m%d").date()
        assert record.patient_birth_date == datetime.datetime.strptime(study.patient_birth_date, "%Y%m%d").date()
        assert record.study_description == study.study_description
        assert record.accession_number == study.accession_number
        assert record.number_of_series == len(study.series_keys)
        expected_instances = sum(sample_small.series(k).num_instances for k in study.series_keys)
        assert record.number_of_instances == expected_instances
        assert set(record.modalities) == {sample_small.series(k).modality for k in study.series_keys}


@pytest.mark.parametrize("value, pick", [
    ("DOE^JANE^MARIE", lambda s: s.patient_name == "DOE^JANE^MARIE"),
    ("DOE*", lambda s: s.patient_name.startswith("DOE")),
    ("doe^jane*", lambda s: s.patient_name.upper().startswith("DOE^JANE")),
    ("?OE^*", lambda s: s.patient_name[1:3] == "OE"),
    ("*^RICHARD*", lambda s: "^RICHARD" in s.patient_name),
    ("VAN DER*", lambda s: s.patient_name.startswith("VAN DER")),
    ("van der berg^anna maria", lambda s: s.patient_name.upper() == "VAN DER BERG^ANNA MARIA"),
    ("NOBODY*", lambda s: False),
])
def test_patient_name_matching(server, sample_small, value, pick):
    expected = _expected(sample_small, pick)
    if value.upper().startswith("VAN") or value.lower().startswith("van"):
        assert expected, "the generated data must hold a patient name with spaces"
    assert _study_uids(search_studies(server, {"PatientName": value})) == expected


@pytest.mark.parametrize("key, value, pick", [
    ("PatientID", "PDF-MR-0002", lambda s: s.patient_id == "PDF-MR-0002"),
    ("PatientID", "PDF-*", lambda s: s.patient_id.startswith("PDF-")),
    ("AccessionNumber", "ACC24*", lambda s: s.accession_number.startswith("ACC24")),
    ("StudyDate", "20231102", lambda s: s.study_date == "20231102"),
    ("StudyDate", "20230101-20231231", lambda s: "20230101" <= s.study_date <= "20231231"),
    ("StudyDate", "20230101-", lambda s: s.study_date >= "20230101"),
    ("StudyDate", "-20221231", lambda s: s.study_date <= "20221231"),
    ("StudyTime", "0900-1200", lambda s: "090000" <= s.study_time <= "120000"),
    ("StudyDescription", "*BRAIN*", lambda s: "BRAIN" in s.study_description),
    ("ReferringPhysicianName", "SMITH*", lambda s: s.referring_physician.startswith("SMITH")),
])
def test_study_filters(server, sample_small, key, value, pick):
    expected = _expected(sample_small, pick)
    assert _study_uids(search_studies(server, {key: value})) == expected


def test_modalities_and_uid_list(server, sample_small):
    mr = _expected(sample_small, lambda s: any(sample_small.series(k).modality == "MR" for k in s.series_keys))
    assert mr and _study_uids(search_studies(server, {"ModalitiesInStudy": "MR"})) == mr
    two = [s.study_uid for s in sample_small.studies[:2]]
    assert _study_uids(search_studies(server, {"StudyInstanceUID": ",".join(two)})) == set(two)


def test_combined_filters_narrow(server, sample_small):
    study = sample_small.studies[0]
    result = search_studies(server, {"PatientName": study.patient_name.split("^")[0] + "*",
                                     "StudyDate": f"{study.study_date}-{study.study_date}"})
    assert _study_uids(result) == {study.study_uid}


def test_series_of_a_study_with_columns_and_filters(server, sample_small):
    study = sample_small.study("ct")
    result = search_series(server, study.study_uid)
    assert {r.series_uid for r in result} == {sample_small.series(k).series_uid for k in study.series_keys}
    for record in result:
        info = next(sample_small.series(k) for k in study.series_keys if sample_small.series(k).series_uid == record.series_uid)
        assert record.series_number == info.series_number
        assert record.series_description == info.description
        assert record.modality == info.modality
        assert record.number_of_instances == info.num_instances
        first_file = pydicom.dcmread(str(sample_small.root / info.files[0]), stop_before_pixels=True)
        assert record.body_part == first_file.get("BodyPartExamined", "")
    numbers = [r.series_number for r in sort_records(result, "series_number")]
    assert numbers == sorted(numbers)
    thin = sample_small.series("ct_thin")
    by_number = search_series(server, study.study_uid, {"SeriesNumber": str(thin.series_number)})
    assert [r.series_uid for r in by_number] == [thin.series_uid]
    by_description = search_series(server, study.study_uid, {"SeriesDescription": thin.description[:4] + "*"})
    assert thin.series_uid in {r.series_uid for r in by_description}
    assert all(r.series_description.startswith(thin.description[:4]) for r in by_description)


def test_unknown_study_is_not_found_on_every_server(server):
    with pytest.raises(NotFound, match="1.2.3.4.5.6.7.8.9"):
        search_series(server, "1.2.3.4.5.6.7.8.9")


def test_limit_and_paging_terminate(server, sample_small):
    total = len(sample_small.studies)
    limited = search_studies(server, limit=1)
    assert len(limited) == 1 and limited.truncated
    paged = search_studies(server, page_size=1)
    assert _study_uids(paged) == {s.study_uid for s in sample_small.studies}
    # Orthanc pages (one study a page, then an empty page); a static tree ignores paging at once.
    assert paged.pages <= total + 1


def test_static_server_reports_what_it_ignored(static_server, sample_small):
    server = DicomwebServer(static_server.dicomweb_url)
    result = search_studies(server, {"PatientID": sample_small.studies[0].patient_id}, page_size=1)
    assert len(result) == 1
    assert "filters" in result.ignored and result.ignored & {"limit", "offset"}
    assert result.notes()


def test_orthanc_honours_filters_and_paging(orthanc, sample_small):
    server = DicomwebServer(orthanc.dicomweb_url)
    result = search_studies(server, {"PatientID": sample_small.studies[0].patient_id}, page_size=1)
    assert len(result) == 1 and not result.ignored


def test_instances_of_a_series(orthanc, sample_small):
    server = DicomwebServer(orthanc.dicomweb_url)
    info = sample_small.series("ct_thick")
    result = search_instances(server, info.study_uid, info.series_uid)
    assert {r.sop_instance_uid for r in result} == set(info.sop_instance_uids)
    assert all(r.rows == info.rows and r.columns == info.columns for r in result)


def test_series_metadata_records(server, sample_small):
    info = sample_small.series("ct_thin")
    records = series_metadata(server, info.study_uid, info.series_uid)
    assert {r.sop_instance_uid for r in records} == set(info.sop_instance_uids)
    first = pydicom.dcmread(str(sample_small.root / info.files[0]), stop_before_pixels=True)
    record = next(r for r in records if r.sop_instance_uid == first.SOPInstanceUID)
    assert (record.rows, record.columns) == (info.rows, info.columns)
    assert [float(v) for v in record.dataset.ImagePositionPatient] == [float(v) for v in first.ImagePositionPatient]
    assert [float(v) for v in record.dataset.PixelSpacing] == [float(v) for v in first.PixelSpacing]
    assert float(record.dataset.RescaleIntercept) == float(first.RescaleIntercept)
    assert "PixelData" not in record.dataset or not record.dataset.PixelData


def test_static_metadata_points_at_frames(static_server, sample_small):
    info = sample_small.series("ct_thin")
    records = series_metadata(DicomwebServer(static_server.dicomweb_url), info.study_uid, info.series_uid)
    assert all("7FE00010" in r.bulk_data for r in records)


def test_metadata_of_unknown_series_is_not_found(server, sample_small):
    with pytest.raises(NotFound):
        series_metadata(server, sample_small.studies[0].study_uid, "1.2.3.999")


def test_gzip_json_is_accepted(orthanc_gzip, sample_small):
    server = DicomwebServer(orthanc_gzip.dicomweb_url)
    info = sample_small.series("ct_thick")
    response = server.get(f"studies/{info.study_uid}/series/{info.series_uid}/metadata")
    assert response.headers.get("Content-Encoding") == "gzip"
    assert len(series_metadata(server, info.study_uid, info.series_uid)) == info.num_instances


def test_basic_auth_right_and_wrong_password(orthanc_auth, sample_small, caplog):
    user, password = orthanc_auth.auth
    good = DicomwebServer(orthanc_auth.dicomweb_url, auth=BasicAuth(user, password))
    assert _study_uids(search_studies(good)) == {s.study_uid for s in sample_small.studies}
    caplog.set_level(logging.DEBUG)
    bad = DicomwebServer(orthanc_auth.dicomweb_url, auth=BasicAuth(user, "not-" + password))
    with pytest.raises(AuthenticationFailed) as error:
        search_studies(bad)
    assert error.value.status == 401
    for text in (str(error.value), repr(bad), repr(bad.auth), caplog.text):
        assert password not in text
    scheme, rest = orthanc_auth.dicomweb_url.split("://", 1)
    in_url = DicomwebServer(f"{scheme}://{user}:{password}@{rest}")
    assert password not in repr(in_url) and password not in in_url.url
    assert len(search_studies(in_url)) == len(sample_small.studies)
    with pytest.raises(AuthenticationFailed):
        search_studies(DicomwebServer(orthanc_auth.dicomweb_url))


def test_unreachable_server_fails_clearly_within_the_timeout():
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = DicomwebServer(f"http://127.0.0.1:{port}/dicom-web", retry=FAST_RETRY, timeout=(1.0, 1.0))
    started = time.monotonic()
    with pytest.raises(ServerUnreachable, match=f"127.0.0.1:{port}"):
        search_studies(server)
    assert time.monotonic() - started < 5
