"""nginx serving a static DICOMweb tree: the second real server (Range, If-Range, ETag, 304, gzip_static).

URLs map onto the layout written by ProgressiveDicomFetchLib.sampledata.static_tree; query strings
are ignored (as on S3/CloudFront deployments), unknown UIDs give 404. Each instance's frames get
their own prefix location so the Content-Type follows the stored transfer syntax; likewise each
alternate an instance has (`.../instances/<sop>/jlsThumbnail/<n>`, `image/jls`). Alternates an
instance lacks, and unknown alternate names, fall through to the catch-all 404.
"""
from __future__ import annotations

import logging
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import requests

from ProgressiveDicomFetchLib.sampledata.static_tree import StaticTree

from .managed import ManagedProcess, ManagedServer
from .ports import free_port
from .process import ServerStartError

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
{alternates}
        location / {{ return 404; }}
    }}
}}
"""
JSON_DIRECTIVES = f"            default_type {DICOM_JSON};\n            gzip_static on;\n            gzip_vary on;\n"


# nginx's default "combined" format: ... "GET /path HTTP/1.1" 206 12345 ...
ACCESS_LINE = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3}) (\d+)')


@dataclass(frozen=True)
class AccessRecord:
    """One request as nginx logged it: what crossed the wire, not what the client counted."""

    method: str
    path: str
    status: int
    body_bytes: int  # $body_bytes_sent


def nginx_available() -> bool:
    return NGINX_BIN.exists()


def _prefix_location(tree: StaticTree, directory: str, content_type: str) -> str:
    """A location serving the files of one tree directory (relative to the root) with one Content-Type."""
    quoted = content_type.replace("'", "")  # it goes inside single quotes
    return (f"        location ^~ /dicom-web/{directory}/ {{\n"
            f"            alias {tree.root / directory}/;\n"
            f"            default_type '{quoted}';\n"
            f"        }}")


def frame_locations(tree: StaticTree) -> str:
    """One exact-prefix location per instance: frames/<n> files with the right Content-Type."""
    return "\n".join(_prefix_location(tree, instance.frames_dir, tree.frame_content_type(instance))
                     for instance in tree.instances if instance.frames)


def alternate_locations(tree: StaticTree) -> str:
    """One exact-prefix location per instance and alternate it has: <name>/<n> files as image/jls."""
    return "\n".join(_prefix_location(tree, instance.alternate_dir(name), tree.alternate_content_type)
                     for instance in tree.instances for name in instance.alternates)


@dataclass
class NginxStaticServer(ManagedServer):
    """One nginx process (foreground, single process) over a tree written by write_static_tree."""

    tree_root: Path
    startup_timeout: float = 15.0
    port: int = 0
    tree: Optional[StaticTree] = field(default=None, init=False)
    managed: Optional[ManagedProcess] = field(default=None, init=False, repr=False)

    @property
    def auth(self) -> None:
        return None

    @property
    def log_file(self) -> Path:
        return self.work_dir / "error.log"

    @property
    def access_log_file(self) -> Path:
        return self.work_dir / "access.log"

    def access_log_mark(self) -> int:
        """A position in the access log; `access_log(since=mark)` gives only later requests."""
        return self.access_log_file.stat().st_size if self.access_log_file.exists() else 0

    def access_log(self, since: int = 0, path: str = "") -> List[AccessRecord]:
        """The requests logged after `since` whose path matches the regular expression `path`."""
        with self.access_log_file.open("rb") as log:
            log.seek(since)
            text = log.read().decode("latin-1")
        records = (AccessRecord(m.group(1), m.group(2), int(m.group(3)), int(m.group(4)))
                   for m in ACCESS_LINE.finditer(text))
        return [r for r in records if re.search(path, r.path)]

    def config_text(self) -> str:
        assert self.tree is not None
        return CONFIG_TEMPLATE.format(work=self.work_dir, port=self.port, root=self.tree.root.resolve(),
                                      uid=UID, json=JSON_DIRECTIVES, frames=frame_locations(self.tree),
                                      alternates=alternate_locations(self.tree))

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
        self.managed = ManagedProcess("nginx", "pdf-nginx-")
        (self.work_dir / "tmp").mkdir()
        self.port = self.port or free_port()
        config = self.work_dir / "nginx.conf"
        config.write_text(self.config_text())
        command = [str(NGINX_BIN), "-p", f"{self.work_dir}/", "-e", str(self.log_file), "-c", str(config)]
        check = subprocess.run(command + ["-t", "-q"], capture_output=True, text=True)
        if check.returncode != 0:
            self.managed.stop()
            raise ServerStartError(f"nginx rejected its config: {check.stderr.strip()}")
        self.managed.launch(command, self.port, self._answers, self.startup_timeout,
                            output=self.work_dir / "stderr.log", log_file=self.log_file)
        return self
