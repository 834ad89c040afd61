"""Our own storage SCP for C-MOVE, the fallback for peers without C-GET: the peer sends the moved
instances to this AE title on a port the user chose (the peer must know it: AE title, host, port),
and each C-MOVE waits for its instances here. Loopback by default; started on first use."""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, Sequence, Tuple

from .association import pynetdicom
from .errors import PeerUnreachable

logger = logging.getLogger(__name__)


class StoreListener:
    """Keeps received datasets by SOPInstanceUID until a C-MOVE takes them."""

    def __init__(self, ae_title: str, port: int, host: str = "127.0.0.1") -> None:
        if not 0 < port < 65536:
            raise ValueError(f"C-MOVE port {port} is not in 1-65535")
        self.ae_title, self.port, self.host = ae_title, port, host
        self._got: Dict[str, Tuple[Any, str]] = {}
        self._ready = threading.Condition()
        self._server: Any = None

    def start(self, syntaxes: Sequence[str]) -> None:
        """Listen (once; later calls do nothing), accepting every storage SOP class in `syntaxes`."""
        with self._ready:
            if self._server is not None:
                return
            net = pynetdicom()
            ae = net.AE(ae_title=self.ae_title)
            for context in net.AllStoragePresentationContexts:
                ae.add_supported_context(context.abstract_syntax, list(syntaxes))
            try:
                self._server = ae.start_server((self.host, self.port), block=False,
                                               evt_handlers=[(net.evt.EVT_C_STORE, self._store)])
            except OSError as error:
                raise PeerUnreachable(f"cannot listen for C-MOVE on {self.host}:{self.port}: {error}") from None
            logger.info("C-MOVE destination %s listening on %s:%d", self.ae_title, self.host, self.port)

    def _store(self, event: Any) -> int:
        try:
            dataset = event.dataset
        except Exception as error:  # a dataset pydicom cannot parse: refused (0xC210), the C-MOVE reports it
            logger.warning("received a dataset that does not parse: %s", error)
            return 0xC210
        with self._ready:
            self._got[str(dataset.SOPInstanceUID)] = (dataset, str(event.context.transfer_syntax))
            self._ready.notify_all()
        return 0x0000

    def take(self, sop_uids: Sequence[str], timeout: float) -> Dict[str, Tuple[Any, str]]:
        """The asked instances that arrived within `timeout` (the C-MOVE has ended: they are sent)."""
        deadline = time.monotonic() + timeout
        with self._ready:
            while not all(uid in self._got for uid in sop_uids) and time.monotonic() < deadline:
                self._ready.wait(max(0.0, deadline - time.monotonic()))
            return {uid: self._got.pop(uid) for uid in sop_uids if uid in self._got}

    def stop(self) -> None:
        with self._ready:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
