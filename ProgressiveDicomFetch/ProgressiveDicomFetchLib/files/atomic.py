"""Write a file so that readers see either nothing or the whole file, never half of it.

The data goes to a hidden temp file in the target's folder (same file system, so the final
rename is atomic), which replaces the target only once everything is written; on any error the
temp file is removed. This guards against a failed or interrupted command, not power loss (no
fsync: it would cost seconds on large volumes).
"""
from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from pathlib import Path
from typing import IO, Iterator, Union

logger = logging.getLogger(__name__)

STALE_TEMP_S = 3600.0  # a temp file this old is abandoned even if its PID was reused

PathLike = Union[str, "os.PathLike[str]"]


@contextlib.contextmanager
def atomic_write(path: PathLike, text: bool = False) -> Iterator[IO]:
    """Open a temp file next to `path` (binary, or UTF-8 text); rename it onto `path` on success."""
    target = Path(path)
    temp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # O_EXCL: never follow or reuse something already there; mode 0o666 lets the umask decide.
    fd = os.open(str(temp), os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        handle = os.fdopen(fd, "w", encoding="utf-8", newline="\n") if text else os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        temp.unlink()
        raise
    try:
        with handle:
            yield handle
        os.replace(str(temp), str(target))
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return True  # no cheap check: the age rule alone applies
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale_temp(path: Path, now: float) -> bool:
    """`.name.<pid>.<hex>.tmp` (atomic_write's naming) whose writer is gone or that is very old."""
    parts = path.name.split(".")
    try:
        pid = int(parts[-3])
        age = now - path.stat().st_mtime
    except (IndexError, ValueError, OSError):
        return False
    return age > STALE_TEMP_S or not _pid_alive(pid)


def remove_stale_temps(folder: Path) -> int:
    """Remove the temp files an interrupted atomic_write left in `folder`; returns how many."""
    now = time.time()
    removed = 0
    for path in Path(folder).glob(".*.tmp"):
        if is_stale_temp(path, now):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
                logger.info("removed %s, left by an interrupted write", path)
    return removed
