"""Benchmark (prints figures, asserts nothing): preview quality per stage, and write/fill timings.

    .venv/bin/python Testing/benchmarks/preview_quality.py [--data DIR]

1. For ct_thin (240x512x512 CT, PSNR over the HU range [-1024, 3071]) and mr_t1 (real brain MR,
   PSNR over its own value range): PSNR and mean absolute error of the covered volume against the
   final one after each stage of the default plan, linear fill vs nearest copy.
2. On a 400x512x512 int16 volume: worker-side `write_slice` time (write + refill) for the
   neighbour distances the stage plan produces (8, 4, 2, 1), its slice-sized temporaries, and
   the main thread's `take_dirty()` time while two workers write.
Data: the test suite's cache (.cache/sampledata/full) when present, else generated to a temp dir.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from functools import partial
from pathlib import Path
from typing import Callable, List, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "ProgressiveDicomFetch"))

from ProgressiveDicomFetchLib.sampledata import SampleManifest, generate  # noqa: E402
from ProgressiveDicomFetchLib.volume import ProgressiveVolume  # noqa: E402
from ProgressiveDicomFetchLib.volume.preview_quality import CT_HU_RANGE, PreviewRow, compare_fills  # noqa: E402

log = logging.getLogger("preview_quality")
SHAPE = (400, 512, 512)


def load_manifest(data: Path) -> SampleManifest:
    try:
        return SampleManifest.load(data)
    except (OSError, ValueError, KeyError, TypeError):
        out = Path(tempfile.mkdtemp(prefix="pdf-sample-full-"))
        log.info("no usable sample set in %s: generating the full profile into %s", data, out)
        generate(out, "full")
        return SampleManifest.load(out)


def preview_table(title: str, rows: List[PreviewRow]) -> str:
    linear = [r for r in rows if r.fill == "linear"]
    nearest = {r.stage: r for r in rows if r.fill == "nearest"}
    lines = [title, f"{'stage':<10} {'% slices':>8} {'PSNR lin':>9} {'PSNR near':>9} {'MAE lin':>8} {'MAE near':>8}"]
    for row in linear:
        other = nearest[row.stage]
        lines.append(f"{row.stage:<10} {100 * row.fraction:>7.1f}% {row.psnr_db:>8.2f}  {other.psnr_db:>8.2f}  "
                     f"{row.mae:>8.2f} {other.mae:>8.2f}")
    return "\n".join(lines)


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def write_timings(fill: str, distances: Sequence[int] = (8, 4, 2, 1), repeat: int = 12) -> List[str]:
    """write_slice(k) with loaded neighbours at k - d and k + d: refills 2(d-1) slices (linear)."""
    rng = np.random.default_rng(0)
    data = rng.integers(-1024, 3071, size=SHAPE[1:]).astype(np.int16)
    lines = []
    for d in distances:
        volume = ProgressiveVolume(SHAPE, np.int16, fill=fill)
        centres = list(range(d, SHAPE[0] - d, 2 * d))[:repeat]
        for k in range(0, SHAPE[0], 2 * d):  # neighbours first, then time the slices between them
            volume.write_slice(k, data)
        volume.take_dirty()
        samples, refilled = [], 0
        for k in centres:
            samples.append(timed(partial(volume.write_slice, k, data)))
            refilled = len(volume.take_dirty()) - 1
        lines.append(f"  {fill:<7} d={d}: refills {refilled:>2} slices  median {1e3 * statistics.median(samples):6.2f} ms"
                     f"  max {1e3 * max(samples):6.2f} ms")
    volume = ProgressiveVolume(SHAPE, np.int16, fill=fill)
    first = timed(partial(volume.write_slice, SHAPE[0] // 2, data))
    lines.append(f"  {fill:<7} first anchor (copies into all {SHAPE[0] - 1} other slices): {1e3 * first:.1f} ms")
    return lines


def temporaries(fill: str) -> str:
    data, middle = np.ones(SHAPE[1:], np.int16), np.full(SHAPE[1:], 2, np.int16)
    volume = ProgressiveVolume((17, *SHAPE[1:]), np.int16, fill=fill)
    volume.write_slice(0, data)
    volume.write_slice(16, data)
    tracemalloc.start()
    volume.write_slice(8, middle)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return f"  {fill:<7} peak temporaries of one write (gaps of 7 each side): {peak / 2 ** 20:.2f} MB"


def main_thread_latency() -> str:
    """take_dirty() while two workers run the whole stage plan (main-thread budget: 5 ms)."""
    data = np.ones(SHAPE[1:], np.int16)
    volume = ProgressiveVolume(SHAPE, np.int16)
    plan = [SHAPE[0] // 2, 0, SHAPE[0] - 1] + [k for step in (8, 4, 2, 1) for k in range(0, SHAPE[0], step)]

    def worker(parity: int) -> None:
        for k in plan[parity::2]:
            volume.write_slice(k, data)

    workers = [threading.Thread(target=worker, args=(p,)) for p in (0, 1)]
    for thread in workers:
        thread.start()
    samples, seen = [], 0
    while any(thread.is_alive() for thread in workers):
        start = time.perf_counter()
        seen += len(volume.take_dirty())
        samples.append(time.perf_counter() - start)
        time.sleep(0.005)
    for thread in workers:
        thread.join()
    return (f"  take_dirty() during 2 writers: {len(samples)} calls, median {1e6 * statistics.median(samples):.0f} us, "
            f"max {1e3 * max(samples):.2f} ms ({seen} slice notices)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / ".cache" / "sampledata" / "full")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    manifest = load_manifest(args.data)
    for key, value_range, note in (("ct_thin", CT_HU_RANGE, "PSNR over HU [-1024, 3071]"),
                                   ("mr_t1", None, "PSNR over the volume's own range")):
        if not manifest.has(key):
            print(f"{key}: not in the sample set (MR source absent?)\n")
            continue
        final = manifest.load_truth(key)
        start = time.perf_counter()
        rows = compare_fills(final, value_range=value_range)
        elapsed = time.perf_counter() - start
        title = f"{key} {final.shape} {final.dtype}, {note}, MAE in volume units ({elapsed:.1f} s)"
        print(preview_table(title, rows) + "\n")
    print(f"write_slice + refill on a {'x'.join(map(str, SHAPE))} int16 volume (worker thread):")
    for fill in ("linear", "nearest"):
        print("\n".join(write_timings(fill)))
    for fill in ("linear", "nearest"):
        print(temporaries(fill))
    print("main thread:")
    print(main_thread_latency())


if __name__ == "__main__":
    main()
