"""The servers of the deployment tests (tests/servers.py) are real and answer on 127.0.0.1: PostgreSQL
keeps what one connection wrote for another, Redis keeps a key, SeaweedFS's S3 gateway stores an object
and refuses a wrong secret. They skip with one line when a server cannot start (FLYWHEEL_REQUIRE_SERVERS=1: fail)."""

from __future__ import annotations

import pytest

from servers import postgres_server, redis_server, seaweedfs_server  # noqa: F401


def test_postgres_keeps_a_row_across_connections(postgres_server):  # noqa: F811
    postgres_server.create_database("smoke")
    con = postgres_server.connect("smoke")
    with con.cursor() as cur:
        cur.execute("CREATE TABLE t (day date, n int)")
        cur.execute("INSERT INTO t VALUES (%s, %s), (%s, %s)", ("2026-03-01", 3, "2026-03-02", 4))
    con.close()
    other = postgres_server.connect("smoke")
    with other.cursor() as cur:
        cur.execute("SELECT sum(n), min(day)::text FROM t")
        assert cur.fetchone() == (7, "2026-03-01")
    other.close()


def test_redis_keeps_a_key(redis_server):  # noqa: F811
    import redis

    client = redis.Redis.from_url(redis_server.url(15))
    client.set("flywheel:smoke", b"day=2026-03-01")
    assert redis.Redis.from_url(redis_server.url(15)).get("flywheel:smoke") == b"day=2026-03-01"
    assert redis.Redis.from_url(redis_server.url(14)).get("flywheel:smoke") is None  # another database


def test_seaweedfs_stores_an_object_and_refuses_a_wrong_secret(seaweedfs_server):  # noqa: F811
    from dataclasses import replace

    from pyarrow import fs

    s3 = seaweedfs_server.filesystem()
    with s3.open_output_stream("flywheel/smoke/event_date=2026-03-01/data.bin") as out:
        out.write(b"\x00flywheel\xff" * 1000)
    assert s3.open_input_stream("flywheel/smoke/event_date=2026-03-01/data.bin").read() == b"\x00flywheel\xff" * 1000
    listed = s3.get_file_info(fs.FileSelector("flywheel/smoke", recursive=True))
    assert [(i.path, i.size) for i in listed if i.type == fs.FileType.File] == \
        [("flywheel/smoke/event_date=2026-03-01/data.bin", 10000)]
    wrong = replace(seaweedfs_server, secret_key="not-the-secret").filesystem()
    with pytest.raises(OSError, match="ACCESS_DENIED|AccessDenied|403"):
        wrong.open_input_stream("flywheel/smoke/event_date=2026-03-01/data.bin").read()
