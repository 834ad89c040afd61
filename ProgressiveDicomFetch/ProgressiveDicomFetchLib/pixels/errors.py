"""Decoding errors: always name the transfer syntax (or what the bytes were) and the reason."""
from __future__ import annotations


class DecodeError(ValueError):
    """A frame could not be decoded into the pixels its description promises."""

    def __init__(self, syntax: str, reason: str) -> None:
        super().__init__(f"{syntax}: {reason}")
        self.syntax = syntax
        self.reason = reason


class CodecUnavailable(DecodeError):
    """No installed package decodes this codec family; the message names what to install."""
