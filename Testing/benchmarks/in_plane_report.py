"""Medians, ratios, targets and the table of in_plane_stages.py, from the raw runs of one link rate
(the session's document: the series, the two plans, every run's PlanRun record plus wire bytes).

Ratios are taken on the medians. The plain plan's "preview" figures are at the moment the previews
plan had every slice previewed (its median all-previewed time): the same time, without the stage.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional

from bench_report import Target, _cell, median
from in_plane_run import AT_ALL_PREVIEWED, AT_COVERED, AT_GIVEN_TIME, AT_STAGE

MB = 1e6
PREVIEWS, PLAIN = "previews", "plain"
COVERED_TARGET = 1 / 20  # issue 10: covered <= 1/20 of the complete time (200-slice HTJ2K series)
EXTRA_BYTES_TARGET = 0.03  # issue 10: the in-plane stage costs <= 3 % more bytes
ALL_PREVIEWED_TARGETS = {"100mbit": 0.12, "30mbit": 0.13}  # issue 22: every slice previewed / complete
LIMIT_TARGET = 1.05  # issue 22: complete <= 1.05 x (frame bytes / rate), previews on
LOOPBACK_COST_TARGET = 1.10  # issue 22: on plain loopback previews cost <= 10 % of complete


def _ratio(value: Optional[float], reference: Optional[float]) -> Optional[float]:
    return None if value is None or not reference else value / reference


def _snapshot(run: Mapping, moment: str, key: str) -> Optional[float]:
    snapshot = run["snapshots"].get(moment)
    return None if snapshot is None else snapshot[key]


def run_figures(run: Mapping) -> Dict[str, Optional[float]]:
    """One run's figures (s, MB, HU, dB); "preview": at all-previewed, or at the given time (plain plan)."""
    preview = AT_ALL_PREVIEWED if run["label"] == PREVIEWS else AT_GIVEN_TIME
    return {
        "first_slice_s": run["first_slice_s"], "covered_s": run["covered_s"],
        "all_previewed_s": run["all_previewed_s"], "complete_s": run["complete_s"],
        "body_MB": run["body_bytes"] / MB, "wire_MB": run["wire_bytes"] / MB,
        "tbf_MB": (run["qdisc"].get("bytes") or None) and run["qdisc"]["bytes"] / MB,
        "covered_mae": _snapshot(run, AT_COVERED, "mae"), "covered_psnr": _snapshot(run, AT_COVERED, "psnr_db"),
        "preview_t": _snapshot(run, preview, "t"),
        "preview_wire_MB": None if _snapshot(run, preview, "wire_bytes") is None else _snapshot(run, preview, "wire_bytes") / MB,
        "preview_mae": _snapshot(run, preview, "mae"), "preview_psnr": _snapshot(run, preview, "psnr_db"),
    }


def stage_quality(runs: List[Mapping]) -> List[Dict[str, object]]:
    """Per stage (in the order they ended), medians over the runs: end time, wire bytes so far, error."""
    rows = []
    for stage in sorted({s for run in runs for s in run["stages"]}, key=lambda s: median([r["stages"].get(s, 0.0) for r in runs])):
        moment = AT_STAGE + stage
        figures = {key: median([_snapshot(run, moment, key) for run in runs]) for key in ("t", "wire_bytes", "mae", "psnr_db")}
        rows.append(dict(figures, stage=stage, end_s=median([run["stages"].get(stage) for run in runs])))
    return rows


def summarise(raw: Mapping) -> Dict[str, object]:
    """Per plan: medians over the repeats; then the ratios and the extra bytes of the previews plan."""
    plans: Dict[str, Dict] = {}
    for label in (PREVIEWS, PLAIN):
        runs = [run for run in raw["runs"] if run["label"] == label]
        per_run = [run_figures(run) for run in runs]
        medians = {key: median([figures[key] for figures in per_run]) for key in (per_run[0] if per_run else {})}
        medians["covered_vs_complete"] = _ratio(medians.get("covered_s"), medians.get("complete_s"))
        medians["all_previewed_vs_complete"] = _ratio(medians.get("all_previewed_s"), medians.get("complete_s"))
        plans[label] = {"plan": runs[0]["plan"] if runs else None, "runs": len(runs), "median": medians,
                        "stages": stage_quality(runs),
                        "final_exact": all(run["final_exact"] for run in runs),
                        "errors": sorted({e for run in runs for e in run["errors"]})}
    ours, plain = plans[PREVIEWS]["median"], plans[PLAIN]["median"]
    extra = {key: _ratio(None if ours.get(key) is None or plain.get(key) is None else ours[key] - plain[key],
                         plain.get(key)) for key in ("body_MB", "wire_MB", "tbf_MB")}
    frames_mb = raw["series"]["frame_bytes"] / MB
    limit_s = raw["series"]["frame_bytes"] * 8 / raw["rate_bps"] if raw.get("rate_bps") else None
    for entry in plans.values():
        entry["median"]["complete_vs_limit"] = _ratio(entry["median"].get("complete_s"), limit_s)
    return {"plans": plans, "extra_bytes": extra, "limit_s": limit_s,
            "complete_vs_plain": _ratio(ours.get("complete_s"), plain.get("complete_s")),
            "body_vs_frames": _ratio(ours.get("body_MB"), frames_mb),
            "covered_speedup": _ratio(plain.get("covered_s"), ours.get("covered_s"))}


def targets(rate: str, summary: Mapping) -> List[Target]:
    ours = summary["plans"][PREVIEWS]["median"]
    extra = summary["extra_bytes"]
    return [Target(rate, "covered / complete with the in-plane stage <= 1/20", ours.get("covered_vs_complete"),
                   COVERED_TARGET),
            Target(rate, "extra body bytes of the in-plane stage <= 3 %", extra["body_MB"], EXTRA_BYTES_TARGET),
            Target(rate, "extra wire bytes of the in-plane stage <= 3 %", extra["wire_MB"], EXTRA_BYTES_TARGET)] + [
            Target(rate, f"every slice previewed / complete <= {goal}", ours.get("all_previewed_vs_complete"), goal)
            for goal in [ALL_PREVIEWED_TARGETS.get(rate)] if goal is not None] + ([
            Target(rate, f"complete / (frame bytes / rate) with previews <= {LIMIT_TARGET}",
                   ours.get("complete_vs_limit"), LIMIT_TARGET)] if summary.get("limit_s") else [
            Target(rate, f"complete with previews / without <= {LOOPBACK_COST_TARGET}",
                   summary.get("complete_vs_plain"), LOOPBACK_COST_TARGET)])


def _plan_row(label: str, entry: Mapping) -> str:
    m = entry["median"]
    return (f"| {label} `{entry['plan']}` | {_cell(m.get('first_slice_s'), 1)} | {_cell(m.get('covered_s'), 1)} | "
            f"{_cell(m.get('all_previewed_s'), 1)} | {_cell(m.get('complete_s'), 1)} | "
            f"{_cell(m.get('covered_vs_complete'), 1, 3)} | {_cell(m.get('all_previewed_vs_complete'), 1, 3)} | "
            f"{_cell(m.get('complete_vs_limit'), 1, 2)} | "
            f"{_cell(m.get('body_MB'), 1)} | {_cell(m.get('wire_MB'), 1)} | {_cell(m.get('covered_mae'), 1, 1)} / "
            f"{_cell(m.get('covered_psnr'), 1, 1)} | {_cell(m.get('preview_mae'), 1, 1)} / "
            f"{_cell(m.get('preview_psnr'), 1, 1)} |")


def _percent(value: Optional[float]) -> str:
    return "-" if value is None else f"{100 * value:+.2f} %"


def table(rate: str, raw: Mapping, summary: Mapping) -> List[str]:
    """The markdown table of one rate, with the ratios, the checks and the targets under it."""
    series = raw["series"]
    link = f"tbf {rate}, MTU 1500" if raw["rate_bps"] else "plain loopback"
    plans = summary["plans"]
    runs = max(entry["runs"] for entry in plans.values())
    lines = [f"**{rate}** ({link}, nginx static tree with Range, {raw['connections']} connections): "
             f"{series['slices']} x {series['rows']} x {series['columns']} CT, HTJ2K lossless RPCL, "
             f"{series['frame_bytes'] / MB:.1f} MB of frames ({series['native_bytes'] / MB:.0f} MB native); "
             f"medians of {runs} run(s)", "",
             "| plan | first slice s | covered s | all previewed s | complete s | covered / complete | "
             "all previewed / complete | complete / limit | body MB | wire MB | at covered: MAE HU / PSNR dB | "
             "at all previewed: MAE HU / PSNR dB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
             _plan_row("with previews", plans[PREVIEWS]), _plan_row("without", plans[PLAIN]), ""]
    extra = summary["extra_bytes"]
    lines.append(f"Extra bytes of the in-plane stage: body {_percent(extra['body_MB'])}, wire "
                 f"{_percent(extra['wire_MB'])}, metered by the tbf {_percent(extra['tbf_MB'])}; body bytes with "
                 f"previews / the frames' bytes = {_cell(summary['body_vs_frames'], 1, 4)}; covered "
                 f"{_cell(summary['covered_speedup'], 1, 1)}x sooner with previews.")
    ours = plans[PREVIEWS]["median"]
    if ours.get("preview_wire_MB") is not None and ours.get("all_previewed_s"):
        line = (f"Until every slice was previewed: {ours['preview_wire_MB']:.2f} MB on the wire "
                f"({_cell(_ratio(ours['preview_wire_MB'], ours.get('wire_MB')), 1, 3)} of the run's)")
        if raw["rate_bps"]:
            use = ours["preview_wire_MB"] * 8 * MB / raw["rate_bps"] / ours["all_previewed_s"]
            line += f", {use:.0%} of the link's capacity over those {ours['all_previewed_s']:.2f} s"
        slower = _ratio(ours.get("complete_s"), plans[PLAIN]["median"].get("complete_s"))
        lines.append(f"{line}; complete {_percent(None if slower is None else slower - 1)} vs the plan without previews.")
    if summary.get("limit_s"):
        lines.append(f"Limit = the frames' bytes / the rate = {summary['limit_s']:.2f} s.")
    lines.append("Covered = no slice MISSING: the fill from loaded neighbours covers the volume with the first slice, "
                 "so covered is about the first slice in both plans and the in-plane stage shows in the error. "
                 "The plan without previews is judged at the moment the previews plan had every slice previewed "
                 f"(median {_cell(plans[PLAIN]['median'].get('preview_t'), 1)} s). PSNR peak = truth max - min.")
    for label, entry in plans.items():
        if not entry["final_exact"]:
            lines.append(f"WARNING: a {label} run did not end with the exact volume")
        if entry["errors"]:
            lines.append(f"WARNING: {label} runs reported errors: {'; '.join(entry['errors'])}")
    if plans[PREVIEWS]["median"].get("all_previewed_s") is None:
        lines.append("NOTE: the previews plan never finished a 'preview-rest' stage in every run "
                     "(engine without in-plane stage, or no Range support found).")
    lines += ["", "Preview at the end of each stage (medians):", "",
              "| plan | stage | ends s | wire MB so far | MAE HU | PSNR dB |", "|---|---|---:|---:|---:|---:|"]
    for label, entry in plans.items():
        for row in entry["stages"]:
            wire = None if row["wire_bytes"] is None else row["wire_bytes"] / MB
            lines.append(f"| {label} | {row['stage']} | {_cell(row['end_s'], 1)} | {_cell(wire, 1)} | "
                         f"{_cell(row['mae'], 1, 1)} | {_cell(row['psnr_db'], 1, 1)} |")
    lines += breakdown_table(raw)
    lines += [""] + [f"- {t.line().strip()}" for t in targets(rate, summary)]
    return lines


def breakdown_table(raw: Mapping) -> List[str]:
    """Per step of a frame (step_timers.py), medians over the previews runs: calls, and milliseconds
    of wall and of thread CPU per call; CPU per slice of the series sums a frame's steps."""
    runs = [run for run in raw["runs"] if run["label"] == PREVIEWS and run.get("breakdown")]
    if not runs:
        return []
    slices = raw["series"]["slices"]
    lines = ["", "Per-frame breakdown with previews (medians; wall - CPU of a step without I/O is waiting for the "
             "GIL or a core):", "", "| step | calls | wall ms / call | CPU ms / call | CPU ms / slice |",
             "|---|---:|---:|---:|---:|"]
    for step in runs[0]["breakdown"]:
        cells = [run["breakdown"].get(step, {}) for run in runs]
        calls = median([c.get("calls") for c in cells])
        if not calls:
            continue
        wall = median([1e3 * c["wall_s"] / c["calls"] for c in cells if c.get("calls")])
        cpu = median([1e3 * c["cpu_s"] / c["calls"] for c in cells if c.get("calls")])
        per_slice = median([1e3 * c["cpu_s"] / slices for c in cells if c.get("calls")])
        lines.append(f"| {step} | {calls:.0f} | {wall:.2f} | {cpu:.2f} | {per_slice:.2f} |")
    return lines
