"""Frames of one series grouped into volumes: one orientation, size and pixel spacing per volume,
localizers and single odd frames set aside, repeated positions (phases) split into volumes."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

from .frames import FrameGeometry, GeometryError
from .grid import SPACING_EPSILON_MM, normal_of

ORIENTATION_DECIMALS = 4  # cosines equal to 1e-4 are one orientation
SPACING_DECIMALS = 4


@dataclass
class Stack:
    """Frames that form one volume, sorted along the slice normal; `label` tells stacks apart."""

    frames: List[FrameGeometry]
    label: str = ""


def group_frames(frames: List[FrameGeometry]) -> Tuple[List[Stack], List[Tuple[str, str]]]:
    """(stacks, set_aside) where set_aside holds (SOPInstanceUID, reason) for frames left out."""
    groups: Dict[tuple, List[FrameGeometry]] = defaultdict(list)
    grouped: Dict[str, List[FrameGeometry]] = defaultdict(list)  # 2D images, cine loops, dose grids
    for frame in frames:
        if frame.group:
            grouped[frame.group].append(frame)
            continue
        key = (tuple(np.round(frame.orientation, ORIENTATION_DECIMALS)), frame.rows, frame.columns,
               tuple(np.round(frame.pixel_spacing, SPACING_DECIMALS)))
        groups[key].append(frame)
    ordered = sorted(groups.values(), key=len, reverse=True)
    stacks: List[Stack] = []
    set_aside: List[Tuple[str, str]] = []
    own = sorted(grouped.values(), key=lambda g: (g[0].instance_number is None, g[0].instance_number or 0))
    for group in own:  # never stacked with others: one volume each, frames in their own order
        label = group[0].group_label if len(own) + len(ordered) > 1 else ""
        normal = normal_of(group[0].orientation)
        stacks.append(Stack(sorted(group, key=lambda f: float(np.asarray(f.position) @ normal)), label))
    for number, group in enumerate(ordered):
        localizer = all("LOCALIZER" in f.image_type for f in group)
        if number > 0 and (len(group) == 1 or localizer):
            reason = "localizer" if localizer else "a single image with another orientation or size"
            set_aside += [(f.sop_instance_uid, f"{reason} ({f.rows}x{f.columns}, orientation "
                           f"{_round(f.orientation)})") for f in group]
            continue
        label = "" if number == 0 else f"orientation {_round(group[0].orientation)}"
        stacks += _split_phases(group, label)
    return stacks, set_aside


def _split_phases(group: List[FrameGeometry], label: str) -> List[Stack]:
    """One stack per phase when positions repeat; never interleave phases into one volume."""
    normal = normal_of(group[0].orientation)
    distance = {id(f): float(np.asarray(f.position) @ normal) for f in group}
    ordered = sorted(group, key=lambda f: distance[id(f)])
    positions = _position_bins(ordered, distance)
    if all(len(frames) == 1 for frames in positions):
        return [Stack(ordered, label)]
    key = _phase_attribute(positions)
    if key is None:
        raise GeometryError("frames repeat positions but no attribute (TemporalPositionIdentifier, TriggerTime, "
                            "AcquisitionNumber, ...) tells the phases apart")
    phases: Dict[str, List[FrameGeometry]] = defaultdict(list)
    for frame in ordered:
        phases[dict(frame.phase_keys)[key]].append(frame)
    stacks = []
    for value in sorted(phases, key=_numeric_first):
        name = f"{key} {value}"
        stacks.append(Stack(phases[value], f"{label}, {name}" if label else name))
    return stacks


def _position_bins(ordered: List[FrameGeometry], distance: Dict[int, float]) -> List[List[FrameGeometry]]:
    bins: List[List[FrameGeometry]] = []
    for frame in ordered:
        if bins and abs(distance[id(bins[-1][0])] - distance[id(frame)]) < SPACING_EPSILON_MM:
            bins[-1].append(frame)
        else:
            bins.append([frame])
    return bins


def _phase_attribute(positions: List[List[FrameGeometry]]):
    """The first attribute whose values differ between the frames at every repeated position."""
    candidates = [k for k, _ in positions[0][0].phase_keys]
    for key in candidates:
        if all(len({dict(f.phase_keys).get(key) for f in frames}) == len(frames) for frames in positions):
            return key
    return None


def _numeric_first(value: str):
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def _round(values) -> str:
    return "\\".join(f"{v:g}" for v in np.round(values, 3))
