"""Floor of rendered previews on this machine (issue 25): how soon could every slice be previewed
at all, whatever the engine does? Beside our engine's plain load (`anchors,8,4,2`, no previews:
the peer every ratio is taken against, measured in the same run on the same Orthanc), two lean
clients that do nothing but the previews, each from a cold start, on http.client connections:

- "in hand": the series' metadata, one exact frame (the probe's), then every slice's rendering
  (the engine's viewport, quality and window kind) fetched and decoded as JPEG -- no calibration,
  no volume, no scheduler: what the server and the link allow;
- "converted": the same, and each rendering mapped to stored values and brought to the frame's
  size (`Rendered.to_stored`, with the window's ideal map as the calibration), then copied into
  one int16 buffer of the series' size: the floor with our per-slice work, but no fill of the
  slices between (a `ProgressiveVolume` refills them; in this pop order that would be a copy of
  the rest of the series per slice, which says nothing of the engine's order).

Prints each as a share of the plain load's complete time, beside the engine's own share from
rendered_previews.py when given (--engine-share), with the server's CPU seconds. Not a test.

    .venv/bin/python Testing/benchmarks/rendered_floor.py --rate 100mbit   # root: a private tbf-limited namespace
"""
from __future__ import annotations

import argparse
import http.client
import json
import logging
import statistics
import sys
import threading
import time
import urllib.parse
from typing import Dict, List, Optional, Sequence

from rendered_previews import PLAN_PLAIN, SETTLE_S, run_once, series_on_orthanc  # puts Testing/ on sys.path too

from netns import inside, rate_bits, run_inside
from preview_cpu import process_cpu_s

logger = logging.getLogger("rendered_floor")

ACCEPT_FRAME = "multipart/related; type=application/octet-stream; transfer-syntax=*"
TAG_SOP_INSTANCE_UID, TAG_POSITION = "00080018", "00200032"


class LeanClient:
    """The previews of one series and nothing else; `convert` adds our per-slice work."""

    def __init__(self, url: str, study: str, series: str, connections: int, convert: bool) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.base = f"{parts.path}/studies/{study}/series/{series}"
        self.connections, self.convert = connections, convert

    def _get(self, connection: http.client.HTTPConnection, path: str, accept: str) -> bytes:
        connection.request("GET", self.base + path, headers={"Accept": accept})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: HTTP {response.status}")
        return body

    def run(self) -> float:
        """Seconds from the start until every slice's rendering is in hand (or converted and copied)."""
        import numpy as np

        from ProgressiveDicomFetchLib.pixels.description import PixelDescription
        from ProgressiveDicomFetchLib.previews.rendered import (
            ACCEPT, JPEG_QUALITY, VIEWPORT, Calibration, Rendered, decode_rendered, value_window, viewport)

        start = time.monotonic()
        first = http.client.HTTPConnection(self.host, self.port)
        metadata = json.loads(self._get(first, "/metadata", "application/dicom+json"))
        metadata.sort(key=lambda m: float(m[TAG_POSITION]["Value"][2]))
        uids = [m[TAG_SOP_INSTANCE_UID]["Value"][0] for m in metadata]
        self._get(first, f"/instances/{uids[len(uids) // 2]}/frames/1", ACCEPT_FRAME)  # the probe's exact frame
        tags = metadata[0]
        value = lambda tag, default=None: tags.get(tag, {}).get("Value", [default])[0]  # noqa: E731
        pixels = PixelDescription(value("00280010"), value("00280011"), value("00280100"), value("00280101"),
                                  value("00280102"), value("00280103"))
        slope, intercept = float(value("00281053", 1.0)), float(value("00281052", 0.0))
        source = Rendered(value_window(pixels, slope, intercept), slope, intercept, viewport(pixels, VIEWPORT))
        source.calibration = Calibration(source.window.low, source.window.width / 255.0, 0.0, 0.0)
        width, height = source.size
        query = f"viewport={width},{height}&quality={JPEG_QUALITY}&window={source.window.query()}"
        volume = np.zeros((len(uids), pixels.rows, pixels.columns), np.int16) if self.convert else None
        todo, lock = list(enumerate(uids)), threading.Lock()

        def work(connection: http.client.HTTPConnection) -> None:
            while True:
                with lock:
                    if not todo:
                        return
                    k, uid = todo.pop()
                grey = decode_rendered(self._get(connection, f"/instances/{uid}/frames/1/rendered?{query}", ACCEPT), 1)
                if volume is not None:
                    np.copyto(volume[k], source.to_stored(grey, pixels), casting="unsafe")

        threads = [threading.Thread(target=work, args=(first if n == 0 else http.client.HTTPConnection(self.host, self.port),))
                   for n in range(self.connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.monotonic() - start


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", default="100mbit", help="e.g. 100mbit (root: a private namespace) or loopback")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--key", default="ct_thin", help="series of the full sample profile")
    parser.add_argument("--connections", type=int, default=4, help="requests in flight, every client")
    parser.add_argument("--engine-share", type=float, help="the engine's all-previewed / complete, to print beside")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    limited = rate_bits(args.rate) is not None
    if limited and not inside():
        return run_inside([sys.executable, *sys.argv], limited=True)

    figures: Dict[str, List[float]] = {"plain": [], "in hand": [], "converted": [], "cpu in hand": [], "cpu converted": []}
    with series_on_orthanc(args.key, args.rate) as (orthanc, info, truth):
        for repeat in range(args.repeats):
            time.sleep(SETTLE_S)
            record = run_once(PLAN_PLAIN, orthanc.dicomweb_url, info, truth, truth.parent / f"{repeat}.json", "off",
                              args.connections)
            figures["plain"].append(record["complete_s"])
            for name, convert in (("in hand", False), ("converted", True)):
                time.sleep(SETTLE_S)
                before = process_cpu_s(orthanc.pid)
                seconds = LeanClient(orthanc.dicomweb_url, info.study_uid, info.series_uid, args.connections, convert).run()
                figures[name].append(seconds)
                figures["cpu " + name].append(process_cpu_s(orthanc.pid) - before)
            logger.info("run %d: plain complete %.2f s, in hand %.2f s, converted %.2f s", repeat, record["complete_s"],
                        figures["in hand"][-1], figures["converted"][-1])
    median = statistics.median
    plain = median(figures["plain"])
    print(f"rendered previews' floor, {args.key} ({info.num_slices} x {info.rows}x{info.columns}), Orthanc, {args.rate}, "
          f"{args.connections} connections, {args.repeats} runs (medians)")
    for name in ("in hand", "converted"):
        print(f"  every rendering {name}: {median(figures[name]) / plain:.3f} of the plain load's complete "
              f"(server CPU {median(figures['cpu ' + name]):.2f} s)")
    if args.engine_share is not None:
        print(f"  the engine's all previewed (rendered_previews.py): {args.engine_share:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
