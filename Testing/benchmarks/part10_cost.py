"""What `fetch --dicom` adds over a plain load: seconds, bytes over the wire and on disk, on Orthanc
(the server's own files, one whole-instance request each) and on nginx over a static tree
(files rebuilt: frames fetched again, or taken from the frame cache with --cache). Each run is a
fresh `fetch` process against the same server; prints a table. Not a test.

    .venv/bin/python Testing/benchmarks/part10_cost.py [--profile small|full] [--keys ct_thin,ct_thick]
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # Testing/: servers, fixtures_data

from fixtures_data import cached_sample  # noqa: E402
from servers.nginx import NginxStaticServer  # noqa: E402
from servers.orthanc import OrthancServer  # noqa: E402

from ProgressiveDicomFetchLib.sampledata.static_tree import write_static_tree  # noqa: E402

FETCHED = re.compile(r"([0-9.]+) MB fetched, ([0-9.]+) s")


def disk_bytes(folder: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in folder.rglob(pattern) if p.is_file()) if folder.exists() else 0


def run(url: str, study: str, series: List[str], scratch: Path, label: str, extra: List[str]) -> Dict:
    out = scratch / label
    args = [sys.executable, "-m", "ProgressiveDicomFetchLib", "fetch", "--url", url, "--study", study,
            "--out", str(out / "nrrd"), "--timeline", str(out / "t.json"), *sum((["--series", s] for s in series), []),
            *[a.replace("{out}", str(out)) for a in extra]]
    started = time.perf_counter()
    result = subprocess.run(args, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{label}: {result.stderr[-2000:]}")
    load_bytes = json.loads((out / "t.json").read_text())["bytes"]
    found = FETCHED.findall(result.stdout)
    return {"run": label, "seconds": seconds, "load_MB": load_bytes / 1e6,
            "dicom_fetch_MB": sum(float(mb) for mb, _ in found), "dicom_s": sum(float(s) for _, s in found),
            "dicom_disk_MB": disk_bytes(out / "dicom") / 1e6, "cache_disk_MB": disk_bytes(out / "cache") / 1e6,
            "nrrd_disk_MB": disk_bytes(out / "nrrd") / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="small")
    parser.add_argument("--keys", default="ct_thin,ct_thick,ct_sagittal")
    args = parser.parse_args()
    sample = cached_sample(args.profile)
    keys = args.keys.split(",")
    study = sample.series(keys[0]).study_uid
    series = [sample.series(k).series_uid for k in keys]
    files = [f for k in keys for f in sample.files(k)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="pdf-part10-") as scratch_name:
        scratch = Path(scratch_name)
        write_static_tree(files, scratch / "tree")
        with OrthancServer() as orthanc, NginxStaticServer(scratch / "tree") as nginx:
            orthanc.upload(files)
            for server, url in (("orthanc", orthanc.dicomweb_url), ("nginx", nginx.dicomweb_url)):
                runs = [("plain", []), ("--dicom", ["--dicom", "{out}/dicom"]),
                        ("--dicom --cache", ["--dicom", "{out}/dicom", "--cache", "{out}/cache"])]
                for label, extra in runs:
                    rows.append({"server": server, **run(url, study, series, scratch, f"{server}-{label}", extra)})
    print(f"{args.profile} sample, series {', '.join(keys)}: {len(files)} instances, "
          f"{sum(p.stat().st_size for p in files) / 1e6:.1f} MB of files")
    print(f"{'run':<28}{'total s':>8}{'files s':>8}{'load MB':>9}{'+dicom MB':>10}{'dcm disk':>10}{'cache':>8}{'nrrd':>8}")
    for row in rows:
        print(f"{row['run']:<28}{row['seconds']:>8.2f}{row['dicom_s']:>8.2f}{row['load_MB']:>9.1f}{row['dicom_fetch_MB']:>10.1f}"
              f"{row['dicom_disk_MB']:>10.1f}{row['cache_disk_MB']:>8.1f}{row['nrrd_disk_MB']:>8.1f}")


if __name__ == "__main__":
    main()
