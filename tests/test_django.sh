#!/usr/bin/env bash
# examples/django end to end, against the throwaway server run-with-pg.sh started: migrate
# (which creates the materialized view and watches it), run mvrefreshd, write through the ORM,
# and read the unmanaged view model until it shows the writes; then migrate back (unwatch).
# Needs Debian's python3-django and python3-psycopg2 (scripts/test installs them).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
example=$here/../examples/django
sql=${MVREFRESH_SQL:-$here/../sql/mvrefresh.sql}
python=${PYTHON:-/usr/bin/python3}
db=mvr_django
work=$(mktemp -d)
daemon=""
n=0
failed=0

cleanup() {
    [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; echo "#   $2"; }

if ! "$python" -c 'import django, psycopg2' 2>/dev/null; then
    echo "1..0 # SKIP python3-django and python3-psycopg2 are not installed"
    exit 0
fi
psql -X -qAt -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$sql" >/dev/null 2>&1 || { echo "Bail out! SQL install"; exit 1; }
export PGDATABASE=$db
manage() { (cd "$example" && PYTHONDONTWRITEBYTECODE=1 "$python" manage.py "$@"); }

if out=$(manage migrate --no-input 2>&1); then
    ok "manage.py migrate creates the tables and the view, and watches it"
else
    not_ok "manage.py migrate creates the tables and the view, and watches it" "$out"
    echo "1..$n"
    exit 1
fi
got=$(psql -X -qAt -d "$db" -c "SELECT count(*) FROM mvrefresh.view WHERE view = 'polls_user_matt_view'::regclass")
[ "$got" = 1 ] && ok "the migration registered the view with mvrefresh" ||
    not_ok "the migration registered the view with mvrefresh" "got $got"

"$MVREFRESHD" --dsn "dbname=$db" >"$work/daemon.log" 2>&1 &
daemon=$!

# Writes through the ORM; reads of the view model poll with a deadline (no sleeping to wait).
if out=$(manage shell -c '
import time
from polls.models import User, UserMaterializedView as View

def expect(n, what):
    deadline = time.monotonic() + 20
    while View.objects.count() != n:
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: the view shows {View.objects.count()} users, not {n}")
        time.sleep(0.05)  # pacing between reads

User.objects.create(name="ann", age=20, phone_num="555-0100")
User.objects.create(name="bob", age=30, phone_num="555-0101")
User.objects.create(name="cy", age=41, phone_num="555-0102")
expect(2, "after three inserts")
User.objects.filter(name="ann").update(age=26)
expect(3, "after an update")
User.objects.filter(name="bob").delete()
expect(2, "after a delete")
print(sorted(View.objects.values_list("name", flat=True)))
' 2>&1) && [ "$(tail -n 1 <<<"$out")" = "['ann', 'cy']" ]; then
    ok "users created, updated and deleted through the ORM show up in the view model"
else
    not_ok "users created, updated and deleted through the ORM show up in the view model" \
        "$out"$'\n'"daemon log: $(tail -n 20 "$work/daemon.log")"
fi

kill -TERM "$daemon"
wait "$daemon"
status=$?
daemon=""
[ "$status" = 0 ] && ok "mvrefreshd stops cleanly" || not_ok "mvrefreshd stops cleanly" "exit status $status"

if out=$(manage migrate polls 0001 --no-input 2>&1) &&
   [ "$(psql -X -qAt -d "$db" -c "SELECT count(*) FROM mvrefresh.view")" = 0 ] &&
   [ -z "$(psql -X -qAt -d "$db" -c "SELECT to_regclass('polls_user_matt_view')")" ]; then
    ok "migrating back unwatches and drops the view"
else
    not_ok "migrating back unwatches and drops the view" "$out"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
