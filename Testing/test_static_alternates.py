"""Server alternates in the static DICOMweb tree (issue 10): written by write_static_tree, served by nginx.

Expected values come from the generator's truth volumes or from pydicom, and the block means are
recomputed here in floating point, not with the writer's integer code.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Tuple

import numpy as np
import pydicom
import pytest
import requests

from fixtures_servers import ALTERNATES, NO_ALTERNATES_KEY, require_jpeg_ls
from support import missing

from ProgressiveDicomFetchLib.pixels import PixelDescription, decode_frame
from ProgressiveDicomFetchLib.sampledata.manifest import SampleManifest
from ProgressiveDicomFetchLib.sampledata.static_alternates import LOSSY_NEAR
from ProgressiveDicomFetchLib.sampledata.static_tree import RECORD_NAME, StaticTree, write_static_tree
from ProgressiveDicomFetchLib.sampledata.writer import save_dataset

try:
    import imagecodecs
except ImportError:  # Slicer 5.8's venv: none of these tests is marked compat, so none runs there
    imagecodecs = None


@pytest.fixture(autouse=True)
def _jpeg_ls_decoder():
    if imagecodecs is None:
        missing("imagecodecs (the JPEG-LS decoder these checks read the alternates with)")


JLS = "image/jls"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
IDENTITY = {"Accept-Encoding": "identity"}


def block_means(values: np.ndarray, factor: int = 4) -> np.ndarray:
    """Mean of factor x factor blocks (edges repeated), rounded half up."""
    rows, columns = values.shape
    padded = np.pad(values.astype(np.float64), ((0, -rows % factor), (0, -columns % factor)), mode="edge")
    blocks = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor)
    return np.floor(blocks.mean(axis=(1, 3)) + 0.5)


def truth_stored(manifest: SampleManifest, key: str, index: int) -> Tuple[pydicom.Dataset, np.ndarray]:
    """The instance `index` of a single-frame series and its truth slice as stored values."""
    ds = pydicom.dcmread(str(manifest.files(key)[index]), stop_before_pixels=True)
    m = np.asarray(manifest.series(key).ijk_to_lps)
    k = int(np.rint(np.linalg.solve(m, np.append(np.asarray(ds.ImagePositionPatient, float), 1.0))[2]))
    modality = manifest.load_truth(key)[k].astype(np.float64)
    stored = np.rint((modality - float(ds.RescaleIntercept)) / float(ds.RescaleSlope))
    return ds, stored


def url_of(server, instance, name: str, number: int) -> str:
    return f"{server.dicomweb_url}/{instance.alternate_dir(name)}/{number}"


def instance_of(server, manifest: SampleManifest, key: str, index: int = 0):
    sop = manifest.series(key).sop_instance_uids[index]
    return next(i for i in server.tree.instances if i.sop_uid == sop)


# ---------------------------------------------------------------- over nginx

@pytest.mark.parametrize("index", [0, 17, -1])
def test_thumbnail_is_jpegls_of_the_block_means_of_the_truth(static_server_alternates, sample_small, index):
    ds, stored = truth_stored(sample_small, "ct_thick", index)
    instance = instance_of(static_server_alternates, sample_small, "ct_thick", index)
    reply = requests.get(url_of(static_server_alternates, instance, "jlsThumbnail", 1), headers=IDENTITY, timeout=10)
    assert reply.status_code == 200 and reply.headers["Content-Type"] == JLS
    thumbnail = imagecodecs.jpegls_decode(reply.content)
    assert thumbnail.shape == (int(ds.Rows) // 4, int(ds.Columns) // 4) == (32, 32)
    np.testing.assert_array_equal(thumbnail, block_means(stored))
    assert len(reply.content) < len(static_server_alternates.tree.frame_path(instance, 1).read_bytes()) / 8


def test_thumbnail_of_each_frame_of_a_multiframe_object(static_server_alternates, sample_small):
    info = sample_small.series("enhanced_ct")
    frames = pydicom.dcmread(str(sample_small.files("enhanced_ct")[0])).pixel_array
    instance = instance_of(static_server_alternates, sample_small, "enhanced_ct")
    assert instance.frames == len(frames) == info.num_frames and instance.alternates == list(ALTERNATES)
    session = requests.Session()
    for number in (1, 2, len(frames)):
        reply = session.get(url_of(static_server_alternates, instance, "jlsThumbnail", number), timeout=10)
        np.testing.assert_array_equal(imagecodecs.jpegls_decode(reply.content), block_means(frames[number - 1]))


def test_signed_thumbnail_is_the_twos_complement_pattern_and_has_no_lossy(static_server_alternates, sample_small):
    """edge_signed: PixelRepresentation 1, BitsStored 12; the client's decoder sign-extends the pattern."""
    path = sample_small.files("edge_signed")[0]
    ds = pydicom.dcmread(str(path))
    stored = ds.pixel_array
    assert stored.min() < 0, "the series must hold negative stored values for this test to mean anything"
    instance = instance_of(static_server_alternates, sample_small, "edge_signed")
    assert instance.alternates == ["jlsThumbnail"]
    body = requests.get(url_of(static_server_alternates, instance, "jlsThumbnail", 1), timeout=10).content
    assert body[body.find(b"\xff\xf7") + 4] == int(ds.BitsStored), "JPEG-LS precision P = BitsStored"
    raw = imagecodecs.jpegls_decode(body)
    assert raw.min() >= 0 and raw.max() < 1 << int(ds.BitsStored)
    rows, columns = (-(-int(ds.Rows) // 4), -(-int(ds.Columns) // 4))
    pixels = PixelDescription(rows, columns, int(ds.BitsAllocated), int(ds.BitsStored), int(ds.HighBit), 1)
    np.testing.assert_array_equal(decode_frame(body, JPEG_LS_LOSSLESS, pixels, JLS), block_means(stored))
    assert requests.get(url_of(static_server_alternates, instance, "lossy", 1), timeout=10).status_code == 404


@pytest.mark.parametrize("index", [0, -1])
def test_lossy_is_full_size_within_near_of_the_stored_values(static_server_alternates, sample_small, index):
    ds, stored = truth_stored(sample_small, "ct_thick", index)
    instance = instance_of(static_server_alternates, sample_small, "ct_thick", index)
    reply = requests.get(url_of(static_server_alternates, instance, "lossy", 1), headers=IDENTITY, timeout=10)
    assert reply.status_code == 200 and reply.headers["Content-Type"] == JLS
    lossy = imagecodecs.jpegls_decode(reply.content).astype(np.float64)
    assert lossy.shape == stored.shape == (int(ds.Rows), int(ds.Columns))
    error = np.abs(lossy - stored)
    assert error.max() <= LOSSY_NEAR
    assert error.mean() > 0, "near-lossless must lose something, or it is not the lossy copy"
    assert len(reply.content) < len(static_server_alternates.tree.frame_path(instance, 1).read_bytes())


def test_missing_alternates_and_unknown_names_are_404(static_server_alternates, sample_small):
    server = static_server_alternates
    bare = instance_of(server, sample_small, NO_ALTERNATES_KEY)
    assert bare.alternates == [] and bare.frames == 1
    assert requests.get(f"{server.dicomweb_url}/{bare.frames_dir}/1", timeout=10).status_code == 200
    with pytest.raises(KeyError, match="no 'lossy' alternate"):
        server.tree.alternate_path(bare, "lossy", 1)
    rich = instance_of(server, sample_small, "ct_thick")
    assert rich.alternates == list(ALTERNATES) == server.tree.alternates
    probes = [url_of(server, bare, name, 1) for name in ALTERNATES]
    probes += [url_of(server, rich, name, 1) for name in ("jls", "thumbnail", "jlsthumbnail", "rendered")]
    probes += [url_of(server, rich, "jlsThumbnail", 2), url_of(server, rich, "lossy", 0)]
    for url in probes:
        assert requests.get(url, timeout=10).status_code == 404, url
    assert requests.get(url_of(server, rich, "lossy", 1), timeout=10).status_code == 200


def test_range_and_etag_on_an_alternate(static_server_alternates, sample_small):
    server = static_server_alternates
    instance = instance_of(server, sample_small, "ct_thin", 40)
    whole = server.tree.alternate_path(instance, "lossy", 1).read_bytes()
    url = url_of(server, instance, "lossy", 1)
    full = requests.get(url, headers=IDENTITY, timeout=10)
    assert full.status_code == 200 and full.content == whole and "Content-Encoding" not in full.headers
    ranged = requests.get(url, headers={"Range": "bytes=0-99"}, timeout=10)
    assert ranged.status_code == 206 and ranged.content == whole[:100]
    assert ranged.headers["Content-Range"] == f"bytes 0-99/{len(whole)}"
    assert ranged.headers["Content-Type"] == JLS
    current = requests.get(url, headers={"Range": "bytes=100-", "If-Range": full.headers["ETag"]}, timeout=10)
    assert current.status_code == 206 and current.content == whole[100:]
    assert requests.get(url, headers={"If-None-Match": full.headers["ETag"]}, timeout=10).status_code == 304


# ---------------------------------------------------------------- the writer alone

def test_unknown_alternate_name_is_refused_before_writing(sample_small, tmp_path):
    out = tmp_path / "tree"
    with pytest.raises(ValueError, match=r"unknown alternate name\(s\) \['jls'\].*jlsThumbnail"):
        write_static_tree(sample_small.files("ct_thick")[:1], out, alternates=("jlsThumbnail", "jls"))
    assert not out.exists()


def _odd_sized_multiframe(path: Path, values: np.ndarray) -> Path:
    """A minimal multi-frame greyscale object whose sides do not divide by 4."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "OT", 1, 1
    ds.NumberOfFrames, ds.Rows, ds.Columns = values.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = values.astype("<u2").tobytes()
    save_dataset(ds, path)
    return path


def test_odd_sizes_pad_by_edge_repetition_and_old_records_still_load(tmp_path):
    require_jpeg_ls()
    rng = np.random.default_rng(10)
    values = rng.integers(0, 4096, size=(2, 18, 21), dtype=np.uint16)
    values[1, :, -1] = 4095  # saturated edge: lossy must clamp, not wrap past BitsStored
    source = _odd_sized_multiframe(tmp_path / "odd.dcm", values)
    tree = write_static_tree([source], tmp_path / "tree", alternates=ALTERNATES)
    instance = tree.instances[0]
    assert instance.alternates == list(ALTERNATES) and instance.frames == 2
    for number in (1, 2):
        thumbnail = imagecodecs.jpegls_decode(tree.alternate_path(instance, "jlsThumbnail", number).read_bytes())
        assert thumbnail.shape == (5, 6)
        np.testing.assert_array_equal(thumbnail, block_means(values[number - 1]))
        lossy = imagecodecs.jpegls_decode(tree.alternate_path(instance, "lossy", number).read_bytes())
        assert lossy.max() < 4096
        assert np.abs(lossy.astype(int) - values[number - 1]).max() <= LOSSY_NEAR
    # A record written before alternates existed has no "alternates" keys.
    record = json.loads((tree.root / RECORD_NAME).read_text())
    del record["alternates"]
    for item in record["instances"]:
        del item["alternates"]
    (tree.root / RECORD_NAME).write_text(json.dumps(record))
    old = StaticTree.load(tree.root)
    assert old.alternates == [] and old.instances[0].alternates == []
    assert old.frame_path(old.instances[0], 2) == tree.frame_path(instance, 2)
