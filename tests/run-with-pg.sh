#!/usr/bin/env bash
# Usage: tests/run-with-pg.sh CMD [ARG...]
# Runs CMD against a private, throwaway PostgreSQL server (PG* variables set)
# and removes the server again whatever happens. Exits with CMD's status.
# CMD also gets MVR_PG_DIR (the server's directory) and MVR_PG_LIB (the path of
# scripts/lib/pg.sh), so it can run `mvr_pg_restart "$MVR_PG_DIR"`.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=SCRIPTDIR/../scripts/lib/pg.sh
source "$here/../scripts/lib/pg.sh"

if [ "$#" -eq 0 ]; then
    echo "usage: $0 CMD [ARG...]" >&2
    exit 64
fi

pgdir=$(mktemp -d "${TMPDIR:-/tmp}/mvr-pg.XXXXXX") || exit 1
child=""

# shellcheck disable=SC2317  # cleanup and on_signal run from traps
cleanup() {
    mvr_pg_stop "$pgdir" || true
    rm -rf "$pgdir"
}
# shellcheck disable=SC2317
# Stop CMD, let it finish, then leave (EXIT runs cleanup). SIGTERM even for
# SIGINT: a background command of a non-interactive shell ignores SIGINT.
on_signal() {
    trap - INT TERM
    if [ -n "$child" ] && kill -TERM "$child" 2>/dev/null; then
        wait "$child"
    fi
    exit "$1"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

mvr_pg_start "$pgdir" || exit 1
# For tests that restart the server (pgtest's pgt_server_restart).
export MVR_PG_DIR="$pgdir"
MVR_PG_LIB=$(cd "$here/../scripts/lib" && pwd)/pg.sh
export MVR_PG_LIB

# In the background so that `wait` (unlike a foreground child) can be
# interrupted by the traps above.
"$@" &
child=$!
wait "$child"
status=$?
child=""
exit "$status"
