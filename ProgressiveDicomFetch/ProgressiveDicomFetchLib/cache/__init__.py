"""The persistent, verified, size-capped frame cache (resume at frame granularity)."""
from .entry import CorruptEntry, FrameKey, check_uid
from .frame_cache import DEFAULT_MAX_BYTES, CacheStats, FrameCache
from .location import cache_dir_outside, default_cache_dir

__all__ = ["CacheStats", "CorruptEntry", "DEFAULT_MAX_BYTES", "FrameCache", "FrameKey", "cache_dir_outside",
           "check_uid", "default_cache_dir"]
