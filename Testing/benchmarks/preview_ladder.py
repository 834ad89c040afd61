"""Benchmark (prints figures, asserts nothing): which estimate of a not-yet-exact slice is better,
its HTJ2K prefix preview or the linear interpolation between the exact slices around it?

    .venv/bin/python Testing/benchmarks/preview_ladder.py [--data DIR] [--series ct_thin,mr_t1] [--gaps 2,3,4,6,8]
    .venv/bin/python Testing/benchmarks/preview_ladder.py --data .cache/sampledata/small --series ct_thick,mr_t1

For ct_thin (240 x 512 x 512) and mr_t1 (181 x 217 x 181) of the full sample set (or the given series of
another set: the small one has 128 x 128 CT, whose previews are 1/2 size), every slice of the
truth volume is encoded as HTJ2K lossless (imagecodecs writes RPCL), the prefix length is measured on
the middle slice as the engine's probe does (previews/htj2k_prefixes.py), and every slice's prefix is
decoded as the engine decodes it. Then, for exact slices `gap` apart (every position of the gap, over
the whole volume), the error of the slices between them is measured for the preview and for the
linear fill between the two exact slices: mean absolute error (HU for CT) and PSNR (peak = truth
max - min, as in_plane_stages.py). The quality ladder's rule (volume/fill.py, YIELD_RULE) comes
from this table: per preview reduction, the largest gap at which interpolation beats the preview.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "ProgressiveDicomFetch"))

from ProgressiveDicomFetchLib.pixels.description import PixelDescription  # noqa: E402
from ProgressiveDicomFetchLib.pixels.htj2k_preview import decode_prefix  # noqa: E402
from ProgressiveDicomFetchLib.previews.htj2k_prefixes import prefix_length  # noqa: E402
from ProgressiveDicomFetchLib.volume.fill import YIELD_RULE  # noqa: E402
from ProgressiveDicomFetchLib.volume.preview_quality import psnr_db  # noqa: E402

DEFAULT_SERIES = "ct_thin,mr_t1"
DEFAULT_GAPS = "2,3,4,6,8"


def previews_of(truth: np.ndarray) -> Tuple[np.ndarray, str]:
    """Every slice's prefix preview (float64 values), and the probe's sizing note."""
    import imagecodecs

    bits = max(int(np.abs(truth).max()).bit_length() + 1, 2)
    pixels = PixelDescription(rows=truth.shape[1], columns=truth.shape[2], bits_allocated=16, bits_stored=bits,
                              high_bit=bits - 1, pixel_representation=1)
    streams = [imagecodecs.htj2k_encode(np.ascontiguousarray(s), reversible=True) for s in truth]
    middle = streams[len(streams) // 2]
    length, note, _ = prefix_length(middle, len(middle), whole=True)
    previews = np.stack([decode_prefix(s[:length], pixels) for s in streams]).astype(np.float64)
    return previews, note


def errors_at_gap(truth: np.ndarray, previews: np.ndarray, gap: int) -> Dict[str, Tuple[float, float]]:
    """(MAE, MSE) of the slices strictly between exact slices `gap` apart: preview vs interpolation,
    averaged over every placement of the exact pair in the volume."""
    sums = {"preview": [0.0, 0.0], "interpolation": [0.0, 0.0]}
    voxels = 0
    data = truth.astype(np.float64)
    for below in range(0, truth.shape[0] - gap):
        above = below + gap
        for j in range(below + 1, above):
            t = (j - below) / gap
            guess = {"preview": previews[j], "interpolation": data[below] * (1 - t) + data[above] * t}
            for name, value in guess.items():
                diff = value - data[j]
                sums[name][0] += float(np.abs(diff).sum())
                sums[name][1] += float(np.dot(diff.ravel(), diff.ravel()))
            voxels += data[j].size
    return {name: (a / voxels, s / voxels) for name, (a, s) in sums.items()}


def table(name: str, truth: np.ndarray, gaps: Sequence[int]) -> List[str]:
    previews, note = previews_of(truth)
    peak = float(truth.max()) - float(truth.min()) or 1.0
    whole = previews - truth
    lines = [f"**{name}** {truth.shape}, prefix {note}; preview alone over all slices: "
             f"MAE {np.abs(whole).mean():.1f} / PSNR {psnr_db(float((whole ** 2).mean()), peak):.1f} dB",
             "", "| exact slices apart | preview MAE | interpolation MAE | preview PSNR dB | interpolation PSNR dB | better |",
             "|---:|---:|---:|---:|---:|---|"]
    for gap in gaps:
        found = errors_at_gap(truth, previews, gap)
        (pm, ps), (im, is_) = found["preview"], found["interpolation"]
        better = "interpolation" if im < pm and is_ < ps else "preview" if pm < im and ps < is_ else "mixed"
        lines.append(f"| {gap} | {pm:.1f} | {im:.1f} | {psnr_db(ps, peak):.1f} | {psnr_db(is_, peak):.1f} | {better} |")
    return lines


def main(argv: Sequence[str] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / ".cache" / "sampledata" / "full",
                        help="a generated sample set (truth/<key>.npy)")
    parser.add_argument("--series", default=DEFAULT_SERIES, help=f"truth volumes of the set ({DEFAULT_SERIES})")
    parser.add_argument("--gaps", default=DEFAULT_GAPS, help=f"distances between the exact slices ({DEFAULT_GAPS})")
    args = parser.parse_args(argv)
    try:
        gaps = [int(g) for g in args.gaps.split(",")]
        if min(gaps) < 2:
            raise ValueError
    except ValueError:
        parser.error(f"--gaps: comma-separated integers >= 2, not {args.gaps!r}")
    for name in [n.strip() for n in args.series.split(",") if n.strip()]:
        path = args.data / "truth" / f"{name}.npy"
        if not path.is_file():
            parser.error(f"{path} not found: generate the full sample set (make test does) or pass --data")
        print("\n".join(table(name, np.load(str(path)), gaps)) + "\n")
    rule = "; ".join(f"reduced {smallest}x per side or more: exact slices at most {reach} apart" for smallest, reach in YIELD_RULE)
    print(f"Rule in use (volume/fill.py YIELD_RULE), when a preview yields to the interpolation: {rule}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
