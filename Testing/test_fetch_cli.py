"""`python -m ProgressiveDicomFetchLib fetch` as a user runs it against the real Orthanc: NRRD files
with exact geometry, the timeline contract, progress on the terminal, clear errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from servers.fault_relay import STATUS, Fault

STUDY = ("ct_thin", "ct_thick", "ct_sagittal")


def fetch(*args):
    return subprocess.run([sys.executable, "-m", "ProgressiveDicomFetchLib", "fetch", *args],
                          capture_output=True, text=True, timeout=180)


def test_fetch_writes_exact_nrrd_files_and_the_timeline(orthanc, sample_small, tmp_path):
    import nrrd  # a test dependency: its absence must fail, not skip
    study = sample_small.study("ct")
    focused = sample_small.series("ct_thin").series_uid
    result = fetch("--url", orthanc.dicomweb_url, "--study", study.study_uid, *sum((["--series", sample_small.series(k).series_uid] for k in STUDY), []),
                   "--out", str(tmp_path / "out"), "--timeline", str(tmp_path / "t.json"), "--focus", f"0.05:{focused}:40")
    assert result.returncode == 0, result.stderr
    for key in STUDY:
        info = sample_small.series(key)
        data, header = nrrd.read(str(tmp_path / "out" / f"{info.series_uid}.nrrd"), index_order="C")
        np.testing.assert_array_equal(data, sample_small.load_truth(key))
        truth = np.array(info.ijk_to_lps)
        np.testing.assert_allclose(header["space directions"], truth[:3, :3].T, atol=1e-6)
        np.testing.assert_allclose(header["space origin"], truth[:3, 3], atol=1e-6)
        assert header["space"] == "left-posterior-superior"
    timeline = json.loads((tmp_path / "t.json").read_text())
    assert set(timeline) == {"total_s", "bytes", "series", "events"}
    assert timeline["bytes"] == sum(s["bytes"] for s in timeline["series"].values()) > 0
    for key in STUDY:
        record = timeline["series"][sample_small.series(key).series_uid]
        assert set(record) == {"slices", "bytes", "first_slice_s", "covered_s", "complete_s", "stages", "coarse_s"}
        assert record["slices"] == sample_small.series(key).num_slices
        assert 0 < record["first_slice_s"] <= record["covered_s"] <= record["complete_s"] <= timeline["total_s"]
        assert list(record["stages"]) == ["anchors", "every-8", "every-4", "every-2", "rest"]
        coarse = record["coarse_s"]  # the extension: when every 8th / 4th / 2nd slice was exact, in that order
        assert list(coarse) == ["8", "4", "2"]
        assert record["covered_s"] <= coarse["8"] <= coarse["4"] <= coarse["2"] <= record["complete_s"]
        assert coarse["8"] <= record["stages"]["every-8"] and coarse["2"] <= record["stages"]["every-2"]
    kinds = {e["event"] for e in timeline["events"]}
    assert {"first_slice", "covered", "stage", "complete", "focus", "coarse"} <= kinds
    assert all(set(e) >= {"t", "series", "event"} for e in timeline["events"])
    assert "covered" in result.stderr and "complete" in result.stderr  # progress shown
    bars = [line for line in result.stderr.splitlines() if "|" in line]
    coarse = [line for line in bars if " gap " in line or "no exact slice" in line or "no slice yet" in line]
    assert coarse and len(coarse) < len(bars)
    assert not [line for line in coarse if "covered" in line or "100%" in line]  # nothing says so before 1/8
    assert "first slice" in result.stdout


def test_whole_study_by_default_and_a_missing_series_is_an_error(orthanc, sample_small, tmp_path):
    study = sample_small.study("mr")
    result = fetch("--url", orthanc.dicomweb_url, "--study", study.study_uid, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert [p.name for p in tmp_path.glob("*.nrrd")] == [f"{sample_small.series('mr_t1').series_uid}.nrrd"]
    broken = fetch("--url", orthanc.dicomweb_url, "--study", study.study_uid, "--series", "1.2.3.999",
                   "--out", str(tmp_path / "b"))
    assert broken.returncode == 1 and "1.2.3.999" in broken.stderr
    assert list((tmp_path / "b").glob("*.nrrd")) == []


def test_a_series_failing_mid_load_leaves_nothing_and_the_others_are_exact(orthanc_relay, sample_small, tmp_path):
    """Only complete series are written: one series' frames answer 503 after its first few, for
    good; exit 1 naming it, the others' NRRD files exact, no file of it (hidden ones included)."""
    import nrrd
    broken, good = sample_small.series("ct_sagittal"), ("ct_thin", "ct_thick")
    fault = orthanc_relay.add(Fault(STATUS, f"{broken.series_uid}/.*/frames/", times=None, skip=6, status=503))
    out = tmp_path / "out"
    series = sum((["--series", sample_small.series(k).series_uid] for k in ("ct_thin", "ct_sagittal", "ct_thick")), [])
    result = fetch("--url", orthanc_relay.dicomweb_url, "--study", broken.study_uid, *series, "--out", str(out))
    assert fault.fired > 0 and result.returncode == 1, result.stderr
    assert f"series {broken.series_uid} not complete (failed)" in result.stderr and "503" in result.stderr
    frames = orthanc_relay.requests_to(f"{broken.series_uid}/.*/frames/")
    assert 0 < sum(r.status == 200 for r in frames) < broken.num_slices, "the series did not fail mid-load"
    expected = {f"{sample_small.series(k).series_uid}.nrrd" for k in good}
    assert set(os.listdir(out)) == expected  # nothing else: no partial, temp or hidden file
    for key in good:
        data, _ = nrrd.read(str(out / f"{sample_small.series(key).series_uid}.nrrd"), index_order="C")
        np.testing.assert_array_equal(data, sample_small.load_truth(key))


@pytest.mark.parametrize("extra, words", [
    (["--focus", "soon:1.2.3"], "SECONDS is a number"),
    (["--focus", "1:1.2.3"], "not requested"),
    (["--focus", "1:1.2.3.4,1.2.3.4"], "names a series twice"),
    (["--focus", "1:1.2.3.4,../x:3"], "not a UID"),
    (["--cache", "/etc/passwd"], "not a folder"),
    (["--cache-size", "0"], "--cache-size must be positive"),
    (["--connections", "0"], "at least 1"),
    (["--series", "../etc"], "not a UID"),
])
def test_bad_arguments_are_one_clear_line(orthanc, tmp_path, extra, words):
    result = fetch("--url", orthanc.dicomweb_url, "--study", "1.2.3", "--out", str(tmp_path), "--series", "1.2.3.4", *extra)
    assert result.returncode == 2 and words in result.stderr and "Traceback" not in result.stderr


def test_focus_on_several_series_boosts_them_in_order_after_every_coarse_volume(orthanc, sample_small, tmp_path):
    """`--focus 0:B,A:10`: B touched last (slice 10), A on screen too, C shown nowhere."""
    study = sample_small.study("ct")
    thin, thick, sagittal = (sample_small.series(k).series_uid for k in STUDY)
    result = fetch("--url", orthanc.dicomweb_url, "--study", study.study_uid, *sum((["--series", uid] for uid in
                   (thin, thick, sagittal)), []), "--out", str(tmp_path / "out"), "--timeline", str(tmp_path / "t.json"),
                   "--focus", f"0:{thick},{thin}:10")
    assert result.returncode == 0, result.stderr
    timeline = json.loads((tmp_path / "t.json").read_text())
    (focus,) = [e for e in timeline["events"] if e["event"] == "focus"]
    assert (focus["series"], focus["slice"], focus["visible"]) == (thick, 10, [thick, thin])
    series = timeline["series"]
    assert series[thick]["complete_s"] < series[thin]["complete_s"] < series[sagittal]["complete_s"]
    # the coverage floor: the series shown nowhere has its first coarse volume before the boost ends
    assert series[sagittal]["stages"]["every-8"] < series[thick]["complete_s"]


@pytest.mark.compat
def test_focus_parses_one_series_as_before_or_several_the_first_touched_last():
    from ProgressiveDicomFetchLib.cli.fetch_command import FocusChange
    from ProgressiveDicomFetchLib.engine import Shown

    old = FocusChange.parse("2.5:1.2.3:40")
    assert (old.at_s, old.series_uid, old.series_uids, old.slice) == (2.5, "1.2.3", ("1.2.3",), 40)
    assert old.shown() == [Shown("1.2.3", ((0, 40.0),))]
    several = FocusChange.parse("1.0:1.2.3,1.2.4")
    assert (several.series_uid, several.slice) == ("1.2.3", None)
    assert several.shown() == [Shown("1.2.3"), Shown("1.2.4")]
    with pytest.raises(ValueError, match="SERIES_UID"):
        FocusChange.parse("1.0")
    with pytest.raises(ValueError, match="empty series UID"):
        FocusChange.parse("1.0:1.2.3,")
