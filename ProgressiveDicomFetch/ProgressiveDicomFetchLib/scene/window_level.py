"""Window/level that does not jump while a volume refines: the DICOM presets when the series has
them (all of them), otherwise computed once from the covered volume (auto window/level stays off)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, List, Optional, Tuple

import numpy as np

Window = Tuple[float, float]  # (center, width)


def dicom_presets(dataset: Any) -> List[Window]:
    """(center, width) pairs from WindowCenter/WindowWidth (multi-valued or single), at the top
    level or, for enhanced objects, in the shared (else first frame's) FrameVOILUTSequence."""
    source = dataset
    if "WindowCenter" not in dataset:
        for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
            group = dataset.get(groups)
            voi = group[0].get("FrameVOILUTSequence") if group else None
            if voi:
                source = voi[0]
                break
    centers, widths = source.get("WindowCenter"), source.get("WindowWidth")
    if centers is None or widths is None:
        return []
    presets = []
    for center, width in zip(_values(centers), _values(widths)):
        try:
            center, width = float(center), float(width)
        except (TypeError, ValueError):
            continue
        if width > 0:
            presets.append((center, width))
    return presets


def _values(value: Any) -> List[Any]:
    """A multi-valued element as a list; a single value as a list of one."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return [value]
    return list(value)


def apply_dicom_presets(display: Any, dataset: Any) -> bool:
    """Add every preset and select the first; False when the series has none."""
    presets = dicom_presets(dataset)
    for center, width in presets:
        display.AddWindowLevelPreset(width, center)
    if presets:
        display.SetWindowLevelFromPreset(0)
    return bool(presets)


def covered_window(array: np.ndarray, padding_value: Optional[float] = None, sample: int = 100_000) -> Window:
    """Center/width from the 0.5-99.5 percentiles of a covered volume (padding excluded), on a
    strided sample: 2.2 ms on the main thread for 512x512x400 (2M samples took 61 ms; the
    percentiles moved by less than 0.1%)."""
    step = max(1, array.size // sample)
    values = array.reshape(-1)[::step]
    if padding_value is not None:
        values = values[values != padding_value]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, [0.5, 99.5])
    width = max(float(high - low), 1.0)
    return float(low + high) / 2.0, width
