"""Series metadata parsed with shared elements (dicomweb/metadata.SeriesParser) gives the same
datasets as pydicom parsing every instance on its own, on real metadata from Orthanc and from a
static tree, for every series kind of the small sample."""
from __future__ import annotations

import copy

import pydicom
import pytest

from ProgressiveDicomFetchLib.dicomweb import DicomwebServer
from ProgressiveDicomFetchLib.dicomweb.metadata import SeriesParser, parse_instance

pytestmark = pytest.mark.compat  # also run on Slicer 5.8's stack (Makefile)


def _inline(item):
    """What pydicom parses of an instance: the elements without bulk data."""
    return {tag: element for tag, element in item.items()
            if not (isinstance(element, dict) and "BulkDataURI" in element)}


def _same(ds, reference):
    assert sorted(ds.keys()) == sorted(reference.keys())
    for tag in reference.keys():
        assert ds[tag] == reference[tag], f"{tag}: {ds[tag]!r} != {reference[tag]!r}"


@pytest.mark.parametrize("which", ["orthanc", "static_server"])
def test_shared_elements_parse_like_pydicom_alone(request, sample_small, which):
    server = DicomwebServer(request.getfixturevalue(which).dicomweb_url)
    checked = 0
    for info in sample_small.series_list:
        items = server.get_json(f"studies/{info.study_uid}/series/{info.series_uid}/metadata")
        parser = SeriesParser("test")
        for item in items:
            record = parser.parse(item)
            reference = pydicom.Dataset.from_json(_inline(item))
            _same(record.dataset, reference)
            assert record == parse_instance(item)
            checked += 1
    assert checked >= 100


def test_an_element_missing_or_different_in_a_later_instance_is_its_own(sample_small):
    items = [pydicom.dcmread(str(path), stop_before_pixels=True).to_json_dict()
             for path in sample_small.files("ct_thick")[:3]]
    later = copy.deepcopy(items[1])
    del later["00180050"]  # SliceThickness: in the first instance, not in this one
    later["00280030"]["Value"] = [0.25, 0.5]  # PixelSpacing differs from the first's
    later["00091001"] = {"vr": "LO", "Value": ["only here"]}  # a private element only this one has
    parser = SeriesParser("test")
    first = parser.parse(items[0]).dataset
    second = parser.parse(later).dataset
    assert "SliceThickness" in first and "SliceThickness" not in second
    assert [float(v) for v in second.PixelSpacing] == [0.25, 0.5]
    assert [float(v) for v in first.PixelSpacing] != [0.25, 0.5]
    assert second[0x00091001].value == "only here" and 0x00091001 not in first
    _same(second, pydicom.Dataset.from_json(later))
    # the shared elements are the first instance's objects (the point of sharing)
    assert second["StudyInstanceUID"] is first["StudyInstanceUID"]
