#!/usr/bin/env bash
# `make deploy-local`: the several-workers deployment on this one machine, as a stand-in for the
# production one (docs/deploy.md). Starts PostgreSQL (Dagster's instance, deploy/dagster.yaml) and
# Redis (the Celery broker) on 127.0.0.1, two dagster-celery workers as separate processes, runs
# the nightly job over the demo's days through the celery executor (deploy/definitions.py,
# configured by deploy/celery.yaml), then stops everything it started. The landing, store, database, feed and
# the instance's data live under $DEPLOY_WORK (default data/deploy-local); a second call reuses
# them: the instance keeps its run history and the run rebuilds the same days.
#
# Variables: DAYS, EVENTS, SEED (the demo's landing, made once), WORKERS (default 2),
# DEPLOY_PG_PORT (55432), DEPLOY_REDIS_PORT (56379), BIN (the venv's bin folder, default .venv/bin).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
BIN="${BIN:-$ROOT/.venv/bin}"
WORK="$(realpath -m "${DEPLOY_WORK:-data/deploy-local}")"
DAYS="${DAYS:-30}" EVENTS="${EVENTS:-2000}" SEED="${SEED:-7}" WORKERS="${WORKERS:-2}"
PG_PORT="${DEPLOY_PG_PORT:-55432}" REDIS_PORT="${DEPLOY_REDIS_PORT:-56379}"

bash scripts/deploy-servers.sh postgres redis || { echo "deploy-local: PostgreSQL or Redis is missing (above)" >&2; exit 1; }
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -n "$PG_BIN" ] || PG_BIN="$(dirname "$(command -v postgres)")"
mkdir -p "$WORK/dagster_home" "$WORK/logs"

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
    echo "deploy-local: stopped PostgreSQL, Redis and the workers"
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
echo "deploy-local: PostgreSQL on 127.0.0.1:$PG_PORT, Redis on 127.0.0.1:$REDIS_PORT"

cp deploy/dagster.yaml "$WORK/dagster_home/dagster.yaml"
export DAGSTER_HOME="$WORK/dagster_home" DAGSTER_PG_HOST=127.0.0.1 DAGSTER_PG_PORT="$PG_PORT" DAGSTER_PG_USER=flywheel \
    DAGSTER_PG_PASSWORD=flywheel DAGSTER_PG_DB=dagster FLYWHEEL_CELERY_BROKER="redis://127.0.0.1:$REDIS_PORT/0" \
    FLYWHEEL_LANDING="$WORK/landing" FLYWHEEL_STORE="$WORK/store" \
    FLYWHEEL_DB="$WORK/flywheel.duckdb" FLYWHEEL_PUBLISH="$WORK/publish" PYTHONPATH="$ROOT" PATH="$BIN:$PATH"

if [ ! -d "$WORK/landing/events" ]; then
    "$BIN/flywheel" generate --days "$DAYS" --events-per-day "$EVENTS" --seed "$SEED" --no-progress
fi
FIRST="$(date -u -d "-$DAYS days" +%F)" LAST="$(date -u -d "-1 day" +%F)"  # generate's days end yesterday

for i in $(seq 1 "$WORKERS"); do
    setsid "$BIN/dagster-celery" worker start -A dagster_celery.app -y deploy/celery.yaml -n "worker$i" -q dagster \
        -- --pool=solo >"$WORK/logs/worker$i.log" 2>&1 &
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
echo "deploy-local: done; analysts' database $FLYWHEEL_DB, feed $FLYWHEEL_PUBLISH/feed/latest.json"
