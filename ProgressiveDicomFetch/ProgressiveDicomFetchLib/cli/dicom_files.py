"""`fetch --dicom DIR [--no-nrrd]`: Part-10 files of every completed series (docs/dicom-files.md)."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, List, Optional, Sequence

from ..cache import FrameCache
from ..dicomweb.errors import DicomwebError
from ..dicomweb.server import DicomwebServer
from ..retrieve.part10_writer import Part10Writer

logger = logging.getLogger(__name__)


def add_dicom_options(parser: Any) -> None:
    parser.add_argument("--dicom", type=Path, metavar="DIR",
                        help="also keep DICOM files: DIR/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm "
                             "(the server's own files where it offers them, else rebuilt); a re-run adds only what is missing")
    parser.add_argument("--no-nrrd", action="store_true", help="with --dicom: write no NRRD files")


def check_dicom_options(args: argparse.Namespace) -> None:
    if args.no_nrrd and args.dicom is None:
        raise ValueError("--no-nrrd needs --dicom DIR (otherwise nothing would be written)")
    if args.out is None and not args.no_nrrd:
        raise ValueError("--out DIR is required (unless --dicom DIR --no-nrrd)")
    if args.dicom is not None and args.dicom.exists() and not args.dicom.is_dir():
        raise ValueError(f"--dicom {args.dicom} exists and is not a folder")


def write_dicom_files(args: argparse.Namespace, server: DicomwebServer, complete: Sequence[str],
                      cache: Optional[FrameCache]) -> List[str]:
    """The files of the complete series; returns the series that could not be written whole."""
    if args.dicom is None:
        return []
    writer = Part10Writer(args.dicom, server, cache)
    failed = []
    for series_uid in complete:
        try:
            report = writer.write_series(args.study, series_uid)
        except (DicomwebError, ValueError) as error:
            print(f"error: DICOM files of series {series_uid}: {error}", file=sys.stderr)
            failed.append(series_uid)
            continue
        print(report.summary())
        for line in report.failed + report.incomplete:
            print(f"  {line}", file=sys.stderr)
        if report.failed:
            failed.append(series_uid)
    return failed
