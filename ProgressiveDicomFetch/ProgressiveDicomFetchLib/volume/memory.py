"""Will a volume fit in memory? Asked once, before the buffer is allocated.

`np.zeros` of a huge shape usually *succeeds* (the pages are mapped lazily) and the process dies
later, mid-download, when the pages are touched. So the volume model asks the operating system
what is available first and refuses with a message a user can act on. Slicer runs on Linux,
Windows and macOS; each has its own source of the figure, and an unknown figure never blocks.
"""
from __future__ import annotations

import ctypes
import logging
import mmap
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

log = logging.getLogger(__name__)

_UNITS = ("bytes", "KB", "MB", "GB", "TB", "PB")
ORDINARY_PAGES_BYTES = 4 << 20  # numpy asks the kernel for huge pages for arrays from 4 MB on (Linux)


class VolumeTooLargeError(MemoryError):
    """The volume's buffer cannot fit in the memory that is available now."""


@dataclass(frozen=True)
class AvailableMemory:
    """Bytes the process can still allocate, and where the figure came from (for messages)."""

    bytes: int
    source: str


def format_bytes(count: float) -> str:
    """`1536 * 1024**2` -> "1.5 GB" (binary multiples, the way memory is usually quoted)."""
    value = float(count)
    for unit in _UNITS:
        if abs(value) < 1024.0 or unit == _UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024.0
    raise AssertionError("unreachable")


def _linux_meminfo(path: Path = Path("/proc/meminfo")) -> Optional[AvailableMemory]:
    try:
        for line in path.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return AvailableMemory(int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo")
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_limit(root: Path = Path("/sys/fs/cgroup")) -> Optional[AvailableMemory]:
    """A container's own memory limit (cgroup v2), which /proc/meminfo does not show."""
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int((root / "memory.current").read_text().strip())
        return AvailableMemory(max(0, int(limit) - used), "cgroup memory.max - memory.current")
    except (OSError, ValueError):
        return None


def _windows() -> Optional[AvailableMemory]:
    class MemoryStatusEx(ctypes.Structure):
        _fields_ = [
            ("dwLength", ctypes.c_ulong),
            ("dwMemoryLoad", ctypes.c_ulong),
            ("ullTotalPhys", ctypes.c_ulonglong),
            ("ullAvailPhys", ctypes.c_ulonglong),
            ("ullTotalPageFile", ctypes.c_ulonglong),
            ("ullAvailPageFile", ctypes.c_ulonglong),
            ("ullTotalVirtual", ctypes.c_ulonglong),
            ("ullAvailVirtual", ctypes.c_ulonglong),
            ("ullAvailExtendedVirtual", ctypes.c_ulonglong),
        ]

    status = MemoryStatusEx()
    status.dwLength = ctypes.sizeof(MemoryStatusEx)
    try:
        if not ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
            return None
    except (AttributeError, OSError):
        return None
    # Physical memory is what keeps Slicer responsive; the address space only binds 32-bit builds.
    return AvailableMemory(min(status.ullAvailPhys, status.ullAvailVirtual), "GlobalMemoryStatusEx")


def _sysconf() -> Optional[AvailableMemory]:
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES")
        size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return AvailableMemory(pages * size, "sysconf(SC_AVPHYS_PAGES)") if pages > 0 and size > 0 else None


def _macos_memsize() -> Optional[AvailableMemory]:
    """Total physical memory: macOS keeps "free" pages near zero (cache, compression), so the
    free count would refuse volumes that fit easily; the total is the honest upper bound."""
    try:
        libc = ctypes.CDLL(None)
        value = ctypes.c_uint64(0)
        size = ctypes.c_size_t(ctypes.sizeof(value))
        if libc.sysctlbyname(b"hw.memsize", ctypes.byref(value), ctypes.byref(size), None, ctypes.c_size_t(0)) != 0:
            return None
    except (AttributeError, OSError):
        return None
    return AvailableMemory(int(value.value), "sysctl hw.memsize (total physical memory)") if value.value else None


def available_memory() -> Optional[AvailableMemory]:
    """What this process can allocate now, or None when the platform does not say."""
    if sys.platform.startswith("win"):
        return _windows()
    if sys.platform == "darwin":
        return _macos_memsize() or _sysconf()
    linux = [m for m in (_linux_meminfo(), _cgroup_limit()) if m is not None]
    return min(linux, key=lambda m: m.bytes) if linux else _sysconf()


def check_fits(nbytes: int, what: str, available: Optional[AvailableMemory] = None) -> None:
    """Raise `VolumeTooLargeError` when `nbytes` for `what` exceeds the available memory."""
    found = available if available is not None else available_memory()
    if found is None:
        log.warning("available memory unknown on %s: allocating %s for %s unchecked", sys.platform, format_bytes(nbytes), what)
        return
    if nbytes > found.bytes:
        raise VolumeTooLargeError(
            f"{what} needs {format_bytes(nbytes)} but only {format_bytes(found.bytes)} is available "
            f"({found.source}); close other volumes or load fewer series"
        )


def zeroed_buffer(shape: Sequence[int], dtype) -> np.ndarray:
    """A zero-filled array whose pages are mapped at their first write. On Linux, from
    `ORDINARY_PAGES_BYTES` on, an anonymous private mapping of ordinary pages rather than numpy's
    allocation, which advises huge pages (np.zeros does with numpy 2, as in Slicer 5.12): where the
    kernel compacts memory to find them, the first write into a new 120 MB volume cost ~0.3 s of
    CPU against ~0.08 s (docs/architecture.md), within the first second of a load. MemoryError when
    the system refuses the mapping."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if not sys.platform.startswith("linux") or nbytes < ORDINARY_PAGES_BYTES:
        return np.zeros(shape, dtype)
    try:
        mapping = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE)  # fileno -1: anonymous, zero-filled
    except OSError as error:  # ENOMEM
        raise MemoryError(f"mapping {format_bytes(nbytes)}: {error}") from error
    if hasattr(mapping, "madvise") and hasattr(mmap, "MADV_NOHUGEPAGE"):
        mapping.madvise(mmap.MADV_NOHUGEPAGE)  # also where the kernel gives huge pages unasked
    return np.frombuffer(mapping, dtype).reshape(tuple(shape))
