"""What the Slicer panel shows and sends, as plain Python: the search form, the result tables,
the server settings, the progress rows. The module file only moves these to and from Qt widgets,
so everything here is tested without Slicer's GUI."""
from __future__ import annotations

from .progress_rows import ProgressRow, bar_style, changed_rows, progress_row, status_message
from .result_tables import SERIES_COLUMNS, STUDY_COLUMNS, Column, is_loadable, table_rows
from .search_form import DATE_PRESETS, SearchForm
from .server_settings import AUTH_KINDS, SERVER_KINDS, RecentServers, ServerSettings

__all__ = [
    "AUTH_KINDS", "SERVER_KINDS", "Column", "DATE_PRESETS", "ProgressRow", "RecentServers", "SERIES_COLUMNS",
    "STUDY_COLUMNS", "SearchForm", "ServerSettings", "bar_style", "changed_rows", "is_loadable", "progress_row",
    "status_message", "table_rows",
]
