"""What the engine knows about one requested series (kept by the engine, read by progress())."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..loading import VolumeLoad
from ..volume import COARSEST, LEVELS, Coarseness, Quality, coarsest, coarseness, quality_counts
from .events import SeriesProgress, SeriesStatus


@dataclass
class SeriesState:
    study_uid: str
    series_uid: str
    label: str = ""
    loads: List[VolumeLoad] = field(default_factory=list)
    state: SeriesStatus = SeriesStatus.WAITING
    bytes: int = 0
    failures: int = 0  # consecutive failure rounds (see engine._slices_failed)
    failed_at: float = float("-inf")  # time.monotonic() of the last counted round
    attempts: Dict[Tuple[int, int], int] = field(default_factory=dict)  # failed tries per (volume, k)
    error: Optional[str] = None
    first_slice: bool = False
    covered: bool = False
    complete: bool = False
    stage: Optional[str] = None
    preview: Optional[Any] = None  # the series' PreviewSource (None: full frames only)
    prefetched: Dict[Tuple[int, int], Tuple[Any, int]] = field(default_factory=dict)  # the probe's frame, bytes
    fetcher: Optional[Any] = None  # the series' FrameFetcher (made when its volumes are known)
    preview_note: str = ""  # which preview source, or why none (for the log and the panel)
    levels: List[int] = field(default_factory=list)  # coarse levels reached (8, 4, 2), in order
    _measured: Optional[Tuple[bytes, Dict[str, int], Coarseness]] = field(default=None, repr=False, compare=False)

    def count_attempts(self, slices: Sequence[Tuple[int, int]]) -> int:
        """Count one more failed try for each slice; returns the most any of them has had."""
        for key in slices:
            self.attempts[key] = self.attempts.get(key, 0) + 1
        return max(self.attempts[key] for key in slices)

    def check_covered(self) -> bool:
        """True the first time every volume of the series has no missing slice (the timeline's
        `covered`: possibly one exact slice copied everywhere; the state waits for `new_levels`)."""
        if self.covered or not self.loads or not all(load.volume.covered for load in self.loads):
            return False
        self.covered = True
        return True

    def coarseness(self) -> Coarseness:
        """The series' coarseness: that of its coarsest volume (gap slices of the grid left out)."""
        return self._measures()[1]

    def _measures(self) -> Tuple[Dict[str, int], Coarseness]:
        """Slices per quality and the coarseness, measured again only when a slice's quality
        changed: the host asks progress() on every tick (~0.2 ms a series each time otherwise)."""
        qualities = [load.volume.qualities() for load in self.loads]
        key = b"".join(q.tobytes() for q in qualities)
        if self._measured is None or self._measured[0] != key:
            counts = {q.name: 0 for q in Quality}
            for values in qualities:
                for quality, count in quality_counts(values).items():
                    counts[quality.name] += count
            level = coarsest(coarseness(values, [f is not None for f in load.geometry.slices])
                             for load, values in zip(self.loads, qualities))
            self._measured = (key, counts, level)
        return dict(self._measured[1]), self._measured[2]

    def new_levels(self) -> List[int]:
        """Coarse levels (8, 4, 2 of LEVELS) reached since the last call, coarsest first; several at
        once when a stage closed more than one (e.g. a plan that starts with every 4th slice)."""
        if not self.loads or len(self.levels) == len(LEVELS) - 1:
            return []
        level = self.coarseness().level
        reached = [] if level is None else [n for n in reversed(LEVELS[1:]) if n >= level and n not in self.levels]
        self.levels += reached
        if COARSEST in reached and self.state not in (SeriesStatus.COMPLETE,):
            self.state = SeriesStatus.COVERED
        return reached

    def progress(self) -> SeriesProgress:
        counts, level = self._measures()
        total = sum(load.volume.num_slices for load in self.loads)
        spacing = self.loads[0].geometry.spacing[2] if self.loads else None
        return SeriesProgress(series_uid=self.series_uid, label=self.label, total_slices=total, counts=counts,
                              stage=self.stage, bytes=self.bytes, state=self.state, error=self.error,
                              coarseness=level if self.loads else None, slice_spacing_mm=spacing)
