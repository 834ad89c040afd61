"""Figures, medians, the design targets and the printed table of compare_alternatives.py, from the
raw runs that bench_session.py wrote (one document per link rate).

Per run: first slice visible (earliest series), all series covered, each series complete, study
complete (the last series complete), the link limit (the study's pixel bytes / rate), link
utilisation (bytes on the wire / (rate x time): headers and ACKs count, they share the tbf),
peak RSS vs the volumes' bytes, and main-thread time per process_events(). Over repeats: medians.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Dict, List, Mapping, Optional, Sequence

from wire_meter import link_phases

MB = 1e6
MAX_SAMPLES_PER_SERIES = 60  # in the JSON, for the typical run only (the PNG shows them)


def median(values: Sequence[Optional[float]]) -> Optional[float]:
    """The median, or None when any run never reached the milestone."""
    if not values or any(v is None for v in values):
        return None
    return float(statistics.median(values))


def _ratio(value: Optional[float], reference: Optional[float]) -> Optional[float]:
    return None if value is None or not reference else value / reference


def run_figures(run: Mapping, raw: Mapping) -> Dict[str, Optional[float]]:
    """The figures of one contender's run (times in s, bytes in MB)."""
    rate = raw["rate_bps"]
    series = raw["series"]
    times = [run["series"][s["series_uid"]] for s in series]
    study_bytes = sum(s["pixel_bytes"] for s in series)
    completes = [t["complete_s"] for t in times]
    study_s = None if None in completes else max(completes)
    firsts = [t["first_slice_s"] for t in times if t["first_slice_s"] is not None]
    covers = [t["covered_s"] for t in times]
    big = max(series, key=lambda s: s["pixel_bytes"])
    big_times = run["series"][big["series_uid"]]
    figures: Dict[str, Optional[float]] = {
        "first_view_s": min(firsts) if firsts else None,
        "covered_s": None if None in covers else max(covers),
        "study_s": study_s,
        "total_s": run["total_s"],
        "largest_covered_vs_complete": _ratio(big_times["covered_s"], big_times["complete_s"]),
        "throughput_MBps": _ratio(run["body_bytes"] / MB, study_s),
        "body_MB": run["body_bytes"] / MB,
        "wire_MB": run["wire_bytes"] / MB,
        "peak_rss_MB": run["peak_rss"] / MB,
        "baseline_rss_MB": run["baseline_rss"] / MB,
        "volume_MB": run["volume_bytes"] / MB,
        "tbf_drops": run.get("qdisc", {}).get("drops"),
    }
    for s in series:
        figures[f"complete_s:{s['key']}"] = run["series"][s["series_uid"]]["complete_s"]
    for key in ("median", "p95", "max"):
        figures[f"pump_ms_{key}"] = run["pump_ms"].get(key)
    if rate:
        # what the tbf meters: every segment's TCP/IP and Ethernet headers, ACKs, retransmits
        metered = run.get("qdisc", {}).get("bytes") or run["wire_bytes"]
        figures["tbf_MB"] = metered / MB
        figures["x_link_limit"] = _ratio(study_s, study_bytes * 8 / rate)
        figures["x_metered_limit"] = _ratio(study_s, metered * 8 / rate)
        figures["utilisation"] = _ratio(metered * 8 / rate, study_s)
        figures["goodput_utilisation"] = _ratio(run["body_bytes"] * 8 / rate, study_s)
        if study_s is not None and run.get("wire"):
            phases = link_phases(run["wire"], rate, study_s)
            if phases["busy_utilisation"] is not None:  # in metered bytes, like "utilisation"
                phases["busy_utilisation"] *= metered / run["wire_bytes"]
            figures.update(phases)
    focus = run.get("focus")
    focused = run["series"][focus["series"]] if focus else None
    if focus and not focus["already_complete"] and focused["complete_s"] is not None:
        figures["focus_at_s"] = focus["t"]
        figures["focus_remaining_MB"] = focus["remaining_bytes"] / MB
        figures["focus_after_s"] = focused["complete_s"] - focus["t"]
        if rate:
            figures["focus_vs_limit"] = _ratio(figures["focus_after_s"], focus["remaining_bytes"] * 8 / rate)
    return figures


def _thin(samples: List[Dict], limit: int = MAX_SAMPLES_PER_SERIES) -> List[Dict]:
    """Every n-th sample per series (first and last kept), so the JSON stays small."""
    kept: List[Dict] = []
    for uid in dict.fromkeys(s["series_uid"] for s in samples):
        mine = [s for s in samples if s["series_uid"] == uid]
        step = max(1, -(-len(mine) // limit))
        kept += mine[::step] + ([mine[-1]] if (len(mine) - 1) % step else [])
    return kept


def summarise(raw: Mapping) -> Dict[str, Dict]:
    """Per contender: the median of each figure over the repeats, and the run nearest the median
    study time (its progress curves go in the figure)."""
    summary: Dict[str, Dict] = {}
    for name in dict.fromkeys(run["contender"] for run in raw["runs"]):
        runs = [run for run in raw["runs"] if run["contender"] == name]
        per_run = [run_figures(run, raw) for run in runs]
        keys = dict.fromkeys(k for figures in per_run for k in figures)
        medians = {k: median([figures.get(k) for figures in per_run]) for k in keys}
        middle = medians["total_s"]
        typical = min(runs, key=lambda run: abs(run["total_s"] - middle))
        summary[name] = {"runs": len(runs), "median": medians, "typical_run": typical["repeat"],
                         "samples": _thin(typical["samples"])}
    return summary


def link_limit(raw: Mapping) -> Optional[float]:
    """The physical limit: the study's pixel bytes / link rate (no header, no request)."""
    if not raw["rate_bps"]:
        return None
    return sum(s["pixel_bytes"] for s in raw["series"]) * 8 / raw["rate_bps"]


@dataclass
class Target:
    """One target of docs/benchmarks.md, judged on one rate's medians."""

    rate: str
    target: str
    measured: Optional[float]
    limit: float
    lower_is_better: bool = True

    @property
    def met(self) -> Optional[bool]:
        if self.measured is None:
            return None
        return self.measured <= self.limit if self.lower_is_better else self.measured >= self.limit

    def line(self) -> str:
        if self.measured is None:
            return f"{self.rate:9s} {self.target}: not measured"
        margin = (self.measured / self.limit - 1) * 100
        verdict = "met" if self.met else "NOT met"
        return (f"{self.rate:9s} {self.target}: {_number(self.measured)} vs {_number(self.limit)} -> {verdict} "
                f"({margin:+.0f}%)")

    def to_json(self) -> Dict[str, object]:
        return dict(asdict(self), met=self.met)


def targets(rate: str, raw: Mapping, summary: Mapping[str, Dict]) -> List[Target]:
    """The targets (docs/benchmarks.md) that this rate measures (the bulk-retrieve comparison only on loopback)."""
    def figure(contender: str, key: str) -> Optional[float]:
        return summary.get(contender, {}).get("median", {}).get(key)

    found: List[Target] = []
    bf = "breadth-first"
    if raw["rate_bps"]:
        found.append(Target(rate, "whole study (breadth-first) x link limit <= 1.05", figure(bf, "x_link_limit"), 1.05))
        found.append(Target(rate, "[proposed] whole study (breadth-first) x bytes the tbf metered / rate <= 1.05",
                            figure(bf, "x_metered_limit"), 1.05))
        found.append(Target(rate, "focused series after switch x its remaining bytes / rate <= 1.15",
                            figure("focus-switch", "focus_vs_limit"), 1.15))
        found.append(Target(rate, "largest series covered / its complete time (breadth-first) <= 0.15",
                            figure(bf, "largest_covered_vs_complete"), 0.15))
    else:
        ours, bulk = figure(bf, "throughput_MBps"), figure("dwc-series", "throughput_MBps")
        found.append(Target(rate, "throughput vs dicomweb-client series retrieve >= 0.9", _ratio(ours, bulk), 0.9,
                            lower_is_better=False))
    volumes, peak = figure(bf, "volume_MB"), figure(bf, "peak_rss_MB")
    found.append(Target(rate, "peak RSS (breadth-first) <= 1.25 x volumes + 150 MB [MB]", peak,
                        1.25 * (volumes or 0) + 150))
    found.append(Target(rate, "process_events() max (breadth-first) <= 5 ms", figure(bf, "pump_ms_max"), 5.0))
    found.append(Target(rate, "process_events() max (GIL-holding loop) <= 5 ms",
                        figure("breadth-first-gil", "pump_ms_max"), 5.0))
    return found


def _number(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"


def _cell(value: Optional[float], width: int, digits: int = 2) -> str:
    return f"{value:{width}.{digits}f}" if value is not None else f"{'-':>{width}s}"


def table(rate: str, raw: Mapping, summary: Mapping[str, Dict]) -> List[str]:
    """The printed (and docs/benchmarks.md) table of one rate: medians per contender, then the physical limit."""
    keys = [s["key"] for s in raw["series"]]
    limit = link_limit(raw)
    study_mb = sum(s["pixel_bytes"] for s in raw["series"]) / MB
    link = f"tbf {rate}, MTU 1500" if raw["rate_bps"] else "plain loopback"
    runs = max((entry["runs"] for entry in summary.values()), default=0)
    lines = [f"{rate}: {link}; {len(keys)} series ({', '.join(keys)}), {study_mb:.1f} MB of pixels; "
             f"medians of {runs} run(s)",
             f"{'contender':18s} {'first':>6s} {'covered':>7s} {'complete ' + '/'.join(k.replace('ct_', '') for k in keys):>30s}"
             f" {'study':>6s} {'xlimit':>6s} {'util':>5s} {'MB/s':>6s} {'RSS MB':>7s} {'pump ms med/p95/max':>20s}"]
    for name, entry in summary.items():
        m = entry["median"]
        completes = "/".join(_cell(m.get(f"complete_s:{k}"), 1) for k in keys)
        pumps = "/".join(_cell(m.get(f"pump_ms_{k}"), 1, 2) for k in ("median", "p95", "max")) if m.get("pump_ms_max") else "-"
        lines.append(f"{name:18s} {_cell(m['first_view_s'], 6)} {_cell(m['covered_s'], 7)} {completes:>30s}"
                     f" {_cell(m['study_s'], 6)} {_cell(m.get('x_link_limit'), 6)} {_cell(m.get('utilisation'), 5)}"
                     f" {_cell(m['throughput_MBps'], 6, 1)} {_cell(m['peak_rss_MB'], 7, 0)} {pumps:>20s}")
    if limit is not None:
        lines.append(f"{'physical limit':18s} {'':6s} {'':7s} {'':>30s} {limit:6.2f} {1.0:6.2f}"
                     f"   (pixel bytes / rate; volumes {summary.get('breadth-first', {}).get('median', {}).get('volume_MB') or 0:.0f} MB)")
    bf = summary.get("breadth-first", {}).get("median", {})
    if bf.get("busy_utilisation") is not None:
        lines.append(f"breadth-first on the link: {bf['tbf_MB']:.1f} MB metered by the tbf ({bf['tbf_MB'] / study_mb:.3f}x the "
                     f"pixels, {bf['tbf_MB'] * 8e6 / raw['rate_bps']:.2f} s at the rate); link busy from {bf['busy_from_s']:.2f} s, "
                     f"{bf['busy_utilisation']:.0%} used while busy, {bf['tail_s']:.2f} s tail; {bf['tbf_drops']:.0f} packets dropped")
    focus = summary.get("focus-switch", {}).get("median", {})
    if focus.get("focus_after_s") is not None:
        line = (f"focus switch at {focus['focus_at_s']:.2f} s: the largest series completed {focus['focus_after_s']:.2f} s "
                f"later with {focus['focus_remaining_MB']:.1f} MB left")
        if focus.get("focus_vs_limit") is not None:
            line += f" ({focus['focus_vs_limit']:.2f}x its remaining bytes / rate)"
        lines.append(line)
    return lines


def progress_panels(summary: Mapping[str, Dict]):
    """Per contender, the progress samples of its typical run, for plot_progress."""
    from ProgressiveDicomFetchLib.output.progress_plot import ProgressSample

    return {name: [ProgressSample(**sample) for sample in entry["samples"]] for name, entry in summary.items()}
