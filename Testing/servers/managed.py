"""The lifecycle every test server shares: temp work dir, launch, wait until ready, prove it is
loopback-only, stop by PID. Orthanc and nginx differ only in their config and readiness check."""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from .ports import ListeningSocket, assert_loopback_only
from .process import die_with_parent, stop_process, terminate, wait_until

logger = logging.getLogger(__name__)


class ManagedProcess:
    """One server process: its temp dir, its PID, its timings and its (verified) listening sockets."""

    def __init__(self, name: str, prefix: str) -> None:
        self.name = name
        self.work_dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.process: Optional[subprocess.Popen] = None
        self.startup_seconds = 0.0
        self.stop_seconds = 0.0
        self.sockets: List[ListeningSocket] = []
        self._signalled = False

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.process.pid

    def launch(self, command: Sequence[str], port: int, ready: Callable[[], bool], timeout: float,
               output: Path, log_file: Path, env: Optional[Dict[str, str]] = None) -> None:
        """Start `command`, wait for `ready()`, then fail unless every listening socket is loopback."""
        with open(output, "ab") as out:
            self.process = subprocess.Popen(
                list(command), stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=self.work_dir,
                env=dict(os.environ, **(env or {})), preexec_fn=die_with_parent)
        try:
            self.startup_seconds = wait_until(ready, self.process, timeout, f"{self.name} (pid {self.pid})", log_file)
            self.sockets = assert_loopback_only(self.pid, port)
        except BaseException:
            self.stop()
            raise
        logger.info("%s pid %d on port %d ready in %.2f s", self.name, self.pid, port, self.startup_seconds)

    def begin_stop(self) -> None:
        """SIGTERM now, wait later in stop(): several servers then shut down in parallel."""
        terminate(self.process)
        self._signalled = self.process is not None

    def stop(self, remove: bool = True) -> None:
        """SIGTERM by PID, wait for the exit (SIGKILL after a timeout), then remove the temp dir."""
        self.stop_seconds = stop_process(self.process, self.name, already_signalled=self._signalled)
        if remove and self.work_dir.exists():
            shutil.rmtree(self.work_dir, ignore_errors=True)


class ManagedServer:
    """Mixin for the server dataclasses: URLs, PID, timings and stop() through their `managed` process."""

    managed: Optional[ManagedProcess]
    port: int

    def start(self) -> "ManagedServer":
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def work_dir(self) -> Path:
        return self.managed.work_dir if self.managed is not None else Path()

    @property
    def pid(self) -> int:
        if self.managed is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return self.managed.pid

    @property
    def startup_seconds(self) -> float:
        return self.managed.startup_seconds if self.managed is not None else 0.0

    @property
    def stop_seconds(self) -> float:
        return self.managed.stop_seconds if self.managed is not None else 0.0

    @property
    def sockets(self) -> List[ListeningSocket]:
        return self.managed.sockets if self.managed is not None else []

    def begin_stop(self) -> None:
        if self.managed is not None:
            self.managed.begin_stop()

    def stop(self, remove: bool = True) -> None:
        if self.managed is not None:
            self.managed.stop(remove)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
