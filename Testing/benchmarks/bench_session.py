"""One link rate of compare_alternatives.py, run inside the private namespace: a real Orthanc with
the generated CT study, the link limited after the upload, then every contender `repeats` times,
each in its own process, with the bytes that crossed the link (headers and ACKs included).

The contenders' order rotates from one repeat to the next so that a slow phase of this shared
machine does not always hit the same one.
"""
from __future__ import annotations

import json
import logging
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # Testing/: servers, fixtures_data

from contenders import run_in_subprocess  # noqa: E402
from fixtures_data import cached_sample  # noqa: E402
from netns import limit_loopback, loopback_bytes, qdisc_counters, rate_bits  # noqa: E402
from servers.orthanc import OrthancServer  # noqa: E402

from ProgressiveDicomFetchLib.files import atomic_write  # noqa: E402

logger = logging.getLogger(__name__)

SETTLE_S = 1.5  # between contenders: Orthanc drops idle keep-alive connections after 1 s; tbf refills


@dataclass
class StudySeries:
    """One series of the benchmark study, as generated (not as any contender parsed it)."""

    key: str
    study_uid: str
    series_uid: str
    slices: int
    rows: int
    columns: int
    pixel_bytes: int  # frames, as stored (uncompressed)
    file_bytes: int


def study_series(profile: str, keys: Sequence[str]) -> List[StudySeries]:
    sample = cached_sample(profile)
    found = []
    for key in keys:
        info = sample.series(key)
        pixels = info.num_slices * info.rows * info.columns * 2  # int16 / uint16 stored
        files = sum(path.stat().st_size for path in sample.files(key))
        found.append(StudySeries(key, info.study_uid, info.series_uid, info.num_slices, info.rows, info.columns,
                                 pixels, files))
    if len({s.study_uid for s in found}) != 1:
        raise ValueError(f"series {', '.join(keys)} are not of one study")
    return found


def largest(series: Sequence[StudySeries]) -> StudySeries:
    return max(series, key=lambda s: s.pixel_bytes)


def run_rate(rate: str, profile: str, keys: Sequence[str], contenders: Sequence[str], repeats: int,
             focus_after: float, raw: Path) -> None:
    """Everything for one rate; writes the raw runs to `raw` (JSON, atomically)."""
    series = study_series(profile, keys)
    sample = cached_sample(profile)
    files = [path for key in keys for path in sample.files(key)]
    bits = rate_bits(rate)
    study_bytes = sum(s.pixel_bytes for s in series)
    timeout = 120 + 6 * (study_bytes * 8 / bits if bits else 30)
    runs: List[Dict] = []
    with OrthancServer() as orthanc, tempfile.TemporaryDirectory(prefix="pdf-bench-") as scratch:
        upload_started = time.monotonic()
        orthanc.upload(files)
        logger.info("%s: uploaded %d files in %.1f s", rate, len(files), time.monotonic() - upload_started)
        if bits:
            limit_loopback(rate)
        uids = [s.series_uid for s in series]
        for repeat in range(repeats):
            shift = repeat % len(contenders)
            for name in list(contenders[shift:]) + list(contenders[:shift]):
                time.sleep(SETTLE_S)
                before, counters = loopback_bytes(), qdisc_counters()
                result = run_in_subprocess(name, orthanc.dicomweb_url, series[0].study_uid, uids,
                                           largest(series).series_uid, focus_after,
                                           Path(scratch) / f"{name}-{repeat}.json", timeout)
                wire = loopback_bytes() - before
                qdisc = {key: value - counters[key] for key, value in qdisc_counters().items()}
                logger.info("%s %s #%d: %.2f s, %.1f MB on the wire, %d packets dropped by the tbf", rate, name,
                            repeat + 1, result.total_s, wire / 1e6, qdisc["drops"])
                runs.append(dict(asdict(result), repeat=repeat, wire_bytes=wire, qdisc=qdisc))
    document = {"rate": rate, "rate_bps": bits, "profile": profile, "series": [asdict(s) for s in series],
                "focus_after_s": focus_after, "repeats": repeats, "runs": runs}
    with atomic_write(raw, text=True) as handle:
        json.dump(document, handle)
