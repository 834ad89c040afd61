"""Write a file so that readers see either nothing or the whole file, never half of it.

The data goes to a hidden temp file in the target's folder (same file system, so the final
rename is atomic), which replaces the target only once everything is written; on any error the
temp file is removed. This guards against a failed or interrupted command, not power loss (no
fsync: it would cost seconds on large volumes).
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import IO, Iterator, Union

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
