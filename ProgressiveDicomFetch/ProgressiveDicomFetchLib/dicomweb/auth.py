"""Authentication for DICOMweb requests, as requests' auth objects that never show their secrets.

HTTP Basic, a Bearer token, arbitrary headers (API keys), or a token provider (a callback asked
for a fresh token, and asked again once when the server answers 401).
"""
from __future__ import annotations

import threading
from typing import Callable, Dict, Mapping, Optional

import requests
from requests.auth import AuthBase, HTTPBasicAuth

SECRET = "***"


class BasicAuth(HTTPBasicAuth):
    """HTTP Basic; repr() shows the user name only."""

    def __repr__(self) -> str:
        return f"BasicAuth(username={self.username!r}, password={SECRET})"


class BearerToken(AuthBase):
    """A fixed OAuth bearer token."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("bearer token is empty")
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return f"BearerToken({SECRET})"


class HeaderAuth(AuthBase):
    """Arbitrary headers, e.g. an API key; repr() shows header names only."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._headers: Dict[str, str] = dict(headers)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self._headers)
        return request

    def __repr__(self) -> str:
        return f"HeaderAuth({', '.join(f'{name}={SECRET}' for name in self._headers)})"


class TokenProvider(AuthBase):
    """Asks `get_token()` for a bearer token on first use and after `refresh()` (called on a 401)."""

    def __init__(self, get_token: Callable[[], str]) -> None:
        self._get_token = get_token
        self._token: Optional[str] = None
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if self._token is None:
                token = self._get_token()
                if not token:
                    raise ValueError("the token provider returned an empty token")
                self._token = token
            return self._token

    def refresh(self) -> None:
        """Forget the cached token: the next request asks the provider again."""
        with self._lock:
            self._token = None

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request

    def __repr__(self) -> str:
        return f"TokenProvider({getattr(self._get_token, '__name__', 'callback')})"


def make_auth(user: Optional[str] = None, password: Optional[str] = None, token: Optional[str] = None,
              headers: Optional[Mapping[str, str]] = None) -> Optional[AuthBase]:
    """The auth object for the usual command-line and panel choices (at most one kind)."""
    kinds = [k for k, v in (("user/password", user), ("token", token), ("headers", headers)) if v]
    if len(kinds) > 1:
        raise ValueError(f"choose one kind of authentication, not {' and '.join(kinds)}")
    if user:
        if password is None:
            raise ValueError(f"a password is needed for user {user!r}")
        return BasicAuth(user, password)
    if token:
        return BearerToken(token)
    if headers:
        return HeaderAuth(headers)
    return None
