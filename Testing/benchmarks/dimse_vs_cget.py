"""Our engine over DIMSE beside a plain series-level C-GET (pynetdicom), on the same Orthanc DICOM
server and the same study over plain loopback, in one run; our engine over DICOMweb on the same
Orthanc as a third line. Prints a table with ratios; not a test.

    .venv/bin/python Testing/benchmarks/dimse_vs_cget.py                  # full profile, 3 repeats
    .venv/bin/python Testing/benchmarks/dimse_vs_cget.py --profile small --repeats 1
    .venv/bin/python Testing/benchmarks/dimse_vs_cget.py --rate 100mbit   # tbf in a private namespace (root)

"First view" is when the first series shows a whole (coarse) volume: for ours the first slice of
the first series (the volume is filled around it); for the series-level C-GET, whose series is
usable only once all its instances are in, the end of the first series' C-GET. "Complete" is
when every series is exact (ours: decoded into the volume; the C-GET: datasets received, not yet
decoded, which favours it). Contenders alternate from one repeat to the next.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # Testing/: servers, fixtures_data

from fixtures_data import cached_sample  # noqa: E402
from netns import inside, limit_loopback, rate_bits, run_inside  # noqa: E402
from servers.orthanc import OrthancServer  # noqa: E402

from ProgressiveDicomFetchLib.dicomweb import DicomwebServer  # noqa: E402
from ProgressiveDicomFetchLib.dimse import DimseServer  # noqa: E402
from ProgressiveDicomFetchLib.dimse.retrieve import GET_MODEL, decodable_syntaxes  # noqa: E402
from ProgressiveDicomFetchLib.engine import ProgressiveFetchEngine  # noqa: E402
from ProgressiveDicomFetchLib.files import atomic_write  # noqa: E402

logger = logging.getLogger("dimse_vs_cget")
AET = "BENCHORTHANC"
DEFAULT_SERIES = "ct_thick,ct_sagittal"  # full profile: 60x512x512 and 96x240x512 (~55 MB of pixels)
Result = Dict[str, float]


def ours(server: object, study_uid: str, series: Sequence[str]) -> Result:
    started = time.monotonic()
    engine = ProgressiveFetchEngine(server, connections=4)
    first: Optional[float] = None
    try:
        for uid in series:
            engine.add_series(study_uid, uid)

        def watch(update) -> None:
            nonlocal first
            if first is None and any(e.event == "first_slice" for e in update.events):
                first = time.monotonic() - started

        if not engine.run_until_finished(watch, poll_s=0.005, timeout=600):
            raise RuntimeError("our engine did not finish in 10 minutes")
        complete = time.monotonic() - started
        failed = [p.series_uid for p in engine.progress() if p.state != "complete"]
        if failed:
            raise RuntimeError(f"series not complete: {failed}")
    finally:
        engine.close()
    return {"first_view_s": first or complete, "complete_s": complete}


def series_level_c_get(address: str, study_uid: str, series: Sequence[str], sop_class: str) -> Result:
    """What a classic client does: one C-GET per series, one after another, datasets kept in memory."""
    from pydicom.dataset import Dataset
    from pynetdicom import AE, build_context, build_role, evt

    received: List[Dataset] = []
    called, host_port = address.split("@")
    host, port = host_port.rsplit(":", 1)
    started = time.monotonic()
    ae = AE(ae_title="BENCHSCU")
    ae.maximum_pdu_size = 262144
    contexts = [build_context(GET_MODEL)] + [build_context(sop_class, [s]) for s in decodable_syntaxes()]
    assoc = ae.associate(host, int(port), contexts=contexts, ae_title=called, max_pdu=262144,
                         ext_neg=[build_role(sop_class, scp_role=True)],
                         evt_handlers=[(evt.EVT_C_STORE, lambda event: received.append(event.dataset) or 0)])
    if not assoc.is_established:
        raise RuntimeError(f"no association with {address}")
    first = None
    try:
        for uid in series:
            query = Dataset()
            query.QueryRetrieveLevel = "SERIES"
            query.StudyInstanceUID, query.SeriesInstanceUID = study_uid, uid
            for status, _ in assoc.send_c_get(query, GET_MODEL):
                if not status or status.Status not in (0xFF00, 0xFF01, 0x0000):
                    raise RuntimeError(f"C-GET of series {uid} failed: {status}")
            first = first or time.monotonic() - started
    finally:
        assoc.release()
    return {"first_view_s": first, "complete_s": time.monotonic() - started, "instances": len(received)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="full", choices=("small", "full"))
    parser.add_argument("--series", default=DEFAULT_SERIES, help="sample series keys of one study")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", default="loopback", help="loopback, or a tbf rate such as 100mbit (netns.py)")
    parser.add_argument("--out", type=Path, default=None, help="JSON file (default results/dimse_vs_cget_<rate>.json)")
    args = parser.parse_args(argv)
    args.out = args.out or HERE / "results" / f"dimse_vs_cget_{args.rate}.json"
    limited = rate_bits(args.rate) is not None
    if limited and not inside():  # the same command again, in a private namespace whose loopback is limited
        return run_inside([sys.executable, str(Path(__file__).resolve()), *(argv or sys.argv[1:])], limited=True)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    sample = cached_sample(args.profile)
    infos = [sample.series(key) for key in args.series.split(",")]
    study_uid, uids = infos[0].study_uid, [i.series_uid for i in infos]
    sop_class = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage (the generated CT series)
    with OrthancServer(dicom_aet=AET) as orthanc:
        orthanc.upload([path for info in infos for path in sample.files(info.key)])
        if limited:
            limit_loopback(args.rate)  # after the upload: only the fetches cross the limit
        contenders: Dict[str, Callable[[], Result]] = {
            "ours over DIMSE (C-GET of a few instances)": lambda: ours(DimseServer(orthanc.dimse_address), study_uid, uids),
            "series-level C-GET (pynetdicom)": lambda: series_level_c_get(orthanc.dimse_address, study_uid, uids,
                                                                          sop_class),
            "ours over DICOMweb (same Orthanc)": lambda: ours(DicomwebServer(orthanc.dicomweb_url), study_uid, uids),
        }
        runs: Dict[str, List[Result]] = {name: [] for name in contenders}
        names = list(contenders)
        for repeat in range(args.repeats):
            for name in names[repeat % len(names):] + names[:repeat % len(names)]:
                runs[name].append(contenders[name]())
                logger.info("%s: %s", name, runs[name][-1])
                time.sleep(1.0)
    medians = {name: {key: statistics.median(r[key] for r in results) for key in ("first_view_s", "complete_s")}
               for name, results in runs.items()}
    peer = medians["series-level C-GET (pynetdicom)"]
    print(f"\n{len(uids)} series, {sum(i.num_slices for i in infos)} instances, {args.profile} profile, {args.rate}, "
          f"median of {args.repeats}")
    print(f"{'contender':44} {'first view s':>12} {'complete s':>11} {'first/peer':>10} {'complete/peer':>13}")
    for name, figures in medians.items():
        print(f"{name:44} {figures['first_view_s']:12.2f} {figures['complete_s']:11.2f} "
              f"{figures['first_view_s'] / peer['first_view_s']:10.2f} {figures['complete_s'] / peer['complete_s']:13.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out, text=True) as out:
        json.dump({"series": args.series, "profile": args.profile, "rate": args.rate, "medians": medians, "runs": runs}, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
