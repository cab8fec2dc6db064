"""`make test` on a fresh machine: the browser tests run where Chromium is (or can be installed),
are skipped with one visible line where it cannot be, and CI (FLYWHEEL_REQUIRE_BROWSER=1) fails
instead of skipping.

The Makefile's own `test` recipe runs here with a stand-in `python` (BIN points at a folder whose
`python` prints the FLYWHEEL_SKIP_BROWSER it was given) and the browser paths pointed at files that
exist or not, so nothing is installed and no test suite runs inside the test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "ensure-browser.sh"
SKIP_LINE = "the browser tests (tests/test_browser.py) are skipped"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _env(tmp_path: Path, browser: bool, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLYWHEEL_")}
    exe = "/bin/true" if browser else str(tmp_path / "no-such-chromium")
    env.update(FLYWHEEL_CHROMIUM=exe, FLYWHEEL_CHROMEDRIVER=exe, FLYWHEEL_BROWSER_INSTALL="0",
               FLYWHEEL_SERVERS_INSTALL="0", **extra)
    return env


def _make_test(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    python = bin_dir / "python"
    python.write_text('#!/bin/sh\necho "pytest ran with FLYWHEEL_SKIP_BROWSER=[$FLYWHEEL_SKIP_BROWSER]"\n')
    python.chmod(0o755)
    stamp = tmp_path / "stamp"
    stamp.touch()  # newer than pyproject.toml: the install step has nothing to do
    return subprocess.run(["make", "-s", "-C", str(ROOT), "test", f"BIN={bin_dir}", f"STAMP={stamp}"],
                          env=env, capture_output=True, text=True, timeout=60)


def test_the_script_accepts_a_present_browser(tmp_path):
    done = subprocess.run(["bash", str(SCRIPT)], env=_env(tmp_path, browser=True), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_script_says_why_when_the_browser_is_missing(tmp_path):
    done = subprocess.run(["bash", str(SCRIPT)], env=_env(tmp_path, browser=False), capture_output=True, text=True)
    assert done.returncode == 1
    assert "no-such-chromium" in done.stderr and "not installing" in done.stderr


def test_make_test_runs_the_browser_tests_when_chromium_is_there(tmp_path):
    done = _make_test(tmp_path, _env(tmp_path, browser=True))
    assert done.returncode == 0, done.stderr
    assert "FLYWHEEL_SKIP_BROWSER=[]" in done.stdout and SKIP_LINE not in done.stdout


def test_make_test_skips_them_with_one_line_without_chromium(tmp_path):
    done = _make_test(tmp_path, _env(tmp_path, browser=False))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(SKIP_LINE) == 1
    assert "FLYWHEEL_SKIP_BROWSER=[1]" in done.stdout


def test_ci_fails_rather_than_skipping_without_chromium(tmp_path):
    done = _make_test(tmp_path, _env(tmp_path, browser=False, FLYWHEEL_REQUIRE_BROWSER="1",
                                     FLYWHEEL_SKIP_BROWSER="1"))
    assert done.returncode != 0
    assert "pytest ran" not in done.stdout
