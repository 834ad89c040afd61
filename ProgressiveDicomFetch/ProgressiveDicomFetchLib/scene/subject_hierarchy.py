"""The series item under its patient and study, named and attributed as Slicer's DICOM plugins do
(Modules/Scripted/DICOMLib/DICOMPlugin.py addSeriesInSubjectHierarchy), reusing existing items."""
from __future__ import annotations

from typing import Any


def place_in_hierarchy(slicer: Any, scene: Any, node: Any, dataset: Any, series_uid: str, instance_uids: str) -> int:
    """Create (or reuse) patient > study > series items; returns the series item."""
    constants = slicer.vtkMRMLSubjectHierarchyConstants
    shn = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    item = shn.GetItemByDataNode(node)
    if item == shn.GetInvalidItemID():
        item = shn.CreateItem(shn.GetSceneItemID(), node)
    shn.SetItemUID(item, constants.GetDICOMUIDName(), series_uid)
    shn.SetItemUID(item, constants.GetDICOMInstanceUIDName(), instance_uids)

    def text(keyword: str) -> str:
        return str(dataset.get(keyword, "") or "")

    shn.SetItemAttribute(item, constants.GetDICOMSeriesModalityAttributeName(), text("Modality"))
    shn.SetItemAttribute(item, constants.GetDICOMSeriesNumberAttributeName(), text("SeriesNumber"))
    shn.SetItemAttribute(item, constants.GetDICOMFrameOfReferenceUIDAttributeName(), text("FrameOfReferenceUID"))
    for name, keyword in (("SeriesDescription", "SeriesDescription"), ("SeriesDate", "SeriesDate"),
                          ("SeriesTime", "SeriesTime"), ("ContentDate", "ContentDate"), ("ContentTime", "ContentTime"),
                          ("Manufacturer", "Manufacturer"), ("Model", "ManufacturerModelName")):
        shn.SetItemAttribute(item, constants.GetDICOMAttributePrefix() + name, text(keyword))
    shn.SetItemAttribute(item, constants.GetDICOMReferencedInstanceUIDsAttributeName(), "")  # images refer to none

    study_uid = text("StudyInstanceUID")
    patient_id = text("PatientID") or f"Patient-{study_uid}"
    new_patient = not shn.GetItemByUID(constants.GetDICOMUIDName(), patient_id)
    new_study = not shn.GetItemByUID(constants.GetDICOMUIDName(), study_uid)
    slicer.vtkSlicerSubjectHierarchyModuleLogic.InsertDicomSeriesInHierarchy(shn, patient_id, study_uid, series_uid)
    if new_patient:
        patient = shn.GetItemByUID(constants.GetDICOMUIDName(), patient_id)
        name = text("PatientName") or "No name"
        shn.SetItemAttribute(patient, constants.GetDICOMPatientNameAttributeName(), name)
        shn.SetItemAttribute(patient, constants.GetDICOMPatientIDAttributeName(), patient_id)
        shn.SetItemAttribute(patient, constants.GetDICOMPatientSexAttributeName(), text("PatientSex"))
        shn.SetItemAttribute(patient, constants.GetDICOMPatientBirthDateAttributeName(), text("PatientBirthDate"))
        shn.SetItemAttribute(patient, constants.GetDICOMPatientCommentsAttributeName(), text("PatientComments"))
        shn.SetItemName(patient, name)
    if new_study:
        study = shn.GetItemByUID(constants.GetDICOMUIDName(), study_uid)
        description = text("StudyDescription") or "No study description"
        shn.SetItemAttribute(study, constants.GetDICOMStudyDescriptionAttributeName(), description)
        shn.SetItemAttribute(study, constants.GetDICOMStudyInstanceUIDAttributeName(), study_uid)
        shn.SetItemAttribute(study, constants.GetDICOMStudyIDAttributeName(), text("StudyID"))
        shn.SetItemAttribute(study, constants.GetDICOMStudyDateAttributeName(), text("StudyDate"))
        shn.SetItemAttribute(study, constants.GetDICOMStudyTimeAttributeName(), text("StudyTime"))
        shn.SetItemName(study, description)
    return item
