"""A DIMSE peer's address: `AET@host:port` (command line) or `dimse://AET@host:port` (the Logic)."""
from __future__ import annotations

import re
from dataclasses import dataclass

SCHEME = "dimse://"
DEFAULT_CALLING_AET = "PDFETCH"
# PS3.5: AE titles are at most 16 characters, no backslash or control characters, not only spaces.
AET = re.compile(r"[^\\\x00-\x1f]{1,16}")


def check_aet(what: str, title: str) -> str:
    """The title stripped, or ValueError naming which AE title is wrong and why."""
    stripped = title.strip()
    if not stripped or not AET.fullmatch(stripped):
        raise ValueError(f"{what} {title!r} is not an AE title (1-16 characters, no backslash or control characters)")
    return stripped


@dataclass(frozen=True)
class DimseAddress:
    called_aet: str
    host: str
    port: int
    calling_aet: str = DEFAULT_CALLING_AET

    @classmethod
    def parse(cls, text: str, calling_aet: str = DEFAULT_CALLING_AET) -> "DimseAddress":
        """`AET@host:port` with or without `dimse://`; ValueError says what is wrong."""
        body = text.strip()
        if body.lower().startswith(SCHEME):
            body = body[len(SCHEME):]
        match = re.fullmatch(r"([^@]+)@(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-_]+):(\d{1,5})/?", body)
        if not match:
            raise ValueError(f"DIMSE address {text!r} must look like AET@host:port, e.g. ORTHANC@127.0.0.1:4242")
        port = int(match.group(3))
        if not 0 < port < 65536:
            raise ValueError(f"DIMSE address {text!r}: port {port} is not in 1-65535")
        return cls(check_aet("called AE title", match.group(1)), match.group(2).strip("[]"), port,
                   check_aet("calling AE title", calling_aet))

    @property
    def url(self) -> str:
        """`dimse://AET@host:port`: names the peer in errors, logs and cache keys."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{SCHEME}{self.called_aet}@{host}:{self.port}"

    def __str__(self) -> str:
        return self.url
