"""The real-file corpus: every file with pixel data that pydicom's wheel ships (`pydicom/data/test_files`),
each given its own series and SOP UIDs in one study (many share UIDs), and pydicom's own decoding of
it as the reference (modality LUT for greyscale, RGB for colour, the palette applied).
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pydicom

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
ROOT = "1.2.826.0.1.3680043.8.498.17"  # pydicom's UID root + this issue: stable, valid UIDs
LOSSY_SYNTAXES = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81",
                  "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.203"}


def test_files_dir() -> Path:
    return Path(pydicom.__file__).parent / "data" / "test_files"


def _uid(*parts: str) -> str:
    digest = int(hashlib.sha1("/".join(parts).encode()).hexdigest()[:15], 16)
    return f"{ROOT}.{digest}"


@dataclass
class CorpusFile:
    name: str
    path: Path  # the copy with new UIDs
    series_uid: str
    syntax: str
    photometric: str
    frames: int

    @property
    def lossy(self) -> bool:
        return self.syntax in LOSSY_SYNTAXES or "NearLossless" in self.name or "lossy" in self.name.lower()


STUDY_UID = _uid("study")


def pixel_files() -> List[Path]:
    """Every file of the shipped test set with pixel data (read leniently: some are odd on purpose)."""
    found = []
    for path in sorted(test_files_dir().iterdir()):
        if not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(str(path), force=True, stop_before_pixels=False)
        except Exception:
            continue
        if any(keyword in ds for keyword in PIXEL_KEYWORDS):
            found.append(path)
    return found


def prepare(target: Path) -> Tuple[List[CorpusFile], Dict[str, str]]:
    """Copies of every pixel file with their own series/SOP UIDs in one study, written to `target`;
    and the files pydicom cannot write back (name -> why), which are only decoded from the file."""
    target.mkdir(parents=True, exist_ok=True)
    corpus, unwritable = [], {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in pixel_files():
            ds = pydicom.dcmread(str(path), force=True)
            meta = getattr(ds, "file_meta", None)
            syntax = str(getattr(meta, "TransferSyntaxUID", "") or "") if meta is not None else ""
            series_uid, sop_uid = _uid("series", path.name), _uid("sop", path.name)
            ds.StudyInstanceUID = STUDY_UID
            ds.SeriesInstanceUID = series_uid
            ds.SOPInstanceUID = sop_uid
            if meta is not None:
                meta.MediaStorageSOPInstanceUID = sop_uid
            ds.PatientID = ds.get("PatientID") or "PYDICOM-CORPUS"
            out = target / path.name
            try:
                ds.save_as(str(out), enforce_file_format=False) if int(pydicom.__version__[0]) >= 3 \
                    else ds.save_as(str(out))
            except Exception as error:  # a file pydicom cannot write back (odd text encodings)
                unwritable[path.name] = f"{type(error).__name__}: {error}"
                out.unlink(missing_ok=True)
                continue
            frames = ds.get("NumberOfFrames", 1)
            corpus.append(CorpusFile(path.name, out, series_uid, syntax,
                                     str(ds.get("PhotometricInterpretation", "")), _int(frames)))
    return corpus, unwritable


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 1


def reference(path: Path, dataset: Optional[pydicom.Dataset] = None) -> Optional[np.ndarray]:
    """pydicom's decoding as (frames, rows, columns[, 3]): modality LUT for greyscale, RGB for colour,
    the palette applied; None when pydicom itself cannot decode the file (`dataset`: already read)."""
    from ProgressiveDicomFetchLib.pixels.compat import apply_color_lut, apply_modality_lut, convert_color_space

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dataset if dataset is not None else pydicom.dcmread(str(path), force=True)
        try:
            array = ds.pixel_array
        except Exception:
            return None
        photometric = str(ds.get("PhotometricInterpretation", "")).upper()
        frames = _int(ds.get("NumberOfFrames", 1))
        if photometric == "PALETTE COLOR":
            array = apply_color_lut(array, ds)
        elif photometric.startswith("YBR_FULL") and int(pydicom.__version__[0]) < 3 and \
                str(ds.PhotometricInterpretation).upper().startswith("YBR_FULL"):
            # pydicom 2.4 leaves YBR as it is (JPEG too, with its Pillow handler, which keeps the
            # Photometric Interpretation; a handler that converts sets it to RGB)
            array = convert_color_space(array, "YBR_FULL", "RGB")
        elif int(ds.get("SamplesPerPixel", 1)) == 1:
            array = apply_modality_lut(array, ds)
    if frames == 1:
        array = array[None]
    return np.asarray(array)
