"""Fuzzing the parsers that read what a server sends: DICOM JSON metadata -> records -> geometry,
and multipart/related bodies. Whatever comes in, only the documented errors may come out
(BadResponse, GeometryError and the other ValueErrors the engine reports per series, or
VolumeTooLargeError) - never IndexError, KeyError, TypeError, AttributeError...

Inputs start from real metadata of the generated CT series and are then damaged by hypothesis.
"""
from __future__ import annotations

import copy
import json

import pydicom
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from ProgressiveDicomFetchLib.dicomweb import BadResponse  # noqa: E402
from ProgressiveDicomFetchLib.dicomweb.frames import body_parts, parse_multipart, split_media_type, syntax_of  # noqa: E402
from ProgressiveDicomFetchLib.dicomweb.metadata import parse_instance  # noqa: E402
from ProgressiveDicomFetchLib.geometry import series_geometry  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about the damaged values
DOCUMENTED = (BadResponse, ValueError, MemoryError)  # GeometryError, DecodeError... are ValueErrors
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=True)

TAGS = ["00280010", "00280011", "00200032", "00200037", "00280030", "00280100", "00280101", "00280102",
        "00280103", "00281052", "00281053", "00280008", "00080018", "0020000E", "00280004", "00280002",
        "00200013", "00080008", "00180050", "00080060", "52009229", "52009230", "00280009"]
VRS = ["US", "SS", "DS", "IS", "UI", "CS", "SQ", "FD", "FL", "UL", "LO", "XX", ""]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)
elements = st.one_of(
    json_values,
    st.fixed_dictionaries({"vr": st.sampled_from(VRS), "Value": st.lists(json_values, max_size=4)}),
    st.fixed_dictionaries({"vr": st.sampled_from(VRS), "Value": st.lists(
        st.dictionaries(st.sampled_from(TAGS), st.fixed_dictionaries(
            {"vr": st.sampled_from(VRS), "Value": st.lists(json_values, max_size=3)}), max_size=3), max_size=2)}),
)
DELETE = object()
mutations = st.lists(st.tuples(st.integers(0, 2), st.sampled_from(TAGS), st.one_of(st.just(DELETE), elements)),
                     min_size=1, max_size=5)


@pytest.fixture(scope="module")
def base_items(sample_small):
    """Three instances of a real CT series as DICOM JSON (no pixel data)."""
    items = []
    for path in sample_small.files("ct_thick")[:3]:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        items.append(ds.to_json_dict())
    return items


def parse_all(items):
    records = [parse_instance(item, "fuzz") for item in items]
    return series_geometry(records, "1.2.3")


def test_the_unmodified_metadata_parses(base_items):
    geometry = parse_all(copy.deepcopy(base_items))
    assert geometry.volumes and geometry.volumes[0].shape[0] == 3


@FUZZ
@given(changes=mutations)
def test_damaged_metadata_gives_only_documented_errors(base_items, changes):
    items = copy.deepcopy(base_items)
    for index, tag, value in changes:
        if value is DELETE:
            items[index].pop(tag, None)
        else:
            items[index][tag] = value
    json.dumps(items)  # what a server could really send
    try:
        parse_all(items)
    except DOCUMENTED:
        pass


@FUZZ
@given(item=st.dictionaries(st.text(max_size=9), elements, max_size=6))
def test_arbitrary_json_objects_as_instances(item):
    try:
        parse_all([item])
    except DOCUMENTED:
        pass


FRAGMENTS = [b"--b1", b"--b1--", b"\r\n", b"\r\n\r\n", b"\n\n", b"Content-Type: image/jls", b"Content-Type:",
             b"--", b"\n", b"\x00\xff", b"data", b" ", b"transfer-syntax=1.2.3"]
CONTENT_TYPES = st.one_of(
    st.none(), st.text(max_size=40),
    st.sampled_from(['multipart/related; type="application/octet-stream"; boundary=b1', "multipart/related",
                     'multipart/related; boundary=""', "multipart/related; boundary=b1; type=\"a/b; x=\"",
                     "application/octet-stream", "image/jls", 'multipart/related; boundary="b1"']))
bodies = st.one_of(st.binary(max_size=200),
                   st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=8)), max_size=20).map(b"".join))


@FUZZ
@given(body=bodies, content_type=CONTENT_TYPES)
def test_multipart_parsing_gives_parts_or_bad_response(body, content_type):
    for parse in (parse_multipart, body_parts):
        try:
            parts = parse(body, content_type, "fuzz")
        except BadResponse:
            continue
        for part in parts:
            assert isinstance(part.data, bytes) and isinstance(part.content_type, str)
            assert len(part.data) <= len(body)


@FUZZ
@given(value=st.one_of(st.none(), st.text(max_size=60)))
def test_media_type_parsing_never_raises(value):
    media, params = split_media_type(value)
    assert isinstance(media, str) and isinstance(params, dict)
    syntax_of(value)
