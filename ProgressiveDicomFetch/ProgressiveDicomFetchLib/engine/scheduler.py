"""Which slice the next free connection fetches: the scheduling rules of docs/architecture.md.

Pure bookkeeping under one lock, no threads or I/O, so every decision is unit-tested exactly.
- breadth-first: the series whose next slice is in the lowest stage goes first, ties to the one
  with fewest requests in flight: every series gets its coarse preview before any refines.
- depth-first: series one after another, in the order they were added.
- focus boost (engine/focus_policy.py): the visible set (every series on screen, the one touched
  last) shares the free connections by the policy's shares: last touched most, the other visible
  next, the rest what is left. Within a shown series its viewed slices come first, then the
  nearest, coarse to fine. Before any boost, the coverage floor: every series' first coarse whole
  volume (anchors and the first decimated stage) goes first.
A slice with an in-plane preview is fetched in two parts (stage_plan.Part.PREVIEW, Part.WHOLE); its
whole part waits until its preview is done (an HTJ2K rest continues the preview's bytes), and until
the series' preview stages are, so every slice shows its preview before any is exact (the slice in
view excepted: it gets its preview, then its whole frame, first). A series may ask for whole frames
beside its previews (`add(beside=True)`): connections of their own then take, through
`next_beside()`, whole parts in the series' order, while the other connections fetch the previews;
a slice whose preview was not asked yet gets only its whole frame.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Set, Tuple

from .focus_policy import LAST_TOUCHED, REST, TIERS, FocusPolicy, Shown, ViewedSlice, VisibleSet, floor_stage
from .stage_plan import Part, Pick, StagePlan

BREADTH_FIRST = "breadth-first"
DEPTH_FIRST = "depth-first"
STRATEGIES = (BREADTH_FIRST, DEPTH_FIRST)

Key = Tuple[int, int, Part]  # (volume index, slice k, part)


@dataclass(frozen=True)
class Assignment:
    """One slice (or one part of it) handed to a worker; give it back with `done()` or `retry()`."""

    series: str
    volume: int
    k: int
    stage: int
    part: Part = Part.WHOLE


@dataclass
class _Series:
    order_index: int
    stage_of: Dict[Key, int]  # every slice to fetch and its stage (fixed once added)
    queued: Dict[Key, int]  # not handed out yet
    outstanding: List[int]  # per stage: queued + in flight
    spread: Dict[Key, int]  # unfocused order within a stage: bisection, so every write halves a gap
    group_of: Dict[Key, str] = field(default_factory=dict)  # slices whose frames one request can carry
    blocked: Set[Key] = field(default_factory=set)  # queued whole parts whose preview is not done
    preview_stages: int = 0  # stages of previews (0: this series has none)
    beside: bool = False  # whole frames may come beside its previews (next_beside)
    in_flight: int = 0
    pending: bool = False  # announced, slices not known yet (metadata on its way)
    finished_stages: int = 0  # stages 0..finished_stages-1 are complete
    viewed: Tuple[Tuple[int, int], ...] = ()  # shown: the (volume, k) in view (present ones)
    order: List[Key] = field(default_factory=list)
    stale: bool = True

    def rank(self, key: Key):
        """Viewed slices first, then coarse to fine; in a viewed volume nearest a viewed slice
        first, elsewhere in bisection order (refines evenly and keeps each refill small)."""
        volume, k, part = key
        distances = [abs(k - viewed_k) for viewed_volume, viewed_k in self.viewed if viewed_volume == volume]
        order = min(distances) if distances else self.spread[key]
        return ((volume, k) not in self.viewed, self.queued[key], not distances, volume, order, k, part)

    def waits(self, key: Key) -> bool:
        """A whole part waits for its own preview, and for the previews of every slice (so each slice
        shows something before any is exact), except the slice in view."""
        if key not in self.blocked and (key[2] != Part.WHOLE or self.finished_stages >= self.preview_stages):
            return False
        return key in self.blocked or (key[0], key[1]) not in self.viewed

    def ready(self) -> bool:
        """Some queued part may be handed out now."""
        if not self.blocked and self.finished_stages >= self.preview_stages:
            return bool(self.queued)
        return any(not self.waits(key) for key in self.queued)

    def first_ready_stage(self) -> int:
        return min(stage for key, stage in self.queued.items() if not self.waits(key))

    def sorted_order(self) -> List[Key]:
        """Queued keys, last in line first (pop() takes from the end); may hold keys handed out since."""
        if self.stale:
            self.order = sorted(self.queued, key=self.rank, reverse=True)
            self.stale = False
        return self.order

    def previewing(self) -> bool:
        return self.finished_stages < self.preview_stages

    def next_beside(self) -> Optional[Key]:
        """The first whole part in line whose own preview is not under way (left in the order:
        skipped once handed out). A preview still queued is dropped: its whole frame comes now."""
        for key in reversed(self.sorted_order()):
            preview = (key[0], key[1], Part.PREVIEW)
            if key[2] is Part.WHOLE and key in self.queued and (key not in self.blocked or preview in self.queued):
                if preview in self.queued:  # its stage ends with the next done() (the whole part's at the latest)
                    self.outstanding[self.queued.pop(preview)] -= 1
                    self.blocked.discard(key)
                return key
        return None

    def next_key(self) -> Optional[Key]:
        self.sorted_order()
        waiting = []
        try:
            while self.order:
                key = self.order.pop()
                if key not in self.queued:
                    continue
                if self.waits(key):
                    waiting.append(key)
                else:
                    return key
            return None
        finally:
            self.order.extend(reversed(waiting))  # blocked parts keep their place in line


def _spread_ranks(stage_of: Dict[Key, int], anchor_stages: Set[int]) -> Dict[Key, int]:
    """Order within each (volume, stage): anchors middle first then the ends; other stages in
    bisection order 0, n/2, n/4, 3n/4, ... (bit-reversed positions)."""
    groups: Dict[Tuple[int, int], List[Key]] = {}
    for key, stage in stage_of.items():
        groups.setdefault((key[0], stage), []).append(key)
    ranks: Dict[Key, int] = {}
    for (_, stage), keys in groups.items():
        keys.sort()
        if stage in anchor_stages:
            middle = keys[len(keys) // 2][1]
            ranks.update({key: rank for rank, key in enumerate(sorted(keys, key=lambda k: (k[1] != middle, k[1])))})
            continue
        ranks.update(zip(keys, bisection_ranks(len(keys))))
    return ranks


def bisection_ranks(count: int) -> List[int]:
    """The rank of each of `count` positions in bisection order 0, n/2, n/4, 3n/4, ... (its
    bit-reversed position): taken in rank order, every new position halves a gap."""
    bits = max(1, (count - 1).bit_length())
    return [int(format(position, f"0{bits}b")[::-1], 2) for position in range(count)]


class Scheduler:
    """Thread-safe; `next()` never blocks (the engine waits on its own condition)."""

    def __init__(self, connections: int, strategy: str = BREADTH_FIRST, focus_share: float = 1.0,
                 plan: StagePlan = StagePlan(), policy: Optional[FocusPolicy] = None) -> None:
        """`focus_share` is the older name of `policy.connection_cap` (used when no policy is given)."""
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
        if connections < 1:
            raise ValueError(f"connections must be at least 1, not {connections}")
        self.policy = policy if policy is not None else FocusPolicy(connection_cap=focus_share)
        self.connections = connections
        self.strategy = strategy
        self.focus_share = self.policy.connection_cap
        self.plan = plan
        self._anchor_stages = {i for i, stage in enumerate(plan.stages) if stage.pick is Pick.ANCHORS}
        self._floor = floor_stage(plan) if self.policy.coverage_floor else None
        self._series: Dict[str, _Series] = {}
        self._visible = VisibleSet()
        self._pass = [0.0] * len(TIERS)  # stride scheduling: a tier's virtual time, +1/share a request
        self._virtual_time = 0.0
        self._lock = threading.Lock()

    # -- setup ------------------------------------------------------------------------------
    def expect(self, series: str) -> None:
        """Announce a series before its slices are known: depth-first keeps its place in line."""
        with self._lock:
            if series in self._series:
                raise ValueError(f"series {series} is already scheduled")
            self._series[series] = _Series(order_index=len(self._series), stage_of={}, queued={}, outstanding=[],
                                           spread={}, pending=True)

    def add(self, series: str, volumes: Sequence[Tuple[int, Sequence[int]]],
            groups: Optional[Sequence[Dict[int, str]]] = None, previews: bool = False, beside: bool = False) -> None:
        """A series with its volumes: (slice count K, present slice indices) each, in volume order.
        `groups` (per volume, k -> id) names slices that may share a request: frames of one
        multi-frame instance. Slices without a group are always handed out alone. `previews`: each
        slice is fetched in two parts, its preview in the plan's preview stages, then the whole.
        `beside`: its whole parts may also go to `next_beside()` while its previews come."""
        with self._lock:
            announced = self._series.get(series)
            if announced is not None and not announced.pending:
                raise ValueError(f"series {series} is already scheduled")
            viewed = self._visible.slices(series)
            parts = tuple(Part) if previews else (Part.WHOLE,)
            stage_of: Dict[Key, int] = {}
            for volume, (_, present) in enumerate(volumes):
                hint = [k for v, k in viewed if v == volume]
                for part in parts:
                    stage_of.update({(volume, k, part): stage for k, stage in self.plan.assign(present, hint, part).items()})
            outstanding = [0] * len(self.plan.stages)
            for stage in stage_of.values():
                outstanding[stage] += 1
            order = announced.order_index if announced is not None else len(self._series)
            group_of = {(v, k, Part.WHOLE): g for v, mapping in enumerate(groups or ()) for k, g in mapping.items()}
            entry = _Series(order_index=order, stage_of=stage_of, queued=dict(stage_of), outstanding=outstanding,
                            spread=_spread_ranks(stage_of, self._anchor_stages),
                            group_of=group_of,
                            blocked={(v, k, Part.WHOLE) for (v, k, part) in stage_of if part is Part.PREVIEW},
                            preview_stages=self.plan.preview_stages if previews else 0,
                            beside=previews and beside)
            self._series[series] = entry
            self._point_view(entry, viewed)
            self._advance_stages(entry)

    # -- decisions --------------------------------------------------------------------------
    def next(self) -> Optional[Assignment]:
        """The slice the next free connection should fetch, or None when nothing is queued."""
        batch = self.next_batch(1)
        return batch[0] if batch else None

    def next_batch(self, limit: int) -> List[Assignment]:
        """The next slice plus up to `limit - 1` queued slices of its group (same instance) and
        stage, in the series' order: one request for several frames of a multi-frame object."""
        with self._lock:
            chosen = self._choose()
            if chosen is None:
                return []
            entry = self._series[chosen]
            key = entry.next_key()
            if key is None:  # cannot happen: _choose only picks series with queued slices
                return []
            keys = [key]
            group = entry.group_of.get(key)
            if group is not None and limit > 1:
                stage = entry.queued[key]
                mates = [k for k in entry.queued if k != key and entry.group_of.get(k) == group
                         and entry.queued[k] == stage]
                keys += sorted(mates, key=entry.rank)[:limit - 1]
            batch = []
            for taken in keys:
                batch.append(Assignment(chosen, taken[0], taken[1], entry.queued.pop(taken), taken[2]))
            entry.in_flight += len(batch)
            return batch

    def next_beside(self) -> Optional[Assignment]:
        """A whole frame for a connection beside the previews: of the first series (in the order
        added) that asked for them and is still in its preview stages, its first whole part in line
        whose preview is not in flight. None: nothing of the kind now."""
        with self._lock:
            for name, entry in sorted(self._series.items(), key=lambda item: item[1].order_index):
                key = entry.next_beside() if entry.beside and entry.previewing() else None
                if key is not None:
                    entry.in_flight += 1
                    return Assignment(name, key[0], key[1], entry.queued.pop(key), key[2])
            return None

    def wants_beside(self) -> bool:
        """Some series that asked for frames beside is in its preview stages with work queued."""
        with self._lock:
            return any(entry.beside and entry.previewing() and entry.queued for entry in self._series.values())

    def _choose(self) -> Optional[str]:
        waiting = {name: s for name, s in self._series.items() if s.ready()}
        if not waiting:
            return None
        if not self._visible:
            return self._base_choice(waiting, set(self._series))
        if self._floor is not None:  # every series' first coarse volume before any boost
            below = {name: s for name, s in waiting.items() if s.first_ready_stage() <= self._floor}
            if below:  # breadth-first over the floor, ties to the series on screen
                return min(below, key=lambda name: (below[name].first_ready_stage(), below[name].in_flight,
                                                    self._visible.tier(name), below[name].order_index))
        tiers: Dict[int, Dict[str, _Series]] = {tier: {} for tier in TIERS}
        for name, entry in waiting.items():
            tiers[self._visible.tier(name)][name] = entry
        last = tiers[LAST_TOUCHED]
        cap = max(1, math.floor(self.policy.connection_cap * self.connections + 1e-9))
        if last and next(iter(last.values())).in_flight >= cap and len(waiting) > 1:
            last.clear()  # the rest of the connections go to the others
        rest = {name for name in self._series if self._visible.tier(name) == REST}
        if self.strategy == DEPTH_FIRST and tiers[REST] and self._base_choice(tiers[REST], rest) is None:
            tiers[REST].clear()  # the next series in line is still getting its metadata
        shared = [tier for tier in TIERS if tiers[tier] and self.policy.share(tier) > 0]
        if shared:
            for tier in shared:  # a tier that had nothing ready does not bank turns
                self._pass[tier] = max(self._pass[tier], self._virtual_time)
            tier = min(shared, key=lambda t: (self._pass[t], t))
            self._virtual_time = self._pass[tier]
            self._pass[tier] += 1.0 / self.policy.share(tier)
        else:
            tier = next((t for t in TIERS if tiers[t]), None)
            if tier is None:
                return None
        if tier == REST:
            return self._base_choice(tiers[REST], rest)
        chosen = tiers[tier]
        return min(chosen, key=lambda name: (chosen[name].first_ready_stage(), chosen[name].in_flight,
                                             chosen[name].order_index))

    def _base_choice(self, waiting: Dict[str, _Series], line: Set[str]) -> Optional[str]:
        """Breadth-first or depth-first among `waiting` (series with work ready); depth-first waits
        for the first series of `line` that still has work (it may be getting its metadata)."""
        if self.strategy == DEPTH_FIRST:
            first = min((s for name, s in self._series.items() if name in line and (s.queued or s.pending)),
                        key=lambda s: s.order_index)
            if first.pending or not first.ready():
                return None
            return min(waiting, key=lambda name: waiting[name].order_index)
        return min(waiting, key=lambda name: (waiting[name].first_ready_stage(), waiting[name].in_flight,
                                              waiting[name].order_index))

    # -- outcomes ---------------------------------------------------------------------------
    def done(self, assignment: Assignment) -> List[int]:
        """Record a finished slice; returns the stage indices this completed, in order."""
        with self._lock:
            entry = self._series.get(assignment.series)
            if entry is None:
                return []
            entry.in_flight -= 1
            entry.outstanding[assignment.stage] -= 1
            if assignment.part is Part.PREVIEW:
                entry.blocked.discard((assignment.volume, assignment.k, Part.WHOLE))
            return self._advance_stages(entry)

    def retry(self, assignment: Assignment) -> None:
        """Put a failed slice back, first in line for its series."""
        with self._lock:
            entry = self._series.get(assignment.series)
            if entry is None:
                return
            entry.in_flight -= 1
            key = (assignment.volume, assignment.k, assignment.part)
            entry.queued[key] = assignment.stage
            entry.order.append(key)

    def drop(self, series: str) -> int:
        """Cancel a series: its queued slices are dropped (those in flight finish); returns how many."""
        with self._lock:
            entry = self._series.get(series)
            if entry is None:
                return 0
            dropped = len(entry.queued)
            for stage in entry.queued.values():
                entry.outstanding[stage] -= 1
            entry.queued.clear()
            entry.blocked.clear()
            entry.pending = False
            return dropped

    def set_focus(self, series: Optional[str], viewed_slice: Optional[float] = None, volume: int = 0) -> None:
        """Boost `series` alone (None: no boost); the next free connection follows it."""
        slices = () if viewed_slice is None else ((volume, float(viewed_slice)),)
        self.set_visible([Shown(series, slices)] if series is not None else [], series)

    def set_visible(self, shown: Sequence[Shown], last_touched: Optional[str] = None) -> None:
        """What is on screen now (see focus_policy.VisibleSet); the next free connection follows it."""
        visible = VisibleSet.of(shown, last_touched)
        with self._lock:
            for name in set(self._visible.series()) | set(visible.series()):
                if name in self._series:
                    self._point_view(self._series[name], visible.slices(name))
            self._visible = visible
            self._pass = [0.0] * len(TIERS)
            self._virtual_time = 0.0

    @staticmethod
    def _point_view(entry: _Series, viewed: Sequence[ViewedSlice]) -> None:
        """Aim the series' order at its viewed slices (the nearest present ones), or back to its stage order."""
        aimed = []
        for volume, k in viewed:
            present = [key[1] for key in entry.stage_of if key[0] == volume]
            if present:
                aimed.append((volume, min(present, key=lambda p: (abs(p - k), p))))
        entry.viewed = tuple(dict.fromkeys(aimed))
        entry.stale = True

    def _advance_stages(self, entry: _Series) -> List[int]:
        finished = []
        while entry.finished_stages < len(entry.outstanding) and entry.outstanding[entry.finished_stages] == 0:
            finished.append(entry.finished_stages)
            entry.finished_stages += 1
        return finished

    # -- queries ----------------------------------------------------------------------------
    @property
    def focus(self) -> Optional[str]:
        """The last touched series (None: no boost)."""
        return self._visible.last_touched

    @property
    def visible(self) -> VisibleSet:
        return self._visible

    def idle(self) -> bool:
        """Nothing queued and nothing in flight."""
        with self._lock:
            return all(not s.queued and not s.in_flight and not s.pending for s in self._series.values())

    def in_flight(self, series: str) -> int:
        with self._lock:
            return self._series[series].in_flight

    def queued(self, series: str) -> int:
        with self._lock:
            return len(self._series[series].queued)

    def current_stage(self, series: str) -> Optional[int]:
        """The first stage not yet complete (None when all are)."""
        with self._lock:
            entry = self._series[series]
            return entry.finished_stages if entry.finished_stages < len(entry.outstanding) else None
