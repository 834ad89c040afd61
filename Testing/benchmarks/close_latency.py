"""How long `ProgressiveFetchEngine.close()` takes mid-load (README: "close stops the workers
within a second"), beside its peer measured in the same run: one frame request on the same
Orthanc, which is what a closing worker may still have to finish. Prints figures; not a test
(the test, Testing/test_engine.py, only waits for close() with a generous deadline).

    .venv/bin/python Testing/benchmarks/close_latency.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # Testing/

from fixtures_data import cached_sample  # noqa: E402
from servers.orthanc import OrthancServer  # noqa: E402

from ProgressiveDicomFetchLib.dicomweb import DicomwebServer  # noqa: E402
from ProgressiveDicomFetchLib.dicomweb.frames import fetch_frames  # noqa: E402
from ProgressiveDicomFetchLib.engine import ProgressiveFetchEngine  # noqa: E402

KEYS = ("ct_thin", "ct_sagittal", "ct_thick")


def close_mid_load(url: str, sample) -> float:
    engine = ProgressiveFetchEngine(DicomwebServer(url), connections=4)
    for key in KEYS:
        info = sample.series(key)
        engine.add_series(info.study_uid, info.series_uid)
    while not any(p.counts.get("FULL", 0) for p in engine.progress()):
        engine.process_events()
        time.sleep(0.001)
    started = time.perf_counter()
    assert engine.close(timeout=30.0)
    return time.perf_counter() - started


def one_frame(url: str, sample) -> float:
    info = sample.series("ct_thin")
    server = DicomwebServer(url)
    started = time.perf_counter()
    fetch_frames(server, info.study_uid, info.series_uid, info.sop_instance_uids[len(info.sop_instance_uids) // 2], [1])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sample = cached_sample("small")
    with OrthancServer() as orthanc:
        orthanc.upload([p for key in KEYS for p in sample.files(key)])
        closes = [close_mid_load(orthanc.dicomweb_url, sample) for _ in range(args.repeats)]
        frames = [one_frame(orthanc.dicomweb_url, sample) for _ in range(args.repeats * 4)]
    close_ms, frame_ms = 1000 * statistics.median(closes), 1000 * statistics.median(frames)
    print(f"close() mid-load, 4 connections: median {close_ms:.1f} ms, worst {1000 * max(closes):.1f} ms "
          f"(n={len(closes)})")
    print(f"peer, one frame request on the same Orthanc: median {frame_ms:.1f} ms (n={len(frames)})")
    print(f"ratio close / one request: {close_ms / frame_ms:.2f}")


if __name__ == "__main__":
    main()
