"""Reduced copies a static DICOMweb server keeps beside `frames/` (static-wado convention):
`jlsThumbnail/<n>` (JPEG-LS at 1/4 size per side: SUBRESOLUTION) or `lossy/<n>` (full size,
lossy: LOSSY). They cost extra bytes (a thumbnail ~1/16 of a frame's pixels); the exact frame
replaces each later. Found by probing one instance per series (404: none).
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import numpy as np

from .. import transfer_syntax as ts
from ..dicomweb.frames import PIXEL_HEADERS
from ..dicomweb.server import RetryPolicy
from ..loading import SliceTask
from ..pixels import DecodeError, FrameKind, PixelDescription
from ..pixels.codecs import decode_compressed
from ..pixels.decode import to_stored
from ..pixels.htj2k_preview import clip_to_stored
from ..pixels.identify import sniff
from ..pixels.resample import upsample
from ..volume import Quality
from ..retrieve import DicomwebFrameFetcher
from .source import PreviewSource, SliceFetch

#: name beside frames/ -> the quality its pixels have, in the order they are looked for.
ALTERNATES: Tuple[Tuple[str, Quality], ...] = (("jlsThumbnail", Quality.SUBRESOLUTION), ("lossy", Quality.LOSSY))
ACCEPT = "image/jls, image/*;q=0.5, */*;q=0.1"


class Alternate(PreviewSource):
    def __init__(self, name: str, quality: Quality) -> None:
        self.name = name
        self.quality = quality

    def fetch_preview(self, fetcher: DicomwebFrameFetcher, task: SliceTask, pixels: PixelDescription,
                      retry: Optional[RetryPolicy] = None) -> SliceFetch:
        server = fetcher.server
        response = server.get(fetcher.frame_path(task, resource=self.name), accept=ACCEPT, headers=PIXEL_HEADERS,
                              retry=retry, max_bytes=server.limits.frame_bytes)
        return SliceFetch(len(response.content), preview=self.decode(response.content,
                                                                     response.headers.get("Content-Type", ""), pixels))

    def decode(self, data: bytes, content_type: str, pixels: PixelDescription) -> np.ndarray:
        """Decode an alternate (any codec the pixel layer knows, any size), scaled to the slice."""
        family = ts.media_type_family(content_type) or sniff(data)
        kind = FrameKind(family or "unknown", f"{self.name} ({content_type or 'unlabelled'})")
        if family is None or family in (ts.NATIVE_LE, ts.NATIVE_BE):
            raise DecodeError(kind.describe(), "not a compressed image the pixel layer decodes")
        decoded = decode_compressed(family, bytes(data), pixels, kind.describe())
        shape = getattr(decoded, "shape", ())[:2]
        if len(shape) != 2:
            raise DecodeError(kind.describe(), f"decoded to shape {shape}, not an image")
        reduced = to_stored(decoded, dataclasses.replace(pixels, rows=shape[0], columns=shape[1]), kind)
        if reduced.shape != (pixels.rows, pixels.columns):
            reduced = clip_to_stored(upsample(reduced, (pixels.rows, pixels.columns)), pixels)
        return reduced
