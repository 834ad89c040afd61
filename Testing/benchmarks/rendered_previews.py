"""Benchmark of rendered previews (issue 25): the full profile's ct_thin (512x512 CT) from a real
Orthanc, with rendered previews allowed (`--rendered-previews auto`, or `on` with --mode on), under the default plan
(previews of every slice first) and under
`anchors,8,4,2` (no previews), alternately, each run in its own process (in_plane_run.py). Prints
ratios only (the machine is shared): time until every slice is previewed / complete, the error of
the previewed volume against the truth (HU, dB), and the cost on complete and on bytes. Not a test.

    .venv/bin/python Testing/benchmarks/rendered_previews.py                  # loopback, 2 runs per plan
    .venv/bin/python Testing/benchmarks/rendered_previews.py --rate 100mbit   # root: a private tbf-limited namespace
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the benchmark helpers next to this file
sys.path.insert(1, str(HERE.parent))  # Testing/: servers, fixtures_data, support

from netns import LOOPBACK, inside, limit_loopback, rate_bits, run_inside  # noqa: E402

logger = logging.getLogger("rendered_previews")

PLAN_PREVIEWS = "preview-4,anchors,8,4,2"
PLAN_PLAIN = "anchors,8,4,2"
SETTLE_S = 1.5  # between runs: Orthanc closes idle keep-alive connections after 1 s; tbf refills


@contextlib.contextmanager
def series_on_orthanc(key: str, rate: str) -> Iterator[Tuple[object, object, Path]]:
    """The full profile's series `key` on a fresh Orthanc, the namespace's loopback limited to `rate`
    after the upload (unless loopback), its truth saved for in_plane_run.py: (orthanc, the series'
    info, the truth's path), for the `with` block."""
    import numpy as np
    from fixtures_data import cached_sample
    from servers.orthanc import OrthancServer

    sample = cached_sample("full")
    with OrthancServer() as orthanc, tempfile.TemporaryDirectory(prefix="pdf-rendered-") as scratch:
        orthanc.upload(sample.files(key))
        if rate_bits(rate) is not None:
            limit_loopback(rate)
        truth = Path(scratch) / "truth.npy"
        np.save(str(truth), sample.load_truth(key))
        yield orthanc, sample.series(key), truth


def run_once(plan: str, url: str, info, truth: Path, out: Path, mode: str, connections: int) -> Dict:
    command = [sys.executable, str(HERE / "in_plane_run.py"), "--plan", plan, "--url", url, "--study",
               info.study_uid, "--series", info.series_uid, "--truth", str(truth), "--out", str(out),
               "--rendered", mode, "--connections", str(connections)]
    subprocess.run(command, check=True, timeout=900)
    return json.loads(out.read_text())


def summary(runs: Dict[str, List[Dict]]) -> List[str]:
    previews, plain = runs[PLAN_PREVIEWS], runs[PLAN_PLAIN]
    median = statistics.median
    taken = sum(r["all_previewed_s"] is not None for r in previews)
    lines = [f"probe (first run): {previews[0]['preview_note']}", f"previews taken in {taken} of {len(previews)} runs"]
    if taken < len(previews):  # the probe skipped them (in some runs): no preview stage ran
        return lines + [
            "complete with previews allowed / without: "
            f"{median(r['complete_s'] for r in previews) / median(r['complete_s'] for r in plain):.3f}",
            "body bytes with previews allowed / without: "
            f"{median(r['body_bytes'] for r in previews) / median(r['body_bytes'] for r in plain):.4f}"]
    previewed = [r["snapshots"]["stage:preview-rest"] for r in previews]
    lines += [
        f"runs per plan: {len(previews)}; every final volume exact: "
        f"{all(r['final_exact'] for r in previews + plain)}",
        "all slices previewed / complete (previews plan): "
        f"{median(r['all_previewed_s'] / r['complete_s'] for r in previews):.3f}",
        "all slices previewed / complete without previews: "
        f"{median(r['all_previewed_s'] for r in previews) / median(r['complete_s'] for r in plain):.3f}",
        f"previewed volume: mean error {median(s['mae'] for s in previewed):.1f} HU, "
        f"{median(s['psnr_db'] for s in previewed):.1f} dB "
        f"(slices at full quality then: {median(s['counts'].get('FULL', 0) for s in previewed):.0f})",
        "complete with previews / without: "
        f"{median(r['complete_s'] for r in previews) / median(r['complete_s'] for r in plain):.3f}",
        "body bytes with previews / without: "
        f"{median(r['body_bytes'] for r in previews) / median(r['body_bytes'] for r in plain):.4f}",
    ]
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", default=LOOPBACK, help="loopback (default) or e.g. 100mbit (root)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--key", default="ct_thin", help="series of the full sample profile")
    parser.add_argument("--connections", type=int, default=4, help="requests in flight, both plans")
    parser.add_argument("--mode", default="auto", choices=("auto", "on"), help="--rendered-previews of the previews plan")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    limited = rate_bits(args.rate) is not None
    if limited and not inside():  # re-run this script in a private namespace whose loopback is limited
        return run_inside([sys.executable, *sys.argv], limited=True)

    runs: Dict[str, List[Dict]] = {PLAN_PREVIEWS: [], PLAN_PLAIN: []}
    with series_on_orthanc(args.key, args.rate) as (orthanc, info, truth):
        scratch = truth.parent
        for repeat in range(args.repeats):
            for plan in (PLAN_PREVIEWS, PLAN_PLAIN):
                time.sleep(SETTLE_S)
                record = run_once(plan, orthanc.dicomweb_url, info, truth, Path(scratch) / f"{repeat}-{len(plan)}.json",
                                  args.mode if plan == PLAN_PREVIEWS else "off", args.connections)
                logger.info("%s run %d: complete %.2f s, all previewed %s s, errors %s", plan, repeat,
                            record["complete_s"], record["all_previewed_s"], record["errors"])
                runs[plan].append(record)
    print(f"rendered previews ({args.mode}, {args.connections} connections), {args.key} ({info.num_slices} x {info.rows}x{info.columns}), Orthanc, "
          f"{args.rate}")
    for line in summary(runs):
        print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
