"""Server and authentication options shared by the sub-commands."""
from __future__ import annotations

import argparse
import os
from typing import Any, Dict, List

from ..dicomweb.auth import make_auth
from ..dicomweb.server import DicomwebServer
from ..dimse.address import DEFAULT_CALLING_AET
from ..transport import open_server

PASSWORD_ENV = "DICOMWEB_PASSWORD"
TOKEN_ENV = "DICOMWEB_TOKEN"


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("server")
    where = group.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="DICOMweb base URL, e.g. http://localhost:8042/dicom-web")
    where.add_argument("--dimse", metavar="AET@HOST:PORT",
                       help="a classic PACS over DIMSE (C-FIND, C-GET; needs pynetdicom), e.g. ORTHANC@127.0.0.1:4242")
    group.add_argument("--calling-aet", metavar="NAME", help=f"our AE title with --dimse (default {DEFAULT_CALLING_AET})")
    group.add_argument("--move-port", type=int, metavar="PORT",
                       help="with --dimse: retrieve by C-MOVE to our AE title listening on this port (peers without "
                            "C-GET; the peer must know NAME@this-host:PORT)")
    group.add_argument("--user", help="HTTP Basic user name")
    group.add_argument("--password", help=f"HTTP Basic password (or set {PASSWORD_ENV}, which keeps it out of ps)")
    group.add_argument("--token", help=f"OAuth bearer token (or set {TOKEN_ENV})")
    group.add_argument("--header", action="append", default=[], metavar='"K: V"', help="extra request header")
    group.add_argument("--ca-bundle", help="CA bundle file for TLS verification")
    group.add_argument("--insecure", action="store_true", help="do not verify TLS certificates (not recommended)")
    group.add_argument("--timeout", type=float, default=30.0, help="read timeout in seconds (default 30)")


def parse_headers(values: List[str]) -> Dict[str, str]:
    headers = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"--header {value!r} must look like 'Name: value'")
        headers[name.strip()] = content.strip()
    return headers


def server_from_args(args: argparse.Namespace) -> Any:
    """A DicomwebServer for --url, a DimseServer for --dimse (HTTP options refused with it)."""
    if args.timeout <= 0:
        raise ValueError("--timeout must be positive")
    if args.dimse:
        http_only = [name for name in ("user", "password", "token", "ca_bundle") if getattr(args, name)]
        http_only += ["header"] * bool(args.header) + ["insecure"] * bool(args.insecure)
        if http_only:
            raise ValueError(f"--{http_only[0].replace('_', '-')} is a DICOMweb option: it does not apply to --dimse")
        return open_server(args.dimse, args.calling_aet or "", timeout=args.timeout, move_port=args.move_port)
    if args.calling_aet or args.move_port:
        raise ValueError("--calling-aet and --move-port go with --dimse")
    if args.insecure and args.ca_bundle:
        raise ValueError("--insecure and --ca-bundle contradict each other")
    password = args.password if args.password is not None else os.environ.get(PASSWORD_ENV)
    token = args.token or (None if args.user else os.environ.get(TOKEN_ENV))
    auth = make_auth(user=args.user, password=password, token=token)
    verify = False if args.insecure else (args.ca_bundle or True)
    if args.ca_bundle and not os.path.isfile(args.ca_bundle):
        raise ValueError(f"--ca-bundle {args.ca_bundle!r} is not a file")
    return DicomwebServer(args.url, auth=auth, headers=parse_headers(args.header), verify=verify,
                          timeout=(min(10.0, args.timeout), args.timeout))
