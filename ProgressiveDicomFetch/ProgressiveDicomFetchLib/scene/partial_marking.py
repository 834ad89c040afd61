"""What a volume node says about its own voxels while it is not exact, so nobody measures,
segments or saves filled (interpolated) slices as if they were data.

Every node the loader creates carries `ProgressiveDicomFetch.State` (loading, complete, cancelled,
failed), on the node and on its subject hierarchy item; while it is not complete its name has a
suffix and its description (the Data module's Description column) says what is real. A node
that stopped early (or a complete one with gaps) keeps the fractions of real and exact slices as attributes. Slicer's DICOM
attributes that claim the instances (`DICOM.instanceUIDs`, the item's instance UIDs) are set only
once the volume is complete. See docs/slicer.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Dict, List, Mapping, Optional

from ..engine.events import SeriesStatus
from ..volume import LOADED, Quality

STATE_ATTRIBUTE = "ProgressiveDicomFetch.State"
REAL_FRACTION_ATTRIBUTE = "ProgressiveDicomFetch.RealSliceFraction"  # slices with their own pixels
EXACT_FRACTION_ATTRIBUTE = "ProgressiveDicomFetch.ExactSliceFraction"  # slices with their exact pixels
COARSENESS_ATTRIBUTE = "ProgressiveDicomFetch.Coarseness"
INSTANCE_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"


class NodeState(Enum):
    LOADING = "loading"
    COMPLETE = "complete"
    CANCELLED = "cancelled"
    FAILED = "failed"

    @classmethod
    def of_series(cls, series_state: str) -> "NodeState":
        """The node's state from the engine's series state (waiting..covered are all loading)."""
        return {SeriesStatus.COMPLETE: cls.COMPLETE, SeriesStatus.CANCELLED: cls.CANCELLED, SeriesStatus.FAILED: cls.FAILED}.get(
            series_state, cls.LOADING)


@dataclass(frozen=True)
class NodeMark:
    """A node's state and how much of it is real; `coarseness` is the series' level when known."""

    state: NodeState
    real_fraction: float
    exact_fraction: float
    coarseness: Optional[str] = None  # the level's name: "1/8", "1/4", "1/2", "exact", "< 1/8"

    @classmethod
    def of_volume(cls, state: NodeState, counts: Mapping[Quality, int], coarseness: Optional[str] = None) -> "NodeMark":
        """From a volume's per-quality slice counts (`ProgressiveVolume.counts()`)."""
        total = sum(counts.values())
        real = sum(n for quality, n in counts.items() if quality >= LOADED)
        exact = counts.get(Quality.FULL, 0)
        return cls(state, real / total if total else 0.0, exact / total if total else 0.0, coarseness)

    @property
    def partial(self) -> bool:
        return self.state is not NodeState.COMPLETE

    def name_suffix(self) -> str:
        if self.state is NodeState.COMPLETE:
            return ""
        if self.state is NodeState.LOADING:
            return " (loading)"
        return f" ({self.state.value}: {_percent(self.real_fraction)} real)"

    def description(self) -> str:
        """One sentence for the node's description (shown in the Data module)."""
        real, exact = _percent(self.real_fraction), _percent(self.exact_fraction)
        if self.state is NodeState.COMPLETE:
            return "" if self.exact_fraction >= 1.0 else (
                f"Complete: every image of the series is loaded exactly ({exact} of the slices); the others are "
                "gaps between its images, filled from their neighbours, and are not data.")
        level = f", coarseness {self.coarseness}" if self.coarseness is not None else ""
        what = {NodeState.LOADING: "Loading", NodeState.CANCELLED: "Loading cancelled",
                NodeState.FAILED: "Loading failed"}[self.state]
        return (f"{what}{level}: {real} of the slices have their own pixels ({exact} exact); "
                "the others are filled from their neighbours and are not data.")


def _percent(fraction: float) -> str:
    """Rounded down, so a volume missing one slice never reads 100 %."""
    return f"{int(fraction * 100)}%"


class NodeMarker:
    """Keeps each node's name, attributes and subject hierarchy item in step with its mark; a name
    the user changed is left alone."""

    def __init__(self, slicer: Any, scene: Any) -> None:
        self.slicer = slicer
        self.scene = scene
        self._base_names: Dict[str, str] = {}
        self._names_set: Dict[str, str] = {}
        self._marks: Dict[str, NodeMark] = {}

    def mark(self, node: Any, mark: NodeMark, instance_uids: List[str]) -> bool:
        """Apply `mark` to `node`; False when it already had it (nothing touched)."""
        node_id = node.GetID()
        if self._marks.get(node_id) == mark:
            return False
        self._marks[node_id] = mark
        base = self._base_names.setdefault(node_id, node.GetName())
        if node.GetName() == self._names_set.get(node_id, base):
            self._names_set[node_id] = base + mark.name_suffix()
            node.SetName(self._names_set[node_id])
        node.SetAttribute(STATE_ATTRIBUTE, mark.state.value)
        node.SetDescription(mark.description())
        stopped = mark.state in (NodeState.CANCELLED, NodeState.FAILED) or (
            mark.state is NodeState.COMPLETE and mark.exact_fraction < 1.0)  # a series with gaps
        for attribute, value in ((REAL_FRACTION_ATTRIBUTE, mark.real_fraction),
                                 (EXACT_FRACTION_ATTRIBUTE, mark.exact_fraction)):
            node.SetAttribute(attribute, f"{value:.4f}" if stopped else None)
        node.SetAttribute(COARSENESS_ATTRIBUTE, mark.coarseness if mark.partial else None)
        complete = mark.state is NodeState.COMPLETE
        node.SetAttribute(INSTANCE_UIDS_ATTRIBUTE, " ".join(instance_uids) if complete else None)
        self._mark_item(node, mark, " ".join(instance_uids) if complete else "")
        return True

    def _mark_item(self, node: Any, mark: NodeMark, instance_uids: str) -> None:
        shn = self.slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(self.scene)
        item = shn.GetItemByDataNode(node) if shn is not None else 0
        if not item or item == shn.GetInvalidItemID():
            return
        shn.SetItemAttribute(item, STATE_ATTRIBUTE, mark.state.value)
        if instance_uids:  # never set before: Slicer finds loaded series by these UIDs
            shn.SetItemUID(item, self.slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMInstanceUIDName(), instance_uids)

    def forget(self, node_id: str) -> None:
        for table in (self._base_names, self._names_set, self._marks):
            table.pop(node_id, None)


def partial_nodes(scene: Any) -> List[Any]:
    """Volume nodes in `scene` that this extension marked as not complete (for the save warning)."""
    nodes = scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
    found = []
    for index in range(nodes.GetNumberOfItems()):
        node = nodes.GetItemAsObject(index)
        state = node.GetAttribute(STATE_ATTRIBUTE)
        if state and state != NodeState.COMPLETE.value:
            found.append(node)
    return found


def save_warning(nodes: List[Any]) -> str:
    """What the module says when a scene is saved with partial volumes ("" when there are none)."""
    if not nodes:
        return ""
    lines = [f"- {node.GetName()}: {node.GetDescription() or node.GetAttribute(STATE_ATTRIBUTE)}" for node in nodes]
    return ("These volumes are not complete; their files hold filled slices that are not data. The scene marks "
            f"them ({STATE_ATTRIBUTE}), and a complete copy needs the loads to finish (or the series loaded "
            "again) before saving:\n" + "\n".join(lines))
