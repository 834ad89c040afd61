"""Small helpers shared by the test modules (not fixtures: those live in fixtures_*.py)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "ProgressiveDicomFetch"
LIB_DIR = MODULE_DIR / "ProgressiveDicomFetchLib"
# Generated data and compiled helpers are cached here between runs (deterministic content).
CACHE_DIR = Path(os.environ.get("PDF_TEST_CACHE", REPO / ".cache"))


CI_VALUES = ("true", "1", "yes")


def under_ci() -> bool:
    """CI=true, CI=1 or CI=yes (any case), as CI services set it; setup.sh reads it the same way."""
    return os.environ.get("CI", "").strip().lower() in CI_VALUES


def missing(what: str) -> NoReturn:
    """Skip a test whose real part is absent here; under CI that is a failure, never a skip."""
    message = f"{what} is not available (run `make test`, which installs it)"
    if under_ci():
        pytest.fail(f"under CI: {message}", pytrace=False)
    pytest.skip(message)
