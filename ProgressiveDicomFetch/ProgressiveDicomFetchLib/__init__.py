"""ProgressiveDicomFetch core: pure Python, importable without Slicer.

Layers from the ground up (docs/architecture.md): files -> dicomweb, pixels, volume, output ->
geometry, cache -> the volume model (loading.py) -> retrieve -> previews -> engine -> scene, panel,
cli. No module imports one above it (Testing/test_layers.py).
Nothing here imports slicer, qt, ctk or vtk at module import time.
"""

__version__ = "0.1.0"
