"""The comparison benchmark's harness (Testing/benchmarks/compare_alternatives.py) on a tiny real
run: the small sample on a real Orthanc inside private network namespaces, plain loopback and a
kernel tbf limit, three contenders, one repeat. The JSON, the PNGs and the table must agree with
the generated study and with the link: no contender beats the rate limit.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from servers.orthanc import orthanc_available
from support import missing

BENCH = Path(__file__).resolve().parent / "benchmarks"
sys.path.insert(0, str(BENCH))

from bench_report import Target, median  # noqa: E402
from compare_alternatives import parse_repeats  # noqa: E402
from netns import rate_bits  # noqa: E402

SCRIPT = BENCH / "compare_alternatives.py"
CONTENDERS = ("breadth-first", "focus-switch", "dwc-series")
RATE = "100mbit"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.compat
@pytest.mark.parametrize("text, bits", [("30mbit", 30e6), ("100MBIT", 100e6), ("1.5gbit", 1.5e9), ("500kbit", 5e5),
                                        ("loopback", None)])
def test_rate_bits_reads_tc_units(text, bits):
    assert rate_bits(text) == bits


@pytest.mark.compat
@pytest.mark.parametrize("text", ["30", "fast", "0mbit", "-5mbit", "mbit", ""])
def test_rate_bits_names_a_bad_rate(text):
    with pytest.raises(ValueError, match="rate"):
        rate_bits(text)


@pytest.mark.compat
def test_repeats_per_rate():
    rates = ["loopback", "100mbit", "30mbit"]
    assert parse_repeats("3", rates) == {"loopback": 3, "100mbit": 3, "30mbit": 3}
    assert parse_repeats("loopback=5,30mbit=2", rates) == {"loopback": 5, "100mbit": 1, "30mbit": 2}
    for bad in ("0", "x", "loopback=two"):
        with pytest.raises(ValueError, match="--repeats"):
            parse_repeats(bad, rates)


@pytest.mark.compat
def test_medians_and_targets():
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([1.0, None, 2.0]) is None  # one run never got there: no median pretends it did
    slow = Target("30mbit", "whole study", 1.10, 1.05)
    assert slow.met is False and "NOT met (+5%)" in slow.line()
    fast = Target("loopback", "throughput", 0.95, 0.9, lower_is_better=False)
    assert fast.met is True and "met (+6%)" in fast.line()
    assert Target("x", "t", None, 1.0).met is None


@pytest.mark.compat
def test_bad_arguments_are_named_before_anything_starts():
    for args, word in ((["--rates", "loopback,fast"], "fast"), (["--contenders", "breadth-first,wget"], "wget"),
                       (["--repeats", "0"], "--repeats")):
        result = subprocess.run([sys.executable, str(SCRIPT)] + args, capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stderr
        assert word in result.stderr


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, sample_small):
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("tc")):
        missing("root with unshare and tc (private network namespaces)")
    if not orthanc_available():
        missing("Orthanc with the DICOMweb plugin")
    out = tmp_path_factory.mktemp("bench")
    command = [sys.executable, str(SCRIPT), "--profile", "small", "--rates", f"loopback,{RATE}", "--repeats", "1",
               "--contenders", ",".join(CONTENDERS), "--focus-after", "0.1", "--out", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-4000:]
    return out, result.stdout, json.loads((out / "compare_alternatives.json").read_text()), sample_small


def test_every_contender_fetches_the_whole_study(tiny_run):
    _, _, document, sample = tiny_run
    for rate in ("loopback", RATE):
        entry = document["rates"][rate]
        pixels = sum(sample.series(s["key"]).num_slices * s["rows"] * s["columns"] * 2 for s in entry["series"])
        assert set(entry["summary"]) == set(CONTENDERS)
        for name, summary in entry["summary"].items():
            figures = summary["median"]
            assert figures["body_MB"] == pytest.approx(pixels / 1e6, abs=1e-6), (rate, name)
            assert figures["wire_MB"] > figures["body_MB"]  # headers, metadata and ACKs cross the link too
            completes = [figures[f"complete_s:{s['key']}"] for s in entry["series"]]
            assert 0 < figures["first_view_s"] <= figures["covered_s"] <= figures["study_s"] == max(completes)
            assert figures["peak_rss_MB"] > figures["volume_MB"] > 0


def test_no_contender_beats_the_rate_limit(tiny_run):
    _, _, document, _ = tiny_run
    entry = document["rates"][RATE]
    pixels = sum(s["pixel_bytes"] for s in entry["series"])
    assert entry["link_limit_s"] == pytest.approx(pixels * 8 / 100e6)
    for name, summary in entry["summary"].items():
        # the tbf burst (64 KB) is the only allowance; an unlimited loopback would be many times faster
        assert summary["median"]["x_link_limit"] >= 0.95, name
        assert 0 < summary["median"]["utilisation"] <= 1.05, name
    focus = entry["summary"]["focus-switch"]["median"]
    assert focus["focus_remaining_MB"] > 0 and focus["focus_vs_limit"] >= 0.95
    assert document["rates"]["loopback"]["link_limit_s"] is None


def test_table_json_and_figures_are_written(tiny_run):
    out, stdout, document, _ = tiny_run
    assert (out / "summary.md").read_text().count("contender") == 2
    for rate in ("loopback", RATE):
        assert f"{rate}: " in stdout
        png = out / document["rates"][rate]["figure"]
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size < 300_000
    names = {(t["rate"], t["target"]) for t in document["targets"]}
    assert ("loopback", "throughput vs dicomweb-client series retrieve >= 0.9") in names
    assert any(rate == RATE and name.startswith("whole study") for rate, name in names)
    measured = [t for t in document["targets"] if t["measured"] is not None]
    assert measured and all(isinstance(t["met"], bool) for t in measured)
    assert "targets (docs/benchmarks.md)" in stdout


def test_report_only_redraws_the_same_table_from_the_raw_runs(tiny_run):
    out, _, _, _ = tiny_run
    before = (out / "summary.md").read_text()
    (out / "summary.md").unlink()
    result = subprocess.run([sys.executable, str(SCRIPT), "--profile", "small", "--rates", f"loopback,{RATE}",
                             "--report-only", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (out / "summary.md").read_text() == before


# -- the in-plane stage benchmark (in_plane_stages.py): its pieces, without root -----------------
IN_PLANE = BENCH / "in_plane_stages.py"
PLAIN_PLAN = "anchors,8,4,2"


def test_in_plane_error_is_mean_absolute_and_psnr_over_the_truth_range():
    from in_plane_run import preview_error

    truth = np.arange(-1024, 1024, dtype=np.int16).reshape(2, 32, 32)
    off = truth.copy()
    off[1] += 3  # half the voxels 3 HU off
    mae, psnr = preview_error(off, truth)
    assert mae == pytest.approx(1.5)
    assert psnr == pytest.approx(10 * np.log10(float(truth.max() - truth.min()) ** 2 / 4.5))
    assert preview_error(truth, truth) == (0.0, float("inf"))
    with pytest.raises(ValueError, match="shape"):
        preview_error(truth[:1], truth)


def test_in_plane_bad_arguments_are_named_before_anything_starts():
    for args, word in ((["--rates", "fast"], "fast"), (["--plan-previews", "preview-x"], "--plan-previews"),
                       (["--plan-plain", "8,8"], "--plan-plain"), (["--repeats", "0"], "--repeats")):
        result = subprocess.run([sys.executable, str(IN_PLANE)] + args, capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stderr
        assert word in result.stderr


@pytest.fixture(scope="module")
def in_plane_series(sample_full):
    from in_plane_data import ensure_series
    from servers.nginx import nginx_available

    if not nginx_available():
        missing("nginx (Debian package nginx)")
    return ensure_series()


def test_in_plane_series_is_served_as_htj2k_rpcl(in_plane_series):
    from ProgressiveDicomFetchLib.sampledata.static_tree import StaticTree
    from ProgressiveDicomFetchLib.sampledata.transcode import RPCL, progression_order
    from ProgressiveDicomFetchLib.transfer_syntax import HTJ2K_LOSSLESS_RPCL

    tree = StaticTree.load(in_plane_series.tree_root)
    assert in_plane_series.slices == len(tree.instances) >= 200
    assert {i.transfer_syntax for i in tree.instances} == {HTJ2K_LOSSLESS_RPCL}
    frames = [tree.frame_path(i, 1).read_bytes() for i in tree.instances]
    assert all(progression_order(frame) == RPCL for frame in frames)
    assert sum(len(frame) for frame in frames) == in_plane_series.frame_bytes < in_plane_series.native_bytes / 2


def _in_plane_run(series, plan: str, out: Path, *options: str) -> dict:
    """One run of in_plane_run.py against nginx on plain loopback (no root, no rate limit)."""
    from servers.nginx import NginxStaticServer

    with NginxStaticServer(series.tree_root) as nginx:
        command = [sys.executable, str(BENCH / "in_plane_run.py"), "--plan", plan, "--url", nginx.dicomweb_url,
                   "--study", series.study_uid, "--series", series.series_uid, "--truth", series.truth,
                   "--out", str(out), *options]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(out.read_text())


def test_in_plane_run_fetches_exactly_and_judges_the_previews(in_plane_series, tmp_path):
    """One real run: the engine gets every frame once, the final volume is the truth, the error
    shrinks from stage to stage, and the report reads the record."""
    from in_plane_report import PLAIN, PREVIEWS, summarise, table

    run = _in_plane_run(in_plane_series, PLAIN_PLAN, tmp_path / "run.json", "--snapshot-at", "0")
    assert run["errors"] == [] and run["final_exact"]
    assert run["body_bytes"] == in_plane_series.frame_bytes  # each frame once, whole
    assert list(run["stages"]) == ["anchors", "every-8", "every-4", "every-2", "rest"]
    assert 0 < run["first_slice_s"] <= run["covered_s"] <= run["stages"]["anchors"] <= run["complete_s"]
    errors = [run["snapshots"][f"stage:{stage}"]["mae"] for stage in run["stages"]]
    assert errors == sorted(errors, reverse=True) and errors[-1] == 0
    # A snapshot is copied when the main loop sees its event (a 120 MB copy takes a while): one
    # taken before the load completed is not exact yet, one taken after is.
    anchors = run["snapshots"]["stage:anchors"]
    assert (anchors["mae"] > 0) == (anchors["t"] < run["complete_s"]), anchors
    truth = np.load(in_plane_series.truth)
    assert run["snapshots"]["at_time"]["mae"] == pytest.approx(float(np.abs(truth.astype(np.float64)).mean()))
    assert run["snapshots"]["covered"]["counts"]["MISSING"] == 0

    wire = run["wire"][-1][1]
    raw = {"rate": "loopback", "rate_bps": None, "connections": 4, "series": asdict(in_plane_series),
           "runs": [dict(run, label=label, repeat=0, wire_bytes=wire, qdisc={}) for label in (PREVIEWS, PLAIN)]}
    summary = summarise(raw)
    assert summary["body_vs_frames"] == pytest.approx(1.0)
    assert summary["extra_bytes"]["body_MB"] == 0.0
    lines = "\n".join(table("loopback", raw, summary))
    assert f"`{PLAIN_PLAN}`" in lines and "never finished a 'preview-rest' stage" in lines
    assert "WARNING" not in lines


def test_in_plane_run_catches_the_all_previewed_moment(in_plane_series, tmp_path):
    """With the in-plane stage: every slice is real (no MISSING, no FILLED) at the end of "preview-rest",
    the prefixes and their rests add up to the frames exactly, and the preview is no exact volume."""
    run = _in_plane_run(in_plane_series, "preview-4,anchors,8,4,2", tmp_path / "run.json")
    assert run["errors"] == [] and run["final_exact"]
    assert run["body_bytes"] == in_plane_series.frame_bytes
    assert 0 < run["covered_s"] <= run["all_previewed_s"] == run["stages"]["preview-rest"] < run["complete_s"]
    previewed = run["snapshots"]["stage:preview-rest"]
    assert previewed["counts"]["MISSING"] == 0
    # No slice is a fill when every one has its preview, but the snapshot is copied when the main
    # loop sees the event: once exact slices are 2 apart (after every-4), reduced previews between
    # them yield to their interpolation (FILLED; docs/previews.md, the ladder rule).
    assert previewed["counts"]["FILLED"] == 0 or previewed["t"] > run["stages"]["every-4"], previewed
    assert previewed["counts"]["SUBRESOLUTION"] > 0 and 0 < previewed["mae"] < run["snapshots"]["covered"]["mae"]
