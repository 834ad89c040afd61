"""ProgressiveDicomFetch core: pure Python, importable without Slicer.

Layers (design.md): dicomweb -> geometry/decode -> volume model -> engine -> scene.
Nothing here imports slicer, qt, ctk or vtk at module import time.
"""

__version__ = "0.1.0"
