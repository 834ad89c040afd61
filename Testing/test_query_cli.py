"""`python -m ProgressiveDicomFetchLib query` as a user runs it, against the real Orthanc."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.compat  # also run on Slicer 5.8's stack (Makefile)


def run_query(*args, env=None):
    return subprocess.run([sys.executable, "-m", "ProgressiveDicomFetchLib", "query", *args],
                          capture_output=True, text=True, timeout=60, env=env)


def test_lists_studies_as_a_table(orthanc, sample_small):
    result = run_query("--url", orthanc.dicomweb_url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["Patient", "PatientID", "Birth"]
    for study in sample_small.studies:
        row = next(line for line in lines if study.study_uid in line)
        assert study.patient_id in row and study.accession_number in row
        assert study.study_description in row
    assert lines[-1] == f"({len(sample_small.studies)} results)"


def test_filters_narrow_and_json_output(orthanc, sample_small):
    study = sample_small.study("mr")
    result = run_query("--url", orthanc.dicomweb_url, "--json", f"PatientID={study.patient_id}")
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    assert [r["study_uid"] for r in records] == [study.study_uid]
    assert records[0]["study_date"] == f"{study.study_date[:4]}-{study.study_date[4:6]}-{study.study_date[6:]}"


def test_series_and_instances_levels(orthanc, sample_small):
    info = sample_small.series("ct_thick")
    series = run_query("--url", orthanc.dicomweb_url, "--study", info.study_uid, "--json")
    assert info.series_uid in {r["series_uid"] for r in json.loads(series.stdout)}
    instances = run_query("--url", orthanc.dicomweb_url, "--study", info.study_uid, "--series", info.series_uid, "--json")
    assert {r["sop_instance_uid"] for r in json.loads(instances.stdout)} == set(info.sop_instance_uids)


def test_errors_are_one_clear_line(orthanc_auth):
    bad_filter = run_query("--url", orthanc_auth.dicomweb_url, "Patient=X")
    assert bad_filter.returncode == 2 and "unknown DICOM attribute 'Patient'" in bad_filter.stderr
    user, password = orthanc_auth.auth
    wrong = run_query("--url", orthanc_auth.dicomweb_url, "--user", user, "--password", "x" + password)
    assert wrong.returncode == 2 and "authentication failed" in wrong.stderr and password not in wrong.stderr
    import os

    env = dict(os.environ, DICOMWEB_PASSWORD=password)
    right = run_query("--url", orthanc_auth.dicomweb_url, "--user", user, env=env)
    assert right.returncode == 0, right.stderr
