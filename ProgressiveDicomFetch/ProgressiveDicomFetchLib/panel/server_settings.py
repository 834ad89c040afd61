"""The panel's server section as a record: URL, authentication, recent servers, and what of it
may be stored in Slicer's settings.

Credentials are stored only when the user ticks "remember credentials" (off by default); they
never go into the scene (the parameter node holds no credentials) and never into the recent
servers list, which keeps URLs with any user:password part removed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ..dicomweb.auth import make_auth
from ..dimse.address import DEFAULT_CALLING_AET, SCHEME, DimseAddress, check_aet
from ..dicomweb.urls import redact_url, validate_base_url

DICOMWEB, DIMSE = "dicomweb", "dimse"
SERVER_KINDS = (DICOMWEB, DIMSE)
NONE, BASIC, BEARER, HEADER = "none", "basic", "bearer", "header"
AUTH_KINDS = (NONE, BASIC, BEARER, HEADER)
MAX_RECENT = 10

# Keys in Slicer's settings (QSettings), under the module's group.
KEY_URL, KEY_AUTH_KIND, KEY_USERNAME, KEY_HEADER_NAME = "ServerURL", "AuthKind", "Username", "HeaderName"
KEY_REMEMBER, KEY_SECRET, KEY_RECENT = "RememberCredentials", "Secret", "RecentServers"
KEY_KIND, KEY_CALLING_AET = "ServerKind", "CallingAET"


@dataclass
class ServerSettings:
    """Where to connect and how to authenticate."""

    url: str = ""
    auth_kind: str = NONE
    username: str = ""  # BASIC
    header_name: str = ""  # HEADER, e.g. "X-Api-Key"
    secret: str = field(default="", repr=False)  # the password, token or header value
    remember_credentials: bool = False
    kind: str = DICOMWEB  # or DIMSE: `url` is then AET@host:port (or dimse://AET@host:port)
    calling_aet: str = ""  # DIMSE: our AE title (empty: DEFAULT_CALLING_AET)

    def base_url(self) -> str:
        """The validated URL, `dimse://AET@host:port` for a DIMSE peer (ValueError naming what is wrong)."""
        if self.kind == DIMSE:
            return DimseAddress.parse(self.url, self.calling_aet or DEFAULT_CALLING_AET).url
        if self.kind != DICOMWEB:
            raise ValueError(f"unknown server kind {self.kind!r}: choose one of {', '.join(SERVER_KINDS)}")
        return validate_base_url(self.url.strip())

    def calling_ae_title(self) -> str:
        """Our AE title for a DIMSE peer ("" for DICOMweb); ValueError when it is not an AE title."""
        return check_aet("calling AE title", self.calling_aet or DEFAULT_CALLING_AET) if self.kind == DIMSE else ""

    def auth(self) -> Optional[Any]:
        """The requests auth object for the chosen kind (None for DIMSE); ValueError when a needed field is empty."""
        if self.kind == DIMSE:
            return None
        if self.auth_kind not in AUTH_KINDS:
            raise ValueError(f"unknown authentication {self.auth_kind!r}: choose one of {', '.join(AUTH_KINDS)}")
        if self.auth_kind == NONE:
            return None
        if not self.secret:
            what = {BASIC: "a password", BEARER: "a token", HEADER: "a header value"}[self.auth_kind]
            raise ValueError(f"{self.auth_kind} authentication needs {what}")
        if self.auth_kind == BASIC:
            if not self.username.strip():
                raise ValueError("basic authentication needs a user name")
            return make_auth(user=self.username.strip(), password=self.secret)
        if self.auth_kind == BEARER:
            return make_auth(token=self.secret)
        name = self.header_name.strip()
        if not name or ":" in name or any(c.isspace() for c in name):
            raise ValueError(f"the custom header needs a name without spaces or ':', not {name!r}")
        return make_auth(headers={name: self.secret})

    @staticmethod
    def kind_of(url: str) -> str:
        """DIMSE for a `dimse://` entry (a recent server), else DICOMweb."""
        return DIMSE if url.strip().lower().startswith(SCHEME) else DICOMWEB

    def to_store(self) -> Dict[str, Any]:
        """What may be written to Slicer's settings: the secret only if the user asked."""
        values: Dict[str, Any] = {KEY_URL: redact_url(self.url.strip()) if self.url.strip() else "",
                                  KEY_AUTH_KIND: self.auth_kind, KEY_USERNAME: self.username,
                                  KEY_HEADER_NAME: self.header_name, KEY_REMEMBER: self.remember_credentials,
                                  KEY_SECRET: self.secret if self.remember_credentials else "",
                                  KEY_KIND: self.kind, KEY_CALLING_AET: self.calling_aet}
        return values

    @classmethod
    def from_store(cls, values: Mapping[str, Any]) -> "ServerSettings":
        """Back from Slicer's settings (QSettings gives strings for booleans: "true"/"false")."""
        remember = str(values.get(KEY_REMEMBER, "false")).lower() in ("true", "1")
        kind = str(values.get(KEY_AUTH_KIND) or NONE)
        return cls(url=str(values.get(KEY_URL) or ""), auth_kind=kind if kind in AUTH_KINDS else NONE,
                   username=str(values.get(KEY_USERNAME) or ""), header_name=str(values.get(KEY_HEADER_NAME) or ""),
                   secret=str(values.get(KEY_SECRET) or "") if remember else "", remember_credentials=remember,
                   kind=DIMSE if values.get(KEY_KIND) == DIMSE else DICOMWEB,
                   calling_aet=str(values.get(KEY_CALLING_AET) or ""))


class RecentServers:
    """Most recently used server URLs first, without duplicates or credentials."""

    def __init__(self, urls: Optional[Sequence[str]] = None, limit: int = MAX_RECENT) -> None:
        self.limit = limit
        self.urls: List[str] = []
        for url in reversed(list(urls or [])):
            try:
                self.add(url)
            except ValueError:
                continue  # a stored entry that is no longer valid is dropped, not fatal

    @classmethod
    def from_setting(cls, value: Any) -> "RecentServers":
        """From what QSettings gives back: None, one string (a one-item list), or a list."""
        if not value:
            return cls()
        return cls([value] if isinstance(value, str) else [str(v) for v in value])

    def add(self, url: str) -> str:
        """Put `url` first (ValueError if it is not a usable base URL); returns the stored form."""
        text = url.strip()
        clean = DimseAddress.parse(text).url if text.lower().startswith(SCHEME) else redact_url(validate_base_url(text))
        self.urls = [clean] + [u for u in self.urls if u != clean]
        del self.urls[self.limit:]
        return clean

    def remove(self, url: str) -> None:
        self.urls = [u for u in self.urls if u != url]
