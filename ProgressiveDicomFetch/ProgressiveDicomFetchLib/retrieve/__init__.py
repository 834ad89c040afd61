"""Between the engine and the protocols: a series' volumes made from its metadata, and the frame
fetchers that bring their slices' frames (docs/architecture.md, "The path of one slice")."""
from .prepare import prepare_series

__all__ = ["prepare_series"]
