"""pytest plugin: real DICOMweb servers (Orthanc variants, nginx over a static tree), one per session.

Each fixture starts its server on first use, loopback only, with the `sample_small` data loaded,
and stops it by PID at the end of the session. Servers get SIGTERM in their own teardown and are
waited for by `_server_reaper` last, so Orthanc's 2-5 s shutdowns overlap instead of adding up.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Collection, Iterator, List, Optional, Sequence, Union

import pytest

from servers.loopback import ShimBuildError, build_shim
from servers.nginx import NginxStaticServer, nginx_available
from servers.orthanc import OrthancServer, orthanc_available
from servers.ports import free_port
from support import CACHE_DIR, missing

from ProgressiveDicomFetchLib.sampledata.static_tree import write_static_tree

logger = logging.getLogger(__name__)

SHIM_CACHE = CACHE_DIR / "bin"
TEST_USER = ("pdf-test", "s3cret-pass")
ALTERNATES = ("jlsThumbnail", "lossy")
# The one series of `static_server_alternates` written without alternates (its probes answer 404).
NO_ALTERNATES_KEY = "ct_thick_implicit"
ORTHANC_AET = "PDFORTHANC"
MOVE_AET = "PDFMOVE"  # the C-MOVE destination orthanc_dimse knows (port: `.move_destination[1]`)

Server = Union[OrthancServer, NginxStaticServer]


def require_orthanc() -> None:
    """Skip (fail under CI) when Debian's Orthanc, its DICOMweb plugin or gcc (for the shim) is absent."""
    if not orthanc_available():
        missing("Orthanc (Debian packages orthanc + orthanc-dicomweb)")
    try:
        build_shim(SHIM_CACHE)
    except ShimBuildError as error:
        missing(f"gcc for the loopback shim ({error})")


def require_nginx() -> None:
    if not nginx_available():
        missing("nginx (Debian package nginx)")


def require_jpeg_ls() -> None:
    """The alternates' JPEG-LS encoder (it writes P = BitsStored, as DICOM JPEG-LS does)."""
    try:
        import jpeg_ls  # noqa: F401
    except ImportError:
        missing("pyjpegls (the JPEG-LS encoder of static-tree alternates)")


@pytest.fixture(scope="session")
def _server_reaper() -> Iterator[List[Server]]:
    """Collects servers; at session end waits for each by PID and removes its temp dir."""
    servers: List[Server] = []
    yield servers
    for server in servers:
        server.stop()


def _start_orthanc(reaper: List[Server], sample_small, **options) -> Iterator[OrthancServer]:
    require_orthanc()
    server = OrthancServer(shim_cache=SHIM_CACHE, **options)
    reaper.append(server)
    server.start()
    start = time.monotonic()
    server.upload(sample_small.all_files())
    logger.info("Orthanc %s: started in %.2f s, %d files uploaded in %.2f s", server.url,
                server.startup_seconds, server.uploaded, time.monotonic() - start)
    yield server
    server.begin_stop()


@pytest.fixture(scope="session")
def orthanc(_server_reaper, sample_small) -> Iterator[OrthancServer]:
    """Plain Orthanc + DICOMweb (no auth, no gzip) holding `sample_small`."""
    yield from _start_orthanc(_server_reaper, sample_small)


@pytest.fixture(scope="module")
def orthanc_few_threads(_server_reaper, sample_small) -> Iterator[OrthancServer]:
    """Orthanc serving only 5 HTTP connections at once (`HttpThreadsCount`; a thread per keep-alive
    connection, one more waits unanswered until one idles), holding `sample_small`."""
    yield from _start_orthanc(_server_reaper, sample_small, threads=5)


@pytest.fixture(scope="module")
def orthanc_empty(_server_reaper) -> Iterator[OrthancServer]:
    """An Orthanc of the test module's own, empty: data a module uploads stays out of the shared one."""
    require_orthanc()
    server = OrthancServer(shim_cache=SHIM_CACHE)
    _server_reaper.append(server)
    server.start()
    yield server
    server.begin_stop()


@pytest.fixture(scope="session")
def orthanc_auth(_server_reaper, sample_small) -> Iterator[OrthancServer]:
    """Orthanc with HTTP Basic enabled for one user (`server.auth`), holding `sample_small`."""
    yield from _start_orthanc(_server_reaper, sample_small, credentials=TEST_USER)


@pytest.fixture(scope="session")
def orthanc_gzip(_server_reaper, sample_small) -> Iterator[OrthancServer]:
    """Orthanc with HttpCompressionEnabled (Debian's default), holding `sample_small`."""
    yield from _start_orthanc(_server_reaper, sample_small, http_compression=True)


@pytest.fixture(scope="session")
def orthanc_dimse(_server_reaper, sample_small) -> Iterator[OrthancServer]:
    """Orthanc with DICOMweb and its DIMSE server on loopback (`.dimse_address`, AE title ORTHANC_AET;
    C-FIND reads the files, so image-level answers carry geometry; it may C-MOVE to MOVE_AET on
    127.0.0.1:`.move_destination[1]`), holding `sample_small`."""
    yield from _start_orthanc(_server_reaper, sample_small, dicom_aet=ORTHANC_AET,
                              move_destination=(MOVE_AET, free_port()))


def _start_static(reaper: List[Server], sample_small, multipart: bool, alternates: Sequence[str] = (),
                  alternate_series: Optional[Collection[str]] = None) -> Iterator[NginxStaticServer]:
    require_nginx()
    tree_dir = Path(tempfile.mkdtemp(prefix="pdf-static-tree-"))
    try:
        start = time.monotonic()
        write_static_tree(sample_small.all_files(), tree_dir, multipart_frames=multipart,
                          alternates=alternates, alternate_series=alternate_series)
        logger.info("static tree (multipart=%s, alternates=%s) written in %.2f s", multipart, list(alternates),
                    time.monotonic() - start)
        server = NginxStaticServer(tree_dir)
        reaper.append(server)
        server.start()
        yield server
        server.stop()
    finally:
        shutil.rmtree(tree_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def static_server(_server_reaper, sample_small) -> Iterator[NginxStaticServer]:
    """nginx over a static DICOMweb tree of `sample_small` (plain frame files); `.tree` is its record."""
    yield from _start_static(_server_reaper, sample_small, multipart=False)


@pytest.fixture(scope="session")
def static_server_multipart(_server_reaper, sample_small) -> Iterator[NginxStaticServer]:
    """Like static_server, but each frame file is a single-part multipart body (npm static-wado style)."""
    yield from _start_static(_server_reaper, sample_small, multipart=True)


@pytest.fixture(scope="session")
def static_server_alternates(_server_reaper, sample_small) -> Iterator[NginxStaticServer]:
    """Like static_server, plus JPEG-LS alternates beside the frames: `jlsThumbnail/<n>` (lossless,
    4x smaller per side) and, for unsigned data, `lossy/<n>` (NEAR = static_alternates.LOSSY_NEAR),
    served as `image/jls`. Every series has them except NO_ALTERNATES_KEY; `instance.alternates`
    in `.tree` lists what each instance got."""
    require_jpeg_ls()
    everything_but = [s.series_uid for s in sample_small.series_list if s.key != NO_ALTERNATES_KEY]
    yield from _start_static(_server_reaper, sample_small, multipart=False, alternates=ALTERNATES,
                             alternate_series=everything_but)
