"""The series item under its patient and study, named and attributed as Slicer's DICOM plugins do
(Modules/Scripted/DICOMLib/DICOMPlugin.py addSeriesInSubjectHierarchy), reusing existing items,
with the user's naming settings (patient ID, birth date, study ID, study date in item names)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ItemNaming:
    """What the user chose to show in patient and study item names (Subject hierarchy settings)."""

    patient_id: bool = False
    patient_birth_date: bool = False
    study_id: bool = False
    study_date: bool = False

    @classmethod
    def from_slicer(cls, slicer: Any) -> "ItemNaming":
        """The settings of Slicer's subject hierarchy plugin handler; plain names without the GUI (slicer-core)."""
        handler_class = getattr(slicer, "qSlicerSubjectHierarchyPluginHandler", None)
        if handler_class is None:
            return cls()
        handler = handler_class.instance()
        return cls(*(bool(getattr(handler, f"display{what}InSubjectHierarchyItemName", False))
                     for what in ("PatientID", "PatientBirthDate", "StudyID", "StudyDate")))

    def patient_name(self, name: str, patient_id: str, birth_date: str) -> str:
        return name + (f" ({patient_id})" if self.patient_id else "") + (
            f" ({birth_date})" if self.patient_birth_date and birth_date else "")

    def study_name(self, description: str, study_id: str, study_date: str) -> str:
        return description + (f" ({study_id})" if self.study_id else "") + (
            f" ({study_date})" if self.study_date and study_date else "")


def place_in_hierarchy(slicer: Any, scene: Any, node: Any, dataset: Any, series_uid: str,
                       naming: ItemNaming = ItemNaming()) -> int:
    """Create (or reuse) patient > study > series items; returns the series item (its instance UIDs
    are set by scene/partial_marking.py once the volume is complete)."""
    constants = slicer.vtkMRMLSubjectHierarchyConstants
    shn = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    item = shn.GetItemByDataNode(node)
    if item == shn.GetInvalidItemID():
        item = shn.CreateItem(shn.GetSceneItemID(), node)
    shn.SetItemUID(item, constants.GetDICOMUIDName(), series_uid)

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
        shn.SetItemName(patient, naming.patient_name(name, patient_id, text("PatientBirthDate")))
    if new_study:
        study = shn.GetItemByUID(constants.GetDICOMUIDName(), study_uid)
        description = text("StudyDescription") or "No study description"
        shn.SetItemAttribute(study, constants.GetDICOMStudyDescriptionAttributeName(), description)
        shn.SetItemAttribute(study, constants.GetDICOMStudyInstanceUIDTagName(), study_uid)  # as the plugins do
        shn.SetItemAttribute(study, constants.GetDICOMStudyIDTagName(), text("StudyID"))
        shn.SetItemAttribute(study, constants.GetDICOMStudyDateAttributeName(), text("StudyDate"))
        shn.SetItemAttribute(study, constants.GetDICOMStudyTimeAttributeName(), text("StudyTime"))
        shn.SetItemName(study, naming.study_name(description, text("StudyID"), text("StudyDate")))
    return item
