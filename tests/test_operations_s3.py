"""What operators do, on a bucket: the nights of `flywheel run` (in-process `run_days`) with the landing
area, the store and the feed in a SeaweedFS bucket (tests/servers.py) against the same nights on local
folders, each night compared table by table and feed by feed:

1. three generated days (the demo's generator, seed 7, 100 events a day);
2. late reviews: a file of reviews of the first day's events that were still awaiting review lands
   two days later; the next night rebuilds that old day alone (the record of changed days) and
   refreshes the later days' windows, which read it;
3. a night with nothing new: nothing runs, the feed stays as it was to the byte.
"""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from assets.runner import run_days
from conftest import write_jsonl
from flywheel.config import Settings
from flywheel.generate import generate
from flywheel.objectstore import polars_options, root_of, url
from flywheel.store import Layout
from flywheel.tables import EVENT_OUTCOMES
from servers import seaweedfs_server  # noqa: F401
from test_deploy_s3 import VOLATILE_FEED_KEYS, _analyst_tables, _environment

START = date(2026, 3, 1)
DAYS = 3
HASH_KEY = "operations-s3-test"


def _late_reviews(settings: Settings) -> list[dict]:
    """Reviews, dated two days later, of the first day's events still awaiting review (accepted,
    edited, rejected in turn)."""
    path = Layout(settings.store).table(EVENT_OUTCOMES.path, START)
    waiting = (pl.read_parquet(url(path), storage_options=polars_options(path))
               .filter(pl.col("outcome") == "awaiting_review").sort("event_id")["event_id"].to_list())
    assert len(waiting) >= 2, waiting
    actions = ("accepted", "edited", "rejected")
    return [{"intervention_id": f"late-{eid}", "event_id": eid, "occurred_at": f"{START + timedelta(days=2)}T22:00:00Z",
             "action": actions[i % 3], "review_seconds": 40,
             **({"final_text": "a reviewer's own answer"} if actions[i % 3] == "edited" else {})}
            for i, eid in enumerate(waiting)]


def _nights(env: dict[str, str], landing_put, reviews: list[dict] | None = None) -> tuple[list[tuple], list[dict]]:
    """The three nights under `env` (FLYWHEEL_* and AWS_*): after each, (analyst tables, feed without
    its volatile keys, the feed's raw bytes); and the late reviews that landed before the second,
    `reviews` or else `_late_reviews` of the first night's store, added by `landing_put(name, rows)`."""
    out: list[tuple] = []
    with _environment(env):
        settings = Settings.from_env()
        feed_path = settings.publish / "feed" / "latest.json"

        def after() -> None:
            raw = feed_path.read_bytes()
            feed = json.loads(raw)
            for key in VOLATILE_FEED_KEYS:
                feed.pop(key)
            db = Path(env["FLYWHEEL_DB"]).with_name(f"analyst-{len(out)}.duckdb")
            out.append((_analyst_tables(env, db), feed, raw))

        ran = run_days(settings, None, None, quiet=True, progress=False)
        assert ran is not None and ran.days == [START + timedelta(days=i) for i in range(DAYS)]
        after()
        reviews = _late_reviews(settings) if reviews is None else reviews
        landing_put("interventions/late-reviews.jsonl", reviews)
        ran = run_days(settings, None, None, quiet=True, progress=False)
        assert ran is not None and ran.days == [START], ran  # the old day alone (its windows' days refreshed)
        after()
        assert run_days(settings, None, None, quiet=True, progress=False) is None  # nothing new
        after()
    return out, reviews


@pytest.fixture(scope="module")
def local_nights(tmp_path_factory):
    base = tmp_path_factory.mktemp("local")
    generate(base / "landing", days=DAYS, events_per_day=100, seed=7, start=START, progress=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYWHEEL_", "AWS_"))}
    env.update(FLYWHEEL_LANDING=str(base / "landing"), FLYWHEEL_STORE=str(base / "store"),
               FLYWHEEL_PUBLISH=str(base / "publish"), FLYWHEEL_DB=str(base / "flywheel.duckdb"),
               FLYWHEEL_HASH_KEY=HASH_KEY)
    nights, reviews = _nights(env, lambda name, rows: write_jsonl(base / "landing" / name, rows))
    return base / "landing", nights, reviews


def test_late_reviews_and_a_quiet_night_on_a_bucket_equal_the_same_nights_on_local_folders(
        seaweedfs_server, local_nights, tmp_path):  # noqa: F811
    landing, want, reviews = local_nights
    prefix = f"flywheel/operations-{os.getpid()}-{tmp_path.name}"
    env = {**seaweedfs_server.env(), "FLYWHEEL_LANDING": f"s3://{prefix}/landing", "FLYWHEEL_STORE": f"s3://{prefix}/store",
           "FLYWHEEL_PUBLISH": f"s3://{prefix}/publish", "FLYWHEEL_DB": str(tmp_path / "flywheel.duckdb"),
           "FLYWHEEL_HASH_KEY": HASH_KEY}
    with _environment(env):
        bucket_landing = root_of(env["FLYWHEEL_LANDING"])
        # the generated files; not the late reviews the local nights have since added
        for path in sorted(p for p in landing.rglob("*") if p.is_file() and p.name != "late-reviews.jsonl"):
            bucket_landing.fs.put_file(str(path), f"{bucket_landing.path}/{path.relative_to(landing).as_posix()}")
        late = f"{landing.parent}/late-reviews.jsonl"

        def put(name: str, rows: list) -> None:
            write_jsonl(Path(late), rows)
            bucket_landing.fs.put_file(late, f"{bucket_landing.path}/{name}")

    got, _ = _nights(env, put, reviews)
    for night, ((got_tables, got_feed, _), (want_tables, want_feed, _)) in enumerate(zip(got, want), start=1):
        differ = sorted(name for name in want_tables if got_tables.get(name) != want_tables[name])
        assert got_tables.keys() == want_tables.keys() and differ == [], (night, differ)
        assert got_feed == want_feed, night
    assert got[2][2] == got[1][2]  # the quiet night left the feed as it was, to the byte
    assert want[1][0]["outcomes.event_outcomes"] != want[0][0]["outcomes.event_outcomes"]  # the reviews counted
