#!/usr/bin/env bash
# Make sure the servers the source tests drive have their own venvs: .venv-<server> at the repo root.
#
# Usage: scripts/server-venvs.sh SERVER...   (phoenix, mlflow; no argument: every server listed below)
# Each server runs from its own venv because its dependencies conflict with the main venv's pins
# (arize-phoenix needs graphql-core 3.3 and protobuf 7, dagster needs graphql-core < 3.3 and
# protobuf < 7; mlflow needs pyarrow < 26, the main venv pins pyarrow 26). A venv is made once,
# with the pinned requirement below, and marked done by
# .venv-<server>/.installed (holding the requirement), so a second call does nothing and a changed
# pin reinstalls. Quiet: pip's output goes to .venv-<server>/install.log. Exit 0 when every venv
# named is ready; exit 1 with one line per server saying why otherwise. `make test` then skips
# that server's tests, unless FLYWHEEL_REQUIRE_SERVERS=1 (CI), where a missing server fails the run.
# FLYWHEEL_SERVERS_INSTALL=0 never installs anything (as FLYWHEEL_BROWSER_INSTALL=0 for the browser).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PYTHON="${PYTHON:-python3}"

# The pinned server requirement of each server, and the program its tests start.
requirement() {
    case "$1" in
        phoenix) echo "arize-phoenix==20.26.1" ;;
        mlflow) echo "mlflow==3.17.2" ;;  # pinned: an unpinned mlflow backtracks for minutes
        *) return 1 ;;
    esac
}
program() {
    case "$1" in
        phoenix) echo "phoenix" ;;
        mlflow) echo "mlflow" ;;
        *) return 1 ;;
    esac
}
ALL="phoenix mlflow"

ready() {  # ready SERVER: the venv is installed with today's pin
    local venv=".venv-$1"
    [ -x "$venv/bin/$(program "$1")" ] && [ "$(cat "$venv/.installed" 2>/dev/null)" = "$(requirement "$1")" ]
}

status=0
for server in ${@:-$ALL}; do
    if ! req="$(requirement "$server")"; then
        echo "server-venvs: unknown server '$server' (known: $ALL)" >&2
        status=1
        continue
    fi
    ready "$server" && continue
    venv=".venv-$server"
    if [ "${FLYWHEEL_SERVERS_INSTALL:-1}" = 0 ]; then
        echo "server-venvs: $venv is missing (FLYWHEEL_SERVERS_INSTALL=0: not installing $req)" >&2
        status=1
        continue
    fi
    rm -f "$venv/.installed"
    if ! { [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv" >/dev/null 2>&1; }; then
        echo "server-venvs: $PYTHON -m venv $venv failed: the $server tests need it" >&2
        status=1
        continue
    fi
    echo "server-venvs: installing $req into $venv (once; a few minutes)" >&2
    if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$req" >"$venv/install.log" 2>&1; then
        echo "server-venvs: pip could not install $req into $venv (see $venv/install.log)" >&2
        status=1
        continue
    fi
    echo "$req" > "$venv/.installed"
    ready "$server" || { echo "server-venvs: $req installed but $venv/bin/$(program "$server") is missing" >&2; status=1; }
done
exit $status
