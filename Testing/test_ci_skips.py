"""Under CI a skip is a failure (Testing/ci_skips.py), unless allow-listed with a real reason; CI=1
and CI=yes count as CI too. Checked by running pytest on a small suite of skips, as CI would."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from support import REPO, under_ci

from ci_skips import check_allow_list

pytestmark = pytest.mark.compat

SKIPPING_SUITE = textwrap.dedent("""
    import pytest
    absent = pytest.importorskip("no_such_package_pdf")

    def test_never_runs():
        pass
""")
RUNTIME_SKIPS = textwrap.dedent("""
    import pytest

    def test_skips_in_its_body():
        pytest.skip("imagecodecs is not installed")

    @pytest.mark.skipif(True, reason="HTJ2K decoder not installed")
    def test_skipped_by_a_marker():
        pass

    @pytest.mark.xfail(reason="a known bug", strict=True)
    def test_expected_failure():
        assert False

    def test_passes():
        pass
""")


def run_suite(tmp_path, ci, suite=RUNTIME_SKIPS):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_suite.py").write_text(suite)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "Testing"), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "ci_skips", "-p", "no:cacheprovider", "-rA",
                           "-c", str(tmp_path / "pytest.ini"), str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=str(tmp_path), env=env)


@pytest.mark.parametrize("ci", ["true", "1", "YES"])
def test_under_ci_every_skip_fails_the_run(tmp_path, ci):
    result = run_suite(tmp_path, ci)
    assert result.returncode == 1, result.stdout
    assert "1 failed, 1 passed, 1 xfailed, 1 error in" in result.stdout, result.stdout
    assert "skipped under CI" in result.stdout and "imagecodecs is not installed" in result.stdout
    at_import = run_suite(tmp_path, ci, suite=SKIPPING_SUITE)  # pytest.importorskip at module level
    assert at_import.returncode == 2 and "1 error" in at_import.stdout, at_import.stdout
    assert "skipped under CI" in at_import.stdout and "no_such_package_pdf" in at_import.stdout


@pytest.mark.parametrize("ci", [None, "false", "0"])
def test_outside_ci_skips_stay_skips(tmp_path, ci):
    result = run_suite(tmp_path, ci)
    assert result.returncode == 0 and "1 passed, 2 skipped, 1 xfailed in" in result.stdout, result.stdout
    at_import = run_suite(tmp_path, ci, suite=SKIPPING_SUITE)
    assert at_import.returncode == 5 and "1 skipped in" in at_import.stdout, at_import.stdout  # 5: no test ran


@pytest.mark.parametrize("value, expected", [("true", True), ("TRUE", True), ("1", True), ("yes", True),
                                             ("Yes", True), ("", False), ("0", False), ("false", False)])
def test_ci_values(monkeypatch, value, expected):
    monkeypatch.setenv("CI", value)
    assert under_ci() is expected


@pytest.mark.parametrize("value, expected", [("true", "ci"), ("1", "ci"), ("Yes", "ci"), ("no", "local"), ("", "local")])
def test_setup_sh_reads_ci_the_same_way(value, expected):
    script = (REPO / "Testing" / "setup.sh").read_text()
    function = next(line for line in script.splitlines() if line.startswith("under_ci()"))
    result = subprocess.run(["bash", "-c", f"{function}\nunder_ci && echo ci || echo local"],
                            env=dict(os.environ, CI=value), capture_output=True, text=True, check=True)
    assert result.stdout.strip() == expected


@pytest.mark.parametrize("reason", ["imagecodecs is not installed", "HTJ2K decoder missing", "needs package X", ""])
def test_a_missing_package_is_no_reason_to_allow_a_skip(reason):
    with pytest.raises(ValueError, match="not a reason to skip under CI"):
        check_allow_list({"Testing/test_x.py::test_y": reason})
    check_allow_list({"Testing/test_x.py::test_y": "Windows-only behaviour; this suite runs on Linux"})
