"""Our engine side by side with what users would use instead, on the same Orthanc, the same study
and the same kernel rate-limited link, in one run (issue 9). Prints a table; not a test.

    .venv/bin/python Testing/benchmarks/compare_alternatives.py            # or: make bench
    .venv/bin/python Testing/benchmarks/compare_alternatives.py --rates 100mbit --repeats 5

For each rate (plain loopback, or a tbf limit such as 30mbit) the script re-runs itself in a
private network namespace (`unshare -n`, needs root) with its own Orthanc and the generated CT
study; every contender runs `repeats` times in its own process. Writes to --out:
compare_alternatives.json (medians, targets, raw figures), progress_<rate>.png (per series:
fraction covered and at full quality over time, one panel per contender), summary.md (the table).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the benchmark helpers next to this file

from bench_report import link_limit, progress_panels, summarise, table, targets  # noqa: E402
from contenders import CONTENDERS  # noqa: E402
from netns import inside, rate_bits, start_inside  # noqa: E402

from ProgressiveDicomFetchLib.files import atomic_write  # noqa: E402

logger = logging.getLogger("compare_alternatives")

DEFAULT_RATES = "loopback,100mbit,30mbit"
# The full study is ~181 MB of pixels: ~48 s per contender at 30 Mbit/s, so one run there keeps the
# whole default command under 10 minutes on 2 cores.
DEFAULT_REPEATS = "loopback=3,100mbit=3,30mbit=1"
DEFAULT_SERIES = "ct_thin,ct_thick,ct_sagittal"  # 240x512x512, 60x512x512, 96x240x512
DEFAULT_OUT = HERE / "results"


def parse_repeats(text: str, rates: Sequence[str]) -> Dict[str, int]:
    """'3' (every rate) or 'loopback=3,30mbit=1' (rates not named: 1)."""
    try:
        if "=" not in text:
            counts = {rate: int(text) for rate in rates}
        else:
            given = dict(item.split("=", 1) for item in text.split(","))
            counts = {rate: int(given.get(rate, 1)) for rate in rates}
    except ValueError:
        raise ValueError(f"--repeats {text!r}: use a number or RATE=N,RATE=N") from None
    if any(n < 1 for n in counts.values()):
        raise ValueError(f"--repeats {text!r}: at least one run per rate")
    return counts


def machine() -> Dict[str, object]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cores": os.cpu_count(), "cpu": model, "kernel": platform.release(), "python": platform.python_version(),
            "load_average": list(os.getloadavg())}


def run_rates(args: argparse.Namespace, rates: List[str], repeats: Dict[str, int], raw_dir: Path) -> None:
    """Plain loopback first, alone (it is CPU-bound); then the limited rates, each in its own namespace
    with its own Orthanc -- at the same time unless --sequential: they are link-bound (~0.4 core at
    100 Mbit/s) and their links are separate, which keeps the whole run under 10 minutes."""
    def start(rate: str):
        command = [sys.executable, str(Path(__file__).resolve()), "--inside-rate", rate, "--rates", rate,
                   "--repeats", str(repeats[rate]), "--profile", args.profile, "--series", args.series,
                   "--contenders", args.contenders, "--focus-after", str(args.focus_after), "--out", str(raw_dir)]
        logger.info("%s: %d run(s) of %s", rate, repeats[rate], args.contenders)
        return rate, start_inside(command, limited=rate_bits(rate) is not None)

    def wait(sessions) -> None:
        failed = [rate for rate, process in sessions if process.wait() != 0]
        if failed:
            raise RuntimeError(f"the {', '.join(failed)} session(s) failed; see the log above")

    limited = [rate for rate in rates if rate_bits(rate) is not None]
    for rate in [rate for rate in rates if rate not in limited]:
        wait([start(rate)])
    if args.sequential:
        for rate in limited:
            wait([start(rate)])
    else:
        wait([start(rate) for rate in limited])


def report(rates: List[str], raw_dir: Path, out: Path, header: Dict[str, object]) -> List[str]:
    """Summaries, targets, figures and the JSON; returns the printed lines."""
    from ProgressiveDicomFetchLib.output.progress_plot import plot_progress

    lines: List[str] = []
    document: Dict[str, object] = dict(header, rates={})
    all_targets = []
    for rate in rates:
        raw = json.loads((raw_dir / f"{rate}.json").read_text())
        summary = summarise(raw)
        found = targets(rate, raw, summary)
        all_targets += found
        lines += table(rate, raw, summary) + [""]
        labels = {s["series_uid"]: f"{s['key']} ({s['slices']} slices)" for s in raw["series"]}
        focus_at = summary.get("focus-switch", {}).get("median", {}).get("focus_at_s")
        events = {"focus-switch": [(focus_at, "focus")]} if focus_at is not None else None
        figure = plot_progress(progress_panels(summary), out / f"progress_{rate}.png", labels=labels, events=events,
                               title=f"{rate}: fraction covered (dashed) / at full quality per series (typical run)")
        document["rates"][rate] = {"rate_bps": raw["rate_bps"], "series": raw["series"], "link_limit_s": link_limit(raw),
                                   "repeats": raw["repeats"], "focus_after_s": raw["focus_after_s"],
                                   "summary": summary, "figure": figure.name,
                                   "runs": [{k: v for k, v in run.items() if k not in ("samples", "wire")}
                                            for run in raw["runs"]]}
    lines += ["targets (design.md), on the medians:"] + [t.line() for t in all_targets]
    document["targets"] = [t.to_json() for t in all_targets]
    with atomic_write(out / "compare_alternatives.json", text=True) as handle:
        json.dump(document, handle, indent=1)
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default=DEFAULT_RATES, help=f"comma-separated tc rates or 'loopback' ({DEFAULT_RATES})")
    parser.add_argument("--repeats", default=DEFAULT_REPEATS, help=f"N, or RATE=N,... ({DEFAULT_REPEATS})")
    parser.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated, of: " + ", ".join(CONTENDERS))
    parser.add_argument("--profile", default="full", choices=("small", "full"), help="generated sample set")
    parser.add_argument("--series", default=DEFAULT_SERIES, help="sample series keys of one study")
    parser.add_argument("--focus-after", type=float, default=2.0, help="seconds before focus-switch focuses the largest series")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    parser.add_argument("--report-only", action="store_true",
                        help="no new runs: the table, JSON and figures again from the raw runs in --out/raw")
    parser.add_argument("--sequential", action="store_true", help="run the limited rates one after another")
    parser.add_argument("--inside-rate", help=argparse.SUPPRESS)  # the re-executed session in the namespace
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    rates = [r.strip() for r in args.rates.split(",") if r.strip()]
    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    try:
        for rate in rates:
            rate_bits(rate)
        repeats = parse_repeats(args.repeats, rates)
        unknown = [c for c in contenders if c not in CONTENDERS]
        if unknown or not contenders:
            raise ValueError(f"--contenders: unknown {', '.join(unknown) or '(none given)'}; have {', '.join(CONTENDERS)}")
    except ValueError as error:
        parser.error(str(error))
    if args.inside_rate:
        if not inside():
            parser.error("--inside-rate is for the re-executed session in the private namespace")
        from bench_session import run_rate

        run_rate(args.inside_rate, args.profile, args.series.split(","), contenders, repeats[args.inside_rate],
                 args.focus_after, args.out / f"{args.inside_rate}.json")
        return 0
    raw_dir = args.out / "raw"
    if args.report_only:
        header = json.loads((raw_dir / "header.json").read_text())
    else:
        started = time.monotonic()
        header = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine_before": machine(),
                  "command": " ".join([Path(sys.argv[0]).name] + list(sys.argv[1:] if argv is None else argv))}
        raw_dir.mkdir(parents=True, exist_ok=True)
        run_rates(args, rates, repeats, raw_dir)
        header["load_average_after"] = list(os.getloadavg())
        header["wall_s"] = round(time.monotonic() - started, 1)
        with atomic_write(raw_dir / "header.json", text=True) as handle:
            json.dump(header, handle)
    lines = report(rates, raw_dir, args.out, header)
    lines.append(f"{header['date']}, {header['machine_before']['cores']} cores ({header['machine_before']['cpu']}), "
                 f"load average {header['machine_before']['load_average'][0]:.1f} before / "
                 f"{header['load_average_after'][0]:.1f} after; whole run {header['wall_s']:.0f} s")
    with atomic_write(args.out / "summary.md", text=True) as handle:
        handle.write("```\n" + "\n".join(lines) + "\n```\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
