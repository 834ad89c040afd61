"""pytest plugin: under CI a skipped test is a failure, so a part that went missing (a codec that
lost a feature, a package not installed) turns the run red instead of quietly shrinking it.

A skip stays a skip under CI only when its test is in CI_ALLOWED_SKIPS with a reason that says
why the skip is right on every machine; "a package is missing" is never such a reason (setup.sh
installs every package the suite needs). Expected failures (xfail) are not skips.
"""
from __future__ import annotations

import re
from typing import Dict, Optional

import pytest
from support import under_ci

# node id (or a prefix of it) -> why skipping it is correct even under CI.
CI_ALLOWED_SKIPS: Dict[str, str] = {}
PACKAGE_EXCUSE = re.compile(r"not installed|missing|unavailable|not available|no module|package|import", re.I)


def check_allow_list(allowed: Dict[str, str]) -> None:
    """Reject an allow-list entry whose reason is a missing part (that is what CI must catch)."""
    for nodeid, reason in allowed.items():
        if not reason.strip() or PACKAGE_EXCUSE.search(reason):
            raise ValueError(f"CI_ALLOWED_SKIPS[{nodeid!r}]: {reason!r} is not a reason to skip under CI")


check_allow_list(CI_ALLOWED_SKIPS)


def _allowed(nodeid: str) -> Optional[str]:
    return next((reason for prefix, reason in CI_ALLOWED_SKIPS.items() if nodeid.startswith(prefix)), None)


def _fail_skip(report) -> None:
    if not report.skipped or hasattr(report, "wasxfail") or not under_ci() or _allowed(report.nodeid):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = f"skipped under CI (CI_ALLOWED_SKIPS in Testing/ci_skips.py does not list it): {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """Module-level skips (pytest.importorskip, pytestmark skipif at import) happen at collection."""
    outcome = yield
    _fail_skip(outcome.get_result())
