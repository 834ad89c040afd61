"""Ground truth of a generated sample set, so tests compare against the generator, not our parser.

Conventions (the same for every series):
- ``files`` are paths relative to ``SampleManifest.root``, in the order they were written.
- The truth volume ``truth/<key>.npy`` holds modality values (rescale applied) indexed
  ``[k, j, i]`` = [slice sorted along the slice normal, row, column]; a multi-phase series adds a
  leading phase axis ``[phase, k, j, i]``.
- ``ijk_to_lps`` maps (column i, row j, slice k, 1) to DICOM patient coordinates (LPS, mm).
- ``pixel_spacing`` is DICOM order: (row spacing, column spacing).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


@dataclass
class SeriesInfo:
    """One DICOM series as written, with the volume a correct loader must produce."""

    key: str
    study_key: str
    study_uid: str
    series_uid: str
    series_number: int
    modality: str
    description: str
    sop_class_uid: str
    transfer_syntax_uid: str
    files: List[str]
    sop_instance_uids: List[str]
    num_instances: int
    num_slices: int
    num_frames: int
    rows: int
    columns: int
    pixel_spacing: List[float]
    slice_thickness: Optional[float]
    ijk_to_lps: List[List[float]]
    slice_positions: List[List[float]]
    truth: str
    truth_shape: List[int]
    dtype: str
    source_key: Optional[str] = None
    expect: Dict[str, Any] = field(default_factory=dict)

    def truth_path(self, root: Union[str, Path]) -> Path:
        return Path(root) / self.truth


@dataclass
class StudyInfo:
    """Patient and study level attributes (what a QIDO search discriminates on)."""

    key: str
    study_uid: str
    patient_name: str
    patient_id: str
    patient_birth_date: str
    patient_sex: str
    study_date: str
    study_time: str
    study_description: str
    accession_number: str
    study_id: str
    referring_physician: str
    series_keys: List[str] = field(default_factory=list)


@dataclass
class SampleManifest:
    """The whole generated set; ``root`` is where it lives on disk (not stored in the JSON)."""

    root: Path
    profile: str
    generator_version: str
    studies: List[StudyInfo] = field(default_factory=list)
    series_list: List[SeriesInfo] = field(default_factory=list)
    generation_seconds: float = 0.0
    format_version: int = FORMAT_VERSION

    def series(self, key: str) -> SeriesInfo:
        for info in self.series_list:
            if info.key == key:
                return info
        raise KeyError(f"no series {key!r} in the sample set (have: {self.keys()})")

    def has(self, key: str) -> bool:
        return any(info.key == key for info in self.series_list)

    def keys(self) -> List[str]:
        return [info.key for info in self.series_list]

    def study(self, key: str) -> StudyInfo:
        for info in self.studies:
            if info.key == key:
                return info
        raise KeyError(f"no study {key!r} in the sample set")

    def files(self, key: str) -> List[Path]:
        """Absolute paths of one series' files, in written order."""
        return [self.root / rel for rel in self.series(key).files]

    def series_dir(self, key: str) -> Path:
        """The folder that holds exactly this series' files."""
        return (self.root / self.series(key).files[0]).parent

    def all_files(self) -> List[Path]:
        return [self.root / rel for info in self.series_list for rel in info.files]

    def load_truth(self, key: str) -> Any:
        import numpy as np

        return np.load(str(self.series(key).truth_path(self.root)))

    def to_json(self) -> Dict[str, Any]:
        data = asdict(self)
        data.pop("root")
        return data

    def save(self, root: Optional[Union[str, Path]] = None) -> Path:
        path = Path(root if root is not None else self.root) / MANIFEST_NAME
        path.write_text(json.dumps(self.to_json(), indent=1, sort_keys=True))
        return path

    @classmethod
    def load(cls, root: Union[str, Path]) -> "SampleManifest":
        root = Path(root)
        data = json.loads((root / MANIFEST_NAME).read_text())
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"manifest format {data.get('format_version')} != {FORMAT_VERSION}")
        studies = [StudyInfo(**s) for s in data.pop("studies")]
        series = [SeriesInfo(**s) for s in data.pop("series_list")]
        return cls(root=root, studies=studies, series_list=series, **data)
