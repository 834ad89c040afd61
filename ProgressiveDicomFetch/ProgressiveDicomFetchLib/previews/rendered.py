"""Rendered previews: DICOMweb's `/rendered` resource (an 8-bit JPEG of a frame, reduced by
`viewport`, greys set by a linear `window`) turned back into modality values.

The window covers the series' whole value range (BitsStored, PixelRepresentation, rescale), not
a display window, so each grey level stands for a known band of values. Servers differ (some
ignore `window`, apply their own VOI, invert MONOCHROME1), so the map grey -> value is never
assumed: `calibrate` fits it on one slice whose exact frame the engine fetches anyway, checks it
is the requested window's map (monotonic, small residual), and only then is the source used.
Rendered previews are SUBRESOLUTION; each exact frame replaces its preview later.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numpy as np

from .. import transfer_syntax as ts
from ..dicomweb.frames import PIXEL_HEADERS
from ..dicomweb.server import RetryPolicy
from ..loading import SliceTask
from ..pixels import DecodeError, PixelDescription, can_decode
from ..pixels.codecs import decode_compressed
from ..pixels.htj2k_preview import clip_to_stored
from ..pixels.resample import upsample
from ..pixels.rescale import rescaled_range
from ..retrieve import DicomwebFrameFetcher
from ..volume import Quality
from .source import PreviewSource, SliceFetch

logger = logging.getLogger(__name__)

VIEWPORT = 256  # longer side of the rendered image (issue 25's table: 256 at q75 ~ 0.5 % of a 512² CT frame)
JPEG_QUALITY = 90  # measured on Orthanc: q75 -> q90 halves the mean error (36 -> 21 HU) for 1.6x the bytes
WINDOW_MARGIN = 0.5  # the calibration slice's value span, widened by this much of it on each side
ACCEPT = "image/jpeg"
GREYS = 255.0
MAX_MEAN_ERROR = 0.015  # of the window's width: the calibrated slice's mean error must stay below (~61 HU for CT)
MAX_MAP_DEVIATION = 0.03  # of the window's width: the fitted map's ends against the requested window's
MONOTONIC_SLACK = 0.02  # of the width: a grey band's median value may fall this far below a darker one's
BAND = 8  # grey levels per band of the monotonicity check (JPEG ringing moves single levels' values)
MIN_BAND_PIXELS = 16  # bands with fewer pixels are not trusted


@dataclass(frozen=True)
class ValueWindow:
    """The modality values [low, high] the 256 grey levels are asked to span."""

    low: float
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low

    def query(self) -> str:
        """`window=center,width,linear` as the standard defines it for the rendered resource."""
        return f"{(self.low + self.high) / 2.0:g},{self.width:g},linear"


def value_window(pixels: PixelDescription, slope: float, intercept: float) -> ValueWindow:
    """The whole range the stored values can take, rescaled: every stored value has a grey."""
    low, high = rescaled_range(slope, intercept, pixels.stored_range)
    return ValueWindow(low, high)


def narrowed_window(whole: ValueWindow, exact: np.ndarray, margin: float = WINDOW_MARGIN) -> ValueWindow:
    """The values of one exact slice, widened by `margin` of their span on each side, within the
    whole range: finer greys where the data lives (a 16-bit MR uses a few thousand values)."""
    low, high = float(np.min(exact)), float(np.max(exact))
    pad = max(margin * (high - low), 0.01 * whole.width, 1.0)
    return ValueWindow(max(whole.low, low - pad), min(whole.high, high + pad))


def viewport(pixels: PixelDescription, side: int = VIEWPORT) -> Tuple[int, int]:
    """(width, height) of the rendered image: the frame scaled so its longer side is `side` at most."""
    scale = min(1.0, side / float(max(pixels.rows, pixels.columns)))
    return max(1, int(round(pixels.columns * scale))), max(1, int(round(pixels.rows * scale)))


def jpeg_size(data: bytes) -> Tuple[int, int]:
    """(rows, columns) from a JPEG's start-of-frame marker; DecodeError when there is none."""
    at = 2 if data[:2] == b"\xff\xd8" else -1
    while 0 <= at < len(data) - 9:
        if data[at] != 0xFF:
            break
        marker = data[at + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(data[at + 5:at + 7], "big"), int.from_bytes(data[at + 7:at + 9], "big")
        at += 2 + int.from_bytes(data[at + 2:at + 4], "big")
    raise DecodeError("rendered image", "not a JPEG (no start-of-frame marker)")


def decode_grey(data: bytes) -> np.ndarray:
    """An 8-bit greyscale JPEG as float32 grey levels; DecodeError for anything else (PNG, colour)."""
    return decode_rendered(data, 1)


def decode_rendered(data: bytes, channels: int) -> np.ndarray:
    """An 8-bit JPEG as float32 levels: (rows, columns) grey, or (rows, columns, 3) RGB (a JFIF
    colour JPEG is YCbCr: the decoder turns it into RGB); DecodeError for anything else."""
    rows, columns = jpeg_size(data)
    described = PixelDescription(rows, columns, 8, 8, 7, 0, samples_per_pixel=channels,
                                 photometric_interpretation="RGB" if channels == 3 else "MONOCHROME2")
    decoded = np.asarray(decode_compressed(ts.JPEG, bytes(data), described, "rendered image"))
    if channels == 1 and decoded.ndim == 3 and decoded.shape[2] == 3 and (decoded[..., 0] == decoded[..., 1]).all():
        decoded = decoded[..., 0]
    shape = (rows, columns) if channels == 1 else (rows, columns, channels)
    if decoded.shape != shape:
        kind = "greyscale" if channels == 1 else "RGB"
        raise DecodeError("rendered image", f"decoded to shape {decoded.shape}, not a {rows}x{columns} {kind} image")
    return decoded.astype(np.float32)


def rendered_available() -> bool:
    """A JPEG decoder is installed (imagecodecs, pylibjpeg-libjpeg or Pillow): otherwise the source is off."""
    return can_decode(ts.JPEG)


@dataclass(frozen=True)
class Calibration:
    """grey -> value = offset + scale * grey, fitted on one slice, and how well it held there.
    Colour: `offset` and `scale` hold one value per channel (R, G, B), the errors the worst channel's."""

    offset: Union[float, np.ndarray]
    scale: Union[float, np.ndarray]
    mean_error: float  # modality units, the calibrated slice's upsampled preview against its exact frame
    p95_error: float

    def values(self, grey: np.ndarray) -> np.ndarray:
        """Colour: `grey` is (rows, columns, 3) and each channel takes its own map."""
        return self.offset + self.scale * grey


def calibrate(grey: np.ndarray, exact: np.ndarray, window: ValueWindow) -> Calibration:
    """Fit grey -> value on a slice whose exact modality values are known; ValueError says why the
    rendering is not a linear map of the requested window (ignored window, display VOI, inverted)."""
    values = np.asarray(exact, dtype=np.float64)
    full = upsample(grey, values.shape).astype(np.float64)
    inside = (full > 0.5) & (full < GREYS - 0.5)  # saturated greys say only "beyond the window"
    if inside.sum() < max(16, values.size // 100) or np.ptp(full[inside]) < 8:
        raise ValueError("the rendered image is nearly uniform (saturated or blank)")
    scale, offset = np.polyfit(full[inside], values[inside], 1)
    if scale <= 0:
        raise ValueError("greys fall as values rise (inverted rendering)")
    ends = (offset - window.low, offset + scale * GREYS - window.high)
    deviation = max(abs(e) for e in ends) / window.width
    if deviation > MAX_MAP_DEVIATION:
        raise ValueError(f"the greys map {offset:g}..{offset + scale * GREYS:g}, not the requested window "
                         f"{window.low:g}..{window.high:g} (window ignored or replaced)")
    _check_monotonic(np.rint(full[inside]).astype(np.int64), values[inside], window)
    error = np.abs(offset + scale * full - values)
    calibration = Calibration(float(offset), float(scale), float(error.mean()), float(np.percentile(error, 95)))
    if calibration.mean_error > MAX_MEAN_ERROR * window.width:
        raise ValueError(f"mean error {calibration.mean_error:.1f} over the bound "
                         f"{MAX_MEAN_ERROR * window.width:.1f} ({MAX_MEAN_ERROR:.1%} of the window)")
    return calibration


def calibrate_colour(rgb: np.ndarray, exact: np.ndarray, window: ValueWindow) -> Calibration:
    """Each channel fitted and checked as a grey image against its exact values (`calibrate`);
    ValueError names the channel that fails."""
    fits = []
    for channel, name in enumerate("RGB"):
        try:
            fits.append(calibrate(rgb[..., channel], exact[..., channel], window))
        except ValueError as error:
            raise ValueError(f"{name} channel: {error}") from None
    return Calibration(np.array([f.offset for f in fits]), np.array([f.scale for f in fits]),
                       max(f.mean_error for f in fits), max(f.p95_error for f in fits))


def _check_monotonic(levels: np.ndarray, values: np.ndarray, window: ValueWindow) -> None:
    bands = levels // BAND
    medians = [np.median(values[bands == b]) for b in np.unique(bands) if (bands == b).sum() >= MIN_BAND_PIXELS]
    drop = np.maximum.accumulate(medians) - medians if medians else np.zeros(1)
    if drop.max() > MONOTONIC_SLACK * window.width:
        raise ValueError(f"the grey -> value map is not monotonic (a grey band's median falls {drop.max():.1f} "
                         "below a darker band's)")


class Rendered(PreviewSource):
    name = "rendered"
    quality = Quality.SUBRESOLUTION

    def __init__(self, window: ValueWindow, slope: float, intercept: float, size: Tuple[int, int],
                 jpeg_quality: int = JPEG_QUALITY, channels: int = 1) -> None:
        self.window = window
        self.channels = channels  # 1: grey, 3: RGB (calibrated channel by channel)
        self.slope = slope  # every slice of the series shares them (checked by the probe)
        self.intercept = intercept
        self.size = size
        self.jpeg_quality = jpeg_quality
        self.calibration: Optional[Calibration] = None

    def path(self, fetcher: DicomwebFrameFetcher, task: SliceTask) -> str:
        width, height = self.size
        return (f"{fetcher.frame_path(task)}/rendered?viewport={width},{height}&quality={self.jpeg_quality}"
                f"&window={self.window.query()}")

    def fetch_grey(self, fetcher: DicomwebFrameFetcher, task: SliceTask,
                   retry: Optional[RetryPolicy] = None) -> Tuple[np.ndarray, int]:
        """The slice's rendered image as grey (or RGB) levels, and its network bytes."""
        server = fetcher.server
        response = server.get(self.path(fetcher, task), accept=ACCEPT, headers=PIXEL_HEADERS, retry=retry,
                              max_bytes=server.limits.frame_bytes)
        return decode_rendered(response.content, self.channels), len(response.content)

    def fetch_preview(self, fetcher: DicomwebFrameFetcher, task: SliceTask, pixels: PixelDescription) -> SliceFetch:
        return self.preview_of(*self.fetch_grey(fetcher, task), pixels, fetcher, task)

    def preview_of(self, grey: np.ndarray, size: int, pixels: PixelDescription, fetcher: DicomwebFrameFetcher,
                   task: SliceTask) -> SliceFetch:
        """A fetched rendering as the slice's preview (none when its greys do not convert)."""
        try:
            return SliceFetch(size, preview=self.to_stored(grey, pixels))
        except DecodeError as error:  # the exact frame still comes: only this preview is lost
            logger.info("slice %d of %s: no rendered preview (%s)", task.k, fetcher.series_uid, error)
            return SliceFetch(size)

    def to_stored(self, grey: np.ndarray, pixels: PixelDescription) -> np.ndarray:
        """Grey levels -> modality values by the calibration -> stored values, upsampled to the frame
        (the maps are linear, so they go on the small image: a quarter of the work at 256 of 512)."""
        if self.calibration is None:
            raise DecodeError("rendered image", "the source is not calibrated")
        stored = ((self.calibration.values(np.asarray(grey, dtype=np.float32)) - self.intercept) / self.slope
                  ).astype(np.float32, copy=False)
        shape = (pixels.rows, pixels.columns)
        if self.channels == 1:
            return clip_to_stored(upsample(stored, shape), pixels)
        return clip_to_stored(np.stack([upsample(stored[..., c], shape) for c in range(self.channels)], axis=-1), pixels)

    def describe(self) -> str:
        width, height = self.size
        c = self.calibration
        where = "" if c is None else (f", calibrated: mean error {c.mean_error:.1f}, 95th percentile "
                                      f"{c.p95_error:.1f} (bound {MAX_MEAN_ERROR * self.window.width:.1f})")
        kind = "" if self.channels == 1 else " RGB"
        return f"rendered {width}x{height}{kind} JPEG q{self.jpeg_quality}, window {self.window.query()}{where}"


def same_rescale(slopes_intercepts) -> Optional[Tuple[float, float]]:
    """The one (slope, intercept) every slice shares; None when they differ."""
    found = set(slopes_intercepts)
    return next(iter(found)) if len(found) == 1 and all(math.isfinite(v) for v in next(iter(found))) else None
