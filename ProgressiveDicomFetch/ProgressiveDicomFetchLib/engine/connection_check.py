"""Is a new connection served? Asked once by a worker before it joins the requests in flight.

Some servers serve only so many connections at once: Orthanc gives each keep-alive connection a
thread (`HttpThreadsCount`), and a request on one more connection waits unanswered until one of
the others idles (about 1 s). A slice sent that way would stall its stage, so a worker added when
the limit grows first asks for something cheap (HEAD of the service root: any status is an
answer) with a short read timeout, outside `DicomwebServer.get` because that timeout is per call.
"""
from __future__ import annotations

import logging

import requests

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0  # TCP and TLS handshakes: a few round trips on a far link


def connection_served(server, read_timeout_s: float) -> bool:
    """True when the server answers on this thread's connection within `read_timeout_s` (any HTTP
    status, or a failure other than a timeout: the real requests will report it); servers without
    HTTP connections (DIMSE) always True."""
    connection = getattr(server, "connection", None)
    if connection is None or not hasattr(server, "url"):
        return True
    try:
        connection().head(server.url, timeout=(CONNECT_TIMEOUT_S, read_timeout_s), allow_redirects=False)
    except requests.Timeout:
        logger.info("no answer on a new connection to %s within %.2f s", server.url, read_timeout_s)
        return False
    except requests.RequestException as error:
        logger.debug("new connection to %s: %s", server.url, error)
    return True
