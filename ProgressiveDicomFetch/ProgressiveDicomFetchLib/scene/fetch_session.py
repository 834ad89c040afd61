"""The console API's state behind the module's Logic: one server, searches, and the series being
loaded into the scene.

The Logic methods (camelCase, as Slicer's Python API) are one-line calls into this class, so the
whole console API runs and is tested on slicer-core. Settings such as the strategy apply to the
next batch of loads once the current one has finished (a running engine keeps its connections);
a series loaded earlier is never downloaded again while its nodes are in the scene.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..cache import FrameCache
from ..dicomweb.search import SearchResult
from ..dicomweb.server import DicomwebServer
from ..engine import BREADTH_FIRST, DEFAULT_CONNECTIONS, EngineUpdate, SeriesProgress
from ..engine.events import CANCELLED_STATE, FAILED
from ..engine.scheduler import STRATEGIES
from ..pixels.codecs import missing_packages
from ..pixels.htj2k_preview import preview_packages
from ..dicomweb.server_check import ServerCheck, check_server
from ..transport import DIMSE_SCHEME, is_dimse, open_server, search_functions
from .scene_loader import SceneLoader

logger = logging.getLogger(__name__)
MAX_CONNECTIONS = 16


class NoServerError(RuntimeError):
    """A search or load before `set_server`."""


class FetchSession:
    def __init__(self, scene: Any = None, cache: Optional[FrameCache] = None) -> None:
        self.scene = scene
        self.cache = cache  # frames kept on disk: a series loaded again fetches only what is missing
        self.server: Optional[Any] = None  # DicomwebServer or DimseServer
        self.loader: Optional[SceneLoader] = None
        self._loader_settings: Optional[Tuple[str, int, bool]] = None
        self._earlier: Dict[str, List[Any]] = {}  # series UID -> nodes of finished loaders

    # -- server and search ----------------------------------------------------------------------
    def set_server(self, url: str, auth: Any = None, headers: Optional[Mapping[str, str]] = None,
                   verify: Any = True, calling_aet: str = "") -> Any:
        """Use this server from now on (a load in progress continues from the previous one):
        a DICOMweb base URL, or `dimse://AET@host:port` for a classic PACS (with `calling_aet`)."""
        if url.strip().lower().startswith(DIMSE_SCHEME):
            if auth is not None or headers:
                raise ValueError("a DIMSE peer takes no HTTP authentication or headers: only AE titles")
            self.server = open_server(url, calling_aet)
        elif calling_aet:
            raise ValueError(f"callingAET goes with a {DIMSE_SCHEME}AET@host:port server, not {url!r}")
        else:
            self.server = DicomwebServer(url, auth=auth, headers=headers, verify=verify)
        return self.server

    def _server(self) -> Any:
        if self.server is None:
            raise NoServerError("no server is set: call setServer(url) first (a DICOMweb URL or dimse://AET@host:port)")
        return self.server

    def loading_server(self) -> Optional[DicomwebServer]:
        """The server the current loads come from (it stays while a new one is set)."""
        return self.loader.server if self.loader is not None else None

    def check_server(self) -> ServerCheck:
        server = self._server()
        if is_dimse(server):
            return server.check()
        return check_server(server.url, auth=server.auth, headers=server.headers, verify=server.verify)

    def search_studies(self, filters: Optional[Mapping[str, str]] = None, limit: Optional[int] = None) -> SearchResult:
        server = self._server()
        return search_functions(server).search_studies(server, filters, limit=limit)

    def search_series(self, study_uid: str, filters: Optional[Mapping[str, str]] = None) -> SearchResult:
        server = self._server()
        return search_functions(server).search_series(server, study_uid, filters)

    # -- loading ----------------------------------------------------------------------------------
    def load(self, study_uid: str, series_uids: Sequence[str], strategy: str = BREADTH_FIRST,
             connections: int = DEFAULT_CONNECTIONS, boost_focus: bool = True, wait_for_metadata: bool = True) -> List[Any]:
        """Volume nodes of the series (see SceneLoader.load); voxels arrive as `process()` runs."""
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}: choose one of {', '.join(STRATEGIES)}")
        if not 1 <= int(connections) <= MAX_CONNECTIONS:
            raise ValueError(f"connections must be between 1 and {MAX_CONNECTIONS}, not {connections}")
        if not series_uids:
            raise ValueError("no series given to load")
        self._forget_ended(series_uids)
        loader = self._loader_for((strategy, int(connections), bool(boost_focus)))
        earlier = [uid for uid in series_uids if self._still_in_scene(uid)]
        wanted = [uid for uid in series_uids if uid not in earlier]
        nodes = loader.load(study_uid, wanted, wait_for_metadata=wait_for_metadata) if wanted else []
        return [n for uid in earlier for n in self._earlier[uid]] + nodes

    def _forget_ended(self, series_uids: Sequence[str]) -> None:
        """Series asked again after they failed or were cancelled: their incomplete nodes go, and
        they load afresh in a new loader (the cache, if any, keeps what was already fetched)."""
        if self.loader is None:
            return
        ended = [p.series_uid for p in self.loader.progress()
                 if p.series_uid in series_uids and p.state in (FAILED, CANCELLED_STATE)]
        if not ended:
            return
        if not self.loader.engine.finished():
            raise RuntimeError(f"series {', '.join(ended)} ended before completion; load them again once the "
                               "current loads have finished (or cancel those)")
        for key, node in sorted(self.loader.nodes.items()):
            if key[0] in ended and node.GetScene() is not None:
                node.GetScene().RemoveNode(node)
        self._retire_loader()

    def _still_in_scene(self, series_uid: str) -> bool:
        nodes = self._earlier.get(series_uid)
        if nodes and all(n.GetScene() is not None for n in nodes):
            return True
        self._earlier.pop(series_uid, None)
        return False

    def _loader_for(self, settings: Tuple[str, int, bool]) -> SceneLoader:
        server = self._server()
        if self.loader is not None:
            same = self._loader_settings == settings and self.loader.server is server
            if same or not self.loader.engine.finished():
                if not same:
                    logger.info("a load is running: the new series join it with its settings %s", self._loader_settings)
                return self.loader
            self._retire_loader()
        strategy, connections, boost_focus = settings
        self.loader = SceneLoader(server, self.scene, connections=connections, strategy=strategy,
                                  watch_focus=boost_focus, cache=self.cache)
        self._loader_settings = settings
        return self.loader

    def _retire_loader(self) -> None:
        """Close a finished loader, remembering its nodes so their series are not fetched again."""
        assert self.loader is not None
        for (uid, _), node in sorted(self.loader.nodes.items()):
            self._earlier.setdefault(uid, []).append(node)
        self.loader.close()
        self.loader = None

    def missing_decoders(self, series_uid: str) -> List[str]:
        """Packages to install before the series' compressed frames can be decoded here."""
        if self.loader is None or series_uid not in {p.series_uid for p in self.loader.progress()}:
            return []
        syntaxes = [uid for load in self.loader.engine.loads(series_uid) for uid in load.stored_transfer_syntaxes]
        return missing_packages(syntaxes)

    def optional_packages(self, series_uid: str) -> List[str]:
        """Packages that would add in-plane previews to the series (imagecodecs for HTJ2K prefixes);
        loading works without them. Offer them with the user's consent, never install silently."""
        if self.loader is None or series_uid not in {p.series_uid for p in self.loader.progress()}:
            return []
        syntaxes = [uid for load in self.loader.engine.loads(series_uid) for uid in load.stored_transfer_syntaxes]
        return preview_packages(syntaxes)

    def process(self, budget_ms: float = 5.0, yield_ms: float = 0.0) -> EngineUpdate:
        """The main-thread tick (the panel's QTimer); nothing to do without a load."""
        return self.loader.process(budget_ms, yield_ms) if self.loader is not None else EngineUpdate()

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self.loader.wait(timeout) if self.loader is not None else True

    def progress(self) -> List[SeriesProgress]:
        return self.loader.progress() if self.loader is not None else []

    def busy(self) -> bool:
        return self.loader is not None and not self.loader.engine.finished()

    def cancel(self, series_uid: str) -> None:
        if self.loader is not None:
            self.loader.cancel(series_uid)

    def pause(self) -> None:
        if self.loader is not None:
            self.loader.pause()

    def resume(self) -> None:
        if self.loader is not None:
            self.loader.resume()

    def close(self) -> None:
        """Stop loading (scene close, module cleanup); the nodes stay in the scene."""
        if self.loader is not None:
            self.loader.close()
            self.loader = None
        self._earlier.clear()
