"""The in-plane benchmark's series: `sample_full`'s ct_thin (240 x 512 x 512, native) transcoded to
HTJ2K lossless in RPCL order (resolution first, so a prefix of each frame decodes at reduced
resolution) as a new series, and a static DICOMweb tree of it for nginx (which honours Range).

Made once and cached under the test cache (`<cache>/bench/in_plane/`): reused while the sample
generator is unchanged and every frame file is there; otherwise rebuilt in a temp folder next to it
and swapped into place, so an interrupted run never leaves half a series.
"""
from __future__ import annotations

import copy
import json
import logging
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

HERE = Path(__file__).resolve().parent
SOURCE_PROFILE = "full"
SOURCE_KEY = "ct_thin"
RECORD_NAME = "series.json"
DICOM_FOLDER = "dicom"
TREE_FOLDER = "tree"
RECORD_FORMAT = 2  # bump when BenchSeries or the files change meaning: the cache is then rebuilt
UID_TAG = "in-plane benchmark"  # new deterministic Series/SOP UIDs: not the source's

logger = logging.getLogger(__name__)


@dataclass
class BenchSeries:
    """The transcoded series as written (what the runs fetch, and the truth they are judged by)."""

    root: str  # the cache folder: dicom/, tree/, series.json
    generator_version: str  # of the sample set it came from
    study_uid: str
    series_uid: str
    slices: int
    rows: int
    columns: int
    transfer_syntax: str
    frame_bytes: int  # the served frame files, all frames (what a fetch without overlap receives as bodies)
    native_bytes: int  # the same frames uncompressed
    truth: str  # the sample manifest's truth volume (modality values, [k, row, column])
    record_format: int = 0

    @property
    def tree_root(self) -> Path:
        return Path(self.root) / TREE_FOLDER

    def load_truth(self) -> np.ndarray:
        return np.load(self.truth)


def default_root() -> Path:
    from support import CACHE_DIR

    return CACHE_DIR / "bench" / "in_plane"


def _native_frame(ds) -> np.ndarray:
    dtype = np.dtype("<i2" if int(ds.PixelRepresentation) else "<u2")
    return np.frombuffer(ds.PixelData, dtype=dtype).reshape(int(ds.Rows), int(ds.Columns))


def _transcode(sources, out_dir: Path, series_uid: str) -> None:
    """One HTJ2K RPCL file per source file, new SOP UIDs."""
    import pydicom
    from pydicom.encaps import encapsulate

    from ProgressiveDicomFetchLib.sampledata.transcode import RPCL, encode_htj2k, progression_order
    from ProgressiveDicomFetchLib.sampledata.writer import save_dataset, uid
    from ProgressiveDicomFetchLib.transfer_syntax import HTJ2K_LOSSLESS_RPCL

    for n, path in enumerate(sources):
        ds = pydicom.dcmread(str(path))
        if ds.file_meta.TransferSyntaxUID.is_compressed:
            raise ValueError(f"{path}: the benchmark transcodes native frames, not {ds.file_meta.TransferSyntaxUID}")
        codestream = encode_htj2k(_native_frame(ds), int(ds.BitsStored))
        if progression_order(codestream) != RPCL:
            raise RuntimeError("this imagecodecs writes HTJ2K in progression order "
                               f"{progression_order(codestream)}, not RPCL ({RPCL}): no usable prefixes")
        copied = copy.deepcopy(ds)
        sop = uid(UID_TAG, "sop", series_uid, n)
        copied.SOPInstanceUID = sop
        copied.file_meta.MediaStorageSOPInstanceUID = sop
        copied.file_meta.TransferSyntaxUID = HTJ2K_LOSSLESS_RPCL
        copied.SeriesInstanceUID = series_uid
        copied.SeriesDescription = f"{ds.get('SeriesDescription', '')} HTJ2K RPCL (in-plane benchmark)"[:64]
        copied.PixelData = encapsulate([codestream])
        copied["PixelData"].VR = "OB"
        copied["PixelData"].is_undefined_length = True
        copied.LossyImageCompression = "00"
        save_dataset(copied, out_dir / f"IM{n + 1:05d}.dcm")


def _valid(root: Path, version: str) -> bool:
    try:
        record = BenchSeries(**json.loads((root / RECORD_NAME).read_text()))
        from ProgressiveDicomFetchLib.sampledata.static_tree import StaticTree

        tree = StaticTree.load(root / TREE_FOLDER)
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return (record.record_format == RECORD_FORMAT and record.generator_version == version and Path(record.truth).is_file()
            and len(tree.instances) == record.slices
            and all(tree.frame_path(i, n).is_file() for i in tree.instances for n in range(1, i.frames + 1)))


def _build(root: Path, target: Path) -> None:
    from fixtures_data import cached_sample

    from ProgressiveDicomFetchLib.sampledata.sample_cache import swap_into_place
    from ProgressiveDicomFetchLib.sampledata.static_tree import write_static_tree
    from ProgressiveDicomFetchLib.sampledata.writer import uid
    from ProgressiveDicomFetchLib.transfer_syntax import HTJ2K_LOSSLESS_RPCL

    started = time.monotonic()
    sample = cached_sample(SOURCE_PROFILE)
    info = sample.series(SOURCE_KEY)
    series_uid = uid(UID_TAG, "series", info.series_uid)
    tmp = Path(tempfile.mkdtemp(prefix=".in_plane-tmp-", dir=str(root)))
    try:
        (tmp / DICOM_FOLDER).mkdir()
        _transcode(sample.files(SOURCE_KEY), tmp / DICOM_FOLDER, series_uid)
        files = sorted((tmp / DICOM_FOLDER).glob("*.dcm"))
        tree = write_static_tree(files, tmp / TREE_FOLDER)
        for instance in tree.instances:  # name the files where they will be, not in the temp folder
            instance.source = str(target / Path(instance.source).relative_to(tmp))
        tree.save()
        frame_bytes = sum(tree.frame_path(i, n).stat().st_size for i in tree.instances for n in range(1, i.frames + 1))
        record = BenchSeries(str(target), sample.generator_version, info.study_uid, series_uid, info.num_slices,
                             info.rows, info.columns, HTJ2K_LOSSLESS_RPCL, frame_bytes,
                             info.num_slices * info.rows * info.columns * 2, str(info.truth_path(sample.root)), RECORD_FORMAT)
        (tmp / RECORD_NAME).write_text(json.dumps(asdict(record), indent=1))
        swap_into_place(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(str(tmp), ignore_errors=True)
    logger.info("HTJ2K RPCL copy of %s written to %s in %.1f s", SOURCE_KEY, target, time.monotonic() - started)


def ensure_series(root: Optional[Path] = None) -> BenchSeries:
    """The cached series, made first when missing or stale (generating the full sample set if needed)."""
    from fixtures_data import cached_sample

    from ProgressiveDicomFetchLib.sampledata.sample_cache import exclusive

    target = Path(root) if root is not None else default_root()
    base = target.parent
    base.mkdir(parents=True, exist_ok=True)
    version = cached_sample(SOURCE_PROFILE).generator_version
    with exclusive(base / f".{target.name}.lock"):
        if _valid(target, version):
            logger.info("HTJ2K RPCL series reused from %s", target)
        else:
            _build(base, target)
    return BenchSeries(**json.loads((target / RECORD_NAME).read_text()))
