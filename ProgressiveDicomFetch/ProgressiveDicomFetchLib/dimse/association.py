"""Associations with one DIMSE peer: opened per job or per worker thread, released when done,
aborted (A-ABORT) on cancel, every refusal turned into an error that says what to change.

pynetdicom is imported here, lazily (it is optional in Slicer: installed with the user's consent).
Works with pynetdicom 2.0 (pydicom 2.4, Slicer 5.8) and 3.0 (pydicom 3).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Sequence, Set, Tuple

from .address import DimseAddress
from .errors import AssociationRejected, ContextRefused, PeerUnreachable, PeerVanished, PynetdicomMissing

logger = logging.getLogger(__name__)

JOIN_S = 1.0  # an association's thread ends within ms of its release or abort
MAX_PDU = 262144  # we receive: larger PDUs, fewer of them (the peer may send less)
INSTALL_HINT = "pip install pynetdicom (or ProgressiveDicomFetch[dimse]); in Slicer the module offers to install it"
# PS3.8 A-ASSOCIATE-RJ: (source, reason) -> what the user should change.
REJECTION_ADVICE = {
    (1, 2): "the peer does not know our calling AE title: add it to the peer's list of modalities",
    (1, 3): "the peer does not accept our calling AE title: add it to the peer's list of modalities",
    (1, 7): "the called AE title is not the peer's: check the AE title in AET@host:port",
}


def pynetdicom() -> Any:
    """The pynetdicom module, or PynetdicomMissing saying how to install it."""
    try:
        import pynetdicom as module
    except ImportError:
        raise PynetdicomMissing(f"DIMSE needs pynetdicom, which is not installed: {INSTALL_HINT}") from None
    return module


@dataclass
class Link:
    """One established association and what its C-STORE handler received (a C-GET's sub-operations)."""

    assoc: Any
    signature: frozenset
    received: List[Tuple[Any, str]] = field(default_factory=list)  # (dataset, transfer syntax)

    def ok(self) -> bool:
        return bool(self.assoc.is_established)


class Peer:
    """Opens associations with one peer and keeps track of them, so `abort_all` can end every one."""

    def __init__(self, address: DimseAddress, timeout: float = 30.0, connect_timeout: float = 10.0) -> None:
        if timeout <= 0 or connect_timeout <= 0:
            raise ValueError("DIMSE timeouts must be positive")
        self.address = address
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._live: Set[Any] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.address.url

    def open(self, contexts: Sequence[Tuple[str, Sequence[str]]], scp_roles: Sequence[str] = (),
             signature: frozenset = frozenset()) -> Link:
        """Associate proposing `contexts` ((abstract syntax, transfer syntaxes) each; one context per
        pair, so the peer can pick the stored syntax) and the SCP role for `scp_roles` (C-GET)."""
        net = pynetdicom()
        ae = net.AE(ae_title=self.address.calling_aet)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        ae.connection_timeout = self.connect_timeout
        ae.maximum_pdu_size = MAX_PDU
        proposed = [net.build_context(abstract, [syntax]) for abstract, syntaxes in contexts for syntax in syntaxes]
        if len(proposed) > 128:
            raise ValueError(f"{len(proposed)} presentation contexts needed, DICOM allows 128")
        rejection: Dict[str, Any] = {}
        link = Link(None, signature)
        handlers = [(net.evt.EVT_ACSE_RECV, lambda event: _note_rejection(event, rejection)),
                    (net.evt.EVT_C_STORE, lambda event: _store(event, link))]
        roles = [net.build_role(uid, scp_role=True) for uid in scp_roles]
        assoc = ae.associate(self.address.host, self.address.port, contexts=proposed, ae_title=self.address.called_aet,
                             max_pdu=MAX_PDU, ext_neg=roles or None, evt_handlers=handlers)
        link.assoc = assoc
        if assoc.is_rejected:
            raise AssociationRejected(self._rejected_message(rejection), self.url)
        if not assoc.is_established:
            if rejection.get("answered"):  # it accepted, but none of the presentation contexts
                raise ContextRefused(f"{self.url} aborted the association request: it accepts none of the "
                                     f"proposed presentation contexts ({_names(c[0] for c in contexts)})", self.url)
            raise PeerUnreachable(f"no DICOM association with {self.url}: the connection was refused, or the "
                                  f"peer did not answer within {self.connect_timeout:g} s", self.url)
        with self._lock:
            self._live.add(assoc)
        return link

    def require(self, link: Link, abstract: str, scp_role: bool = False) -> None:
        """ContextRefused (and the association released) unless the peer accepted `abstract`."""
        accepted = [cx for cx in link.assoc.accepted_contexts if cx.abstract_syntax == abstract]
        if scp_role:
            accepted = [cx for cx in accepted if cx.as_scp]
        if not accepted:
            self.release(link)
            role = " with us as storage SCP (C-GET)" if scp_role else ""
            raise ContextRefused(f"{self.url} refused the presentation context {_names([abstract])}{role}", self.url)

    def release(self, link: Link) -> None:
        """A-RELEASE (a clean end); an association already gone (aborted) is only forgotten. It is
        claimed first, under the lock `abort_all` holds while it aborts: an abort in the middle of a
        release stops the association's reader, and pynetdicom would then wait its whole ACSE
        timeout for the release answer."""
        with self._lock:
            mine = link.assoc in self._live
            self._live.discard(link.assoc)
        try:
            if mine and link.assoc.is_established:
                link.assoc.release()
        finally:
            self._forget(link.assoc)

    def abort(self, link: Link) -> None:
        try:
            _abort(link.assoc)
        finally:
            self._forget(link.assoc)

    def abort_all(self) -> int:
        """A-ABORT every association still open (cancel, from any thread); returns how many. One
        being released is left to end by its A-RELEASE (see `release`)."""
        with self._lock:
            live, self._live = list(self._live), set()
            for assoc in live:
                _abort(assoc)
        for assoc in live:
            self._forget(assoc)
        return len(live)

    def live(self) -> int:
        with self._lock:
            return len(self._live)

    def responses(self, link: Link, send: Callable[[], Iterator[Tuple[Any, Any]]], what: str
                  ) -> Iterator[Tuple[int, Any]]:
        """(status, identifier) pairs of a C-FIND/C-GET; PeerVanished when the association ends
        before the final response (abort, closed connection, timeout)."""
        for status, identifier in send():
            if status is None or "Status" not in status:
                self._forget(link.assoc)
                raise PeerVanished(f"{self.url} stopped answering during {what} (association aborted, "
                                   f"connection closed or no answer within {self.timeout:g} s)", self.url)
            yield int(status.Status), identifier

    def _forget(self, assoc: Any) -> None:
        """Drop it from the live set once its threads are gone (pynetdicom ends them right after)."""
        if assoc is not threading.current_thread() and assoc.ident is not None:
            assoc.join(JOIN_S)
        with self._lock:
            self._live.discard(assoc)

    def _rejected_message(self, rejection: Dict[str, Any]) -> str:
        primitive = rejection.get("primitive")
        calling, called = self.address.calling_aet, self.address.called_aet
        if primitive is None:
            return f"{self.url} rejected the association (calling AE {calling!r}, called AE {called!r})"
        advice = REJECTION_ADVICE.get((primitive.result_source, primitive.diagnostic),
                                      "the peer gave no reason we can act on")
        return (f"{self.url} rejected the association from calling AE {calling!r} to called AE {called!r}: "
                f"{primitive.reason_str} ({primitive.result_str}, {primitive.source_str}); {advice}")


def _abort(assoc: Any) -> None:
    """A-ABORT, then wake a thread waiting for the next response: pynetdicom would leave it waiting
    until its DIMSE timeout; an empty message makes the wait end as "no response" at once."""
    if assoc.is_established:
        assoc.abort()
    assoc.dimse.msg_queue.put((None, None))


def _note_rejection(event: Any, into: Dict[str, Any]) -> None:
    primitive = event.primitive
    if type(primitive).__name__ == "A_ASSOCIATE" and getattr(primitive, "result", None) is not None:
        into["answered"] = True
    if getattr(primitive, "result", None) in (1, 2):
        into["primitive"] = primitive


def _store(event: Any, link: Link) -> int:
    """C-STORE sub-operation of our C-GET: keep the dataset (decoded by pydicom) and its syntax."""
    try:
        dataset = event.dataset
    except Exception as error:  # a dataset pydicom cannot parse: refuse it (0xC210), the C-GET reports it
        logger.warning("received a dataset that does not parse: %s", error)
        return 0xC210
    link.received.append((dataset, str(event.context.transfer_syntax)))
    return 0x0000


def _names(uids: Any) -> str:
    from pydicom.uid import UID
    return ", ".join(f"{UID(uid).name} ({uid})" if UID(uid).name != uid else uid for uid in uids)
