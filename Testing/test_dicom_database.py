"""Slicer DICOM database import (scene/dicom_database.py). Slicer cannot run here, so: (1) every
DICOMLib call and `dicomDatabase` attribute the module uses is checked statically against what
Slicer 5.8.1 and 5.12.3 offer (Testing/data/slicer_dicom_api.json, recorded from Slicer's source by
Testing/slicer_dicom_api.py); (2) the detection of series already in the database and the import pipeline run against a
stand-in database object and a recorded indexing call (Slicer's ctkDICOMDatabase and
DICOMUtils.importDicom exist only in Slicer); the files themselves come from a real server."""
from __future__ import annotations

import ast
import inspect
import json
import sys
import types
from pathlib import Path

import pytest

from ProgressiveDicomFetchLib.scene import dicom_database

API = json.loads((Path(__file__).parent / "data" / "slicer_dicom_api.json").read_text())
RELEASES = ("v5.8.1", "v5.12.3")


def used_names(module) -> tuple:
    """(database attributes read, DICOMUtils calls with their positional argument counts)."""
    tree = ast.parse(inspect.getsource(module))
    attributes, calls = set(), {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "database":
            attributes.add(node.attr)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                isinstance(node.func.value, ast.Name) and node.func.value.id == "DICOMUtils":
            calls[node.func.attr] = len(node.args)
    return attributes, calls


def api_problems(module) -> list:
    attributes, calls = used_names(module)
    problems = []
    for release in RELEASES:
        offered = API["releases"][release]
        for attribute in sorted(attributes - set(offered["database_attributes"])):
            problems.append(f"{release}: dicomDatabase.{attribute} is not used anywhere in DICOMUtils.py")
        for name, count in calls.items():
            params = offered["functions"].get(name)
            if params is None:
                problems.append(f"{release}: DICOMUtils.{name} does not exist")
            elif count > len(params):
                problems.append(f"{release}: DICOMUtils.{name} takes {len(params)} arguments, {count} given")
    return problems


def test_the_import_uses_only_what_slicer_5_8_and_5_12_offer():
    attributes, calls = used_names(dicom_database)
    assert attributes == {"isOpen", "databaseDirectory", "instancesForSeries"}
    assert calls == {"importDicom": 2, "loadSeriesByUID": 1}
    assert api_problems(dicom_database) == []
    for release in RELEASES:  # what importFromDICOMWeb does, and the order of importDicom's arguments
        assert API["releases"][release]["functions"]["importDicom"][:2] == ["dicomDataDir", "dicomDatabase"]


def test_the_static_check_finds_a_name_slicer_does_not_have():
    broken = types.ModuleType("broken")
    source = inspect.getsource(dicom_database).replace("instancesForSeries", "instancesOfSeries").replace(
        "importDicom(str(folder), database)", "importDicoms(str(folder), database)")
    problems = []
    original = inspect.getsource
    inspect.getsource = lambda module: source if module is broken else original(module)
    try:
        problems = api_problems(broken)
    finally:
        inspect.getsource = original
    assert any("instancesOfSeries" in p for p in problems) and any("importDicoms does not exist" in p for p in problems)


class StandInDatabase:
    """Answers like ctkDICOMDatabase for the three names the module uses."""

    def __init__(self, directory: str, instances: dict, open_: bool = True) -> None:
        self.databaseDirectory = directory
        self.isOpen = open_
        self._instances = instances

    def instancesForSeries(self, series_uid: str):  # noqa: N802 (ctk's name)
        return list(self._instances.get(series_uid, []))


def test_series_already_in_the_database_are_detected(tmp_path):
    db = StandInDatabase(str(tmp_path), {"1.2.3": ["1.2.3.1", "1.2.3.2", "1.2.3.3"]})
    assert dicom_database.series_in_database(db, "1.2.3", ["1.2.3.1", "1.2.3.2"])
    assert not dicom_database.series_in_database(db, "1.2.3", ["1.2.3.1", "1.2.3.9"])  # one missing: fetch
    assert not dicom_database.series_in_database(db, "1.2.4", ["1.2.4.1"])
    assert not dicom_database.series_in_database(db, "1.2.3", [])
    assert not dicom_database.series_in_database(StandInDatabase(str(tmp_path), {}, open_=False), "1.2.3", ["1.2.3.1"])
    assert dicom_database.files_folder(db) == tmp_path / "DICOMweb" / "ProgressiveDicomFetch"
    assert dicom_database.files_folder(None) is None


def test_import_hands_the_folder_to_dicomutils(tmp_path, monkeypatch):
    """The call DICOMLib makes (here a recording stand-in for Slicer's DICOMLib package)."""
    calls = []
    dicomlib = types.ModuleType("DICOMLib")
    dicomlib.DICOMUtils = types.SimpleNamespace(importDicom=lambda folder, db=None: calls.append((folder, db)) or True)
    monkeypatch.setitem(sys.modules, "DICOMLib", dicomlib)
    db = StandInDatabase(str(tmp_path), {})
    assert dicom_database.import_folder(tmp_path, db)
    assert calls == [(str(tmp_path), db)]


def _poll_until_done(imports, importer, timeout=120.0):
    import time
    finished, deadline = [], time.monotonic() + timeout
    while imports.busy() and time.monotonic() < deadline:
        finished += imports.poll(importer)
        time.sleep(0.05)
    return finished + imports.poll(importer)


@pytest.mark.compat
def test_completed_series_get_their_files_from_a_worker_then_are_indexed(static_server, sample_small, tmp_path):
    """Real server, real files; only the indexing call (Slicer's) is recorded instead of run."""
    from ProgressiveDicomFetchLib.cache import FrameCache
    from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
    from ProgressiveDicomFetchLib.retrieve import load_series
    db = StandInDatabase(str(tmp_path / "db"), {})
    server = DicomwebServer(static_server.dicomweb_url)
    info = sample_small.series("ct_thick")
    cache = FrameCache(tmp_path / "cache")
    load_series(server, info.study_uid, info.series_uid, cache=cache)  # as the panel's load does
    assert len(cache.keys()) == info.num_instances
    imports = dicom_database.DatabaseImports(db, cache)
    indexed = []

    def importer(folder, database):
        indexed.append((folder, len(list(folder.glob("*.dcm"))), database))
        return True

    assert imports.add(server, info.study_uid, info.series_uid)
    assert imports.add(server, info.study_uid, "1.2.3.999")  # unknown: its error is reported, nothing indexed
    jobs = {job.series_uid: job for job in _poll_until_done(imports, importer)}
    folder = tmp_path / "db" / "DICOMweb" / "ProgressiveDicomFetch" / info.study_uid / info.series_uid
    assert indexed == [(folder, info.num_instances, db)]
    assert jobs[info.series_uid].imported and jobs[info.series_uid].report.written == info.num_instances
    # the files replace the cached frames: built from them, then released (no double disk use)
    assert jobs[info.series_uid].report.frames_from_cache == jobs[info.series_uid].report.frames_released == info.num_instances
    assert cache.keys() == [] and jobs[info.series_uid].report.network_bytes == 0
    assert not jobs["1.2.3.999"].imported and "1.2.3.999" in jobs["1.2.3.999"].error
    assert not dicom_database.DatabaseImports(StandInDatabase(str(tmp_path), {}, open_=False)).add(
        server, info.study_uid, info.series_uid)


SERIES_ATTRIBUTES = ("DICOM.Modality", "DICOM.SeriesNumber", "DICOM.FrameOfReferenceUID", "DICOM.SeriesDescription",
                     "DICOM.SeriesDate", "DICOM.SeriesTime", "DICOM.ContentDate", "DICOM.ContentTime",
                     "DICOM.Manufacturer", "DICOM.Model", "DICOM.ReferencedInstanceUIDs")


def test_node_and_items_carry_the_attributes_of_slicers_dicom_plugins(slicer_module, orthanc, sample_small):
    """What DICOMPlugin.addSeriesInSubjectHierarchy and DICOMScalarVolumePlugin set (Slicer 5.8-5.12),
    on real MRML (slicer-core)."""
    from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
    from ProgressiveDicomFetchLib.scene.scene_loader import SceneLoader
    slicer = slicer_module
    info = sample_small.series("ct_thick")
    loader = SceneLoader(DicomwebServer(orthanc.dicomweb_url), watch_focus=False)
    try:
        (node,) = loader.load(info.study_uid, [info.series_uid])
        geometry = loader.engine.loads(info.series_uid)[0].geometry
    finally:
        loader.close()
    numbers = {f.sop_instance_uid: f.instance_number for f in geometry.frames}
    assert node.GetAttribute("DICOM.instanceNumbers").split() == [str(numbers[u]) for u in geometry.instance_uids]
    shn = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
    item = shn.GetItemByDataNode(node)
    names = set(shn.GetItemAttributeNames(item))
    assert set(SERIES_ATTRIBUTES) <= names, set(SERIES_ATTRIBUTES) - names
    assert shn.GetItemAttribute(item, "DICOM.Model") == str(geometry.dataset.get("ManufacturerModelName", ""))
    patient = shn.GetItemParent(shn.GetItemParent(item))
    assert "DICOM.PatientComments" in set(shn.GetItemAttributeNames(patient))
