"""Real servers (Orthanc, nginx over a static DICOMweb tree) for the tests: loopback only, stopped by PID."""
from __future__ import annotations

from .nginx import NginxStaticServer, nginx_available
from .orthanc import OrthancServer, UploadError, orthanc_available
from .ports import NotLoopbackError, assert_loopback_only, free_port, listening_sockets
from .process import ServerStartError, pid_alive

__all__ = ["NginxStaticServer", "NotLoopbackError", "OrthancServer", "ServerStartError", "UploadError",
           "assert_loopback_only", "free_port", "listening_sockets", "nginx_available", "orthanc_available",
           "pid_alive"]
