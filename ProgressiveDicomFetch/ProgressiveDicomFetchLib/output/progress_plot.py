"""Coarseness levels and full-quality fractions over time, recorded during a fetch and drawn as a PNG.

The timeline JSON says when milestones happened; this shows the shape in between: how fast each
series goes from coarse (every 8th slice exact, then every 4th, 2nd) to "every slice exact"
(full). The dashed line is the share of slices within 1/8 of an exact one, not "covered" (no
slice missing), which jumps to 100 % after one exact slice copied everywhere; markers on the
solid line show when each level was reached. Samples of a contender without levels (coarse None)
keep a covered line. The demo draws one panel; benchmarks draw one panel per contender on a
shared time axis. matplotlib is optional (imported when plotting), so recording costs nothing
where it is not installed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Protocol, Sequence, Tuple

from ..files import PathLike, atomic_write
from .requirements import require

FIGURE_DPI = 100
PANEL_HEIGHT_IN = 3.2
FIGURE_WIDTH_IN = 12.0


class ProgressSnapshot(Protocol):
    """What the recorder reads of one series' progress (the engine's SeriesProgress has it): the
    reports layer sits below the engine, so it names the fields, not the engine's class."""

    series_uid: str
    label: str
    covered_fraction: float
    full_fraction: float
    refined_fraction: float  # exact or within 1/8 of an exact slice
    level: Optional[int]  # 1, 2, 4, 8: every Nth slice exact; None: coarser


@dataclass
class ProgressSample:
    """Where one series stood `t` seconds after the start."""

    t: float  # seconds from start
    series_uid: str
    covered: float  # fraction of slices not MISSING (0..1)
    full: float  # fraction of slices at FULL quality (0..1)
    coarse: Optional[float] = None  # fraction of slices exact or within 1/8 of an exact one (None: unknown)
    level: Optional[int] = None  # 1, 2, 4, 8: every Nth slice exact; None: coarser or unknown


class ProgressRecorder:
    """Collects ProgressSamples, keeping a sample only when a series' fractions changed (small JSON).

    Call `sample()` as often as the display updates; pass `final=True` on the last call so each
    line ends at the end of the run even when nothing changed in the last seconds.
    """

    def __init__(self) -> None:
        self.samples: List[ProgressSample] = []
        self.labels: Dict[str, str] = {}  # series UID -> the engine's label, for plot legends
        self._last: Dict[str, Tuple[float, float, Optional[float], Optional[int]]] = {}

    def sample(self, t: float, progress: Iterable[ProgressSnapshot], final: bool = False) -> None:
        """Engine progress snapshots (`engine.progress()`) at `t` seconds."""
        for snapshot in progress:
            if snapshot.label:
                self.labels.setdefault(snapshot.series_uid, snapshot.label)
            self.add(t, snapshot.series_uid, snapshot.covered_fraction, snapshot.full_fraction, final,
                     coarse=snapshot.refined_fraction, level=snapshot.level)

    def add(self, t: float, series_uid: str, covered: float, full: float, final: bool = False,
            coarse: Optional[float] = None, level: Optional[int] = None) -> None:
        """One series' fractions from any source (a contender that is not this engine: no levels)."""
        state = (float(covered), float(full), None if coarse is None else float(coarse), level)
        if final or self._last.get(series_uid) != state:
            self._last[series_uid] = state
            self.samples.append(ProgressSample(float(t), series_uid, *state))

    def by_series(self) -> Dict[str, List[ProgressSample]]:
        grouped: Dict[str, List[ProgressSample]] = {}
        for sample in self.samples:
            grouped.setdefault(sample.series_uid, []).append(sample)
        return grouped

    def to_json(self) -> List[Dict[str, object]]:
        return [{key: (round(value, 4) if isinstance(value, float) else value) for key, value in asdict(s).items()}
                for s in self.samples]


def plot_progress(panels: Mapping[str, Sequence[ProgressSample]], path: PathLike, title: str = "",
                  labels: Optional[Mapping[str, str]] = None,
                  events: Optional[Mapping[str, Sequence[Tuple[float, str]]]] = None) -> Path:
    """One panel per key of `panels` (shared time axis): per series, within 1/8 of exact (dashed;
    covered for samples without levels) and full (solid) as step lines in one colour, with a
    marker where each level was reached; `labels` names series, `events` marks times per panel."""
    if not panels:
        raise ValueError("plot_progress needs at least one panel")
    figure_class, canvas_class = matplotlib_figure()
    labels = labels or {}
    events = events or {}
    end = max([s.t for samples in panels.values() for s in samples] +
              [t for marks in events.values() for t, _ in marks] + [1e-3])
    figure = figure_class(figsize=(FIGURE_WIDTH_IN, 1.2 + PANEL_HEIGHT_IN * len(panels)), dpi=FIGURE_DPI)
    canvas_class(figure)
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)
    for axis, (name, samples) in zip(axes[:, 0], panels.items()):
        _draw_panel(axis, name, samples, end, labels, events.get(name, ()))
    axes[-1, 0].set_xlabel("seconds from start")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    target = Path(path)
    with atomic_write(target) as handle:
        figure.savefig(handle, format="png", dpi=FIGURE_DPI)
    return target


def _draw_panel(axis, name: str, samples: Sequence[ProgressSample], end: float,
                labels: Mapping[str, str], marks: Sequence[Tuple[float, str]]) -> None:
    cycle = [f"C{n}" for n in range(10)]
    grouped: Dict[str, List[ProgressSample]] = {}
    for sample in sorted(samples, key=lambda s: s.t):
        grouped.setdefault(sample.series_uid, []).append(sample)
    for n, (uid, series) in enumerate(grouped.items()):
        colour = cycle[n % len(cycle)]
        times = [0.0] + [s.t for s in series] + [end]
        label = labels.get(uid, _short_uid(uid))
        levels = any(s.coarse is not None for s in series)
        dashed = ("coarse", "within 1/8") if levels else ("covered", "covered")
        for attribute, meaning, style in (dashed + ("--",), ("full", "full", "-")):
            values = [0.0] + [getattr(s, attribute) or 0.0 for s in series]
            values.append(values[-1])
            axis.step(times, [100.0 * v for v in values], where="post", linestyle=style, color=colour,
                      linewidth=1.6 if style == "-" else 1.2, label=f"{label} ({meaning})")
        _mark_levels(axis, series, colour)
    for t, text in marks:
        axis.axvline(t, color="0.35", linestyle=":", linewidth=1.0)
        axis.text(t, 3.0, text, fontsize=7, rotation=90, ha="right", va="bottom", color="0.25",
                  bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1.0})
    axis.set_title(name, loc="left", fontsize=10)
    axis.set_ylabel("% of slices")
    axis.set_ylim(0, 108)
    axis.set_xlim(0, end * 1.02)
    axis.grid(True, alpha=0.3)
    if grouped:
        axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)


def _mark_levels(axis, series: Sequence[ProgressSample], colour: str) -> None:
    """A marker on the full line where the series first reached each level, labelled 1/8 ... exact."""
    reached: List[Optional[int]] = [None]
    for sample in series:
        if sample.level is not None and sample.level not in reached and (reached[-1] is None or sample.level < reached[-1]):
            reached.append(sample.level)
            axis.plot([sample.t], [100.0 * sample.full], marker="o", markersize=4, color=colour)
            axis.annotate("exact" if sample.level == 1 else f"1/{sample.level}", (sample.t, 100.0 * sample.full), textcoords="offset points",
                          xytext=(3, 4), fontsize=7, color=colour)


def _short_uid(uid: str) -> str:
    return uid if len(uid) <= 16 else "~" + uid[-15:]


def matplotlib_figure():
    """matplotlib's Figure and Agg canvas, without pyplot: no global backend switch, no GUI, safe in
    threads and inside Slicer (whose own matplotlib backend stays as it is)."""
    require("matplotlib", "matplotlib", "plotting the progress")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    return Figure, FigureCanvasAgg
