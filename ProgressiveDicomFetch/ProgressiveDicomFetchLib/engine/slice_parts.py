"""How one assignment's slice is got and written where the series has a preview source: its
preview, or its whole frame (by the source, or an ordinary frame request), each only when the
slice is not that good already. The engine decides which part; this does it."""
from __future__ import annotations

from ..loading import SliceTask, VolumeLoad
from ..previews import PreviewSource, SliceFetch
from ..retrieve import FrameFetcher, load_slices, write_cached, write_fetched
from ..volume import Quality
from .stage_plan import Part


def load_part(source: PreviewSource, load: VolumeLoad, fetcher: FrameFetcher, task: SliceTask, part: Part) -> int:
    """A slice's preview, or its whole frame (the cache first); its network bytes. Nothing when the
    slice is already that good (the probe wrote it, or a short frame came whole with its preview)."""
    quality = load.volume.quality(task.k)
    if part is Part.PREVIEW:
        if quality >= source.quality or write_cached(load, fetcher, task):
            return 0
        got = source.fetch_preview(fetcher, task, load.geometry.pixels)
    else:
        if quality >= Quality.FULL:
            return 0
        got = source.fetch_whole(fetcher, task)
        if got is None:  # an ordinary frame request
            return load_slices(load, fetcher, [task])[0]
    write_got(load, fetcher, source, task, got)
    return got.size


def write_got(load: VolumeLoad, fetcher: FrameFetcher, source: PreviewSource, task: SliceTask, got: SliceFetch) -> None:
    """Write what a preview source brought: a whole frame exact (and kept), a preview at its quality."""
    if got.frame is not None:
        write_fetched(load, fetcher, task, got.frame)
    elif got.preview is not None:
        load.write_stored(task.k, got.preview, source.quality, source.reduction)
