"""`python -m ProgressiveDicomFetchLib demo` as a newcomer runs it (small sample, fast rate): exact NRRD
volumes, the timeline contract, a progress record and a real PNG; plus the recorder and plot."""
from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ProgressiveDicomFetchLib.engine.events import SeriesProgress
from ProgressiveDicomFetchLib.output.progress_plot import ProgressRecorder, ProgressSample, plot_progress
from ProgressiveDicomFetchLib.sampledata.sample_cache import ensure_sample

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def demo(*args, env=None):
    return subprocess.run([sys.executable, "-m", "ProgressiveDicomFetchLib", "demo", *args],
                          capture_output=True, text=True, timeout=300, env=env)


def png_size(path: Path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def sample_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("sample-cache")


def test_demo_fetches_the_sample_exactly_and_draws_the_progress(sample_cache, tmp_path):
    import nrrd  # a test dependency: its absence must fail, not skip
    out = tmp_path / "out"
    result = demo("--sample", "small", "--cache", str(sample_cache), "--out", str(out), "--rate", "100mbit",
                  "--connections", "3", "--focus", "0.1:ct_sagittal:10")
    assert result.returncode == 0, result.stderr
    sample = ensure_sample(sample_cache, "small")  # what the demo made (reused here, not rebuilt)
    assert sample.generated_s is None
    manifest = sample.manifest
    keys = [info.key for info in manifest.series_list]
    assert sorted(p.name for p in out.glob("*.nrrd")) == sorted(f"{manifest.series(k).series_uid}.nrrd" for k in keys)
    for key in keys:
        info = manifest.series(key)
        data, header = nrrd.read(str(out / f"{info.series_uid}.nrrd"), index_order="C")
        np.testing.assert_array_equal(data, manifest.load_truth(key))
        truth = np.array(info.ijk_to_lps)
        np.testing.assert_allclose(header["space directions"], truth[:3, :3].T, atol=1e-6)
        np.testing.assert_allclose(header["space origin"], truth[:3, 3], atol=1e-6)
    timeline = json.loads((out / "timeline.json").read_text())
    assert set(timeline) == {"total_s", "bytes", "series", "events"}
    for key in keys:
        record = timeline["series"][manifest.series(key).series_uid]
        assert record["slices"] == manifest.series(key).num_slices
        assert 0 < record["first_slice_s"] <= record["covered_s"] <= record["complete_s"] <= timeline["total_s"]
        coarse = record["coarse_s"]
        assert record["covered_s"] <= coarse["8"] <= coarse["4"] <= coarse["2"] <= record["complete_s"]
    sagittal = manifest.series("ct_sagittal").series_uid
    focus = [e for e in timeline["events"] if e["event"] == "focus"]
    assert len(focus) == 1, focus
    # The contract's fields, plus the visible set (an extension: only the focused series is shown)
    assert {k: focus[0][k] for k in ("t", "series", "event", "slice")} == {
        "t": pytest.approx(0.1, abs=0.5), "series": sagittal, "event": "focus", "slice": 10}
    assert focus[0]["visible"] == [sagittal]
    # 100 Mbit/s paces the study: at least its bytes' worth of time (a lower bound, never a speed target)
    assert timeline["total_s"] >= 0.9 * timeline["bytes"] * 8 / 100e6
    progress = json.loads((out / "progress.json").read_text())
    assert {s["series_uid"] for s in progress} == set(timeline["series"])
    for uid in timeline["series"]:
        mine = [s for s in progress if s["series_uid"] == uid]
        assert [s["t"] for s in mine] == sorted(s["t"] for s in mine)
        assert mine[-1]["full"] == mine[-1]["covered"] == mine[-1]["coarse"] == 1.0 and mine[-1]["level"] == 1
        assert len(mine) >= 3 and all(0 <= s["full"] <= s["coarse"] <= s["covered"] <= 1 for s in mine)
        assert [s["level"] for s in mine if s["coarse"] == 1.0] and all(s["level"] for s in mine if s["coarse"] == 1.0)
        early = [s for s in mine if s["level"] is None]  # the plot's dashed line stays below 100 % until 1/8
        assert early and all(s["coarse"] < 1.0 for s in early) and any(s["covered"] == 1.0 for s in early)
    width, height = png_size(out / "timeline.png")
    assert width >= 800 and 300 <= height <= 2000
    assert (out / "timeline.png").stat().st_size > 20_000  # drawn lines and text, not an empty canvas
    width, height = png_size(out / "refinement.png")  # 6 panels: covered, 1/8, 1/4, 1/2, exact ... side by side
    assert width > 2 * height and (out / "refinement.png").stat().st_size > 20_000
    for words in ("first slice", "1/8 exact", "complete", "AXIAL", "timeline.png", "refinement.png", "progress.json",
                  "100 Mbit/s"):
        assert words in result.stdout, words
    assert list(out.glob(".*tmp")) == []  # atomic writes left no temp file


@pytest.mark.parametrize("rate, words", [("30MB", "bytes units like MB are not accepted"), ("fast", "30mbit"),
                                         ("0", "more than 0")])
def test_a_bad_rate_is_one_clear_line_and_nothing_starts(sample_cache, tmp_path, rate, words):
    result = demo("--sample", "small", "--cache", str(sample_cache), "--out", str(tmp_path / "out"), "--rate", rate)
    assert result.returncode == 2
    assert "--rate" in result.stderr and words in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_bad_focus_is_refused_by_fetchs_own_check(sample_cache, tmp_path):
    result = demo("--sample", "small", "--cache", str(sample_cache), "--out", str(tmp_path), "--focus", "soon:ct_thin")
    assert result.returncode == 2 and "SECONDS is a number" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------- recorder and plot

def snapshot(uid, total, missing, full, label="2: AXIAL"):
    counts = {"MISSING": missing, "FULL": full, "FILLED": total - missing - full}
    return SeriesProgress(uid, label, total, counts)


@pytest.mark.compat
def test_recorder_keeps_changes_and_the_final_state_only():
    recorder = ProgressRecorder()
    recorder.sample(0.0, [snapshot("1.2", 0, 0, 0, label="")])
    recorder.sample(0.1, [snapshot("1.2", 10, 10, 0)])
    recorder.sample(0.2, [snapshot("1.2", 10, 0, 3)])
    recorder.sample(0.3, [snapshot("1.2", 10, 0, 3)])  # nothing new: not kept
    recorder.sample(0.4, [snapshot("1.2", 10, 0, 10)])
    recorder.add(0.4, "7.8", 0.5, 0.25)
    recorder.sample(0.9, [snapshot("1.2", 10, 0, 10)], final=True)
    assert [(s.t, s.covered, s.full) for s in recorder.samples if s.series_uid == "1.2"] == [
        (0.0, 0.0, 0.0), (0.2, 1.0, 0.3), (0.4, 1.0, 1.0), (0.9, 1.0, 1.0)]
    assert recorder.labels == {"1.2": "2: AXIAL"}
    assert recorder.to_json()[1] == {"t": 0.2, "series_uid": "1.2", "covered": 1.0, "full": 0.3, "coarse": 0.0,
                                     "level": None}  # a snapshot without a coarseness: nothing refined yet
    assert json.loads(json.dumps(recorder.to_json())) == recorder.to_json()


def test_plot_draws_panels_and_says_when_matplotlib_is_missing(tmp_path):
    panels = {"engine": [ProgressSample(t / 10, "1.2", min(1, t / 5), t / 20) for t in range(21)],
              "bulk": [ProgressSample(1.5, "1.2", 1.0, 1.0)]}
    one = plot_progress({"engine": panels["engine"]}, tmp_path / "one.png", labels={"1.2": "CT 80 sl."})
    two = plot_progress(panels, tmp_path / "two.png", title="t", events={"engine": [(0.5, "focus")]})
    (w1, h1), (w2, h2) = png_size(one), png_size(two)
    assert w1 == w2 and h2 > h1  # a panel more, same width
    with pytest.raises(ValueError, match="at least one panel"):
        plot_progress({}, tmp_path / "none.png")
    code = ("import sys; sys.modules['matplotlib'] = None\n"
            "from ProgressiveDicomFetchLib.output.progress_plot import ProgressSample, plot_progress\n"
            f"plot_progress({{'a': [ProgressSample(1.0, '1.2', 1.0, 1.0)]}}, {str(tmp_path / 'x.png')!r})")
    missing = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "pip install matplotlib" in missing.stderr
    assert not (tmp_path / "x.png").exists()


@pytest.mark.compat
def test_refinement_planes_are_what_the_volume_model_shows_at_each_level():
    from ProgressiveDicomFetchLib.volume.refinement import refinement_planes

    k = np.arange(33, dtype=np.float64)[:, None, None]
    volume = (k * k + np.arange(5)[None, None, :] + 10 * np.arange(4)[None, :, None]).astype(np.int16)
    planes = refinement_planes(volume)
    assert [name for name, _ in planes] == ["covered: 1 exact slice", "1/8: every 8th slice exact",
                                            "1/4: every 4th slice exact", "1/2: every 2nd slice exact", "exact"]
    exact = volume[:, 2, :]
    covered, eighth = planes[0][1], planes[1][1]
    assert (covered == exact[16]).all()  # the middle slice copied everywhere: what "covered" looks like
    np.testing.assert_array_equal(eighth[::8], exact[::8])
    np.testing.assert_array_equal(eighth[4], np.rint((exact[0] + exact[8]) / 2.0))  # filled linearly, not exact
    assert (eighth[4] != exact[4]).all()
    np.testing.assert_array_equal(planes[3][1][::2], exact[::2])
    np.testing.assert_array_equal(planes[-1][1], exact)
    with pytest.raises(ValueError, match="K, J, I"):
        refinement_planes(volume[0])


def test_refinement_picture_is_a_png_of_one_panel_per_level(tmp_path):
    from ProgressiveDicomFetchLib.output.refinement_picture import plot_refinement
    from ProgressiveDicomFetchLib.volume.refinement import refinement_planes

    volume = np.random.default_rng(1).integers(-1000, 1000, (40, 16, 16)).astype(np.int16)
    width, height = png_size(plot_refinement(refinement_planes(volume), tmp_path / "r.png", (0.7, 2.5), title="t"))
    assert width >= 3 * height and list(tmp_path.iterdir()) == [tmp_path / "r.png"]
    with pytest.raises(ValueError, match="at least one plane"):
        plot_refinement([], tmp_path / "none.png")
