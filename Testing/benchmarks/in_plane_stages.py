"""Benchmark of the in-plane preview stage (issue 10): the same HTJ2K RPCL series from the same nginx
static server (Range) over a kernel rate-limited link, with and without in-plane previews. Prints a
table; not a test.

    .venv/bin/python Testing/benchmarks/in_plane_stages.py                 # 30mbit, 3 runs per plan
    .venv/bin/python Testing/benchmarks/in_plane_stages.py --quick         # 1 run per plan
    .venv/bin/python Testing/benchmarks/in_plane_stages.py --rates 30mbit,100mbit,loopback   # make bench-previews

Data: sample_full's ct_thin (240 x 512 x 512) transcoded to HTJ2K lossless RPCL, cached under the
test cache (in_plane_data.py). Each rate re-runs this script in a private network namespace
(`unshare -n`, root) with its own nginx; every run is its own process (in_plane_run.py). Per
repetition the previews plan runs first, then the plain plan, which is also judged at the previews
run's all-previewed moment. Every run also records a per-frame breakdown (step_timers.py: wall and
CPU per step), and the report judges issue 22's targets (every slice previewed / complete,
complete / (frame bytes / rate), and on loopback the cost of previews). Writes to --out:
in_plane_<rate>.json (summary, targets, runs), in_plane.md (the tables), raw/in_plane_<rate>.json
(the runs as measured).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the benchmark helpers next to this file
sys.path.insert(1, str(HERE.parent))  # Testing/: servers, fixtures_data, support

from compare_alternatives import machine  # noqa: E402
from in_plane_report import PLAIN, PREVIEWS, summarise, table, targets  # noqa: E402
from netns import inside, limit_loopback, loopback_bytes, qdisc_counters, rate_bits, start_inside  # noqa: E402

from ProgressiveDicomFetchLib.files import atomic_write  # noqa: E402

logger = logging.getLogger("in_plane_stages")

DEFAULT_RATES = "30mbit"
DEFAULT_REPEATS = 3
PLAN_PREVIEWS = "preview-4,anchors,8,4,2"
PLAN_PLAIN = "anchors,8,4,2"
DEFAULT_OUT = HERE / "results"
SETTLE_S = 1.5  # between runs: the tbf bucket refills, keep-alive connections close
RUNS_FOLDER = "in_plane_runs"  # under the session's temp folder
TOOLS = ("unshare", "tc", "ip")


def preflight() -> Optional[str]:
    """What stops the benchmark from running here (None: nothing)."""
    from servers.nginx import NGINX_BIN, nginx_available

    if os.geteuid() != 0:
        return "needs root: each rate runs in a private network namespace (unshare -n) rate-limited with tc"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)} (util-linux, iproute2) for the private rate-limited namespace"
    if not nginx_available():
        return f"needs nginx ({NGINX_BIN}) to serve the static DICOMweb tree"
    return None


def check_plans(previews: str, plain: str) -> None:
    from ProgressiveDicomFetchLib.engine import StagePlan

    for option, text in (("--plan-previews", previews), ("--plan-plain", plain)):
        try:
            StagePlan.parse(text)
        except ValueError as error:
            raise ValueError(f"{option}: {error}") from None


def run_once(plan: str, url: str, series, out: Path, timeout: float, snapshot_at: Optional[float],
             connections: int) -> Dict:
    """One plan in a fresh interpreter (in_plane_run.py), with the namespace's wire bytes around it."""
    from servers.process import die_with_parent

    command = [sys.executable, str(HERE / "in_plane_run.py"), "--plan", plan, "--url", url,
               "--study", series.study_uid, "--series", series.series_uid, "--truth", series.truth,
               "--out", str(out), "--connections", str(connections)]
    if snapshot_at is not None:
        command += ["--snapshot-at", f"{snapshot_at:.4f}"]
    before, counters = loopback_bytes(), qdisc_counters()
    subprocess.run(command, check=True, timeout=timeout, preexec_fn=die_with_parent)
    wire = loopback_bytes() - before
    record = json.loads(out.read_text())
    record["wire_bytes"] = wire
    record["qdisc"] = {key: value - counters[key] for key, value in qdisc_counters().items()}
    return record


def run_session(rate: str, repeats: int, plans: Dict[str, str], connections: int, raw: Path) -> None:
    """Everything for one rate, inside the namespace; writes the raw runs to `raw` (atomically)."""
    from dataclasses import asdict

    from in_plane_data import ensure_series
    from servers.nginx import NginxStaticServer

    series = ensure_series()
    bits = rate_bits(rate)
    timeout = 120 + 6 * (series.frame_bytes * 8 / bits if bits else 30)
    runs: List[Dict] = []
    with NginxStaticServer(series.tree_root) as nginx, tempfile.TemporaryDirectory(prefix="pdf-in-plane-") as scratch:
        if bits:
            limit_loopback(rate)
        for repeat in range(repeats):
            all_previewed = None
            for label in (PREVIEWS, PLAIN):
                time.sleep(SETTLE_S)
                out = Path(scratch) / f"{label}-{repeat}.json"
                record = run_once(plans[label], nginx.dicomweb_url, series, out, timeout,
                                  all_previewed if label == PLAIN else None, connections)
                if label == PREVIEWS:
                    all_previewed = record["all_previewed_s"]
                logger.info("%s %s #%d: covered %s s, complete %s s, %.1f MB body, %.1f MB on the wire", rate,
                            label, repeat + 1, record["covered_s"], record["complete_s"], record["body_bytes"] / 1e6,
                            record["wire_bytes"] / 1e6)
                runs.append(dict(record, label=label, repeat=repeat))
    document = {"rate": rate, "rate_bps": bits, "connections": connections, "repeats": repeats,
                "series": asdict(series), "plans": plans, "runs": runs}
    with atomic_write(raw, text=True) as handle:
        json.dump(document, handle)


LOCAL_PATHS = ("root", "truth")  # this machine's cache: not part of a published result


def report(rates: Sequence[str], out: Path, header: Dict[str, object]) -> List[str]:
    """Per rate: the summary JSON; all rates: the markdown; returns the printed lines."""
    lines: List[str] = []
    for rate in rates:
        raw = json.loads((out / "raw" / f"in_plane_{rate}.json").read_text())
        summary = summarise(raw)
        lines += table(rate, raw, summary) + [""]
        runs = [{k: v for k, v in run.items() if k != "wire"} for run in raw["runs"]]
        series = {k: v for k, v in raw["series"].items() if k not in LOCAL_PATHS}
        document = dict(header, rate=rate, rate_bps=raw["rate_bps"], series=series, plans=raw["plans"],
                        summary=summary, targets=[t.to_json() for t in targets(rate, summary)], runs=runs)
        with atomic_write(out / f"in_plane_{rate}.json", text=True) as handle:
            json.dump(document, handle, indent=1)
    lines.append(f"{header['date']}, {header['machine_before']['cores']} cores ({header['machine_before']['cpu']}), "
                 f"load average {header['machine_before']['load_average'][0]:.1f} before / "
                 f"{header['load_average_after'][0]:.1f} after; whole run {header['wall_s']:.0f} s; "
                 f"`{header['command']}`")
    with atomic_write(out / "in_plane.md", text=True) as handle:
        handle.write("\n".join(lines) + "\n")
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default=DEFAULT_RATES, help=f"comma-separated tc rates or 'loopback' ({DEFAULT_RATES})")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="runs per plan (median)")
    parser.add_argument("--quick", action="store_true", help="one run per plan (same series, same size)")
    parser.add_argument("--plan-previews", default=PLAN_PREVIEWS, help=f"plan with the in-plane stage ({PLAN_PREVIEWS})")
    parser.add_argument("--plan-plain", default=PLAN_PLAIN, help=f"plan to compare with ({PLAN_PLAIN})")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    parser.add_argument("--report-only", action="store_true", help="no new runs: the report again from --out/raw")
    parser.add_argument("--inside-rate", help=argparse.SUPPRESS)  # the re-executed session in the namespace
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    rates = [r.strip() for r in args.rates.split(",") if r.strip()]
    repeats = 1 if args.quick else args.repeats
    try:
        if not rates:
            raise ValueError("--rates: give at least one rate")
        for rate in rates:
            rate_bits(rate)
        if repeats < 1 or args.connections < 1:
            raise ValueError("--repeats and --connections: at least 1")
        check_plans(args.plan_previews, args.plan_plain)
    except ValueError as error:
        parser.error(str(error))
    plans = {PREVIEWS: args.plan_previews, PLAIN: args.plan_plain}
    if args.inside_rate:
        if not inside():
            parser.error("--inside-rate is for the re-executed session in the private namespace")
        run_session(args.inside_rate, repeats, plans, args.connections, args.out / "raw" / f"in_plane_{args.inside_rate}.json")
        return 0
    header_path = args.out / "raw" / "in_plane_header.json"
    if args.report_only:
        header = json.loads(header_path.read_text())
    else:
        problem = preflight()
        if problem:
            parser.error(problem)
        from in_plane_data import ensure_series

        started = time.monotonic()
        header = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine_before": machine(),
                  "command": " ".join([Path(sys.argv[0]).name] + list(sys.argv[1:] if argv is None else argv))}
        series = ensure_series()  # outside the namespaces: made once, then shared by every rate
        logger.info("series %s: %d slices, %.1f MB of HTJ2K frames", series.series_uid, series.slices,
                    series.frame_bytes / 1e6)
        (args.out / "raw").mkdir(parents=True, exist_ok=True)
        for rate in rates:  # one after another: the runs are timed, the machine is shared
            command = [sys.executable, str(Path(__file__).resolve()), "--inside-rate", rate, "--rates", rate,
                       "--repeats", str(repeats), "--plan-previews", args.plan_previews, "--plan-plain",
                       args.plan_plain, "--connections", str(args.connections), "--out", str(args.out)]
            if start_inside(command, limited=rate_bits(rate) is not None).wait() != 0:
                raise SystemExit(f"the {rate} session failed; see the log above")
        header["load_average_after"] = list(os.getloadavg())
        header["wall_s"] = round(time.monotonic() - started, 1)
        with atomic_write(header_path, text=True) as handle:
            json.dump(header, handle)
    print("\n".join(report(rates, args.out, header)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
