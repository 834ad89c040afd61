"""Whether `/rendered` previews pay on this link, and which rendering to ask for.

A rendering costs the server more than the raw frame (Orthanc: about the frame's time whatever the
viewport, docs/rendered-previews.md), so previews pay only where the link, not the server, is the
limit. The probe measures one exact frame (bytes, seconds) and one rendering (seconds): the
preview of every slice takes about n x the rendering's time and the whole series n x the frame's,
so the source is used when the rendering takes at most MAX_PREVIEW_SHARE of the frame's time (or
BESIDE_MAX_SHARE where whole frames can flow beside the previews, below: the link then stays busy).
Where the frame itself is so quick that no rendering could be that much quicker, nothing is
rendered at all. The rendering's size follows the link: the finest that stays a small share of the
frame's bytes and lets every slice's rendering cross the link within PREVIEW_LINK_S.

While the previews come, the link carries only their small answers: where the probe measured that
it would idle, whole frames flow beside them (`frames_beside`) on a few connections whose TCP
receive window is kept near what the link carries in half a rendering's time, so their bytes never
queue far ahead of a rendering's on the link (docs/rendered-previews.md, "Frames beside").
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional, Tuple, Union

from ..pixels import PixelDescription
from .rendered import viewport

# Of the exact frame's time: a rendering slower than this does not pay. The preview phase costs
# about its length on complete and ran 1.5-2x this share on Orthanc (2 cores: 30 Mbit/s 0.05 ->
# previews by 0.09 of complete, +7 %; 100 Mbit/s 0.16 -> 0.26-0.31, +20 %: skipped).
MAX_PREVIEW_SHARE = 0.12
RENDER_FLOOR_S = 0.004  # the quickest rendering measured (Orthanc, 128² of a 512² CT, idle loopback)
MAX_BYTE_SHARE = 0.03  # of the frame's bytes: the budget on complete
PREVIEW_LINK_S = 1.0  # the link time every slice's rendering may take together
# The renderings asked for, best first: (longer side, JPEG quality). Bytes per rendered pixel,
# measured on the 512² CT at 256² (Testing/benchmarks/rendered_options.py): q90 0.13, q75 0.075.
OPTIONS: Tuple[Tuple[int, int], ...] = ((512, 90), (256, 90), (256, 75), (128, 75))
BYTES_PER_PIXEL = {90: 0.13, 75: 0.075}
DEFAULT_OPTION = (256, 90)  # when the link was not measured (forced on, frame from elsewhere)
# Frames beside the previews: only where a rendering takes at most this share of a frame's time
# (the frames' own CPU, on the client and the server, then stays small beside the previews')...
BESIDE_MAX_SHARE = 0.25
# ...and a rendering's bytes take at most this share of its time on the link (else the previews
# keep the link busy themselves).
BESIDE_LINK_SHARE = 0.5
# Two connections: a reader waits for the GIL while preview workers compute (up to Python's 5 ms
# switch interval) and its small window stalls meanwhile; measured at 100 Mbit/s, one connection
# kept complete at +4.2 %, two at +2.7 % (docs/rendered-previews.md).
BESIDE_CONNECTIONS = 2
MIN_BESIDE_WINDOW = 8 * 1024  # a few segments: below it a connection crawls
# The windows together: what the link carries in this share of a rendering's time. Measured (paired
# runs, 100 and 30 Mbit/s): half a rendering's time fills the link as well as a whole one, and the
# previews came 0.2 s sooner at 100 Mbit/s.
BESIDE_WINDOW_SHARE = 0.5


class RenderedPreviews(enum.Enum):
    """`off`: never; `auto`: where the probe measures that they pay; `on`: wherever they calibrate."""

    OFF = "off"
    AUTO = "auto"
    ON = "on"

    @classmethod
    def parse(cls, value: Union[bool, str, "RenderedPreviews", None]) -> "RenderedPreviews":
        """True/False (the engine's older flag), a word, or the Enum; ValueError names the choices."""
        if isinstance(value, cls):
            return value
        if value is None or isinstance(value, bool):
            return cls.ON if value else cls.OFF
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise ValueError(f"rendered previews {value!r}: use one of {', '.join(m.value for m in cls)}") from None


@dataclass(frozen=True)
class FrameTiming:
    """One exact frame as the probe got it: network bytes and seconds for its request."""

    bytes: int
    seconds: float

    def rate(self) -> float:
        """Bytes per second (a lower bound of the link's: the server's time is in it)."""
        return self.bytes / max(self.seconds, 1e-6)


def too_quick_to_render(frame: FrameTiming) -> Optional[str]:
    """Why no rendering can pay (the frame came faster than any rendering could beat by
    MAX_PREVIEW_SHARE; not BESIDE_MAX_SHARE: one slow frame on a fast link, e.g. loopback, must not
    bring renderings in); None: try."""
    if frame.seconds * MAX_PREVIEW_SHARE < RENDER_FLOOR_S:
        return (f"not worth it on this link: the exact frame took {frame.seconds * 1e3:.1f} ms, a rendering "
                f"takes at least ~{RENDER_FLOOR_S * 1e3:.0f} ms")
    return None


def does_not_pay(frame: FrameTiming, render_s: float, render_bytes: int) -> Optional[str]:
    """Why the measured rendering does not pay against the frame; None: it does (below
    MAX_PREVIEW_SHARE of its time, or below BESIDE_MAX_SHARE where frames flow beside the previews:
    the link then stays busy and the previews cost about their bytes on complete)."""
    if render_s > MAX_PREVIEW_SHARE * frame.seconds and frames_beside(frame, render_s, render_bytes) is None:
        return (f"not worth it on this link: a rendering took {render_s * 1e3:.1f} ms, the exact frame "
                f"{frame.seconds * 1e3:.1f} ms (previews pay below {MAX_PREVIEW_SHARE:.0%} of it, or "
                f"{BESIDE_MAX_SHARE:.0%} with whole frames beside)")
    return None


@dataclass(frozen=True)
class FramesBeside:
    """Whole frames fetched beside the previews: on `connections` extra connections, each with a TCP
    receive buffer of `window` bytes."""

    connections: int
    window: int

    def describe(self) -> str:
        return f"whole frames beside on {self.connections} connections, {self.window / 1024:.0f} KB windows"


def worth_retiming(frame: FrameTiming, render_s: float, render_bytes: int) -> bool:
    """A rendering that does not pay alone (over MAX_PREVIEW_SHARE of the frame's time) and gets no
    frames beside, but took at most twice BESIDE_MAX_SHARE, is timed once more, and the quicker
    counts: one timing on a busy machine may be its noise (seen: 13.8 and 17 ms where renderings
    take ~6, and `auto` skipped them). Elsewhere a second timing could not change the decision."""
    return (MAX_PREVIEW_SHARE * frame.seconds < render_s <= 2 * BESIDE_MAX_SHARE * frame.seconds
            and frames_beside(frame, render_s, render_bytes) is None)


def frames_beside(frame: FrameTiming, render_s: float, render_bytes: int) -> Optional[FramesBeside]:
    """Frames beside the previews where these leave the link idle and cost little CPU beside them
    (BESIDE_MAX_SHARE, BESIDE_LINK_SHARE); the windows together hold what the link carries in half
    a rendering's time (BESIDE_WINDOW_SHARE; the rendering's time holds its round trip and the
    server's), so a rendering's answer waits behind at most that much frame bytes. None: not here."""
    if not 0 < render_s <= BESIDE_MAX_SHARE * frame.seconds:
        return None
    rate = frame.rate()
    if render_bytes / rate > BESIDE_LINK_SHARE * render_s:
        return None
    window = max(MIN_BESIDE_WINDOW, int(rate * render_s * BESIDE_WINDOW_SHARE / BESIDE_CONNECTIONS))
    return FramesBeside(BESIDE_CONNECTIONS, window)


def choose_option(pixels: PixelDescription, slices: int, frame: Optional[FrameTiming]) -> Tuple[int, int]:
    """(longer side, quality): the best rendering whose estimated bytes stay within MAX_BYTE_SHARE
    of the frame's and whose renderings of every slice cross the link within PREVIEW_LINK_S;
    the smallest when none does; DEFAULT_OPTION when the link is unknown."""
    if frame is None or frame.bytes <= 0:
        return DEFAULT_OPTION
    for side, quality in OPTIONS:
        width, height = viewport(pixels, side)
        estimate = width * height * BYTES_PER_PIXEL[quality]
        if estimate <= MAX_BYTE_SHARE * frame.bytes and slices * estimate / frame.rate() <= PREVIEW_LINK_S:
            return side, quality
    return OPTIONS[-1]
