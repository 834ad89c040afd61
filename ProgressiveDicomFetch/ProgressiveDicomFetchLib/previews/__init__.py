"""In-plane previews: a reduced copy of every slice before its exact frame (issue 10).

Sources, found per series by one probe (probe.py): HTJ2K codestream prefixes fetched with HTTP
Range (htj2k_prefixes.py), or reduced copies a static server keeps beside `frames/`
(alternates.py), or DICOMweb's `/rendered` JPEGs over the whole value range, calibrated back to
modality values on one exact frame (rendered.py), where the link makes them pay (rendered_link.py).
`/thumbnail` is never used: a display picture.
"""
from __future__ import annotations

from .probe import Probe, find_preview_source
from .rendered_link import RenderedPreviews
from .source import PreviewSource, SliceFetch

__all__ = ["PreviewSource", "Probe", "RenderedPreviews", "SliceFetch", "find_preview_source"]
