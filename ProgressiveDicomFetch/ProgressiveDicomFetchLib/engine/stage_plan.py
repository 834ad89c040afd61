"""The stage plan: which slices come in which stage (design.md, "Stage plan").

Default: in-plane previews of every 4th slice, then of the rest (where the server offers a preview
source: HTJ2K prefixes by Range, or a reduced alternate; elsewhere these stages are empty), then
full frames: anchors (middle, first, last, and the viewed slice when the series is focused), every
8th, 4th and 2nd slice, then the rest. Full stages work with any DICOMweb server; missing slices in
between are filled from loaded neighbours. Why this default: README, "In-plane previews".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

ANCHORS = "anchors"
REST = "rest"
PREVIEW = "preview"
PREVIEW_REST = "preview-rest"

# The parts of one slice's fetch: a reduced preview first (when the series has a preview source),
# then the whole frame (for HTJ2K prefixes: the rest of the same bytes).
PREVIEW_PART = 0
WHOLE_PART = 1


def every(step: int) -> str:
    return f"every-{step}"


def preview_every(step: int) -> str:
    return f"preview-every-{step}"


def _check_steps(steps: Sequence[int], what: str) -> None:
    if any(step < 2 for step in steps) or list(steps) != sorted(set(steps), reverse=True):
        raise ValueError(f"{what} steps must be distinct, >= 2 and decreasing, not {tuple(steps)}")


@dataclass(frozen=True)
class StagePlan:
    """`steps` are the decimated full-quality passes, coarse to fine; `anchors` puts middle/first/last
    first; `previews` (None: no in-plane stage) are the decimated preview passes, then the rest."""

    steps: Tuple[int, ...] = (8, 4, 2)
    anchors: bool = True
    previews: Optional[Tuple[int, ...]] = (4,)

    def __post_init__(self) -> None:
        _check_steps(self.steps, "stage")
        if self.previews is not None:
            _check_steps(self.previews, "preview")

    @classmethod
    def parse(cls, text: str) -> "StagePlan":
        """`preview-4,anchors,8,4,2` (the default), `anchors,8,4,2` (no in-plane previews),
        `preview,8,4` (previews of every slice in one stage), or `none` (every slice in one stage)."""
        parts = [p.strip().lower() for p in text.split(",") if p.strip()]
        anchors = ANCHORS in parts
        previews: Optional[List[int]] = None
        steps = []
        try:
            for part in parts:
                if part == PREVIEW:
                    previews = previews or []
                elif part.startswith(PREVIEW + "-"):
                    previews = (previews or []) + [int(part[len(PREVIEW) + 1:])]
                elif part not in (ANCHORS, "none"):
                    steps.append(int(part))
        except ValueError:
            raise ValueError(f"stage plan {text!r}: use e.g. 'preview-4,anchors,8,4,2'") from None
        return cls(steps=tuple(steps), anchors=anchors, previews=None if previews is None else tuple(previews))

    def __str__(self) -> str:
        previews = [] if self.previews is None else [f"{PREVIEW}-{s}" for s in self.previews] or [PREVIEW]
        return ",".join(previews + ([ANCHORS] if self.anchors else []) + [str(s) for s in self.steps]) or "none"

    @property
    def preview_stages(self) -> int:
        """How many stages come before the full-quality ones (0 without previews)."""
        return 0 if self.previews is None else len(self.previews) + 1

    def stage_ids(self) -> List[str]:
        previews = [] if self.previews is None else [preview_every(s) for s in self.previews] + [PREVIEW_REST]
        return previews + ([ANCHORS] if self.anchors else []) + [every(s) for s in self.steps] + [REST]

    def assign(self, present: Sequence[int], viewed: Union[None, int, Sequence[int]] = None) -> Dict[int, int]:
        """Stage index (in `stage_ids()`) of each present slice's full-quality fetch; the slices
        nearest the `viewed` ones (one or several views) join the anchors."""
        present = sorted(present)
        stage_of: Dict[int, int] = {}
        stage = self.preview_stages
        if self.anchors and present:
            anchors = [present[len(present) // 2], present[0], present[-1]]
            for view in [viewed] if isinstance(viewed, (int, float)) else viewed or ():
                anchors.append(min(present, key=lambda k: (abs(k - view), k)))
            stage_of.update({k: stage for k in anchors})
            stage += 1
        stage = _decimated(stage_of, present, self.steps, stage)
        stage_of.update({k: stage for k in present if k not in stage_of})
        return stage_of

    def assign_previews(self, present: Sequence[int]) -> Dict[int, int]:
        """Stage index of each present slice's preview ({} without previews)."""
        if self.previews is None:
            return {}
        stage_of: Dict[int, int] = {}
        stage = _decimated(stage_of, sorted(present), self.previews, 0)
        stage_of.update({k: stage for k in present if k not in stage_of})
        return stage_of


def _decimated(stage_of: Dict[int, int], present: Sequence[int], steps: Sequence[int], stage: int) -> int:
    """Every `step`-th slice not yet placed goes to the next stage; returns the stage after them."""
    for step in steps:
        stage_of.update({k: stage for k in present if k % step == 0 and k not in stage_of})
        stage += 1
    return stage
