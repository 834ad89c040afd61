"""The stage plan: which slices come in which stage, and how they are fetched (docs/architecture.md,
"The stage plan").

A plan is a sequence of `Stage` records. Default: in-plane previews of every 4th slice, then of the
rest (where the series has a preview source: HTJ2K prefixes by Range, or a reduced alternate;
elsewhere these stages are empty), then whole frames: anchors (middle, first, last, and the viewed
slice when the series is focused), every 8th, 4th and 2nd slice, then the rest. Whole-frame stages
work with any DICOMweb server; missing slices in between are filled from loaded neighbours. Why this
default: docs/previews.md. A new kind of stage is a new `Pick` and its branch in `Stage`.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple, Union

NONE = "none"


class Part(enum.IntEnum):
    """How a slice is fetched in a stage: each slice is fetched once per part it is planned for."""

    PREVIEW = 0  # a reduced copy from the series' preview source (no source: the stage is empty)
    WHOLE = 1  # the whole frame (after an HTJ2K prefix: the rest of the same bytes)


class Pick(enum.Enum):
    """Which slices a stage takes, of those its part has not placed yet."""

    ANCHORS = "anchors"  # middle, first, last, and the slice nearest the view
    EVERY = "every"  # every `step`-th slice (k % step == 0)
    REST = "rest"  # all the others


@dataclass(frozen=True)
class Stage:
    """One stage of a plan: its id (as the timeline names it), which slices, and how fetched."""

    pick: Pick
    part: Part = Part.WHOLE
    step: int = 0  # Pick.EVERY only

    @property
    def id(self) -> str:
        name = self.pick.value if self.pick is not Pick.EVERY else f"every-{self.step}"
        return f"preview-{name}" if self.part is Part.PREVIEW else name

    @property
    def token(self) -> str:
        """Its word in a plan's text (`--stages`); '' for the rest stages, which every plan ends with."""
        if self.pick is Pick.REST:
            return ""
        word = self.pick.value if self.pick is Pick.ANCHORS else str(self.step)
        return f"preview-{word}" if self.part is Part.PREVIEW else word

    @classmethod
    def from_token(cls, token: str) -> "Stage":
        """`anchors`, `8` or `preview-4` (ValueError otherwise)."""
        part = Part.PREVIEW if token.startswith("preview-") else Part.WHOLE
        word = token[len("preview-"):] if part is Part.PREVIEW else token
        if word == Pick.ANCHORS.value:
            return cls(Pick.ANCHORS, part)
        step = int(word)
        if step < 2:
            raise ValueError(f"a stage step must be at least 2, not {step}")
        return cls(Pick.EVERY, part, step)

    def select(self, present: Sequence[int], placed: Dict[int, int], viewed: Sequence[float]) -> List[int]:
        """The present slices (sorted) this stage takes, given those earlier stages `placed` and the
        slices in view."""
        if self.pick is Pick.ANCHORS:
            if not present:
                return []
            picked = [present[len(present) // 2], present[0], present[-1]]
            picked += [min(present, key=lambda k: (abs(k - view), k)) for view in viewed]
            return [k for k in dict.fromkeys(picked) if k not in placed]
        if self.pick is Pick.EVERY:
            return [k for k in present if k % self.step == 0 and k not in placed]
        return [k for k in present if k not in placed]


DEFAULT_STAGES = (Stage(Pick.EVERY, Part.PREVIEW, 4), Stage(Pick.REST, Part.PREVIEW), Stage(Pick.ANCHORS),
                  Stage(Pick.EVERY, step=8), Stage(Pick.EVERY, step=4), Stage(Pick.EVERY, step=2), Stage(Pick.REST))


@dataclass(frozen=True)
class StagePlan:
    """The stages in order: the preview part's stages first (ending with its rest), then the whole
    part's (ending with its rest); EVERY steps distinct and decreasing within a part."""

    stages: Tuple[Stage, ...] = DEFAULT_STAGES

    def __post_init__(self) -> None:
        parts = [stage.part for stage in self.stages]
        if parts != sorted(parts) or not parts or self.stages[-1] != Stage(Pick.REST):
            raise ValueError(f"stage plan {self}: previews first, then whole frames, ending with the rest")
        for part in Part:
            mine = [stage for stage in self.stages if stage.part is part]
            steps = [stage.step for stage in mine if stage.pick is Pick.EVERY]
            if steps != sorted(set(steps), reverse=True):
                raise ValueError(f"stage plan {self}: steps must be distinct and decreasing, not {tuple(steps)}")
            if mine and (mine[-1].pick is not Pick.REST or [s.pick for s in mine].count(Pick.REST) != 1):
                raise ValueError(f"stage plan {self}: each part ends with exactly one rest stage")

    @classmethod
    def parse(cls, text: str) -> "StagePlan":
        """`preview-4,anchors,8,4,2` (the default), `anchors,8,4,2` (no in-plane previews),
        `preview,8,4` (previews of every slice in one stage), or `none` (every slice in one stage)."""
        words = [w.strip().lower() for w in text.split(",") if w.strip() and w.strip().lower() != NONE]
        try:
            chosen = [Stage.from_token(w) for w in words if w != "preview"]
        except ValueError:
            raise ValueError(f"stage plan {text!r}: use e.g. 'preview-4,anchors,8,4,2'") from None
        previews = "preview" in words or any(stage.part is Part.PREVIEW for stage in chosen)
        ordered = sorted(chosen, key=lambda stage: stage.part)  # stable: the order given within a part
        rest = [Stage(Pick.REST, Part.PREVIEW)] if previews else []
        split = sum(1 for stage in ordered if stage.part is Part.PREVIEW)
        return cls(tuple(ordered[:split] + rest + ordered[split:] + [Stage(Pick.REST)]))

    def __str__(self) -> str:
        words = [stage.token for stage in self.stages if stage.token]
        if self.has_previews and not any(stage.part is Part.PREVIEW and stage.token for stage in self.stages):
            words.insert(0, "preview")
        return ",".join(words) or NONE

    @property
    def steps(self) -> Tuple[int, ...]:
        """The decimated whole-frame passes, coarse to fine (e.g. (8, 4, 2))."""
        return tuple(stage.step for stage in self.stages if stage.part is Part.WHOLE and stage.pick is Pick.EVERY)

    @property
    def anchors(self) -> bool:
        return any(stage.part is Part.WHOLE and stage.pick is Pick.ANCHORS for stage in self.stages)

    @property
    def has_previews(self) -> bool:
        return any(stage.part is Part.PREVIEW for stage in self.stages)

    @property
    def preview_stages(self) -> int:
        """How many stages come before the whole-frame ones (0 without previews)."""
        return sum(1 for stage in self.stages if stage.part is Part.PREVIEW)

    def stage_ids(self) -> List[str]:
        return [stage.id for stage in self.stages]

    def assign(self, present: Sequence[int], viewed: Union[None, int, Sequence[int]] = None,
               part: Part = Part.WHOLE) -> Dict[int, int]:
        """Stage index (in `stages`) of each present slice's fetch of `part` ({} when no stage has it);
        the slices nearest the `viewed` ones (one or several views) join the anchors."""
        present = sorted(present)
        views = [viewed] if isinstance(viewed, (int, float)) else list(viewed or ())
        placed: Dict[int, int] = {}
        for index, stage in enumerate(self.stages):
            if stage.part is part:
                placed.update({k: index for k in stage.select(present, placed, views)})
        return placed
