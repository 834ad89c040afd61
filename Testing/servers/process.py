"""Start and stop test servers by their own PID (never by name: other people's processes share this machine)."""
from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional

logger = logging.getLogger(__name__)


class ServerStartError(RuntimeError):
    """A test server did not come up; the message carries the tail of its log."""


PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Popen preexec_fn: the kernel SIGTERMs the server if the test process dies without cleaning up.

    Linux ties this to the thread that called Popen: start servers from a long-lived thread (the main one).
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux/glibc: the fixtures' own teardown still stops it
        pass


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def wait_until(ready: Callable[[], bool], process: subprocess.Popen, timeout: float, what: str,
               log_file: Path) -> float:
    """Poll `ready` until true; raise with the log tail if the process dies or time runs out."""
    start = time.monotonic()
    while True:
        if process.poll() is not None:
            raise ServerStartError(
                f"{what} exited with code {process.returncode} while starting; log tail:\n{log_tail(log_file)}")
        if ready():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise ServerStartError(f"{what} not ready after {timeout:.0f} s; log tail:\n{log_tail(log_file)}")
        time.sleep(0.02)


def terminate(process: Optional[subprocess.Popen]) -> None:
    """Send SIGTERM by PID without waiting (lets several servers shut down in parallel)."""
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)


def stop_process(process: Optional[subprocess.Popen], what: str, timeout: float = 15.0,
                 already_signalled: bool = False) -> float:
    """SIGTERM the process by PID, wait for it to exit, SIGKILL after `timeout`; returns seconds taken."""
    if process is None or process.poll() is not None:
        return 0.0
    start = time.monotonic()
    if not already_signalled:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        logger.warning("%s (pid %d) ignored SIGTERM for %.0f s: SIGKILL", what, process.pid, timeout)
        process.kill()
        process.wait(timeout=10)
    took = time.monotonic() - start
    logger.info("%s (pid %d) stopped in %.2f s", what, process.pid, took)
    return took


def pid_alive(pid: int) -> bool:
    """True while /proc has the PID and it is not a zombie."""
    status = Path(f"/proc/{pid}/status")
    try:
        text = status.read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in text
