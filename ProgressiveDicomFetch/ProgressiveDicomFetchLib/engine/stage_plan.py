"""The stage plan: which slices come in which stage (design.md, "Stage plan").

Default: anchors (middle, first, last, and the viewed slice when the series is focused), then
every 8th, 4th and 2nd slice, then the rest. Every stage writes full-quality slices, so it works
with any DICOMweb server; missing slices in between are filled from loaded neighbours.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

ANCHORS = "anchors"
REST = "rest"


def every(step: int) -> str:
    return f"every-{step}"


@dataclass(frozen=True)
class StagePlan:
    """`steps` are the decimated passes, coarse to fine; `anchors` puts middle/first/last first."""

    steps: Tuple[int, ...] = (8, 4, 2)
    anchors: bool = True

    def __post_init__(self) -> None:
        if any(step < 2 for step in self.steps) or list(self.steps) != sorted(set(self.steps), reverse=True):
            raise ValueError(f"stage steps must be distinct, >= 2 and decreasing, not {self.steps}")

    @classmethod
    def parse(cls, text: str) -> "StagePlan":
        """`anchors,8,4,2` (the default), `8,4,2`, `4`, or `none` (every slice in one stage)."""
        parts = [p.strip().lower() for p in text.split(",") if p.strip()]
        anchors = ANCHORS in parts
        try:
            steps = tuple(int(p) for p in parts if p not in (ANCHORS, "none"))
        except ValueError:
            raise ValueError(f"stage plan {text!r}: use e.g. 'anchors,8,4,2'") from None
        return cls(steps=steps, anchors=anchors)

    def stage_ids(self) -> List[str]:
        return ([ANCHORS] if self.anchors else []) + [every(s) for s in self.steps] + [REST]

    def assign(self, present: Sequence[int], viewed: Optional[int] = None) -> Dict[int, int]:
        """Stage index of each present slice index k (slices that have a frame)."""
        present = sorted(present)
        stage_of: Dict[int, int] = {}
        stage = 0
        if self.anchors and present:
            anchors = [present[len(present) // 2], present[0], present[-1]]
            if viewed is not None:
                anchors.append(min(present, key=lambda k: (abs(k - viewed), k)))
            stage_of.update({k: stage for k in anchors})
            stage += 1
        for step in self.steps:
            stage_of.update({k: stage for k in present if k % step == 0 and k not in stage_of})
            stage += 1
        stage_of.update({k: stage for k in present if k not in stage_of})
        return stage_of
