"""`query`: studies, the series of a study, or the instances of a series, as a table or JSON."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, List, Sequence, Tuple

from ..dicomweb.records import as_plain_dict, display_name
from ..transport import search_functions
from .connection_options import add_connection_options, server_from_args

Column = Tuple[str, Callable[[Any], Any]]

STUDY_COLUMNS: List[Column] = [
    ("Patient", lambda r: display_name(r.patient_name)), ("PatientID", lambda r: r.patient_id),
    ("Birth", lambda r: r.patient_birth_date), ("Sex", lambda r: r.patient_sex), ("Date", lambda r: r.study_date),
    ("Accession", lambda r: r.accession_number), ("Modalities", lambda r: "/".join(r.modalities)),
    ("Description", lambda r: r.study_description), ("Series", lambda r: r.number_of_series),
    ("Inst", lambda r: r.number_of_instances), ("StudyInstanceUID", lambda r: r.study_uid),
]
SERIES_COLUMNS: List[Column] = [
    ("#", lambda r: r.series_number), ("Modality", lambda r: r.modality),
    ("Description", lambda r: r.series_description), ("BodyPart", lambda r: r.body_part),
    ("Inst", lambda r: r.number_of_instances), ("SeriesInstanceUID", lambda r: r.series_uid),
]
INSTANCE_COLUMNS: List[Column] = [
    ("#", lambda r: r.instance_number), ("Rows", lambda r: r.rows), ("Cols", lambda r: r.columns),
    ("Frames", lambda r: r.number_of_frames), ("SOPInstanceUID", lambda r: r.sop_instance_uid),
]


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("query", help="search studies, series or instances (QIDO-RS, or C-FIND with --dimse)",
                                 description="Without --study: studies. With --study: its series. "
                                             "With --study and --series: the instances of that series.")
    add_connection_options(parser)
    parser.add_argument("--study", help="StudyInstanceUID: list its series")
    parser.add_argument("--series", help="SeriesInstanceUID (with --study): list its instances")
    parser.add_argument("filters", nargs="*", metavar="KEY=VALUE",
                        help="matching keys, e.g. PatientName=DOE^J* StudyDate=20240101- Modality=CT")
    parser.add_argument("--limit", type=int, help="at most this many results")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    if args.series and not args.study:
        raise ValueError("--series needs --study (the study that holds the series)")
    server = server_from_args(args)
    search = search_functions(server)
    if args.series:
        result = search.search_instances(server, args.study, args.series, args.filters, limit=args.limit)
        columns = INSTANCE_COLUMNS
    elif args.study:
        result = search.search_series(server, args.study, args.filters, limit=args.limit)
        columns = SERIES_COLUMNS
    else:
        result = search.search_studies(server, args.filters, limit=args.limit)
        columns = STUDY_COLUMNS
    if args.json:
        json.dump([as_plain_dict(r) for r in result.records], sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_table(columns, result.records))
    for note in result.notes():
        print(f"note: {note}", file=sys.stderr)
    return 0


def format_table(columns: Sequence[Column], records: Sequence[Any]) -> str:
    rows = [[_cell(get(r)) for _, get in columns] for r in records]
    widths = [max([len(name)] + [len(row[i]) for row in rows]) for i, (name, _) in enumerate(columns)]
    lines = ["  ".join(name.ljust(w) for (name, _), w in zip(columns, widths)).rstrip()]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.append(f"({len(records)} result{'s' if len(records) != 1 else ''})")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
