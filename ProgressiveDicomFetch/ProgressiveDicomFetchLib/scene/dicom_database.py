"""Slicer's DICOM database: loaded series added the way DICOMLib adds DICOMweb series, and series
already there detected (docs/dicom-files.md).

Slicer 5.8-5.12 `DICOMUtils.importFromDICOMWeb` writes each series' files below
`slicer.dicomDatabase.databaseDirectory + "/DICOMweb"` and indexes them in place with
`DICOMUtils.importDicom(folder)` (a `ctkDICOMIndexer`, `addDirectory(db, folder, copyFiles=False)`);
it skips a series whose SOP instances `dicomDatabase.instancesForSeries(uid)` all lists, and
`DICOMUtils.loadSeriesByUID` loads a series from the database. This module does the same; the
Part-10 files come from retrieve/part10_writer.py (worker thread), the indexing runs on the main
thread. Every Slicer name used here is checked against Slicer's source
by Testing/test_dicom_database.py. `slicer` and DICOMLib are imported only when called.
"""
from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, List, Optional

from ..cache import FrameCache
from ..dicomweb.errors import DicomwebError
from ..dicomweb.server import DicomwebServer
from ..retrieve.part10_writer import Part10Report, Part10Writer

logger = logging.getLogger(__name__)

SETTING_KEY = "ProgressiveDicomFetch/AddToDicomDatabase"  # "Add loaded series to the DICOM database"
SETTING_DEFAULT = True
FOLDER = ("DICOMweb", "ProgressiveDicomFetch")  # below the database directory, like importFromDICOMWeb


def files_folder(database: Any) -> Optional[Path]:
    """Where the files of loaded series go (`<study>/<series>/<sop>.dcm` below it); None without
    an open database."""
    if database is None or not database.isOpen:
        return None
    return Path(str(database.databaseDirectory)).joinpath(*FOLDER)


def series_count_in_database(database: Any, series_uid: str, instance_count: Optional[int]) -> bool:
    """The cheap test for a search result (no metadata yet): the database holds at least as many
    instances of the series as the server says it has."""
    if database is None or not database.isOpen or not instance_count:
        return False
    return len(database.instancesForSeries(series_uid)) >= int(instance_count)


def series_in_database(database: Any, series_uid: str, sop_instance_uids: Iterable[str]) -> bool:
    """True when the database already lists every instance of the series (importFromDICOMWeb's test)."""
    wanted = set(sop_instance_uids)
    if database is None or not database.isOpen or not wanted:
        return False
    return wanted <= set(database.instancesForSeries(series_uid))


def import_folder(folder: Path, database: Any = None) -> bool:
    """Index the files below `folder` into the database in place (no copy); main thread only."""
    from DICOMLib import DICOMUtils  # Slicer only

    ok = bool(DICOMUtils.importDicom(str(folder), database))
    if not ok:
        logger.error("Slicer's DICOM database refused the files in %s", folder)
    return ok


def load_from_database(series_uids: Iterable[str]) -> List[str]:
    """Load series from the database with Slicer's DICOM plugins (as the DICOM browser does);
    returns the new node IDs. Main thread only."""
    from DICOMLib import DICOMUtils  # Slicer only

    return list(DICOMUtils.loadSeriesByUID(list(series_uids)))


@dataclass
class DatabaseImport:
    """One completed series: its files (written by a worker) and whether the database took them."""

    series_uid: str
    folder: Path
    report: Optional[Part10Report] = None
    error: str = ""
    imported: bool = False


class DatabaseImports:
    """Completed series go to the database: files written in a worker thread (network, disk),
    indexed on the main thread by `poll()` (DICOMLib and ctk are main-thread APIs)."""

    def __init__(self, database: Any, cache: Optional[FrameCache] = None) -> None:
        self.database = database
        self.cache = cache
        self._done: "queue.Queue[DatabaseImport]" = queue.Queue()
        self._threads: List[threading.Thread] = []

    def add(self, server: DicomwebServer, study_uid: str, series_uid: str) -> bool:
        """Start writing the series' files; False when there is no open database."""
        root = files_folder(self.database)
        if root is None:
            return False
        thread = threading.Thread(target=self._write, args=(root, server, study_uid, series_uid),
                                  name=f"dicom-files-{series_uid}", daemon=True)
        self._threads.append(thread)
        thread.start()
        return True

    def _write(self, root: Path, server: DicomwebServer, study_uid: str, series_uid: str) -> None:
        job = DatabaseImport(series_uid, root / study_uid / series_uid)
        try:
            writer = Part10Writer(root, server, self.cache, release_cache=True)  # the files replace the frames
            job.report = writer.write_series(study_uid, series_uid)
            if job.report.failed:
                job.error = f"{len(job.report.failed)} instances could not be written: {job.report.failed[0]}"
        except (DicomwebError, ValueError, OSError) as error:
            job.error = str(error)
        self._done.put(job)

    def busy(self) -> bool:
        self._threads = [t for t in self._threads if t.is_alive()]
        return bool(self._threads) or not self._done.empty()

    def poll(self, importer=None) -> List[DatabaseImport]:
        """Main thread: index the series whose files are all written (`importer` is import_folder)."""
        importer = import_folder if importer is None else importer
        finished = []
        while not self._done.empty():
            job = self._done.get_nowait()
            if job.error:
                logger.error("series %s not added to the DICOM database: %s", job.series_uid, job.error)
            else:
                job.imported = importer(job.folder, self.database)
            finished.append(job)
        return finished

    def close(self, timeout: float = 10.0) -> None:
        for thread in self._threads:
            thread.join(timeout)
