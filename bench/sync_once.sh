#!/usr/bin/env bash
# One landing sync of LANDING into a fresh, empty store, by the flywheel code of TREE (a checkout of
# any commit; this repo's venv supplies the libraries). For side-by-side timings of two commits:
#   git worktree add /tmp/old <commit>
#   farm-bench -n 3 --warmup 0 --vs "bash bench/sync_once.sh /tmp/old L" -- bash bench/sync_once.sh . L
# Prints the sync's report line. FLYWHEEL_HASH_KEY is fixed so that two stores compare equal.
set -euo pipefail
tree=$(cd "${1:?usage: sync_once.sh TREE LANDING [STORE]}" && pwd)
landing=$(cd "${2:?usage: sync_once.sh TREE LANDING [STORE]}" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/sync_once.XXXXXX")
store=${3:-$scratch/store}
trap 'rm -rf "$scratch"' EXIT
rm -rf "$store"
cd "$scratch"
PYTHONPATH="$tree" FLYWHEEL_LANDING="$landing" FLYWHEEL_STORE="$store" FLYWHEEL_DB="$scratch/db.duckdb" \
FLYWHEEL_HASH_KEY="${FLYWHEEL_HASH_KEY:-sync-once}" "$here/.venv/bin/python" -c '
import flywheel
from flywheel.config import Settings
from flywheel.ingest.sync import sync_landing
print(flywheel.__file__, sync_landing(Settings.from_env()), flush=True)'
