"""Frame bytes -> pixel values: pixel description, codec identification, decoding, rescale."""
from __future__ import annotations

from .codecs import can_decode
from .decode import decode_frame
from .description import PixelDescription, UnsupportedPixels
from .errors import CodecUnavailable, DecodeError
from .identify import FrameKind, identify
from .rescale import modality_dtype, padding_mask, rescaled_range, stored_to_modality

__all__ = [
    "CodecUnavailable", "DecodeError", "FrameKind", "PixelDescription", "UnsupportedPixels", "can_decode",
    "decode_frame", "identify", "modality_dtype", "padding_mask", "rescaled_range", "stored_to_modality",
]
