"""The progressive volume model: quality ladder, fill, dirty record, memory check, threads.

The fill is checked against an independent from-scratch reference (np.interp along k for
linear, an explicit nearest search for nearest), so the incremental O(gap) refill must agree
with the whole-volume answer after any arrival order.
"""
from __future__ import annotations

import random
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from ProgressiveDicomFetchLib.volume import (
    AvailableMemory,
    PixelRangeError,
    ProgressiveVolume,
    Quality,
    VolumeTooLargeError,
    available_memory,
    check_fits,
    format_bytes,
    memory,
)
from ProgressiveDicomFetchLib.volume.preview_quality import CT_HU_RANGE, compare_fills, decimated_stages, simulate

pytestmark = pytest.mark.compat

MB = 1024 ** 2


def random_volume(shape=(24, 6, 5), dtype=np.int16, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-1024, 3071, size=shape).astype(dtype)


def reference_fill(truth: np.ndarray, loaded, mode: str) -> np.ndarray:
    """The fill computed from scratch from the loaded set: what any arrival order must give."""
    loaded = sorted(loaded)
    out = np.zeros(truth.shape, np.float64)
    ks = np.arange(truth.shape[0])
    if mode == "linear":
        flat = truth[loaded].reshape(len(loaded), -1).astype(np.float64)
        for column in range(flat.shape[1]):  # np.interp copies the end values past the ends
            out.reshape(truth.shape[0], -1)[:, column] = np.interp(ks, loaded, flat[:, column])
        return out
    for k in ks:
        below = max((j for j in loaded if j <= k), default=None)
        above = min((j for j in loaded if j >= k), default=None)
        if below is None or (above is not None and above - k < k - below):
            out[k] = truth[above]
        else:
            out[k] = truth[below]
    return out


# --- the quality ladder -----------------------------------------------------------------


def test_quality_order_is_the_ladder():
    assert Quality.MISSING < Quality.FILLED < Quality.SUBRESOLUTION < Quality.LOSSY < Quality.FULL


def test_never_downgrades_and_equal_quality_is_a_no_op():
    truth = random_volume()
    volume = ProgressiveVolume(truth.shape, truth.dtype)
    assert volume.write_slice(3, truth[3], Quality.FULL) is True
    volume.take_dirty()
    assert volume.write_slice(3, truth[3] + 1, Quality.LOSSY) is False
    assert volume.write_slice(3, truth[3] + 1, Quality.FULL) is False
    assert volume.write_slice(3, truth[3] + 1, Quality.SUBRESOLUTION) is False
    np.testing.assert_array_equal(volume.array[3], truth[3])
    assert volume.quality(3) is Quality.FULL
    assert volume.take_dirty() == []


def test_better_data_replaces_worse():
    truth = random_volume()
    volume = ProgressiveVolume(truth.shape, truth.dtype)
    assert volume.write_slice(5, truth[5] // 2, Quality.SUBRESOLUTION)
    assert volume.write_slice(5, truth[5] - 1, Quality.LOSSY)
    assert volume.quality(5) is Quality.LOSSY
    assert volume.write_slice(5, truth[5], Quality.FULL)
    np.testing.assert_array_equal(volume.array[5], truth[5])
    assert volume.quality(5) is Quality.FULL


def test_bad_writes_raise_clearly_and_write_nothing():
    truth = random_volume()
    volume = ProgressiveVolume(truth.shape, truth.dtype)
    with pytest.raises(IndexError, match="outside the volume's 0..23"):
        volume.write_slice(24, truth[0])
    with pytest.raises(IndexError, match="-1"):
        volume.write_slice(-1, truth[0])
    with pytest.raises(TypeError, match="integer"):
        volume.write_slice(1.5, truth[0])
    with pytest.raises(ValueError, match=r"shape \(5, 6\).*\(6, 5\)"):
        volume.write_slice(0, truth[0].T)
    with pytest.raises(ValueError, match="FILLED"):
        volume.write_slice(0, truth[0], Quality.FILLED)
    assert volume.write_slice(np.int64(2), truth[2])  # numpy integers are indices too
    assert volume.counts()[Quality.MISSING] == 0 and volume.take_dirty() == list(range(24))


# --- safe casting ---------------------------------------------------------------------------


def test_integer_overflow_on_write_raises_and_leaves_the_slice_alone():
    volume = ProgressiveVolume((4, 3, 3), np.int16)
    wide = np.full((3, 3), 1000, np.int32)
    wide[1, 2] = 40000  # would wrap to -25536 in int16
    with pytest.raises(PixelRangeError, match=r"\[1000, 40000\].*int16 \[-32768, 32767\]"):
        volume.write_slice(1, wide)
    with pytest.raises(PixelRangeError, match="NaN"):
        volume.write_slice(1, np.full((3, 3), np.nan))
    unsigned = ProgressiveVolume((4, 3, 3), np.uint16)
    with pytest.raises(PixelRangeError, match=r"\[-1024"):
        unsigned.write_slice(0, np.full((3, 3), -1024, np.int16))
    assert volume.quality(1) is Quality.MISSING and not volume.array.any() and volume.take_dirty() == []


def test_values_that_fit_are_cast_exactly():
    volume = ProgressiveVolume((2, 2, 2), np.int16)
    assert volume.write_slice(0, np.array([[1023.9999, -1024.2], [0.4, 32767.0]]))
    np.testing.assert_array_equal(volume.array[0], [[1024, -1024], [0, 32767]])
    assert volume.write_slice(1, np.array([[0, 100], [32767, 7]], np.uint16))
    np.testing.assert_array_equal(volume.array[1], [[0, 100], [32767, 7]])
    floats = ProgressiveVolume((1, 1, 2), np.float32)
    with pytest.raises(PixelRangeError, match="float32"):
        floats.write_slice(0, np.array([[1e39, 0.0]]))


# --- fill -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32, np.float64])
def test_linear_fill_reproduces_a_ramp_exactly_from_every_4th_slice(dtype):
    k = np.arange(33, dtype=np.float64)[:, None, None]
    offsets = np.arange(12, dtype=np.float64).reshape(3, 4)
    slope = 1.0 if dtype == np.uint8 else -12.0 + offsets  # a different slope per pixel
    ramp = (k * slope + 7 * offsets).astype(dtype)
    volume = ProgressiveVolume(ramp.shape, dtype, fill="linear")
    for j in range(0, 33, 4):
        volume.write_slice(j, ramp[j])
    assert volume.array.tobytes() == ramp.tobytes()
    assert volume.counts() == {Quality.MISSING: 0, Quality.FILLED: 24, Quality.SUBRESOLUTION: 0,
                               Quality.LOSSY: 0, Quality.FULL: 9}


def test_linear_fill_rounds_to_nearest_for_integers():
    volume = ProgressiveVolume((4, 1, 1), np.int16)
    volume.write_slice(0, np.array([[0]]))
    volume.write_slice(3, np.array([[-10]]))
    assert volume.array[:, 0, 0].tolist() == [0, -3, -7, -10]  # -3.33 -> -3, -6.67 -> -7


def test_nearest_fill_copies_the_nearer_slice_and_the_lower_one_at_half_way():
    truth = random_volume((11, 4, 4))
    volume = ProgressiveVolume(truth.shape, truth.dtype, fill="nearest")
    volume.write_slice(2, truth[2])
    volume.write_slice(6, truth[6])
    volume.write_slice(9, truth[9])
    sources = [2, 2, 2, 2, 2, 6, 6, 6, 9, 9, 9]  # 4 is half-way between 2 and 6: copies 2
    np.testing.assert_array_equal(volume.array, truth[sources])


@pytest.mark.parametrize("mode", ["linear", "nearest"])
def test_edges_are_copies_of_the_outermost_loaded_slices(mode):
    truth = random_volume((16, 3, 4))
    volume = ProgressiveVolume(truth.shape, truth.dtype, fill=mode)
    volume.write_slice(10, truth[10])
    np.testing.assert_array_equal(volume.array, truth[[10] * 16])  # one slice: everything copies it
    volume.write_slice(5, truth[5])
    np.testing.assert_array_equal(volume.array[:5], truth[[5] * 5])
    np.testing.assert_array_equal(volume.array[11:], truth[[10] * 5])
    assert [volume.quality(k) for k in (0, 4, 5, 10, 15)] == [
        Quality.FILLED, Quality.FILLED, Quality.FULL, Quality.FULL, Quality.FILLED]


def test_a_closer_neighbour_improves_a_filled_slice_and_dirties_exactly_its_gaps():
    k = np.arange(17, dtype=np.float64)[:, None, None]
    truth = np.broadcast_to(k ** 2, (17, 2, 2)).astype(np.int16)  # curved along k
    volume = ProgressiveVolume(truth.shape, truth.dtype, fill="linear")
    volume.write_slice(0, truth[0])
    volume.write_slice(8, truth[8])
    volume.write_slice(16, truth[16])
    volume.take_dirty()
    error_before = abs(int(volume.array[3, 0, 0]) - 9)  # 64 * 3/8 = 24
    volume.write_slice(4, truth[4])
    error_after = abs(int(volume.array[3, 0, 0]) - 9)  # 16 * 3/4 = 12
    assert (error_before, error_after) == (15, 3)
    assert volume.take_dirty() == [1, 2, 3, 4, 5, 6, 7]  # the two gaps around 4, nothing beyond 8


def test_nearest_refill_touches_only_slices_whose_nearest_source_changed():
    truth = random_volume((9, 2, 3))
    volume = ProgressiveVolume(truth.shape, truth.dtype, fill="nearest")
    volume.write_slice(0, truth[0])
    volume.write_slice(8, truth[8])
    volume.take_dirty()
    volume.write_slice(4, truth[4])
    assert volume.take_dirty() == [3, 4, 5, 6]  # 1, 2 still copy 0; 7 still copies 8
    np.testing.assert_array_equal(volume.array, truth[[0, 0, 0, 4, 4, 4, 4, 8, 8]])


@pytest.mark.parametrize("mode", ["linear", "nearest"])
@pytest.mark.parametrize("seed", range(6))
def test_incremental_fill_equals_the_fill_from_scratch_in_any_order(mode, seed):
    rng = random.Random(seed)
    truth = random_volume((37, 4, 3), np.float64, seed)
    volume = ProgressiveVolume(truth.shape, truth.dtype, fill=mode)
    order = rng.sample(range(37), 37)
    for count, k in enumerate(order, 1):
        volume.write_slice(k, truth[k])
        if count in (1, 2, 5, 11, 20, 36):
            np.testing.assert_allclose(volume.array, reference_fill(truth, order[:count], mode), rtol=1e-12, atol=1e-9)
            filled = sorted(set(range(37)) - set(order[:count]))
            assert volume.loaded_slices() == sorted(order[:count])
            assert np.flatnonzero(volume.qualities() == Quality.FILLED).tolist() == filled


@pytest.mark.parametrize("mode", ["linear", "nearest"])
def test_random_arrival_with_previews_converges_bit_exact(mode):
    rng = random.Random(7)
    truth = random_volume((50, 8, 7), np.int16, 7)
    volume = ProgressiveVolume(truth.shape, truth.dtype, fill=mode)
    writes = [(k, Quality.SUBRESOLUTION) for k in range(50)] + [(k, Quality.LOSSY) for k in range(0, 50, 3)]
    writes += [(k, Quality.FULL) for k in range(50)]
    rng.shuffle(writes)
    for k, level in writes:
        data = truth[k] if level is Quality.FULL else truth[k] // 2  # previews are wrong on purpose
        volume.write_slice(k, data, level)
    assert volume.complete and volume.covered
    assert volume.array.tobytes() == truth.tobytes()


# --- state and the dirty record ---------------------------------------------------------------


def test_covered_and_complete_follow_the_slices():
    truth = random_volume((6, 2, 2))
    volume = ProgressiveVolume(truth.shape, truth.dtype)
    assert not volume.covered and not volume.complete
    assert volume.counts()[Quality.MISSING] == 6
    volume.write_slice(2, truth[2], Quality.LOSSY)
    assert volume.covered and not volume.complete
    for k in range(6):
        volume.write_slice(k, truth[k], Quality.FULL)
    assert volume.covered and volume.complete
    assert volume.counts()[Quality.FULL] == 6


def test_take_dirty_returns_sorted_changes_once():
    truth = random_volume((10, 2, 2))
    volume = ProgressiveVolume(truth.shape, truth.dtype)
    assert volume.take_dirty() == []
    volume.write_slice(0, truth[0])
    volume.write_slice(9, truth[9])
    assert volume.take_dirty() == list(range(10))
    assert volume.take_dirty() == []
    volume.write_slice(9, truth[9])  # refused: nothing changes
    assert volume.take_dirty() == []
    volume.write_slice(5, truth[5])
    assert volume.take_dirty() == [1, 2, 3, 4, 5, 6, 7, 8]


def test_qualities_is_a_copy():
    volume = ProgressiveVolume((3, 1, 1), np.int16)
    qualities = volume.qualities()
    qualities[:] = Quality.FULL
    assert volume.quality(0) is Quality.MISSING


# --- buffers and memory ---------------------------------------------------------------------------


def test_adopts_an_external_buffer_without_copying():
    buffer = np.zeros((5, 4, 3), np.uint16)
    volume = ProgressiveVolume(buffer.shape, np.uint16, buffer=buffer)
    assert volume.array is buffer
    volume.write_slice(1, np.full((4, 3), 9))
    assert buffer[0, 0, 0] == 9 and buffer[1, 3, 2] == 9  # slice 0 is a FILLED copy of 1
    adopted = ProgressiveVolume.adopt(buffer[::-1], fill="nearest")  # any numpy view works
    assert np.shares_memory(adopted.array, buffer)


def test_a_buffer_of_the_wrong_kind_is_refused_by_name():
    with pytest.raises(ValueError, match=r"shape \(5, 4, 3\).*\(5, 4, 4\)"):
        ProgressiveVolume((5, 4, 4), np.int16, buffer=np.zeros((5, 4, 3), np.int16))
    with pytest.raises(ValueError, match="dtype float32.*int16"):
        ProgressiveVolume((5, 4, 3), np.int16, buffer=np.zeros((5, 4, 3), np.float32))
    read_only = np.zeros((5, 4, 3), np.int16)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ProgressiveVolume((5, 4, 3), np.int16, buffer=read_only)
    with pytest.raises(TypeError, match="numpy array"):
        ProgressiveVolume((5, 4, 3), np.int16, buffer=[[[0]]])
    with pytest.raises(ValueError, match="fill must be one of linear, nearest"):
        ProgressiveVolume((5, 4, 3), np.int16, fill="cubic")


def test_buffer_is_allocated_once_with_the_final_size():
    volume = ProgressiveVolume((12, 8, 8), np.int16)
    before = volume.array
    assert volume.nbytes == before.nbytes == 12 * 8 * 8 * 2
    for k in (6, 0, 11, 3, 9):
        volume.write_slice(k, np.full((8, 8), k))
    assert volume.array is before and before.flags.owndata


def test_an_absurd_volume_is_refused_before_allocation(monkeypatch):
    def no_allocation(*args, **kwargs):
        raise AssertionError("the buffer was allocated before the memory check refused")

    monkeypatch.setattr("ProgressiveDicomFetchLib.volume.progressive_volume.zeroed_buffer", no_allocation)
    with pytest.raises(VolumeTooLargeError, match=r"10000000x512x512 int16 volume needs 4\.8 TB but only .* available"):
        ProgressiveVolume((10 ** 7, 512, 512), np.int16)


def _advice(address: int) -> set:
    """The kernel's flags for the mapping that holds `address` (/proc/self/smaps VmFlags: "hg"
    huge pages advised, "nh" advised against)."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if not head.endswith(":"):  # a mapping's first line: "start-end perms ..."
            start, end = (int(x, 16) for x in head.split("-"))
            inside = start <= address < end
        elif inside and head == "VmFlags:":
            return set(line.split()[1:])
    raise AssertionError(f"no mapping holds {address:#x}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="huge pages are Linux's (CI runs Linux)")
def test_a_large_buffer_is_mapped_in_ordinary_pages():
    """numpy advises huge pages for large arrays (np.empty; np.zeros too from numpy 2); where the
    kernel compacts memory to find them, the first write into a new volume took ~4x the CPU, even
    where none was found (docs/architecture.md). The volume's own buffer is advised against them;
    numpy's array beside it shows numpy still advises them here."""
    shape = (64, 512, 512)  # 32 MB
    numpys = np.empty(shape, np.int16)
    numpys.fill(1)
    volume = ProgressiveVolume(shape, np.int16)
    assert volume.touch_memory() == shape[0]
    assert not volume.array.any() and volume.array.flags.writeable and volume.array.flags.c_contiguous
    middle = volume.array.nbytes // 2  # numpy advises only the 2 MB-aligned part: the kernel splits the mapping there
    ours, theirs = _advice(volume.array.ctypes.data + middle), _advice(numpys.ctypes.data + middle)
    assert "hg" in theirs  # the control: numpy's own allocation is advised huge pages on this machine
    assert "nh" in ours and "hg" not in ours, ours
    volume.write_slice(3, np.full(shape[1:], 7))
    assert (volume.array == 7).all()  # written, and filled from it: the mapping is the volume's memory


def test_memory_check_uses_the_available_figure(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: AvailableMemory(10 * MB, "test figure"))
    with pytest.raises(VolumeTooLargeError, match=r"needs 12\.5 MB but only 10\.0 MB is available \(test figure\)"):
        ProgressiveVolume((100, 256, 256), np.int16)
    assert ProgressiveVolume((50, 256, 256), np.int16).nbytes == 50 * 256 * 256 * 2
    assert issubclass(VolumeTooLargeError, MemoryError)
    monkeypatch.setattr(memory, "available_memory", lambda: None)  # unknown: never blocks
    check_fits(10 ** 15, "a test volume")


def test_available_memory_is_known_here_and_sane():
    """The figure is this machine's: MemAvailable or the cgroup's headroom, whichever is smaller,
    each read here independently (they move a little between the two reads)."""
    found = available_memory()
    with open("/proc/meminfo") as meminfo:
        figures = {"MemAvailable in /proc/meminfo": next(int(line.split()[1]) * 1024 for line in meminfo
                                                         if line.startswith("MemAvailable:"))}
    cgroup = Path("/sys/fs/cgroup")
    if (cgroup / "memory.max").exists() and (cgroup / "memory.max").read_text().strip() != "max":
        figures["cgroup memory.max - memory.current"] = (int((cgroup / "memory.max").read_text())
                                                        - int((cgroup / "memory.current").read_text()))
    source, expected = min(figures.items(), key=lambda item: item[1])
    assert found.source == source, (found, figures)
    assert abs(found.bytes - expected) < max(64 * MB, 0.05 * expected), (found, figures)


def test_linux_sources_are_parsed(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemFree:   100 kB\nMemAvailable:    8000000 kB\n")
    assert memory._linux_meminfo(meminfo) == AvailableMemory(8000000 * 1024, "MemAvailable in /proc/meminfo")
    (tmp_path / "memory.max").write_text("1073741824\n")
    (tmp_path / "memory.current").write_text("73741824\n")
    assert memory._cgroup_limit(tmp_path).bytes == 1000000000
    (tmp_path / "memory.max").write_text("max\n")
    assert memory._cgroup_limit(tmp_path) is None


def test_format_bytes():
    assert [format_bytes(n) for n in (512, 1536 * MB, 3 * 1024 ** 4)] == ["512 bytes", "1.5 GB", "3.0 TB"]


# --- threads ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["linear", "nearest"])
def test_concurrent_writers_and_a_dirty_reader_converge_exactly(mode):
    truth = random_volume((96, 32, 32), np.int16, 3)
    volume = ProgressiveVolume(truth.shape, truth.dtype, fill=mode)
    mirror = np.zeros_like(truth)  # what a display that only redraws dirty slices would show
    done = threading.Event()
    errors = []

    def reader():
        while not done.is_set():
            for k in volume.take_dirty():
                mirror[k] = volume.array[k]

    def writer(seed):
        try:
            rng = random.Random(seed)
            mine = list(range(seed, 96, 4))
            for k in rng.sample(mine, len(mine)):
                volume.write_slice(k, truth[k] // 3, Quality.SUBRESOLUTION)
            for k in rng.sample(mine, len(mine)):
                volume.write_slice(k, truth[k], Quality.FULL)
                volume.write_slice(k, truth[k] // 2, Quality.LOSSY)  # late and worse: refused
        except Exception as error:  # surfaced below
            errors.append(error)

    watcher = threading.Thread(target=reader)
    watcher.start()
    writers = [threading.Thread(target=writer, args=(seed,)) for seed in range(4)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    watcher.join()
    for k in volume.take_dirty():
        mirror[k] = volume.array[k]
    assert not errors
    assert volume.complete
    assert volume.array.tobytes() == truth.tobytes()
    assert mirror.tobytes() == truth.tobytes()


# --- preview quality ---------------------------------------------------------------------------


def test_stage_plan_takes_every_slice_once_coarse_to_fine():
    stages = decimated_stages(20)
    assert [s.name for s in stages] == ["anchors", "every 8th", "every 4th", "every 2nd", "rest"]
    assert stages[0].slices == (10, 0, 19)
    assert stages[1].slices == (8, 16)
    assert sorted(k for s in stages for k in s.slices) == list(range(20))


def test_preview_quality_rises_with_stages_and_is_exact_when_complete():
    k = np.arange(64, dtype=np.float64)[:, None, None]
    yx = np.linspace(0, 3, 24)
    smooth = 800 * np.sin(k / 9 + yx[None, :, None]) * np.cos(yx[None, None, :])
    final = np.rint(smooth).astype(np.int16)
    rows = compare_fills(final, value_range=CT_HU_RANGE)
    by_fill = {fill: [r for r in rows if r.fill == fill] for fill in ("linear", "nearest")}
    for fill, fill_rows in by_fill.items():
        psnrs = [r.psnr_db for r in fill_rows]
        assert psnrs == sorted(psnrs) and len(set(psnrs)) == len(psnrs), (fill, psnrs)
        assert fill_rows[-1].psnr_db == float("inf") and fill_rows[-1].mae == 0.0
        assert [r.fraction for r in fill_rows][-1] == 1.0 and all(r.covered for r in fill_rows)
    for linear, nearest in zip(by_fill["linear"][1:-1], by_fill["nearest"][1:-1]):
        assert linear.psnr_db > nearest.psnr_db and linear.mae < nearest.mae, (linear, nearest)
    assert by_fill["linear"][0].loaded == 3 and by_fill["linear"][1].loaded == 3 + 6


def test_preview_psnr_uses_the_given_range():
    final = np.zeros((4, 2, 2), np.int16)
    final[1] = 100
    (first, *_) = simulate(final, stages=decimated_stages(4)[:1], value_range=(0.0, 100.0))
    # anchors 2, 0, 3 loaded; slice 1 (100) interpolated between 0 and 0: error 100 on 1/4 of the voxels
    assert first.mae == pytest.approx(25.0)
    assert first.psnr_db == pytest.approx(10 * np.log10(100.0 ** 2 / 2500.0))


def test_touch_memory_zeroes_only_slices_nothing_has_reached():
    """The buffer's pages are mapped in ahead of the first fill: MISSING slices get zeros (their
    content means nothing), written and filled slices keep their values, the count says how many."""
    buffer = np.full((12, 4, 5), 77, np.int16)  # a node's uninitialised array, say
    volume = ProgressiveVolume.adopt(buffer, fill="nearest")
    volume.write_slice(3, np.full((4, 5), 5, np.int16))
    volume.write_slice(9, np.full((4, 5), 9, np.int16))
    before = buffer.copy()
    assert volume.touch_memory() == 0  # every slice is written or filled: nothing to touch
    assert np.array_equal(buffer, before)

    untouched = ProgressiveVolume.adopt(np.full((12, 4, 5), 77, np.int16))
    assert untouched.touch_memory(chunk_bytes=3 * 40) == 12  # several chunks
    assert not untouched.array.any() and untouched.counts()[Quality.MISSING] == 12


def test_touch_memory_never_clobbers_a_slice_written_meanwhile():
    """Writers and the toucher share the write lock: a slice written while the toucher runs keeps
    its pixels, whatever the interleaving."""
    truth = np.arange(64 * 16 * 16, dtype=np.int16).reshape(64, 16, 16)
    for _ in range(5):
        volume = ProgressiveVolume((64, 16, 16), np.int16, fill="linear")
        toucher = threading.Thread(target=volume.touch_memory, kwargs={"chunk_bytes": 2 * 16 * 16 * 2})
        toucher.start()
        for k in random.sample(range(64), 64):
            volume.write_slice(k, truth[k])
        toucher.join()
        assert np.array_equal(volume.array, truth)
