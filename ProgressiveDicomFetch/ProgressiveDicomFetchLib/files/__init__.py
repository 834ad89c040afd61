"""The ground floor: file helpers every layer may use (nothing here imports the rest of the library)."""
from .atomic import PathLike, atomic_write, remove_stale_temps

__all__ = ["PathLike", "atomic_write", "remove_stale_temps"]
