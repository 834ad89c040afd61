"""Which Python packages a series' frames call for, from what the engine learnt of its volumes.

Inside Slicer only numpy, pydicom and requests are bundled; a codec package is installed only
with the user's consent, so the engine names them and the panel asks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Sequence

from ..loading import VolumeLoad
from ..pixels.codecs import missing_packages
from ..pixels.htj2k_preview import preview_packages


@dataclass(frozen=True)
class PackageAdvice:
    required: List[str] = field(default_factory=list)  # without them the frames cannot be decoded here
    optional: List[str] = field(default_factory=list)  # they would add in-plane previews (imagecodecs)


def package_advice(loads: Sequence[VolumeLoad]) -> PackageAdvice:
    syntaxes = [uid for load in loads for uid in load.stored_transfer_syntaxes]
    return PackageAdvice(missing_packages(syntaxes), preview_packages(syntaxes))
