"""Records what Slicer's DICOMLib offers the database import (scene/dicom_database.py) from a
Slicer source checkout, per release: DICOMUtils functions with their parameters, and the
`dicomDatabase` attributes Slicer's own DICOMUtils.py uses. Run it to refresh
Testing/data/slicer_dicom_api.json:  python Testing/slicer_dicom_api.py SLICER_GIT_DIR v5.8.1 v5.12.3
"""
from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

SOURCE = "Modules/Scripted/DICOMLib/DICOMUtils.py"
OUT = Path(__file__).parent / "data" / "slicer_dicom_api.json"


def describe(text: str) -> dict:
    tree = ast.parse(text)
    functions = {node.name: [a.arg for a in node.args.args] for node in tree.body if isinstance(node, ast.FunctionDef)}
    attributes = sorted(set(re.findall(r"[dD]icomDatabase\.([A-Za-z_]+)", text)))
    return {"functions": functions, "database_attributes": attributes}


def main(git_dir: str, *tags: str) -> None:
    record = {"source": SOURCE, "releases": {}}
    for tag in tags:
        text = subprocess.run(["git", "--git-dir", git_dir, "show", f"{tag}:{SOURCE}"], capture_output=True,
                              text=True, check=True).stdout
        record["releases"][tag] = describe(text)
    OUT.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
