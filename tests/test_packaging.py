"""A normal (non-editable) install runs the demo: the wheel `pip wheel .` builds carries the package
data (GX suites, the default policy, the SQL), and `flywheel generate` + `flywheel run` from a
folder outside the repository, with the installed package only, publish the feed and build the
analysts' database.

The new virtual environment gets the wheel with `--no-deps`; its dependencies come from this
test's own environment through a `.pth` file (no download, and the repository's editable install
is not seen: a .pth only adds a folder to sys.path, it does not run the .pth files inside it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
# what the wheel is built from: pyproject.toml names README.md as the long description
SOURCES = ("pyproject.toml", "README.md", "flywheel", "assets")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_a_wheel_installed_in_a_fresh_venv_runs_the_demo(tmp_path):
    src = tmp_path / "src"  # a copy, so the build writes no build/ or egg-info into the checkout
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(tmp_path / "dist")])
    (wheel,) = (tmp_path / "dist").glob("flywheel-*.whl")

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)])

    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYWHEEL_", "DAGSTER_")) and k != "PYTHONPATH"}
    home = tmp_path / "home"
    env.update(FLYWHEEL_LANDING=str(home / "landing"), FLYWHEEL_STORE=str(home / "store"),
               FLYWHEEL_DB=str(home / "flywheel.duckdb"), FLYWHEEL_PUBLISH=str(home / "publish"),
               DAGSTER_HOME=str(home / "dagster_home"))
    (home / "dagster_home").mkdir(parents=True)
    (home / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    elsewhere = tmp_path / "elsewhere"  # not the checkout: nothing is found relative to it
    elsewhere.mkdir()

    where = _run([str(python), "-c", "import flywheel, assets.cli; from flywheel.quality import EXPECTATIONS_DIR; "
                  "from flywheel.signals.policy import DEFAULT_POLICY; "
                  "print(flywheel.__file__, EXPECTATIONS_DIR / 'events.json', DEFAULT_POLICY, sep='\\n')"],
                 cwd=elsewhere, env=env).stdout.split()
    assert all(Path(p).is_relative_to(site) and Path(p).is_file() for p in where), where

    flywheel = str(env_dir / "bin" / "flywheel")
    _run([flywheel, "generate", "--days", "2", "--events-per-day", "200", "--start", "2026-03-01", "--no-progress"],
         cwd=elsewhere, env=env)
    out = _run([flywheel, "run", "--quiet", "--no-progress"], cwd=elsewhere, env=env).stdout
    assert "ran event days 2026-03-01 .. 2026-03-02" in out, out

    feed = json.loads((home / "publish" / "feed" / "latest.json").read_text())
    assert feed["data_day"] == "2026-03-02"
    con = duckdb.connect(str(home / "flywheel.duckdb"), read_only=True)
    con.execute("SET VARIABLE flywheel_store = ?", [str(home / "store")])
    try:
        days = con.sql("SELECT DISTINCT event_date FROM ingest.events ORDER BY 1").fetchall()
        decided = con.sql("SELECT count(*) FROM signals.decisions WHERE day = DATE '2026-03-02'").fetchall()[0][0]
    finally:
        con.close()
    assert [str(d) for (d,) in days] == ["2026-03-01", "2026-03-02"]
    assert decided > 0
