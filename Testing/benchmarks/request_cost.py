"""What one slice costs our process before its pixels are written, each beside a peer measured in
the same run on the same Orthanc (plain loopback, the demo profile's thin CT, 200 x 256^2):

- metadata: `SeriesParser` (elements shared between the instances of a series) vs pydicom's
  `Dataset.from_json` on each instance alone;
- one frame request: `DicomwebServer.get` vs a plain `requests.Session` vs `urllib3` directly
  (CPU time of this process per request: the server's time is not ours);
- `engine.progress()` on a loaded series, as a host asks it on every tick.

    .venv/bin/python Testing/benchmarks/request_cost.py [--repeats 3]

Not a test: prints a table (medians of the repeats) for docs/links.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # Testing/: servers, fixtures_data

from fixtures_data import cached_sample  # noqa: E402
from servers.orthanc import OrthancServer  # noqa: E402

FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


def per_item(run: Callable[[], int], repeats: int) -> Dict[str, float]:
    """Median wall and CPU milliseconds per item of `run` (which returns its item count)."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        count = run()
        walls.append(1000 * (time.perf_counter() - wall) / count)
        cpus.append(1000 * (time.process_time() - cpu) / count)
    return {"wall": statistics.median(walls), "cpu": statistics.median(cpus)}


def main(argv: List[str] = None) -> int:
    import pydicom
    import requests
    import urllib3

    from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
    from ProgressiveDicomFetchLib.dicomweb.metadata import SeriesParser
    from ProgressiveDicomFetchLib.engine import ProgressiveFetchEngine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    rows = []
    with OrthancServer() as orthanc:
        sample = cached_sample("demo")
        orthanc.upload(sample.files("ct_thin"))
        info = sample.series("ct_thin")
        server = DicomwebServer(orthanc.dicomweb_url)
        series_path = f"studies/{info.study_uid}/series/{info.series_uid}"
        items = server.get_json(f"{series_path}/metadata")
        inline = [{tag: e for tag, e in item.items() if not (isinstance(e, dict) and "BulkDataURI" in e)}
                  for item in items]

        def alone() -> int:
            for item in inline:
                pydicom.Dataset.from_json(item)
            return len(inline)

        def shared() -> int:
            series = SeriesParser("bench")
            for item in items:
                series.parse(item)
            return len(items)

        peer, ours = per_item(alone, args.repeats), per_item(shared, args.repeats)
        rows.append(("metadata, per instance", "pydicom from_json alone", peer, ours))

        paths = [f"{series_path}/instances/{item['00080018']['Value'][0]}/frames/1" for item in items]
        session = requests.Session()
        pool = urllib3.PoolManager()

        def ours_get() -> int:
            for path in paths:
                server.get(path, accept=FRAME_ACCEPT, max_bytes=1 << 30)
            return len(paths)

        def plain_get() -> int:
            for path in paths:
                _ = session.get(server.url_for(path), headers={"Accept": FRAME_ACCEPT}).content
            return len(paths)

        def urllib3_get() -> int:
            for path in paths:
                _ = pool.request("GET", server.url_for(path), headers={"Accept": FRAME_ACCEPT}).data
            return len(paths)

        ours = per_item(ours_get, args.repeats)
        rows.append(("frame request (CPU)", "requests.Session", per_item(plain_get, args.repeats), ours))
        rows.append(("frame request (CPU)", "urllib3.PoolManager", per_item(urllib3_get, args.repeats), ours))

        engine = ProgressiveFetchEngine(server, connections=4)
        try:
            engine.add_series(info.study_uid, info.series_uid)
            while not engine.finished():
                engine.pump()
            calls = 2000

            def progress() -> int:
                for _ in range(calls):
                    engine.progress()
                return calls

            asked = per_item(progress, args.repeats)
        finally:
            engine.close()
    print("| what | peer | peer ms | ours ms | ours / peer |")
    print("|---|---|---:|---:|---:|")
    for what, name, peer, ours in rows:
        key = "cpu" if "CPU" in what else "wall"
        print(f"| {what} | {name} | {peer[key]:.3f} | {ours[key]:.3f} | {ours[key] / peer[key]:.2f} |")
    print(f"| engine.progress(), one loaded series, per call | - | - | {asked['wall']:.4f} | - |")
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {len(items)} instances, medians of "
          f"{args.repeats}, load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
