"""The panel's plain-Python parts against the real Orthanc: the search form's filters find (and
exclude) the generated studies, the tables show their values, server settings authenticate and
never store a secret unasked, progress rows and status messages follow a real engine."""
from __future__ import annotations

import datetime

import pytest

from ProgressiveDicomFetchLib.dicomweb import BasicAuth, BearerToken, DicomwebServer, HeaderAuth, search_series, search_studies
from ProgressiveDicomFetchLib.dicomweb.records import SeriesRecord
from ProgressiveDicomFetchLib.engine import ProgressiveFetchEngine
from ProgressiveDicomFetchLib.engine.events import EngineEvent, EventKind
from ProgressiveDicomFetchLib.panel import (SERIES_COLUMNS, STUDY_COLUMNS, RecentServers, SearchForm, ServerSettings,
                                            bar_style, is_loadable, progress_row, status_message, table_rows)
from ProgressiveDicomFetchLib.panel.result_tables import default_order
from ProgressiveDicomFetchLib.dicomweb.server_check import check_server

pytestmark = pytest.mark.compat  # also run on Slicer 5.8's stack (Makefile)


def day(text: str) -> datetime.date:
    return datetime.datetime.strptime(text, "%Y%m%d").date()


# -- search form ------------------------------------------------------------------------------------
def test_typed_text_becomes_prefix_and_contains_matches():
    form = SearchForm(patient_name=" van der ", patient_id="PDF-", accession_number="ACC24*", modality="ct",
                      description="chest")
    assert form.filters() == {"PatientName": "van der*", "PatientID": "PDF-*", "AccessionNumber": "ACC24*",
                              "StudyDescription": "*chest*", "ModalitiesInStudy": "CT"}
    assert SearchForm().filters() == {}


def test_date_presets_count_back_from_today_and_ranges_may_be_open():
    today = datetime.date(2024, 1, 20)
    assert SearchForm(date_preset="today").filters(today) == {"StudyDate": "20240120"}
    assert SearchForm(date_preset="last 7 days").filters(today) == {"StudyDate": "20240114-20240120"}
    assert SearchForm(date_preset="last 30 days").filters(today) == {"StudyDate": "20231222-20240120"}
    assert SearchForm(date_preset="range", date_from=datetime.date(2023, 1, 1)).filters(today) == {"StudyDate": "20230101-"}
    assert SearchForm(date_preset="range", date_to=datetime.date(2023, 1, 1)).filters(today) == {"StudyDate": "-20230101"}


@pytest.mark.parametrize("form, message", [
    (SearchForm(date_preset="yesterday"), "unknown date preset"),
    (SearchForm(date_preset="range", date_from=datetime.date(2024, 2, 1), date_to=datetime.date(2024, 1, 1)),
     "starts (2024-02-01) after it ends"),
    (SearchForm(patient_id="a\\b"), "PatientID must not contain"),
    (SearchForm(patient_name="doe\nsmith"), "PatientName must not contain"),
    (SearchForm(modality="C T"), "Modality must be a code"),
])
def test_bad_form_values_are_named(form, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        form.filters()


def test_form_filters_find_and_exclude_the_generated_studies(orthanc, sample_small):
    server = DicomwebServer(orthanc.dicomweb_url)
    ct, edge = sample_small.study("ct"), sample_small.study("edge")

    def found(form, today=None):
        return {r.study_uid for r in search_studies(server, form.filters(today))}

    assert found(SearchForm(patient_name="van der")) == {edge.study_uid}
    assert found(SearchForm(patient_name="doe", modality="ct")) == {ct.study_uid}
    assert found(SearchForm(description="ABDOMEN")) == {ct.study_uid}
    assert found(SearchForm(date_preset="last 7 days"), day(ct.study_date) + datetime.timedelta(days=3)) == {ct.study_uid}
    assert found(SearchForm(date_preset="last 30 days"), day(ct.study_date) + datetime.timedelta(days=40)) == set()
    assert found(SearchForm(date_preset="range", date_to=day(edge.study_date))) == {edge.study_uid}


# -- tables -----------------------------------------------------------------------------------------
def test_tables_show_the_values_the_server_sent(orthanc, sample_small):
    server = DicomwebServer(orthanc.dicomweb_url)
    studies = default_order(search_studies(server))
    dates = [s.study_date for s in studies]
    assert dates == sorted(dates, reverse=True), "newest study first"
    rows = dict(zip([s.study_uid for s in studies], table_rows(studies, STUDY_COLUMNS)))
    ct = sample_small.study("ct")
    cells = dict(zip([c.title for c in STUDY_COLUMNS], rows[ct.study_uid]))
    assert cells["Patient name"].upper().startswith("DOE")
    assert cells["Patient ID"] == ct.patient_id
    assert cells["Birth date"] == day(ct.patient_birth_date).isoformat()
    assert cells["Study date"].startswith(day(ct.study_date).isoformat())
    assert cells["Accession"] == ct.accession_number
    assert "CT" in cells["Modalities"].split(", ")
    assert int(cells["Series"]) == len(ct.series_keys)

    series = search_series(server, ct.study_uid)
    series_rows = table_rows(series, SERIES_COLUMNS)
    by_number = {int(row[0]): row for row in series_rows}
    for key in ct.series_keys:
        info = sample_small.series(key)
        row = by_number[info.series_number]
        assert row[1] == info.modality and row[2] == info.description and int(row[5]) == info.num_instances


def test_non_image_series_are_listed_but_not_loadable():
    def record(modality, instances=3):
        return SeriesRecord("1.2", "1.2.3", modality, 1, "", "", None, None, instances)

    assert is_loadable(record("CT")) == (True, "")
    ok, why = is_loadable(record("SR"))
    assert not ok and "SR series hold no images" in why
    assert not is_loadable(record("MR", instances=0))[0]


# -- server settings --------------------------------------------------------------------------------
def test_each_authentication_kind_gives_its_auth_object_or_names_what_is_missing():
    assert ServerSettings(url="http://h/dicom-web").auth() is None
    assert isinstance(ServerSettings(auth_kind="basic", username="me", secret="pw").auth(), BasicAuth)
    assert isinstance(ServerSettings(auth_kind="bearer", secret="tok").auth(), BearerToken)
    assert isinstance(ServerSettings(auth_kind="header", header_name="X-Api-Key", secret="k").auth(), HeaderAuth)
    for settings, message in [(ServerSettings(auth_kind="basic", username="me"), "needs a password"),
                              (ServerSettings(auth_kind="basic", secret="pw"), "needs a user name"),
                              (ServerSettings(auth_kind="bearer"), "needs a token"),
                              (ServerSettings(auth_kind="header", header_name="X Key", secret="k"), "without spaces"),
                              (ServerSettings(auth_kind="kerberos"), "unknown authentication")]:
        with pytest.raises(ValueError, match=message):
            settings.auth()
    with pytest.raises(ValueError, match="must start with http"):
        ServerSettings(url="ftp://h/x").base_url()


def test_basic_credentials_from_the_panel_reach_the_real_server(orthanc_auth):
    user, password = orthanc_auth.auth
    good = ServerSettings(url=orthanc_auth.dicomweb_url, auth_kind="basic", username=user, secret=password)
    assert check_server(good.base_url(), auth=good.auth()).ok
    bad = ServerSettings(url=orthanc_auth.dicomweb_url, auth_kind="basic", username=user, secret="wrong")
    assert check_server(bad.base_url(), auth=bad.auth()).status == 401


def test_the_secret_is_stored_only_when_asked_and_never_in_the_url():
    settings = ServerSettings(url="https://me:pw@pacs.example/dicom-web", auth_kind="bearer", secret="tok-123")
    stored = settings.to_store()
    assert "tok-123" not in repr(stored) and "pw" not in stored["ServerURL"]
    assert "tok-123" not in repr(settings)
    back = ServerSettings.from_store({k: str(v).lower() if isinstance(v, bool) else v for k, v in stored.items()})
    assert (back.url, back.auth_kind, back.secret, back.remember_credentials) == (
        "https://pacs.example/dicom-web", "bearer", "", False)
    settings.remember_credentials = True
    back = ServerSettings.from_store({k: str(v).lower() if isinstance(v, bool) else v for k, v in settings.to_store().items()})
    assert (back.secret, back.remember_credentials) == ("tok-123", True)


def test_recent_servers_most_recent_first_without_duplicates_or_credentials():
    recent = RecentServers(["http://b/dicom-web", "not a url", "http://a/dicom-web"], limit=3)
    assert recent.urls == ["http://b/dicom-web", "http://a/dicom-web"]
    recent.add("http://a/dicom-web/")
    recent.add("https://me:secret@c/dicom-web")
    recent.add("http://d/dicom-web")
    assert recent.urls == ["http://d/dicom-web", "https://c/dicom-web", "http://a/dicom-web"]
    with pytest.raises(ValueError):
        recent.add("file:///etc/passwd")
    assert RecentServers.from_setting(None).urls == []
    assert RecentServers.from_setting("http://a/dicom-web").urls == ["http://a/dicom-web"]
    assert RecentServers.from_setting(("http://a/dicom-web", "http://b/dicom-web")).urls[1] == "http://b/dicom-web"


# -- progress ---------------------------------------------------------------------------------------
def test_progress_rows_and_messages_follow_a_real_engine(orthanc, sample_small):
    info = sample_small.series("ct_thin")
    engine = ProgressiveFetchEngine(DicomwebServer(orthanc.dicomweb_url))
    events, seen_partial = [], False
    try:
        engine.add_series(info.study_uid, info.series_uid)

        def on_update(update):
            nonlocal seen_partial
            events.extend(update.events)
            (now,) = engine.progress()  # one snapshot: the workers go on between two calls
            row = progress_row(now)
            assert row.full_percent <= row.bar_percent <= row.covered_percent <= 100
            assert row.bar_text.split(" · ")[0] == now.level_text
            # a whole volume, still coarse: any level before exact (every 8th, 4th or 2nd slice), as
            # one level alone may pass between two ticks on loopback (1/8 lasts ~10 slices' time)
            seen_partial |= row.level in (8, 4, 2) and row.bar_percent == 100 and row.full_percent < 100 and row.can_cancel

        engine.run_until_finished(on_update, timeout=60)
    finally:
        engine.close()
    (snapshot,) = engine.progress()
    row = progress_row(snapshot)
    assert (row.covered_percent, row.full_percent, row.bar_percent, row.state_text, row.can_cancel) == \
        (100, 100, 100, "complete", False)
    assert row.bar_text.startswith("exact · full 100% · ") and row.level == 1
    assert row.label == f"{info.series_number}: {info.description}"
    assert seen_partial, "a whole volume, coarse and not yet exact, should have been shown"
    labels = {info.series_uid: "CT thin"}
    messages = [m for m in (status_message(e, labels) for e in events) if m]
    assert [m.split(" after ")[0] for m in messages if "slice exact" in m] == [
        "CT thin: every 8th slice exact (1/8)", "CT thin: every 4th slice exact (1/4)", "CT thin: every 2nd slice exact (1/2)"]
    assert messages[0].startswith("CT thin: first slice after") and messages[-1].startswith("CT thin: complete")
    assert not any(status_message(e, labels) for e in events if e.event == EventKind.STAGE)
    assert {EventKind.FIRST_SLICE, EventKind.COMPLETE} <= {e.event for e in events}


def test_bar_style_darkens_the_full_part_of_the_refined_chunk():
    assert "stop:0.250 #2e7d32" in bar_style(refined=0.8, full=0.2)
    assert "stop:1.000 #2e7d32" in bar_style(refined=1.0, full=1.0)
    assert "stop:1.000 #2e7d32" in bar_style(refined=0.0, full=0.0)
    failed = status_message(EngineEvent(1.0, "1.2.3", EventKind.ERROR, message="404 for frame 3"), {})
    assert failed == "1.2.3 failed: 404 for frame 3"
