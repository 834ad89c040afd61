"""Nodes say what is real (real MRML via slicer-core, the real Orthanc): through a load, a cancel
and a failure, the state attribute, the name suffix, the description, the subject hierarchy item,
the real-slice fractions, and `DICOM.instanceUIDs` only once the volume is exact."""
from __future__ import annotations

import time

import pytest
from servers.fault_relay import STATUS, Fault

from ProgressiveDicomFetchLib.dicomweb import DicomwebServer, RetryPolicy
from ProgressiveDicomFetchLib.scene.partial_marking import (COARSENESS_ATTRIBUTE, EXACT_FRACTION_ATTRIBUTE,
                                                            REAL_FRACTION_ATTRIBUTE,
                                                            STATE_ATTRIBUTE, NodeMark, NodeState, partial_nodes,
                                                            save_warning)
from ProgressiveDicomFetchLib.engine import ProgressiveFetchEngine
from ProgressiveDicomFetchLib.panel import progress_row
from ProgressiveDicomFetchLib.scene.scene_loader import SceneLoader
from ProgressiveDicomFetchLib.volume import Quality
from ProgressiveDicomFetchLib.volume.coarseness import level_name

UIDS = "DICOM.instanceUIDs"


@pytest.fixture()
def make_loader(slicer_module):
    """SceneLoader(ProgressiveFetchEngine(server, ...)) on the test's scene, closed at the end of the test."""
    made = []

    def make(server, connections=4, **kwargs):
        made.append(SceneLoader(ProgressiveFetchEngine(server, connections=connections), **kwargs))
        return made[-1]

    yield make
    for loader in made:
        loader.close()


def item_state(slicer, node):
    shn = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
    item = shn.GetItemByDataNode(node)
    uids = shn.GetItemUID(item, slicer.vtkMRMLSubjectHierarchyConstants.GetDICOMInstanceUIDName())
    return shn.GetItemAttribute(item, STATE_ATTRIBUTE), uids


def real_fractions(load):
    qualities = load.volume.qualities()
    return (qualities >= Quality.SUBRESOLUTION).mean(), (qualities == Quality.FULL).mean()


def test_a_load_is_marked_loading_then_complete(slicer_module, make_loader, orthanc, sample_small):
    slicer = slicer_module
    info = sample_small.series("ct_thin")
    base = f"{info.series_number}: {info.description}"
    loader = make_loader(DicomwebServer(orthanc.dicomweb_url), watch_focus=False, connections=1)
    (node,) = loader.load(info.study_uid, [info.series_uid])
    assert node.GetAttribute(STATE_ATTRIBUTE) == "loading" and node.GetName() == base + " (loading)"
    assert node.GetAttribute(UIDS) is None and item_state(slicer, node) == ("loading", "")
    assert "not data" in node.GetDescription()
    assert partial_nodes(slicer.mrmlScene) == [node]
    assert loader.wait(timeout=60)
    (load,) = loader.engine.loads(info.series_uid)
    assert node.GetAttribute(STATE_ATTRIBUTE) == "complete" and node.GetName() == base
    assert node.GetDescription() in ("", None) and node.GetAttribute(REAL_FRACTION_ATTRIBUTE) is None
    uids = " ".join(load.geometry.instance_uids)
    assert node.GetAttribute(UIDS) == uids and item_state(slicer, node) == ("complete", uids)
    assert sorted(uids.split()) == sorted(info.sop_instance_uids)
    assert partial_nodes(slicer.mrmlScene) == [] and save_warning([]) == ""


def test_a_cancelled_load_states_its_real_fraction_and_never_claims_the_series(slicer_module, make_loader, orthanc, sample_small):
    slicer = slicer_module
    info = sample_small.series("ct_thin")
    loader = make_loader(DicomwebServer(orthanc.dicomweb_url), watch_focus=False, connections=1)
    (node,) = loader.load(info.study_uid, [info.series_uid])
    limit = time.monotonic() + 60
    while loader.progress()[0].counts.get("FULL", 0) < 5:
        assert time.monotonic() < limit
        loader.process()
        time.sleep(0.005)  # a host's tick yields (Slicer's QTimer): a busy loop here starves the worker of the GIL
    loader.engine.cancel(info.series_uid)
    assert loader.wait(timeout=10)
    (load,) = loader.engine.loads(info.series_uid)
    real, exact = real_fractions(load)
    assert 0 < real < 1
    assert node.GetAttribute(STATE_ATTRIBUTE) == "cancelled"
    assert float(node.GetAttribute(REAL_FRACTION_ATTRIBUTE)) == pytest.approx(real, abs=1e-4)
    assert float(node.GetAttribute(EXACT_FRACTION_ATTRIBUTE)) == pytest.approx(exact, abs=1e-4)
    assert node.GetName().endswith(f" (cancelled: {int(real * 100)}% real)")
    # The node carries the series' coarseness level (issue 26's measure), as its description says
    level = level_name(load.volume.coarseness([f is not None for f in load.geometry.slices]).level)
    assert node.GetAttribute(COARSENESS_ATTRIBUTE) == level and f"coarseness {level}" in node.GetDescription()
    assert node.GetAttribute(UIDS) is None and item_state(slicer, node) == ("cancelled", "")
    assert partial_nodes(slicer.mrmlScene) == [node]
    assert progress_row(loader.progress()[0]).state_text == f"cancelled ({int(real * 100)}% real)", "the panel row"
    warning = save_warning(partial_nodes(slicer.mrmlScene))
    assert node.GetName() in warning and f"{int(real * 100)}% of the slices" in warning


@pytest.mark.timeout(120)
def test_a_failed_load_is_marked_failed_with_its_real_fraction(slicer_module, make_loader, orthanc_relay, sample_small):
    slicer = slicer_module
    info = sample_small.series("ct_sagittal")
    orthanc_relay.add(Fault(STATUS, f"{info.series_uid}/.*/frames/", times=None, skip=6, status=500))
    server = DicomwebServer(orthanc_relay.dicomweb_url, retry=RetryPolicy(attempts=2, backoff_s=0.05))
    loader = make_loader(server, watch_focus=False, connections=2)
    (node,) = loader.load(info.study_uid, [info.series_uid])
    assert loader.wait(timeout=90)
    assert loader.progress()[0].state == "failed"
    (load,) = loader.engine.loads(info.series_uid)
    real, _ = real_fractions(load)
    assert 0 < real < 1
    assert node.GetAttribute(STATE_ATTRIBUTE) == "failed"
    assert float(node.GetAttribute(REAL_FRACTION_ATTRIBUTE)) == pytest.approx(real, abs=1e-4)
    assert node.GetName().endswith(f" (failed: {int(real * 100)}% real)") and "Loading failed" in node.GetDescription()
    assert node.GetAttribute(UIDS) is None and item_state(slicer, node) == ("failed", "")


def test_a_name_the_user_changed_is_kept(slicer_module, make_loader, orthanc, sample_small):
    info = sample_small.series("ct_thick")
    loader = make_loader(DicomwebServer(orthanc.dicomweb_url), watch_focus=False)
    (node,) = loader.load(info.study_uid, [info.series_uid])
    node.SetName("my name")
    assert loader.wait(timeout=60)
    assert node.GetName() == "my name" and node.GetAttribute(STATE_ATTRIBUTE) == "complete"


@pytest.mark.compat
def test_marks_round_down_and_a_complete_series_with_gaps_says_so():
    counts = {Quality.MISSING: 0, Quality.FILLED: 1, Quality.SUBRESOLUTION: 0, Quality.LOSSY: 0, Quality.FULL: 199}
    loading = NodeMark.of_volume(NodeState.LOADING, counts)
    assert loading.real_fraction == pytest.approx(0.995) and loading.name_suffix() == " (loading)"
    assert NodeMark.of_volume(NodeState.CANCELLED, counts).name_suffix() == " (cancelled: 99% real)"
    gaps = NodeMark.of_volume(NodeState.COMPLETE, counts)
    assert gaps.name_suffix() == "" and "gaps" in gaps.description()
    exact = NodeMark.of_volume(NodeState.COMPLETE, {Quality.FULL: 3})
    assert exact.description() == "" and not exact.partial
    assert [NodeState.of_series(s) for s in ("waiting", "covered", "complete", "cancelled", "failed")] == [
        NodeState.LOADING, NodeState.LOADING, NodeState.COMPLETE, NodeState.CANCELLED, NodeState.FAILED]


def test_node_names_are_unique_and_unnamed_series_are_named_as_slicer_does(slicer_module, make_loader, orthanc, sample_small):
    from types import SimpleNamespace

    from pydicom.dataset import Dataset

    from ProgressiveDicomFetchLib.scene.volume_node import series_node_name

    def named(**attributes):
        dataset = Dataset()
        for keyword, value in attributes.items():
            setattr(dataset, keyword, value)
        return series_node_name(SimpleNamespace(geometry=SimpleNamespace(dataset=dataset, label="", series_uid="1.2")), 0, 1)

    assert named(SeriesNumber=3) == "3: Unnamed Series" and named() == "Unnamed Series"
    assert named(SeriesNumber=3, SeriesDescription="AX") == "3: AX"
    info = sample_small.series("ct_thick")
    loaders = [make_loader(DicomwebServer(orthanc.dicomweb_url), watch_focus=False) for _ in range(2)]
    (first,), (second,) = [loader.load(info.study_uid, [info.series_uid]) for loader in loaders]
    assert all(loader.wait(timeout=60) for loader in loaders)
    base = f"{info.series_number}: {info.description}"
    assert (first.GetName(), second.GetName()) == (base, base + "_1")


def test_subject_hierarchy_items_carry_what_slicers_dicom_plugins_set(slicer_module, make_loader, orthanc, sample_small):
    from ProgressiveDicomFetchLib.scene.subject_hierarchy import ItemNaming, place_in_hierarchy

    slicer = slicer_module
    constants = slicer.vtkMRMLSubjectHierarchyConstants
    info, study = sample_small.series("ct_thick"), sample_small.study("ct")
    loader = make_loader(DicomwebServer(orthanc.dicomweb_url), watch_focus=False)
    (node,) = loader.load(info.study_uid, [info.series_uid])
    shn = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
    study_item = shn.GetItemParent(shn.GetItemByDataNode(node))
    patient_item = shn.GetItemParent(study_item)
    assert shn.GetItemAttribute(study_item, constants.GetDICOMStudyInstanceUIDTagName()) == info.study_uid
    assert constants.GetDICOMPatientCommentsAttributeName() in shn.GetItemAttributeNames(patient_item)
    assert shn.GetItemName(study_item) == study.study_description, "no naming options on slicer-core: plain names"
    assert loader.wait(timeout=60)
    # The user's naming settings (Slicer's subject hierarchy plugin handler), applied to new items.
    other = slicer.util.addVolumeFromArray(slicer.util.arrayFromVolume(node).copy(), name="copy")
    dataset = loader.engine.loads(info.series_uid)[0].geometry.dataset.copy()
    dataset.StudyInstanceUID, dataset.PatientID, dataset.StudyID = "1.2.3.9", "PID-9", "S9"
    item = place_in_hierarchy(slicer, slicer.mrmlScene, other, dataset, "1.2.3.9.1", ItemNaming(True, False, True, True))
    new_study = shn.GetItemParent(item)
    assert shn.GetItemName(shn.GetItemParent(new_study)).endswith(" (PID-9)")
    assert shn.GetItemName(new_study) == f"{study.study_description} (S9) ({dataset.StudyDate})"
