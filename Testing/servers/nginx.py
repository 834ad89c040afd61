"""nginx serving a static DICOMweb tree: the second real server (Range, If-Range, ETag, 304, gzip_static).

URLs map onto the layout written by ProgressiveDicomFetchLib.sampledata.static_tree; query strings
are ignored (as on S3/CloudFront deployments), unknown UIDs give 404. Each instance's frames get
their own prefix location so the Content-Type follows the stored transfer syntax.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import requests

from ProgressiveDicomFetchLib.sampledata.static_tree import StaticTree

from .ports import ListeningSocket, assert_loopback_only, free_port
from .process import ServerStartError, die_with_parent, stop_process, terminate, wait_until

logger = logging.getLogger(__name__)

NGINX_BIN = Path("/usr/sbin/nginx")
DICOM_JSON = "application/dicom+json"
UID = "[0-9.]+"

CONFIG_TEMPLATE = """\
daemon off;
master_process off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {work}/access.log;
    client_body_temp_path {work}/tmp/body;
    proxy_temp_path {work}/tmp/proxy;
    fastcgi_temp_path {work}/tmp/fastcgi;
    uwsgi_temp_path {work}/tmp/uwsgi;
    scgi_temp_path {work}/tmp/scgi;
    types {{ }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 100000;
    etag on;
    server_tokens off;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location = /dicom-web/studies {{
{json}            try_files /studies/index.json =404;
        }}
        location ~ ^/dicom-web/studies/({uid})/series$ {{
{json}            try_files /studies/$1/series/index.json =404;
        }}
        location ~ ^/dicom-web/studies/({uid})/series/({uid})/instances$ {{
{json}            try_files /studies/$1/series/$2/instances/index.json =404;
        }}
        location ~ ^/dicom-web/studies/({uid})/series/({uid})/metadata$ {{
{json}            try_files /studies/$1/series/$2/metadata =404;
        }}
        location ~ ^/dicom-web/(studies/{uid}/series/{uid}/instances/{uid}/bulkdata/[0-9A-F-]+)$ {{
            try_files /$1 =404;
        }}
{frames}
        location / {{ return 404; }}
    }}
}}
"""
JSON_DIRECTIVES = f"            default_type {DICOM_JSON};\n            gzip_static on;\n            gzip_vary on;\n"


def nginx_available() -> bool:
    return NGINX_BIN.exists()


def frame_locations(tree: StaticTree) -> str:
    """One exact-prefix location per instance: frames/<n> files with the right Content-Type."""
    blocks = []
    for instance in tree.instances:
        if not instance.frames:
            continue
        content_type = tree.frame_content_type(instance).replace("'", "")
        blocks.append(
            f"        location ^~ /dicom-web/{instance.frames_dir}/ {{\n"
            f"            alias {tree.root / instance.frames_dir}/;\n"
            f"            default_type '{content_type}';\n"
            f"        }}")
    return "\n".join(blocks)


@dataclass
class NginxStaticServer:
    """One nginx process (foreground, single process) over a tree written by write_static_tree."""

    tree_root: Path
    startup_timeout: float = 15.0
    port: int = 0
    tree: Optional[StaticTree] = field(default=None, init=False)
    work_dir: Path = field(default=Path(), init=False)
    process: Optional[subprocess.Popen] = field(default=None, init=False, repr=False)
    startup_seconds: float = field(default=0.0, init=False)
    stop_seconds: float = field(default=0.0, init=False)
    sockets: List[ListeningSocket] = field(default_factory=list, init=False)
    _signalled: bool = field(default=False, init=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def auth(self) -> None:
        return None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("nginx is not running")
        return self.process.pid

    @property
    def log_file(self) -> Path:
        return self.work_dir / "error.log"

    def config_text(self) -> str:
        assert self.tree is not None
        return CONFIG_TEMPLATE.format(work=self.work_dir, port=self.port, root=self.tree.root.resolve(),
                                      uid=UID, json=JSON_DIRECTIVES, frames=frame_locations(self.tree))

    def _answers(self) -> bool:
        try:
            requests.get(f"{self.url}/", timeout=1)
        except requests.RequestException:
            return False
        return True

    def start(self) -> "NginxStaticServer":
        """Write the config, run nginx in the foreground, wait for an answer, check its sockets."""
        if not nginx_available():
            raise FileNotFoundError(f"{NGINX_BIN} is missing")
        self.tree = StaticTree.load(Path(self.tree_root).resolve())
        self.work_dir = Path(tempfile.mkdtemp(prefix="pdf-nginx-"))
        (self.work_dir / "tmp").mkdir()
        self.port = self.port or free_port()
        config = self.work_dir / "nginx.conf"
        config.write_text(self.config_text())
        command = [str(NGINX_BIN), "-p", f"{self.work_dir}/", "-e", str(self.log_file), "-c", str(config)]
        check = subprocess.run(command + ["-t", "-q"], capture_output=True, text=True)
        if check.returncode != 0:
            shutil.rmtree(self.work_dir, ignore_errors=True)
            raise ServerStartError(f"nginx rejected its config: {check.stderr.strip()}")
        with open(self.work_dir / "stderr.log", "ab") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            cwd=self.work_dir, preexec_fn=die_with_parent)
        try:
            self.startup_seconds = wait_until(self._answers, self.process, self.startup_timeout,
                                              f"nginx (pid {self.process.pid})", self.log_file)
            self.sockets = assert_loopback_only(self.process.pid, self.port)
        except BaseException:
            self.stop()
            raise
        logger.info("nginx pid %d on %s ready in %.2f s", self.process.pid, self.url, self.startup_seconds)
        return self

    def stop(self, remove: bool = True) -> None:
        """SIGTERM by PID and wait; then remove nginx's temp dir (the tree belongs to the caller)."""
        self.stop_seconds = stop_process(self.process, "nginx", already_signalled=self._signalled)
        if remove and self.work_dir != Path() and self.work_dir.exists():
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def begin_stop(self) -> None:
        """SIGTERM now, wait later in stop(): several servers then shut down in parallel."""
        terminate(self.process)
        self._signalled = self.process is not None

    def __enter__(self) -> "NginxStaticServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
