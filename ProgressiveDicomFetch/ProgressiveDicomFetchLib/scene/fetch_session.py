"""The console API's state behind the module's Logic: one server, searches, and the series being
loaded into the scene.

The Logic methods (camelCase, as Slicer's Python API) are one-line calls into this class, so the
whole console API runs and is tested on slicer-core. The session makes one engine per server and
talks to it (pause, cancel, package advice); the engine's scene binding (SceneLoader) makes and
refreshes the nodes. Settings such as the strategy apply to the
next batch of loads once the current one has finished (a running engine keeps its connections);
a series loaded earlier is never downloaded again while its nodes are in the scene. Each server
has its own loader (series of server B never go to a load running on server A); a loader closed
by a scene close, or broken by an unexpected error, is dropped so new loads run.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ..cache import FrameCache
from ..dicomweb.search import SearchResult
from ..dicomweb.server import DicomwebServer
from ..engine import ADAPTIVE_MAX_CONNECTIONS, BREADTH_FIRST, DEFAULT_CONNECTIONS, EngineUpdate, ProgressiveFetchEngine, SeriesProgress
from ..engine.events import EngineEvent, EventKind, SeriesStatus
from ..engine.scheduler import STRATEGIES
from ..pixels.codecs import retry_missing
from ..dicomweb.server_check import ServerCheck, check_server
from ..transport import DIMSE_SCHEME, is_dimse, open_server, search_functions
from .scene_loader import SceneLoader

logger = logging.getLogger(__name__)
MAX_CONNECTIONS = 16


class NoServerError(RuntimeError):
    """A search or load before `set_server`."""


@dataclass
class StudyLoads:
    """What one Load of several studies gave: the nodes, and each failed study's error (the
    other studies load regardless)."""

    nodes: List[Any] = field(default_factory=list)
    errors: Dict[str, Exception] = field(default_factory=dict)  # study UID -> why it did not start


class FetchSession:
    def __init__(self, scene: Any = None, cache: Optional[FrameCache] = None) -> None:
        self.scene = scene
        self.cache = cache  # frames kept on disk: a series loaded again fetches only what is missing
        self.server: Optional[Any] = None  # DicomwebServer or DimseServer
        self._loaders: Dict[str, SceneLoader] = {}  # server URL -> its loader
        self._loader_settings: Dict[str, Tuple[str, int, bool]] = {}
        self._earlier: Dict[str, List[Any]] = {}  # series UID -> nodes of finished loaders
        self._content_names: Dict[str, str] = {}  # server URL -> cache identity (sample server)

    @property
    def loader(self) -> Optional[SceneLoader]:
        """The current server's loader (None before its first load)."""
        self._drop_closed()
        return self._loaders.get(self.server.url) if self.server is not None else None

    def loaders(self) -> List[SceneLoader]:
        self._drop_closed()
        return list(self._loaders.values())

    def _drop_closed(self) -> None:
        """A scene close closes the loaders from inside (SceneLoader observes it): forget them."""
        for url, loader in list(self._loaders.items()):
            if loader.closed:
                del self._loaders[url]

    # -- server and search ----------------------------------------------------------------------
    def set_server(self, url: str, auth: Any = None, headers: Optional[Mapping[str, str]] = None,
                   verify: Any = True, calling_aet: str = "") -> Any:
        """Use this server from now on (loads in progress continue from theirs): a DICOMweb base
        URL, or `dimse://AET@host:port` for a classic PACS (with `calling_aet`)."""
        if url.strip().lower().startswith(DIMSE_SCHEME):
            if auth is not None or headers:
                raise ValueError("a DIMSE peer takes no HTTP authentication or headers: only AE titles")
            self.server = open_server(url, calling_aet)
        elif calling_aet:
            raise ValueError(f"callingAET goes with a {DIMSE_SCHEME}AET@host:port server, not {url!r}")
        else:
            server = DicomwebServer(url, auth=auth, headers=headers, verify=verify)
            if server.url in self._content_names:
                server = DicomwebServer(url, auth=auth, headers=headers, verify=verify,
                                        cache_identity=self._content_names[server.url])
            self.server = server
        return self.server

    def name_content(self, url: str, identity: str) -> None:
        """Cache the frames of the server at `url` under `identity` (e.g. the sample server's data
        version), so they are found again after a restart on another port."""
        self._content_names[DicomwebServer(url).url] = identity

    def _server(self) -> Any:
        if self.server is None:
            raise NoServerError("no server is set: call setServer(url) first (a DICOMweb URL or dimse://AET@host:port)")
        return self.server

    def loading_server(self, series_uid: Optional[str] = None) -> Optional[Any]:
        """The server a series loads from (each server has its own loader); without a series, the
        current server's loader's."""
        loader = self._holding(series_uid) if series_uid is not None else self.loader
        return loader.server if loader is not None else None

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

    def load_studies(self, series_by_study: Mapping[str, Sequence[str]], **settings: Any) -> StudyLoads:
        """`load` for each study; one study's error (bad UID, server answer) does not stop the others."""
        result = StudyLoads()
        for study_uid, series_uids in series_by_study.items():
            try:
                result.nodes += self.load(study_uid, series_uids, **settings)
            except Exception as error:  # reported per study, with what it was
                logger.error("study %s: %s", study_uid, error)
                result.errors[study_uid] = error
        return result

    def _forget_ended(self, series_uids: Sequence[str]) -> None:
        """Series asked again after they failed or were cancelled: their incomplete nodes go, and
        they load afresh in a new loader (the cache, if any, keeps what was already fetched)."""
        loader = self.loader
        if loader is None:
            return
        ended = [p.series_uid for p in loader.progress()
                 if p.series_uid in series_uids and p.state in (SeriesStatus.FAILED, SeriesStatus.CANCELLED)]
        if not ended:
            return
        if not loader.finished():
            raise RuntimeError(f"series {', '.join(ended)} ended before completion; load them again once the "
                               "current loads have finished (or cancel those)")
        for key, node in sorted(loader.nodes.items()):
            if key[0] in ended and node.GetScene() is not None:
                node.GetScene().RemoveNode(node)
        self._retire(self._server().url)

    def _still_in_scene(self, series_uid: str) -> bool:
        nodes = self._earlier.get(series_uid)
        if nodes and all(n.GetScene() is not None for n in nodes):
            return True
        self._earlier.pop(series_uid, None)
        return False

    def _loader_for(self, settings: Tuple[str, int, bool]) -> SceneLoader:
        server = self._server()
        loader = self.loader
        if loader is not None:
            if self._loader_settings[server.url] == settings or not loader.finished():
                if self._loader_settings[server.url] != settings:
                    logger.info("a load is running: the new series join it with its settings %s",
                                self._loader_settings[server.url])
                return loader
            self._retire(server.url)
        strategy, connections, boost_focus = settings
        retry_missing()  # a decoder installed since the last loads is used from this one on
        engine = ProgressiveFetchEngine(server, connections=connections, strategy=strategy, cache=self.cache,
                                        max_connections=ADAPTIVE_MAX_CONNECTIONS)  # from `connections`, following the link
        self._loaders[server.url] = SceneLoader(engine, self.scene, watch_focus=boost_focus)
        self._loader_settings[server.url] = settings
        return self._loaders[server.url]

    def _retire(self, url: str) -> None:
        """Close a finished loader, remembering its nodes so their series are not fetched again."""
        loader = self._loaders.pop(url)
        for (uid, _), node in sorted(loader.nodes.items()):
            self._earlier.setdefault(uid, []).append(node)
        loader.close()

    def _holding(self, series_uid: str) -> Optional[SceneLoader]:
        """The loader that has this series (any server)."""
        for loader in self.loaders():
            if series_uid in {p.series_uid for p in loader.progress()}:
                return loader
        return None

    def missing_decoders(self, series_uid: str) -> List[str]:
        """Packages to install before the series' compressed frames can be decoded here."""
        loader = self._holding(series_uid)
        return loader.engine.package_advice(series_uid).required if loader is not None else []

    def packages_installed(self) -> None:
        """After the user installed decoders: the next load (and decode) tries them again."""
        retry_missing()

    def optional_packages(self, series_uid: str) -> List[str]:
        """Packages that would add in-plane previews to the series (imagecodecs for HTJ2K prefixes);
        loading works without them. Offer them with the user's consent, never install silently."""
        loader = self._holding(series_uid)
        return loader.engine.package_advice(series_uid).optional if loader is not None else []

    def process(self, budget_ms: float = 5.0, yield_ms: float = 0.0) -> EngineUpdate:
        """The main-thread tick of every server's loader (the panel's QTimer). A loader whose tick
        raises is reported once (an error event per series) and closed; the others go on."""
        merged = EngineUpdate()
        for url, loader in list(self._loaders.items()):
            if loader.closed:
                continue
            try:
                update = loader.process(budget_ms, yield_ms)
            except Exception as error:  # a bug, not a server answer: stop that load, keep the rest
                logger.exception("the loads from %s stopped", url)
                message = f"loading stopped by an unexpected {type(error).__name__}: {error}"
                merged.events += [EngineEvent(loader.engine.elapsed(), p.series_uid, EventKind.ERROR, message=message)
                                  for p in loader.progress()]
                loader.close()
                continue
            merged.events += update.events
            merged.new_volumes += update.new_volumes
            merged.dirty.update(update.dirty)
        return merged

    def wait(self, timeout: Optional[float] = None, on_idle: Optional[Callable[[], None]] = None) -> bool:
        """Block until every load is done, ticking them and calling `on_idle` between ticks (the
        Logic passes slicer.app.processEvents, so views repaint while a script waits)."""
        limit = None if timeout is None else time.monotonic() + timeout
        return all(loader.wait(None if limit is None else max(0.0, limit - time.monotonic()), on_idle=on_idle)
                   for loader in self.loaders())

    def progress(self) -> List[SeriesProgress]:
        return [p for loader in self.loaders() for p in loader.progress()]

    def busy(self) -> bool:
        return any(not loader.finished() for loader in self.loaders())

    def cancel(self, series_uid: str) -> None:
        loader = self._holding(series_uid)
        if loader is not None:
            loader.engine.cancel(series_uid)

    def pause(self) -> None:
        for loader in self.loaders():
            loader.engine.pause()

    def resume(self) -> None:
        for loader in self.loaders():
            loader.engine.resume()

    def close(self) -> None:
        """Stop loading (scene close, module cleanup); the nodes stay in the scene."""
        for loader in self._loaders.values():
            loader.close()
        self._loaders.clear()
        self._earlier.clear()
