"""Offers the panel makes while loading (install a decoder, install a preview package), collected
during the timer's ticks and shown afterwards, once per cause: a modal dialog opened inside the
tick re-entered the pump, several failing series stacked dialogs, and a declined offer came back
for every series."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Set, Tuple

DECODERS = "decoders"  # a series failed: no installed decoder reads its frames
PREVIEWS = "previews"  # a series loaded without previews that a package would add

Cause = Tuple[str, Tuple[str, ...]]  # (kind, packages)


@dataclass(frozen=True)
class Notice:
    kind: str
    packages: Tuple[str, ...]
    series_uids: Tuple[str, ...]  # the series that gave rise to it, in order


class Notices:
    """Pending offers by cause; a cause shown once is not offered again this session."""

    def __init__(self) -> None:
        self._pending: Dict[Cause, List[str]] = {}
        self._shown: Set[Cause] = set()

    def add(self, kind: str, packages: Sequence[str], series_uid: str) -> None:
        if not packages:
            return
        cause = (kind, tuple(sorted(packages)))
        if cause in self._shown:
            return
        series = self._pending.setdefault(cause, [])
        if series_uid not in series:
            series.append(series_uid)

    def pending(self) -> bool:
        return bool(self._pending)

    def take(self) -> List[Notice]:
        """The pending offers (each cause once per session), to show outside the tick."""
        notices = [Notice(kind, packages, tuple(series)) for (kind, packages), series in self._pending.items()]
        self._shown.update(self._pending)
        self._pending.clear()
        return notices
