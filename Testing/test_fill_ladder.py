"""The quality ladder's "better estimate wins" rule and the coalesced refills of the progressive volume.

A reduced preview (SUBRESOLUTION) 1/4 size or smaller whose exact neighbours are 2 apart
(`fill.YIELD_RULE`, measured: Testing/benchmarks/preview_ladder.py) gives way to the linear fill
between them and is FILLED again; exact slices are never replaced; 1/2-size and LOSSY previews and
the nearest fill keep their previews. Refills are checked against a from-scratch reference that applies the rule, after every
write of a random order, and the coalescing with a real second writer held inside a refill.
"""
from __future__ import annotations

import random
import threading

import numpy as np
import pytest

from ProgressiveDicomFetchLib.volume import ProgressiveVolume, Quality
from ProgressiveDicomFetchLib.volume import progressive_volume
from ProgressiveDicomFetchLib.volume.fill import YIELD_RULE, yield_reach

QUARTER = 4  # a preview reduced 4 times per side (the 128x128 level of a 512x512 frame)

pytestmark = pytest.mark.compat


def ramp_volume(n=12, shape=(5, 4), dtype=np.int16, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-1000, 3000, size=(n,) + shape).astype(dtype)


def interpolated(truth: np.ndarray, below: int, above: int, j: int) -> np.ndarray:
    """What the linear fill must give at j, in float32 like the volume, rounded for integers."""
    start, end = truth[below].astype(np.float32), truth[above].astype(np.float32)
    value = (end - start) * np.float32((j - below) / (above - below)) + start
    return np.rint(value).astype(truth.dtype) if truth.dtype.kind in "iu" else value.astype(truth.dtype)


def test_the_rule_is_both_neighbours_exact_for_quarter_size_previews():
    assert YIELD_RULE == ((4, 2),)  # the measured rule (docs/previews.md); the tests below use it
    assert [yield_reach(r) for r in (1, 2, 3, 4, 8)] == [0, 0, 0, 2, 2]


def test_a_preview_between_two_exact_neighbours_yields_to_their_interpolation():
    truth = ramp_volume()
    volume = ProgressiveVolume(truth.shape, truth.dtype)
    volume.write_slice(4, truth[4] // 2, Quality.SUBRESOLUTION, QUARTER)  # a preview, wrong on purpose
    volume.write_slice(3, truth[3])
    assert volume.quality(4) is Quality.SUBRESOLUTION  # one exact neighbour: the preview stays
    volume.take_dirty()
    assert volume.write_slice(5, truth[5])
    assert volume.quality(4) is Quality.FILLED
    np.testing.assert_array_equal(volume.array[4], interpolated(truth, 3, 5, 4))
    assert 4 in volume.take_dirty()
    assert 4 not in volume.loaded_slices()
    assert not volume.write_slice(4, truth[4] // 2, Quality.SUBRESOLUTION, QUARTER)  # a late preview is refused
    assert volume.quality(4) is Quality.FILLED and volume.take_dirty() == []
    assert volume.write_slice(4, truth[4] // 3, Quality.LOSSY)  # full size: not a reduced preview
    assert volume.quality(4) is Quality.LOSSY
    assert volume.write_slice(4, truth[4]) and volume.quality(4) is Quality.FULL
    np.testing.assert_array_equal(volume.array[3:6], truth[3:6])


def test_a_yielded_preview_is_no_source_for_the_slices_beyond_it():
    truth = ramp_volume(10)
    volume = ProgressiveVolume(truth.shape, truth.dtype)
    for k in range(10):
        volume.write_slice(k, truth[k] // 2, Quality.SUBRESOLUTION, QUARTER)
    volume.write_slice(2, truth[2])
    volume.write_slice(4, truth[4])
    assert volume.qualities().tolist() == [2, 2, 4, 1, 4, 2, 2, 2, 2, 2]
    np.testing.assert_array_equal(volume.array[3], interpolated(truth, 2, 4, 3))
    np.testing.assert_array_equal(volume.array[5], truth[5] // 2)  # 6 is not exact: 5 keeps its preview


def test_exact_slices_three_apart_keep_the_previews_between_them():
    truth = ramp_volume()
    volume = ProgressiveVolume(truth.shape, truth.dtype)
    for k in (3, 4):
        volume.write_slice(k, truth[k] // 2, Quality.SUBRESOLUTION, QUARTER)
    volume.write_slice(2, truth[2])
    volume.write_slice(5, truth[5])
    assert [volume.quality(k) for k in (3, 4)] == [Quality.SUBRESOLUTION] * 2
    np.testing.assert_array_equal(volume.array[3:5], truth[3:5] // 2)


@pytest.mark.parametrize("fill, reduction", [("nearest", QUARTER), ("linear", 2), ("linear", 1)])
def test_half_size_previews_and_the_nearest_fill_keep_their_previews(fill, reduction):
    truth = ramp_volume()
    volume = ProgressiveVolume(truth.shape, truth.dtype, fill=fill)
    volume.write_slice(4, truth[4] // 2, Quality.SUBRESOLUTION, reduction)
    volume.write_slice(3, truth[3])
    volume.write_slice(5, truth[5])
    assert volume.quality(4) is Quality.SUBRESOLUTION
    np.testing.assert_array_equal(volume.array[4], truth[4] // 2)


def reference(truth: np.ndarray, written: dict) -> tuple:
    """From scratch: the qualities and the buffer the rule and the linear fill give for `written`
    (k -> (quality, data)), whatever the order the writes came in."""
    n = truth.shape[0]
    exact = [k for k, (q, _) in written.items() if q is Quality.FULL]
    qualities = np.zeros(n, np.int8)
    sources = {}
    for k, (quality, data) in written.items():
        below = max((e for e in exact if e < k), default=None)
        above = min((e for e in exact if e > k), default=None)
        yields = (quality is Quality.SUBRESOLUTION and below is not None and above is not None
                  and above - below <= yield_reach(QUARTER))
        if not yields:
            sources[k] = data
            qualities[k] = quality
    out = np.zeros_like(truth)
    order = sorted(sources)
    for k in range(n):
        if k in sources:
            out[k] = sources[k]
            continue
        qualities[k] = Quality.FILLED if order else Quality.MISSING
        below = max((s for s in order if s < k), default=None)
        above = min((s for s in order if s > k), default=None)
        if below is None or above is None:
            if below is not None or above is not None:
                out[k] = sources[above if below is None else below]
        else:
            staged = dict(sources)
            out[k] = interpolated(np.stack([staged.get(j, truth[j] * 0) for j in range(n)]), below, above, k)
    return qualities, out


@pytest.mark.parametrize("seed", range(5))
def test_any_arrival_order_with_previews_equals_the_rule_from_scratch(seed):
    rng = random.Random(seed)
    truth = ramp_volume(30, (3, 4), np.int16, seed)
    volume = ProgressiveVolume(truth.shape, truth.dtype)
    writes = [(k, Quality.SUBRESOLUTION) for k in range(30)] + [(k, Quality.LOSSY) for k in range(0, 30, 7)]
    writes += [(k, Quality.FULL) for k in rng.sample(range(30), 18)]
    rng.shuffle(writes)
    written: dict = {}
    for k, level in writes:
        data = truth[k] if level is Quality.FULL else (truth[k] // 2 if level is Quality.SUBRESOLUTION else truth[k] // 3)
        accepted = volume.write_slice(k, data, level, QUARTER)  # LOSSY and FULL: the reduction does not count
        if accepted:
            written[k] = (level, data)
        qualities, expected = reference(truth, written)
        assert volume.qualities().tolist() == qualities.tolist(), (k, level)
        np.testing.assert_array_equal(volume.array, expected)
        assert volume.loaded_slices() == [j for j in range(30) if qualities[j] >= Quality.SUBRESOLUTION]
    assert all(volume.quality(k) is Quality.FULL for k, (q, _) in written.items() if q is Quality.FULL)


def test_a_burst_of_writes_during_a_refill_is_refilled_once_per_gap(monkeypatch):
    """A second writer that finds a refill under way returns at once; the drainer then refills every
    gap the burst touched once, and the buffer equals the plain fill."""
    truth = ramp_volume(40, (6, 5))
    volume = ProgressiveVolume(truth.shape, truth.dtype)
    inside, release = threading.Event(), threading.Event()
    calls = []
    real = progressive_volume.fill_chunks

    def held_fill(array, targets, below, above, mode):
        calls.append((targets.start, targets.stop))
        if len(calls) == 1:  # the first refill computes its values while the burst comes
            inside.set()
            release.wait(10)
        return real(array, targets, below, above, mode)

    monkeypatch.setattr(progressive_volume, "fill_chunks", held_fill)
    first = threading.Thread(target=volume.write_slice, args=(0, truth[0]))
    first.start()
    assert inside.wait(10)
    for k in (8, 16, 24, 32, 12):  # the burst: each returns while the first writer refills
        assert volume.write_slice(k, truth[k])
    assert volume.quality(20) is Quality.MISSING  # not refilled yet: the drainer takes it
    release.set()
    first.join(10)
    assert not first.is_alive()
    assert calls[0] == (1, 40)  # the first write: slice 0 copied everywhere
    assert sorted(calls[1:]) == [(1, 8), (9, 12), (13, 16), (17, 24), (25, 32), (33, 40)]  # once per gap
    loaded = [0, 8, 12, 16, 24, 32]
    expected = truth.copy()
    for below, above in zip(loaded, loaded[1:]):
        for k in range(below + 1, above):
            expected[k] = interpolated(truth, below, above, k)
    expected[33:] = truth[32]
    np.testing.assert_array_equal(volume.array, expected)
    assert set(volume.take_dirty()) == set(range(40))
    assert volume.covered


def test_a_refill_that_fails_is_done_by_the_next_write(monkeypatch):
    """A refill that raises (e.g. MemoryError) leaves its gaps stale, not forgotten: the next write
    refills them, and the volume ends equal to the plain fill."""
    truth = ramp_volume(20, (4, 3))
    volume = ProgressiveVolume(truth.shape, truth.dtype)
    volume.write_slice(0, truth[0])
    real = progressive_volume.fill_chunks

    def failing(*args):
        raise MemoryError("no room for the fill")

    monkeypatch.setattr(progressive_volume, "fill_chunks", failing)
    with pytest.raises(MemoryError):
        volume.write_slice(10, truth[10])
    assert volume.quality(10) is Quality.FULL  # the write itself stands
    monkeypatch.setattr(progressive_volume, "fill_chunks", real)
    volume.write_slice(19, truth[19])
    expected = truth.copy()
    for k in range(1, 10):
        expected[k] = interpolated(truth, 0, 10, k)
    for k in range(11, 19):
        expected[k] = interpolated(truth, 10, 19, k)
    np.testing.assert_array_equal(volume.array, expected)
