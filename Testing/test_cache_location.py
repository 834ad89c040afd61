"""Where Slicer keeps our frames, checked against Slicer's own pruning (vtkCacheManager.PruneCache
from slicer-core, the code Slicer 5.12 runs at start-up): top-level entries of its cache folder
go whole, oldest first, until the folder is under its limit. A frame cache inside it is lost at
once; ours lives outside and keeps every frame. Sample-server frames are keyed by the data's
version, so a restart on another port finds them again."""
from __future__ import annotations

import os

import pytest

from ProgressiveDicomFetchLib.cache import FrameCache, FrameKey, cache_dir_outside
from ProgressiveDicomFetchLib.dicomweb.frames import FrameData
from ProgressiveDicomFetchLib.sampledata.sample_cache import SampleSet
from ProgressiveDicomFetchLib.sampledata.sample_server import SampleServer
from ProgressiveDicomFetchLib.sampledata.static_tree import write_static_tree
from ProgressiveDicomFetchLib.scene.fetch_session import FetchSession

FRAME_BYTES = 256 * 1024


def fill(cache: FrameCache, count: int):
    keys = []
    for n in range(count):
        key = FrameKey("http://127.0.0.1:8042/dicom-web", "1.2.3", "1.2.3.4", f"1.2.3.4.{n + 1}", 1)
        cache.put(key, FrameData(1, os.urandom(FRAME_BYTES), "1.2.840.10008.1.2.1", "application/octet-stream"))
        keys.append(key)
    return keys


def slicer_cache_manager(slicer, folder, limit_mb):
    manager = slicer.vtkCacheManager()
    manager.SetRemoteCacheDirectory(str(folder))  # creates it with Slicer's sentinel file
    manager.SetRemoteCacheLimit(limit_mb)
    assert manager.HasSentinelFile()
    return manager


def test_slicer_prunes_a_frame_cache_inside_its_folder_but_not_ours(slicer_module, tmp_path):
    slicer_cache = tmp_path / "slicer-cache"
    environ = {"HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "xdg-cache")}
    manager = slicer_cache_manager(slicer_module, slicer_cache, limit_mb=1)
    inside = FrameCache(slicer_cache / "ProgressiveDicomFetch" / "frames")  # the old layout
    ours = FrameCache(cache_dir_outside(slicer_cache, environ))
    inside_keys, our_keys = fill(inside, 8), fill(ours, 8)  # 2 MB each, over Slicer's 1 MB limit
    (slicer_cache / "recent-download.nrrd").write_bytes(os.urandom(100_000))
    manager.UpdateCacheInformation()
    assert manager.PruneCache()
    assert not (slicer_cache / "ProgressiveDicomFetch").exists(), "Slicer deletes the whole entry"
    assert (slicer_cache / "recent-download.nrrd").exists()
    assert all(inside.get(key) is None for key in inside_keys)
    assert all(ours.get(key) is not None for key in our_keys), "our frames are outside the pruned folder"
    assert str(ours.root).startswith(str(tmp_path / "xdg-cache"))


def test_a_user_cache_folder_inside_slicers_falls_back_to_the_data_folder(tmp_path):
    slicer_cache = tmp_path / "cache"
    environ = {"HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache"),
               "XDG_DATA_HOME": str(tmp_path / "data")}
    assert cache_dir_outside(slicer_cache, environ) == tmp_path / "data" / "ProgressiveDicomFetch" / "frames"
    with pytest.raises(ValueError, match="outside"):
        cache_dir_outside(tmp_path, environ)


def test_sample_server_frames_are_found_again_after_a_restart_on_another_port(slicer_module, sample_small, tmp_path):
    info = sample_small.series("ct_thick")
    tree = write_static_tree(sample_small.files("ct_thick"), tmp_path / "tree")
    identity = SampleSet(tree, sample_small).content_identity
    cache = FrameCache(tmp_path / "frames")
    fetched = []
    for _ in range(2):
        with SampleServer(tree.root) as server:
            session = FetchSession(slicer_module.mrmlScene, cache=cache)
            session.name_content(server.url, identity)
            assert session.set_server(server.url).cache_identity == identity
            try:
                session.load(info.study_uid, [info.series_uid])
                assert session.wait(timeout=60)
                (progress,) = session.progress()
                assert progress.state == "complete"
                fetched.append(progress.bytes)
            finally:
                session.close()
        slicer_module.mrmlScene.Clear(False)
    assert fetched[0] > 0 and fetched[1] == 0, "the second run (another port) read every frame from the cache"
