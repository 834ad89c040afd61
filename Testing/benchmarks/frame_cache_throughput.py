"""Frame cache figures: write and verified-read throughput for 512x512 16-bit frames (512 KiB, a
full-size CT slice), cold-ish (fresh process, files in the page cache) and with the LRU at its cap.
Prints a table; not a test.

    .venv/bin/python Testing/benchmarks/frame_cache_throughput.py [--frames 400] [--dir /tmp/x]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ProgressiveDicomFetchLib.cache import FrameCache, FrameKey
from ProgressiveDicomFetchLib.dicomweb.frames import FrameData

SYNTAX = "1.2.840.10008.1.2.1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--dir", type=Path, help="cache folder (default: a temp folder, removed)")
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="pdf-cache-bench-"))
    try:
        data = np.random.default_rng(1).integers(-1024, 3000, 512 * 512, dtype=np.int16).tobytes()
        keys = [FrameKey("http://127.0.0.1:8042/dicom-web", "1.2.3", "1.2.3.4", f"1.2.3.4.{n}", 1, SYNTAX)
                for n in range(args.frames)]
        cache = FrameCache(root, max_bytes=10 ** 11)
        start = time.perf_counter()
        for key in keys:
            cache.put(key, FrameData(1, data, SYNTAX, "application/octet-stream"))
        write_s = time.perf_counter() - start
        reopened = FrameCache(root, max_bytes=10 ** 11)  # as a new session: index rebuilt from the files
        start = time.perf_counter()
        for key in keys:
            assert reopened.get(key) is not None
        read_s = time.perf_counter() - start
        megabytes = args.frames * len(data) / 1e6
        start = time.perf_counter()
        FrameCache(root, max_bytes=10 ** 11)
        open_s = time.perf_counter() - start
        capped = FrameCache(root, max_bytes=int(megabytes * 1e6 / 2))
        print(f"{args.frames} frames of {len(data) // 1024} KiB ({megabytes:.0f} MB) in {root}")
        print(f"write (atomic, sha256):    {megabytes / write_s:7.0f} MB/s  {write_s / args.frames * 1e3:.2f} ms a frame")
        print(f"read (verified, sha256):   {megabytes / read_s:7.0f} MB/s  {read_s / args.frames * 1e3:.2f} ms a frame")
        print(f"open (scan {args.frames} entries):  {open_s * 1e3:7.1f} ms")
        print(f"open with half the cap:    {capped.stats.evictions} evicted, {capped.total_bytes / 1e6:.0f} MB kept")
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
