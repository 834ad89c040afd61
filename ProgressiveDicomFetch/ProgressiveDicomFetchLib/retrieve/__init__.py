"""Between the engine and the protocols: a series' volumes made from its metadata, and the frame
fetchers that bring their slices' frames (docs/architecture.md, "The path of one slice")."""
from .dicomweb_fetcher import DicomwebFrameFetcher
from .frame_fetcher import FrameFetcher, load_slices, write_cached, write_fetched
from .prepare import fetcher_for, load_series, prepare_series

__all__ = ["DicomwebFrameFetcher", "FrameFetcher", "fetcher_for", "load_series", "load_slices", "prepare_series",
           "write_cached", "write_fetched"]
