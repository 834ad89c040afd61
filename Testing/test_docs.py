"""The documentation a clone gets: README.md and docs/*.md link only to what the repository holds.

Every relative link and picture must name a file that exists and that .gitignore does not hide
(a picture of results nobody can commit is a broken picture), every `#anchor` a heading of its
target, and no committed file may send the reader to notes outside the repository.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import List, Tuple

import pytest

from support import REPO

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
DOCS = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
OUTSIDE = ("design" + ".md", "slicer-" + "notes", "dicomweb-servers" + ".md", "/" + "work/")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(document: Path) -> set:
    return {slug(line.lstrip("#")) for line in document.read_text(encoding="utf-8").splitlines()
            if re.match(r"#{1,6} ", line)}


def relative_links(document: Path) -> List[Tuple[str, str]]:
    """(path, anchor) of every link that is not a URL; path '' means the document itself."""
    found = []
    for target in LINK.findall(document.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        found.append((path, anchor))
    return found


def ignored(path: Path) -> bool:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    result = subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", "--no-index", str(path.relative_to(REPO))])
    return result.returncode == 0


@pytest.mark.compat
@pytest.mark.parametrize("document", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_links_name_committed_files_and_real_headings(document):
    assert relative_links(document) or document.name != "README.md", "the README links to nothing?"
    for path, anchor in relative_links(document):
        target = (document.parent / path).resolve() if path else document
        assert target.exists(), f"{document.name}: link to {path} which does not exist"
        assert REPO in target.parents or target == REPO, f"{document.name}: {path} is outside the repository"
        assert not ignored(target), f"{document.name}: {path} is hidden by .gitignore"
        if anchor and target.suffix == ".md":
            assert anchor in anchors(target), f"{document.name}: no heading #{anchor} in {target.name}"


@pytest.mark.compat
def test_no_committed_text_points_outside_the_repository():
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    listing = ["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard"]
    files = subprocess.run(listing, capture_output=True, text=True, check=True).stdout.split()
    offenders = []
    for name in files:
        path = REPO / name
        if path.suffix not in (".py", ".md", ".txt", ".json", ".toml", ".sh", ".cfg", ".ui", ".cmake") and \
                path.name not in ("Makefile", "CMakeLists.txt"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        offenders += [f"{name}: {word}" for word in OUTSIDE if word in text]
    assert not offenders, offenders
