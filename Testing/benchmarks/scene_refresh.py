"""Main-thread cost of the scene layer on a real MRML scene (slicer-core): time per
`SceneLoader.process()` tick while the full 240x512x512 CT loads from a real Orthanc, and time
per refresh batch (node + image Modified) of a 512x512x400 volume. Prints figures; not a test.

    .venv/bin/python Testing/benchmarks/scene_refresh.py

slicer-core has no views: the figures are the MRML side only (Slicer's redraw comes on top,
rate-limited to ~10 per second per volume by the loader).
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # Testing/

from fixtures_data import cached_sample  # noqa: E402
from servers.orthanc import OrthancServer  # noqa: E402

from ProgressiveDicomFetchLib.dicomweb import DicomwebServer  # noqa: E402
from ProgressiveDicomFetchLib.engine import ProgressiveFetchEngine  # noqa: E402
from ProgressiveDicomFetchLib.scene.scene_loader import SceneLoader  # noqa: E402
from ProgressiveDicomFetchLib.scene.volume_node import create_volume_node, refresh  # noqa: E402


def figures(name: str, seconds) -> str:
    ms = [1000 * s for s in seconds]
    return f"{name}: n={len(ms)} median {statistics.median(ms):.3f} ms, worst {max(ms):.2f} ms"


def main() -> None:
    import slicer

    slicer.mrmlScene = slicer.vtkMRMLScene()
    array = np.zeros((400, 512, 512), np.int16)
    fake = SimpleNamespace(volume=SimpleNamespace(array=array), geometry=SimpleNamespace(
        ijk_to_ras=np.eye(4), instance_uids=[], series_uid="1.2.3", dataset={}))
    node = create_volume_node(slicer.mrmlScene, fake, "512x512x400")
    batches = []
    for k in range(0, 400, 4):
        array[k] = k
        started = time.perf_counter()
        refresh(node)
        batches.append(time.perf_counter() - started)
    print(figures("refresh batch, 512x512x400 int16", batches))

    sample = cached_sample("full")
    info = sample.series("ct_thin")
    slicer.mrmlScene = slicer.vtkMRMLScene()
    with OrthancServer() as orthanc:
        orthanc.upload(sample.files("ct_thin"))
        loader = SceneLoader(ProgressiveFetchEngine(DicomwebServer(orthanc.dicomweb_url)), watch_focus=False)
        started = time.perf_counter()
        loader.load(info.study_uid, [info.series_uid])
        print(f"load() returned the node after {time.perf_counter() - started:.2f} s (metadata + geometry)")
        ticks = []
        while not loader.engine.finished():
            tick = time.perf_counter()
            loader.process()
            ticks.append(time.perf_counter() - tick)
            time.sleep(0.005)
        loader.process()
        loader.close()
        print(figures("SceneLoader.process() tick while 240x512x512 loads", ticks))


if __name__ == "__main__":
    main()
