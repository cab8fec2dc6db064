"""flywheel.objectstore and the store's writes against a real S3-compatible server (SeaweedFS, started
by tests/servers.py on 127.0.0.1) and, where the API has a local form, a local folder: conditional
create and compare-and-swap refuse a lost condition (`Conflict`), a Parquet write that raises part-way
leaves nothing at its key (nor replaces what was there, nor leaves an upload open), and a lease (or
an flock locally) serialises read-modify-writes of three processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flywheel import objectstore
from flywheel.objectstore import Conflict, is_remote, root_of
from flywheel.store import Layout, exclusive, write_batches_atomic, write_bytes_atomic, write_parquet_atomic
from servers import seaweedfs_server  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def s3_env(seaweedfs_server, monkeypatch):  # noqa: F811
    """The standard AWS variables pointing at the test server."""
    env = {"AWS_ACCESS_KEY_ID": seaweedfs_server.access_key, "AWS_SECRET_ACCESS_KEY": seaweedfs_server.secret_key,
           "AWS_ENDPOINT_URL": f"http://{seaweedfs_server.endpoint}", "AWS_REGION": seaweedfs_server.region}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    """A fresh store root: a local folder, or a fresh prefix in the test server's bucket."""
    if request.param == "local":
        return tmp_path / "store"
    request.getfixturevalue("s3_env")
    return root_of(f"s3://flywheel/objectstore-{uuid.uuid4().hex[:10]}")


def test_root_of_tells_urls_from_folders(tmp_path, s3_env):
    assert root_of(str(tmp_path)) == tmp_path and not is_remote(root_of(str(tmp_path)))
    remote = root_of("s3://flywheel/some/prefix/")
    assert is_remote(remote) and objectstore.url(remote / "events") == "s3://flywheel/some/prefix/events"
    assert objectstore.url(Path("relative")) == str(Path("relative").resolve())
    with pytest.raises(ValueError, match="only local folders and s3://"):
        root_of("gs://bucket/prefix")
    with pytest.raises(ValueError, match="must name a bucket"):
        root_of("s3://")
    assert objectstore.polars_options(tmp_path) is None
    assert objectstore.polars_options(remote)["aws_endpoint_url"] == s3_env["AWS_ENDPOINT_URL"]


def test_create_twice_is_a_conflict_and_keeps_the_first(root):
    doc = root / "manifests" / "a.json"
    first = objectstore.put(doc, b'{"v": 1}', create=True)
    with pytest.raises(Conflict):
        objectstore.put(doc, b'{"v": 2}', create=True)
    assert objectstore.get(doc) == (b'{"v": 1}', first)


def test_compare_and_swap_on_the_etag(root):
    doc = root / "rebuild.json"
    old = objectstore.put(doc, b"one")
    new = objectstore.put(doc, b"two", if_match=old)
    with pytest.raises(Conflict):
        objectstore.put(doc, b"three", if_match=old)  # stale: the document changed since `old` was read
    with pytest.raises(Conflict):
        objectstore.delete(doc, if_match=old)
    assert objectstore.get(doc)[0] == b"two"
    objectstore.delete(doc, if_match=new)
    assert not doc.exists() and objectstore.etag(doc) is None
    with pytest.raises(Conflict):
        objectstore.put(doc, b"four", if_match=new)  # If-Match on a missing object never creates it


def _uploads_open(root) -> int:
    """Multipart uploads still open under the remote root (0 locally)."""
    if not is_remote(root):
        return 0
    fs = root.fs
    bucket, _, prefix = root.path.partition("/")
    reply = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=prefix)
    return len(reply.get("Uploads", []))


def test_a_parquet_write_that_raises_part_way_publishes_nothing(root):
    """Three 4 MiB batches of incompressible bytes: the second already started a multipart upload
    (parts of 8 MiB), then the producer raises. The key keeps what it had (nothing, or the earlier
    file), and no upload is left open; locally no temporary file is left either."""
    schema = pa.schema([("blob", pa.binary())])
    rng = __import__("random").Random(7)
    batch = pa.record_batch([pa.array([rng.randbytes(1 << 20) for _ in range(4)], pa.binary())], schema=schema)

    def failing():
        yield batch
        yield batch
        raise RuntimeError("producer failed")

    layout = Layout(root)
    fresh, kept = layout.table("blobs", date(2026, 3, 1)), layout.table("blobs", date(2026, 3, 2))
    write_parquet_atomic(pa.table({"blob": [b"old"]}, schema=schema), kept)
    for target in (fresh, kept):
        with pytest.raises(RuntimeError, match="producer failed"):
            write_batches_atomic(failing(), schema, target)
    assert not fresh.exists()
    with kept.open("rb") as fh:
        assert pq.read_table(fh).column("blob").to_pylist() == [b"old"]
    assert _uploads_open(root) == 0
    assert sorted(p.name for p in (root / "blobs").rglob("*") if p.is_file()) == ["data.parquet"]
    # and the same write without the failure is published whole
    assert write_batches_atomic(iter([batch, batch, batch]), schema, fresh) == 12
    with fresh.open("rb") as fh:
        assert pq.read_table(fh).num_rows == 12


def test_write_bytes_replaces_whole(root):
    doc = Layout(root).manifest("f1")
    write_bytes_atomic(b'{"seq": 1}', doc)
    write_bytes_atomic(b'{"seq": 2}', doc)
    assert json.loads(doc.read_bytes()) == {"seq": 2}


_COUNTER = """
import sys, time
from flywheel import objectstore
from flywheel.store import Layout, exclusive, update
root = objectstore.root_of(sys.argv[1])
mode, n = sys.argv[2], int(sys.argv[3])
counter = root / "counter"
for _ in range(n):
    if mode == "lease":
        with exclusive(Layout(root).lock("counter")):
            value = int(counter.read_bytes())
            time.sleep(0.01)  # widen the window another process would slip into without the lease
            objectstore.put(counter, str(value + 1).encode())
    else:
        update(counter, lambda old: str(int(old or b"0") + 1).encode())
"""


@pytest.mark.parametrize("mode", ["lease", "update"])
def test_three_processes_times_ten_read_modify_writes_count_thirty(root, mode):
    objectstore.put(root / "counter", b"0")
    procs = [subprocess.Popen([sys.executable, "-c", _COUNTER, objectstore.url(root), mode, "10"], cwd=ROOT)
             for _ in range(3)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    assert int((root / "counter").read_bytes()) == 30
    assert not Layout(root).lock("counter").exists() or not is_remote(root)  # the lease object is released


def test_an_expired_lease_is_taken_over_and_its_late_release_is_refused(s3_env):
    root = root_of(f"s3://flywheel/objectstore-{uuid.uuid4().hex[:10]}")
    lock = Layout(root).lock("staging")
    dead = json.dumps({"owner": "a-process-that-died", "expires": time.time() - 1}).encode()
    dead_tag = objectstore.put(lock, dead, create=True)
    with exclusive(lock):  # would wait forever if the expired lease were not taken over
        held = json.loads(lock.read_bytes())
        assert held["owner"] != "a-process-that-died" and held["expires"] > time.time()
        with pytest.raises(Conflict):
            objectstore.delete(lock, if_match=dead_tag)  # the dead holder's late release
        assert lock.exists()
    assert not lock.exists()


def test_a_lease_taken_over_while_held_fails_the_block(s3_env):
    """The holder's lease is replaced behind its back (as when it was paused past its TTL and another
    process took over): leaving the block raises Conflict and leaves the other's lease in place."""
    root = root_of(f"s3://flywheel/objectstore-{uuid.uuid4().hex[:10]}")
    lock = Layout(root).lock("feed")
    with pytest.raises(Conflict, match="lost"):
        with objectstore.lease(lock, ttl=60):
            objectstore.put(lock, json.dumps({"owner": "other", "expires": time.time() + 60}).encode())
    assert json.loads(lock.read_bytes())["owner"] == "other"


def test_settings_take_urls_for_the_areas_but_not_for_the_database(monkeypatch, tmp_path):
    from flywheel.config import Settings

    monkeypatch.setenv("FLYWHEEL_STORE", "s3://flywheel/night/store")
    monkeypatch.setenv("FLYWHEEL_LANDING", "s3://flywheel/night/landing/")
    monkeypatch.setenv("FLYWHEEL_PUBLISH", str(tmp_path / "publish"))
    monkeypatch.setenv("FLYWHEEL_DB", str(tmp_path / "flywheel.duckdb"))
    settings = Settings.from_env()
    assert (str(settings.store), str(settings.landing)) == ("s3://flywheel/night/store", "s3://flywheel/night/landing")
    assert is_remote(settings.store) and not is_remote(settings.publish) and settings.publish == tmp_path / "publish"
    assert str(Layout(settings.store).table("events", date(2026, 3, 1))) == \
        "s3://flywheel/night/store/events/event_date=2026-03-01/data.parquet"
    assert is_remote(Settings.from_env(store="s3://other/prefix").store)
    monkeypatch.setenv("FLYWHEEL_DB", "s3://flywheel/night/flywheel.duckdb")
    with pytest.raises(ValueError, match="must be a local file, not a URL"):
        Settings.from_env()


@pytest.mark.parametrize("raw", ["0.5", "soon", "inf"])
def test_a_lease_time_below_a_second_or_not_a_number_is_refused(monkeypatch, raw):
    monkeypatch.setenv("FLYWHEEL_LEASE_SECONDS", raw)
    with pytest.raises(ValueError, match="FLYWHEEL_LEASE_SECONDS"):
        objectstore.lease_ttl()
    monkeypatch.setenv("FLYWHEEL_LEASE_SECONDS", "90")
    assert objectstore.lease_ttl() == 90.0


def test_a_listing_answers_globs_from_one_listing_as_a_fresh_glob_would(s3_env):
    """`Listing` (the catalog's view binding on a bucket): what it says exists equals s3fs' own glob,
    `*` stays inside a folder, and a file written after the listing is not in it (views bound
    through it see it after the listing's expiry; the steps never use one)."""
    root = root_of(f"s3://flywheel/listing-{uuid.uuid4().hex[:10]}")
    for key in ("events/event_date=2026-03-01/data.parquet", "events/event_date=2026-03-02/data.parquet",
                "manifests/a.json", "failures/clusters/event_date=2026-03-01/data.parquet"):
        objectstore.put(root / key, b"x")
    known = objectstore.listing(root, 30)
    assert known is not None and len(known.keys) == 4
    for pattern, expected in (("events/*/data.parquet", True), ("manifests/*.json", True),
                              ("failures/clusters/*/data.parquet", True), ("failures/*/data.parquet", False),
                              ("events/*.parquet", False), ("outcomes/*/data.parquet", False)):
        assert known.exists(pattern) is expected, pattern
        assert bool(list(root.glob(pattern))) is expected, pattern
    objectstore.put(root / "outcomes/event_date=2026-03-01/data.parquet", b"x")
    assert not known.exists("outcomes/*/data.parquet")
    assert objectstore.listing(root, 30).exists("outcomes/*/data.parquet")
    assert objectstore.listing(Path("/tmp"), 30) is None


def test_duckdb_reads_a_bucket_without_asking_again_for_what_opening_an_object_told(s3_env, monkeypatch):
    """DuckDB asks for an object's modification time right after opening it: the filesystem
    `register` gives it answers from the details the open fetched (one HEAD per open, not two), and
    a replaced object read again shows its new contents and modification time."""
    import duckdb
    import s3fs

    root = root_of(f"s3://flywheel/duckdb-fs-{uuid.uuid4().hex[:10]}")
    path = root / "t" / "data.parquet"
    write_parquet_atomic(pa.table({"x": [1, 2, 3]}), path)
    heads: list[str] = []
    info = s3fs.S3FileSystem._info

    async def counted(self, path, *args, **kwargs):
        heads.append(path)
        return await info(self, path, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_info", counted)
    fs = objectstore.duckdb_filesystem()
    f = fs.open(objectstore.url(path))
    first = fs.modified(objectstore.url(path))
    f.close()
    assert len(heads) == 1  # the open's
    assert fs.modified(objectstore.url(path)) == first and len(heads) == 2  # not just opened: asks the store

    con = duckdb.connect()
    objectstore.register(con, root)
    assert con.sql(f"SELECT sum(x) FROM read_parquet('{objectstore.url(path)}')").fetchall() == [(6,)]
    time.sleep(1.1)  # a later second: S3's modification times have whole seconds
    write_parquet_atomic(pa.table({"x": [10, 20]}), path)
    assert con.sql(f"SELECT sum(x) FROM read_parquet('{objectstore.url(path)}')").fetchall() == [(30,)]
    f = fs.open(objectstore.url(path))
    assert fs.modified(objectstore.url(path)) > first
    f.close()
    con.close()


def test_the_partitions_of_a_range_are_the_days_that_have_their_file_in_day_order(root):
    """`Layout.partitions` (one listing of the table's folder; the signals' windows read through it):
    the days of the range whose data.parquet exists, in day order; a day folder holding only a file
    still being written locally (its temporary name) or another table's day is not one."""
    layout = Layout(root)
    for d in (3, 1, 5, 9):
        write_bytes_atomic(b"x", layout.table("outcomes/daily_rates", date(2026, 3, d)))
    write_bytes_atomic(b"x", layout.table("outcomes/daily_ratesX", date(2026, 3, 2)))
    write_bytes_atomic(b"x", layout.table("outcomes/daily_rates", date(2026, 3, 4)).parent / ".data.parquet.abc.tmp")
    got = layout.partitions("outcomes/daily_rates", date(2026, 3, 1), date(2026, 3, 5))
    assert got == [layout.table("outcomes/daily_rates", date(2026, 3, d)) for d in (1, 3, 5)]
    assert layout.partitions("outcomes/daily_rates", date(2026, 3, 6), date(2026, 3, 8)) == []
    assert layout.partitions("outcomes/none", date(2026, 3, 1), date(2026, 3, 9)) == []
