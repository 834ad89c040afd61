"""Which `/rendered` request for a preview (issue 25): for each viewport and JPEG quality, on the
full profile's ct_thin (512x512 CT) in a real Orthanc, the bytes, the time of one request (alone,
sequentially, against the raw frame's in the same run) and the calibrated error against the
truth over a spread of slices. Prints a table; not a test.

    .venv/bin/python Testing/benchmarks/rendered_options.py [--slices 30]
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # Testing/: servers, fixtures_data

logger = logging.getLogger("rendered_options")

OPTIONS = [(128, 50), (128, 75), (128, 90), (256, 50), (256, 75), (256, 90), (512, 90)]


def timed(call):
    started = time.perf_counter()
    value = call()
    return value, time.perf_counter() - started


def measure(url: str, info, truth: np.ndarray, slices: int) -> List[Tuple]:
    from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
    from ProgressiveDicomFetchLib.loading import SliceTask
    from ProgressiveDicomFetchLib.previews.rendered import (GREYS, Calibration, Rendered, calibrate,
                                                            narrowed_window, value_window, viewport)
    from ProgressiveDicomFetchLib.retrieve import fetcher_for, prepare_series

    server = DicomwebServer(url)
    load = prepare_series(server, info.study_uid, info.series_uid, "linear")[0]
    fetcher = fetcher_for(server, load, None)
    pixels = load.geometry.pixels
    slope, intercept = load.geometry.slices[0].slope, load.geometry.slices[0].intercept
    n = load.volume.num_slices
    tasks = [SliceTask(k, load.geometry.slices[k].sop_instance_uid, load.geometry.slices[k].frame_number)
             for k in np.linspace(0, n - 1, slices).astype(int)]
    middle = n // 2
    window = narrowed_window(value_window(pixels, slope, intercept), truth[middle])
    raw = [timed(lambda t=t: fetcher.fetch([t]))[1] for t in tasks]
    frame_bytes = len(fetcher.fetch([tasks[0]])[0].data)
    rows = [("raw frame", frame_bytes, statistics.median(raw), 0.0, 0.0)]
    for side, quality in OPTIONS:
        source = Rendered(window, slope, intercept, viewport(pixels, side), quality)
        grey, _ = source.fetch_grey(fetcher, SliceTask(middle, load.geometry.slices[middle].sop_instance_uid, 1))
        try:
            source.calibration = calibrate(grey, truth[middle], window)
        except ValueError as error:  # the table says so; the other slices are judged by the window's map
            logger.warning("%d, q%d: the calibration refuses it (%s)", side, quality, error)
            source.calibration = Calibration(window.low, window.width / GREYS, 0.0, 0.0)
        times, sizes, errors, p95 = [], [], [], []
        for task in tasks:
            (grey, size), seconds = timed(lambda t=task, s=source: s.fetch_grey(fetcher, t))
            times.append(seconds)
            sizes.append(size)
            values = source.to_stored(grey, pixels) * slope + intercept
            error = np.abs(values - truth[task.k])
            errors.append(float(error.mean()))
            p95.append(float(np.percentile(error, 95)))
        rows.append((f"{side}, q{quality}", statistics.median(sizes), statistics.median(times),
                     statistics.mean(errors), statistics.mean(p95)))
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=30)
    parser.add_argument("--key", default="ct_thin")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from fixtures_data import cached_sample
    from servers.orthanc import OrthancServer

    sample = cached_sample("full")
    info = sample.series(args.key)
    truth = sample.load_truth(args.key).astype(np.float64)
    with OrthancServer() as orthanc:
        orthanc.upload(sample.files(args.key))
        rows = measure(orthanc.dicomweb_url, info, truth, args.slices)
    frame_bytes, frame_s = rows[0][1], rows[0][2]
    print(f"/rendered options, {args.key} ({info.num_slices} x {info.rows}x{info.columns}), Orthanc, loopback, "
          f"{args.slices} slices each, one request at a time (medians)")
    print("| viewport, quality | bytes (of the frame) | time (of the frame's) | mean error | 95th percentile |")
    print("|---|---:|---:|---:|---:|")
    for name, size, seconds, error, p95 in rows:
        print(f"| {name} | {size / 1e3:.1f} KB ({size / frame_bytes:.2%}) | {seconds * 1e3:.1f} ms "
              f"({seconds / frame_s:.2f}) | {error:.1f} | {p95:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
