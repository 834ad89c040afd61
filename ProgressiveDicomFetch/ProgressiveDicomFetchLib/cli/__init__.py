"""Command line entry point: one sub-command per module (the contract is in design.md)."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from ..dicomweb.errors import DicomwebError
from ..output.requirements import MissingPackageError
from . import demo_command, fetch_command, query_command

COMMANDS = {"query": query_command, "fetch": fetch_command, "demo": demo_command}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ProgressiveDicomFetchLib",
                                     description="Progressive DICOMweb loading: search and fetch (demo: try it on a local sample).")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for module in COMMANDS.values():
        module.add_parser(commands)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # pynetdicom logs every refusal as ERROR itself; our error line says it once, with advice.
    logging.getLogger("pynetdicom").setLevel(logging.DEBUG if args.verbose >= 2 else logging.CRITICAL)
    try:
        return COMMANDS[args.command].run(args)
    except (DicomwebError, ValueError, MissingPackageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
