"""A real Orthanc (Debian 1.10 + DICOMweb plugin) for the tests: loopback only, temp storage, stopped by PID."""
from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

import requests

from .loopback import DEFAULT_CACHE, build_shim
from .managed import ManagedProcess, ManagedServer
from .ports import free_port

logger = logging.getLogger(__name__)

ORTHANC_BIN = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


class UploadError(RuntimeError):
    """Orthanc refused a file; the message names the file and quotes the server's answer."""


def orthanc_available() -> bool:
    return ORTHANC_BIN.exists() and DICOMWEB_PLUGIN.exists()


@dataclass
class OrthancServer(ManagedServer):
    """One Orthanc process. Use as a context manager, or start()/stop()."""

    credentials: Optional[Tuple[str, str]] = None  # enables HTTP Basic with this one user
    http_compression: bool = False
    threads: int = 8
    startup_timeout: float = 30.0
    port: int = 0
    dicom_aet: Optional[str] = None  # enables Orthanc's DIMSE server (C-ECHO/FIND/GET/STORE) with this AE title
    dicom_port: int = 0
    move_destination: Optional[Tuple[str, int]] = None  # (AE title, port) on 127.0.0.1 Orthanc may C-MOVE to
    shim_cache: Path = DEFAULT_CACHE  # where the compiled loopback shim is kept
    uploaded: int = field(default=0, init=False)
    managed: Optional[ManagedProcess] = field(default=None, init=False, repr=False)

    @property
    def auth(self) -> Optional[Tuple[str, str]]:
        return self.credentials

    @property
    def dimse_address(self) -> str:
        """`AET@127.0.0.1:PORT`, the form of the command line's --dimse."""
        if self.dicom_aet is None:
            raise RuntimeError("this Orthanc has no DIMSE server (dicom_aet not set)")
        return f"{self.dicom_aet}@127.0.0.1:{self.dicom_port}"

    @property
    def log_file(self) -> Path:
        return self.work_dir / "orthanc.log"

    def _config(self) -> dict:
        config = {
            "Name": "ProgressiveDicomFetchTest",
            "StorageDirectory": str(self.work_dir / "storage"),
            "IndexDirectory": str(self.work_dir / "index"),
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "HttpPort": self.port,
            "RemoteAccessAllowed": False,
            "DicomServerEnabled": False,
            "HttpThreadsCount": self.threads,
            "HttpCompressionEnabled": self.http_compression,
            "AuthenticationEnabled": self.credentials is not None,
            "StorageCompression": False,
            "SaveJobs": False,
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "Full",
                         "SeriesMetadata": "Full"},
        }
        if self.dicom_aet is not None:
            # The called AE title is checked (a wrong one is rejected: a real rejection for the tests);
            # any calling AE may echo/find/get/store, and C-FIND reads the files, so image-level
            # answers carry the geometry attributes (docs/dimse.md).
            config.update({"DicomServerEnabled": True, "DicomAet": self.dicom_aet, "DicomPort": self.dicom_port,
                           "DicomCheckCalledAet": True, "DicomAlwaysAllowEcho": True,
                           "DicomAlwaysAllowFind": True, "DicomAlwaysAllowGet": True,
                           "DicomAlwaysAllowStore": True, "StorageAccessOnFind": "Always",
                           "DicomScpTimeout": 30, "DicomThreadsCount": 16})  # default 4: fewer than our associations
            if self.move_destination is not None:
                aet, port = self.move_destination
                config["DicomModalities"] = {"pdfmove": [aet, "127.0.0.1", port]}
        if self.credentials is not None:
            config["RegisteredUsers"] = {self.credentials[0]: self.credentials[1]}
        return config

    def _answers_system(self) -> bool:
        try:
            reply = requests.get(f"{self.url}/system", auth=self.auth, timeout=1)
        except requests.RequestException:
            return False
        return reply.status_code == 200

    def start(self) -> "OrthancServer":
        """Write the config, run Orthanc with the loopback shim, wait for /system, check its sockets."""
        if not orthanc_available():
            raise FileNotFoundError(f"{ORTHANC_BIN} or {DICOMWEB_PLUGIN} is missing")
        self.managed = ManagedProcess("Orthanc", "pdf-orthanc-")
        self.port = self.port or free_port()
        if self.dicom_aet is not None:
            self.dicom_port = self.dicom_port or free_port()
        config_file = self.work_dir / "orthanc.json"
        config_file.write_text(json.dumps(self._config(), indent=2))
        self._launch(config_file)
        return self

    def _launch(self, config_file: Path) -> None:
        shim = build_shim(self.shim_cache)
        # Orthanc logs to stderr by default.
        self.managed.launch([str(ORTHANC_BIN), str(config_file)], self.port, self._answers_system,
                            self.startup_timeout, output=self.log_file, log_file=self.log_file,
                            env={"LD_PRELOAD": str(shim)})

    def restart(self, down_s: float = 0.0) -> float:
        """Stop Orthanc by PID and start it again on the same port with the same storage (a server
        restart mid-load); returns the seconds it was not answering. Call it from a thread that
        outlives the server: Orthanc gets SIGTERM when the thread that started it ends."""
        if self.managed is None:
            raise RuntimeError("Orthanc is not running")
        started = time.monotonic()
        self.managed.stop(remove=False)
        time.sleep(down_s)
        self._launch(self.work_dir / "orthanc.json")
        return time.monotonic() - started

    def _post(self, session: requests.Session, path: Path) -> None:
        reply = session.post(f"{self.url}/instances", data=path.read_bytes(),
                             headers={"Content-Type": "application/dicom"}, timeout=60)
        if reply.status_code != 200:
            raise UploadError(f"Orthanc refused {path}: HTTP {reply.status_code}: {reply.text[:500].strip()}")

    def upload(self, paths: Iterable[Path], workers: int = 4) -> int:
        """POST each file to /instances over keep-alive sessions (a few in parallel: 1.5x faster here).

        Returns how many files were stored; the first refusal raises UploadError naming the file.
        """
        files = [Path(p) for p in paths]
        local = threading.local()
        sessions: List[requests.Session] = []

        def post(path: Path) -> None:
            session = getattr(local, "session", None)
            if session is None:  # one keep-alive session per upload thread
                session = local.session = requests.Session()
                session.auth = self.auth
                sessions.append(session)
            self._post(session, path)

        try:
            with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="orthanc-upload") as pool:
                for _ in pool.map(post, files):
                    self.uploaded += 1
        finally:
            for session in sessions:
                session.close()
        return len(files)

    def upload_folder(self, folder: Path) -> int:
        """Upload every file below `folder` (sorted; hidden files skipped)."""
        files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and not p.name.startswith("."))
        return self.upload(files)
