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
from pathlib import Path

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
    assert "targets (design.md)" in stdout


def test_report_only_redraws_the_same_table_from_the_raw_runs(tiny_run):
    out, _, _, _ = tiny_run
    before = (out / "summary.md").read_text()
    (out / "summary.md").unlink()
    result = subprocess.run([sys.executable, str(SCRIPT), "--profile", "small", "--rates", f"loopback,{RATE}",
                             "--report-only", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (out / "summary.md").read_text() == before
