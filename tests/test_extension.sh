#!/usr/bin/env bash
# mvrefresh as a PostgreSQL extension: what `cmake --install` puts into PostgreSQL's extension
# directory, against a real server — CREATE EXTENSION, ALTER EXTENSION UPDATE from the previous
# release, pg_dump and restore, DROP EXTENSION, and the refusals when a database was installed
# the other way (psql -f).
# Usage: test_extension.sh CMAKE BUILD_DIR EXTENSION_DIR
#   EXTENSION_DIR: the build's MVR_PG_EXTENSION_DIR (empty: pg_config was not found, skip).
#
# Where the files go: PostgreSQL finds its extension directory relative to its own binaries,
# so the test copies the server it runs (mvr_pg_bindir: Debian's, or MVR_PG_BINDIR's, e.g. an
# npm-fetched 13 or 18) into a temporary directory, installs with DESTDIR, copies the installed
# extension files into the copy's extension directory and starts its cluster from the copy.
# Nothing outside the temporary directory is written, not even as root: `cmake --install`
# without DESTDIR writes to pg_config's directory, as a user's install does, but a test run must
# not leave files in the system's PostgreSQL.
set -uo pipefail

cmake_bin=$1
build=$2
ext_install_dir=${3:-}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/.." && pwd)
# shellcheck source=SCRIPTDIR/../scripts/lib/pg.sh
source "$src/scripts/lib/pg.sh"
# The last commit of release 0.1.0 (CHANGELOG: 2026-11-22), whose SQL the update starts from.
OLD_RELEASE=0.1.0
OLD_COMMIT=0f3c5c5

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() {
    n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"
    # shellcheck disable=SC2001
    [ -z "${2:-}" ] || sed 's/^/#   /' <<<"$2"
}
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }
finish() { echo "1..$n"; [ "$failed" -eq 0 ]; exit $?; }
bail_out() { not_ok "$@"; finish; }

if [ -z "$ext_install_dir" ]; then
    if [ "${CI:-}" = true ]; then
        bail_out "the extension is installed" "no MVR_PG_EXTENSION_DIR: pg_config was not found at configure time"
    fi
    skip "the extension" "pg_config was not found at configure time (no MVR_PG_EXTENSION_DIR)"
    finish
fi

# ---- a private copy of the server, with the installed extension files ----------------------
bindir=$(mvr_pg_bindir) || bail_out "a PostgreSQL server to test with"
bindir=$(readlink -f "$bindir")
if [ -x "$bindir/pg_config" ]; then
    sharedir=$("$bindir/pg_config" --sharedir)
else
    sharedir=$bindir/../share/postgresql   # the npm packages' layout
fi
sharedir=$(readlink -f "$sharedir")
[ -f "$sharedir/extension/plpgsql.control" ] ||
    bail_out "the server's extension directory" "no plpgsql.control in $sharedir/extension"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mvr-ext.XXXXXX") || exit 1
pgdir=$tmp/pg
daemon_pid=""
# shellcheck disable=SC2317  # runs from the trap
cleanup() {
    [ -z "$daemon_pid" ] || { kill "$daemon_pid" 2>/dev/null; wait "$daemon_pid" 2>/dev/null; }
    MVR_PG_BINDIR=$copy_bin mvr_pg_stop "$pgdir" || true
    rm -rf "$tmp"
}
copy_bin=$tmp/server$bindir
trap cleanup EXIT
# Keeping the path below the copy's root keeps the binaries' relative way to their share
# directory (and libraries) intact.
copy_into() { # DIR: copied to the same path under $tmp/server
    mkdir -p "$tmp/server$(dirname "$1")" && cp -a "$1" "$tmp/server$(dirname "$1")/"
}
server_root=$(dirname "$bindir")
copy_into "$server_root" || bail_out "copy the server" "$server_root"
case $sharedir/ in
"$server_root"/*) ;;
*) copy_into "$sharedir" || bail_out "copy the server's share directory" "$sharedir" ;;
esac
chmod -R go+rX "$tmp"
copy_ext=$tmp/server$sharedir/extension

if ! out=$(DESTDIR=$tmp/dest "$cmake_bin" --install "$build" --prefix /opt/mvr 2>&1); then
    bail_out "cmake --install with DESTDIR" "$out"
fi
installed=$tmp/dest$ext_install_dir
version=$(sed -n "s/^default_version = '\(.*\)'$/\1/p" "$installed/mvrefresh.control" 2>/dev/null)
if [ -n "$version" ] && [ -s "$installed/mvrefresh--$version.sql" ] &&
   [ -s "$installed/mvrefresh--$OLD_RELEASE--$version.sql" ]; then
    ok "cmake --install puts the control file, mvrefresh--$version.sql and the update from $OLD_RELEASE into $ext_install_dir"
else
    bail_out "cmake --install puts the extension files into $ext_install_dir" "$(ls -la "$installed" 2>&1)"
fi
cp "$installed"/mvrefresh* "$copy_ext/" || bail_out "copy the extension files into the server copy"
chmod go+r "$copy_ext"/mvrefresh*

# The previous release as an extension script, made from its SQL by the same generator.
old_script=$copy_ext/mvrefresh--$OLD_RELEASE.sql
if git -C "$src" show "$OLD_COMMIT:sql/mvrefresh.sql" >"$tmp/old.sql" 2>/dev/null &&
   sh "$src/sql/extension/generate.sh" "$tmp/old.sql" "$src/sql/extension/head.sql" \
       "$src/sql/extension/tail.sql" "$old_script" && chmod go+r "$old_script"; then
    have_old=1
else
    have_old=0
fi

MVR_PG_BINDIR=$copy_bin mvr_pg_start "$pgdir" || bail_out "start a server from the copy"
export PGDATABASE=postgres

# ---- helpers ---------------------------------------------------------------------------------
new_db() { psql -X -qAt -d postgres -c "CREATE DATABASE $1" >/dev/null && echo "$1"; }
q() { local d=$1; shift; psql -X -v ON_ERROR_STOP=1 -qAt -d "$d" "$@"; }
# is DESCRIPTION EXPECTED DB SQL: the output (stdout and stderr) must equal EXPECTED.
is() {
    local got
    got=$(q "$3" 2>&1 <<<"$4") || true
    if [ "$got" = "$2" ]; then ok "$1"; else not_ok "$1" "expected: $2"$'\n'"got:      $got"; fi
}
# fails_like DESCRIPTION SQLSTATE PATTERN DB SQL: the first error has that SQLSTATE (psql stops
# there), and the output matches PATTERN.
fails_like() {
    local got first
    got=$(printf '%s\n' "$5" |
          psql -X -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -qAt -d "$4" 2>&1) || true
    first=$(grep -m 1 'ERROR:' <<<"$got")
    if [[ "$first" == *"ERROR:  $2:"* ]] && grep -q -- "$3" <<<"$got"; then
        ok "$1"
    else
        not_ok "$1" "expected SQLSTATE $2 and /$3/, got:"$'\n'"$got"
    fi
}
members() { # SQL: the extension's member objects of one class in schema mvrefresh, counted
    echo "SELECT count(*) FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
          WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e'
            AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'mvrefresh')
            AND c.relnamespace = 'mvrefresh'::regnamespace AND c.relname LIKE '$1'"
}
fixture="CREATE TABLE t (id int PRIMARY KEY, v int);
         CREATE MATERIALIZED VIEW mv AS SELECT * FROM t;
         CREATE UNIQUE INDEX ON mv (id);
         CREATE MATERIALIZED VIEW mv_n AS SELECT count(*) AS n FROM mv;"
triggers="SELECT string_agg(tgname || ':' || tgnargs, ',' ORDER BY tgname) FROM pg_trigger
          WHERE tgrelid = 't'::regclass AND NOT tgisinternal"

# ---- CREATE EXTENSION on a database that never had mvrefresh ---------------------------------
d=$(new_db ext_create)
if out=$(q "$d" -c "CREATE EXTENSION mvrefresh" 2>&1); then
    ok "CREATE EXTENSION mvrefresh in a fresh database"
else
    bail_out "CREATE EXTENSION mvrefresh in a fresh database" "$out"
fi
is "...at the project's version, which mvrefresh.version() reports too; recorded in pg_catalog" \
    "$version|$version|pg_catalog" "$d" \
    "SELECT e.extversion, (SELECT version FROM mvrefresh.version()), e.extnamespace::regnamespace
     FROM pg_extension e WHERE e.extname = 'mvrefresh'"
is "...and the extension owns the schema mvrefresh and the registry tables" "1|3" "$d" \
    "SELECT (SELECT count(*) FROM pg_depend WHERE classid = 'pg_namespace'::regclass
               AND objid = 'mvrefresh'::regnamespace AND deptype = 'e'),
            ($(members '%') AND c.relname IN ('view', 'dependency', 'refresh_state'))"
is "...whose rows pg_dump keeps (registrations, dependencies, status), not markers or heartbeats" \
    "mvrefresh.dependency,mvrefresh.refresh_state,mvrefresh.view" "$d" \
    "SELECT string_agg(c::regclass::text, ',' ORDER BY c::regclass::text)
     FROM pg_extension e, unnest(e.extconfig) c WHERE e.extname = 'mvrefresh'"
got=$(q "$d" -f "$installed/mvrefresh--$version.sql" 2>&1) || true
if grep -q 'Use "CREATE EXTENSION mvrefresh"' <<<"$got" &&
   [ "$(q "$d" -c "SELECT count(*) FROM pg_extension WHERE extname = 'mvrefresh'")" = 1 ]; then
    ok "the extension script run by psql -f says to use CREATE EXTENSION, and does nothing"
else
    not_ok "the extension script run by psql -f says to use CREATE EXTENSION, and does nothing" "$got"
fi

q "$d" -c "$fixture" >/dev/null
is "watch() works: quiet triggers on the table, a write leaves one marker the daemon takes" \
    "|
mvrefresh_notify:1,mvrefresh_notify_truncate:1
1" "$d" \
    "SELECT mvrefresh.watch('mv'), mvrefresh.watch('mv_n', NULL, '1 min', false);
     $triggers;
     INSERT INTO t VALUES (1, 1);
     SELECT count(*) FROM mvrefresh.take_changes(NULL) c WHERE c = 't'::regclass"
is "...and what watch() makes at run time (the table's generation) is not an extension member" \
    "0|1" "$d" "SELECT ($(members 'gen\_%')), ($(members 'generation'))"

# ---- the other install path refuses, by name ------------------------------------------------
fails_like "psql -f mvrefresh.sql on a database with the extension is refused (55000), naming ALTER EXTENSION" \
    55000 "installed in this database as an extension (version $version)" "$d" \
    "\\i $src/sql/mvrefresh.sql"
got=$(q "$d" -f "$src/sql/mvrefresh.sql" 2>&1) || true
if grep -q "HINT:  .*ALTER EXTENSION mvrefresh UPDATE" <<<"$got"; then
    ok "...with the hint to run ALTER EXTENSION mvrefresh UPDATE"
else
    not_ok "...with the hint to run ALTER EXTENSION mvrefresh UPDATE" "$got"
fi

p=$(new_db ext_psql)
q "$p" -f "$src/sql/mvrefresh.sql" -c "$fixture" -c "SELECT mvrefresh.watch('mv')" >/dev/null 2>&1
fails_like "CREATE EXTENSION on a database installed with psql -f is refused (55000)" 55000 \
    "schema mvrefresh already exists and does not belong to extension mvrefresh" "$p" \
    "CREATE EXTENSION mvrefresh;"
got=$(q "$p" -c "CREATE EXTENSION mvrefresh" 2>&1) || true
if grep -q "HINT:  Keep upgrading it with psql -f mvrefresh.sql" <<<"$got"; then
    ok "...with a hint: keep psql -f, or how to switch"
else
    not_ok "...with a hint: keep psql -f, or how to switch" "$got"
fi
is "...and leaves that install as it was" "0|1|mvrefresh_notify:1,mvrefresh_notify_truncate:1" "$p" \
    "SELECT (SELECT count(*) FROM pg_extension WHERE extname = 'mvrefresh'),
            (SELECT count(*) FROM mvrefresh.view), ($triggers)"
is "...which psql -f still upgrades in place" "t|1" "$p" \
    "\\i $src/sql/mvrefresh.sql
     SELECT (SELECT version FROM mvrefresh.version()) = '$version', count(*) FROM mvrefresh.view"

# ---- pg_dump and restore ---------------------------------------------------------------------
# pg_dump next to the server, else the client's if it is not older than the server.
pg_dump_bin=$copy_bin/pg_dump
if [ ! -x "$pg_dump_bin" ] && command -v pg_dump >/dev/null 2>&1 &&
   [ "$(pg_dump --version | sed -n 's/.* \([0-9][0-9]*\)\..*/\1/p')" -ge \
     "$(q postgres -c "SELECT current_setting('server_version_num')::int / 10000")" ]; then
    pg_dump_bin=$(command -v pg_dump)
fi
if [ -x "$pg_dump_bin" ]; then
    r=$(new_db ext_restore)
    "$pg_dump_bin" -d "$d" -f "$tmp/dump.sql" 2>"$tmp/dump.err" ||
        not_ok "pg_dump of a database with the extension" "$(cat "$tmp/dump.err")"
    if out=$(q "$r" -f "$tmp/dump.sql" 2>&1 >/dev/null); then
        ok "a plain pg_dump restores with ON_ERROR_STOP (CREATE EXTENSION, then the registry's rows)"
    else
        not_ok "a plain pg_dump restores with ON_ERROR_STOP (CREATE EXTENSION, then the registry's rows)" "$out"
    fi
    is "...keeping every registration with its settings and dependencies" \
        "mv|00:00:01|00:00:30|t|{t}
mv_n||00:01:00|f|{mv}" "$r" \
        "SELECT view, debounce, max_wait, \"concurrently\", depends_on FROM mvrefresh.status ORDER BY view::text"
    got=$(q "$r" -c "SELECT count(*) FROM mvrefresh.registry((SELECT protocol FROM mvrefresh.version()))" 2>&1) || true
    if grep -q "watched tables have no generation of their own" <<<"$got" &&
       grep -q 'SELECT mvrefresh.watch(view, debounce, max_wait, "concurrently") FROM mvrefresh.view' <<<"$got"; then
        ok "...the daemon is refused until the triggers are repaired, and told how for an extension"
    else
        not_ok "...the daemon is refused until the triggers are repaired, and told how for an extension" "$got"
    fi
    is "...watching the views again repairs them: the registry loads, a write leaves a marker, the old generation goes" \
        "2
1
0" "$r" \
        "SELECT mvrefresh.watch(view, debounce, max_wait, \"concurrently\") FROM mvrefresh.view \\g /dev/null
         SELECT count(*) FROM mvrefresh.registry((SELECT protocol FROM mvrefresh.version()));
         INSERT INTO t VALUES (2, 2);
         SELECT count(*) FROM mvrefresh.take_changes(NULL) c WHERE c = 't'::regclass;
         SELECT count(*) FROM pg_class WHERE relnamespace = 'mvrefresh'::regnamespace
            AND relname LIKE 'gen\_%' AND relname <> 'gen_' || 't'::regclass::oid"
else
    skip "pg_dump and restore" "no pg_dump next to the server ($copy_bin) nor a new enough one on PATH"
fi

# ---- DROP EXTENSION --------------------------------------------------------------------------
fails_like "DROP EXTENSION without CASCADE is refused while views are watched, naming the triggers" \
    2BP01 "trigger mvrefresh_notify on table t depends on function mvrefresh.notify()" "$d" \
    "DROP EXTENSION mvrefresh;"
is "DROP EXTENSION ... CASCADE removes the triggers from the tables and the schema; tables and views stay" \
    "|0|t|0" "$d" \
    "SET client_min_messages = warning;
     DROP EXTENSION mvrefresh CASCADE;
     INSERT INTO t VALUES (3, 3);
     SELECT ($triggers), (SELECT count(*) FROM pg_namespace WHERE nspname = 'mvrefresh'),
            to_regclass('mv') IS NOT NULL,
            (SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'mvrefresh%')"
is "...and CREATE EXTENSION works again afterwards" "$version" "$d" \
    "CREATE EXTENSION mvrefresh; SELECT version FROM mvrefresh.version()"

# ---- ALTER EXTENSION UPDATE from the previous release ----------------------------------------
if [ "$have_old" = 0 ]; then
    skip "ALTER EXTENSION mvrefresh UPDATE from $OLD_RELEASE" "its SQL ($OLD_COMMIT) is not in git history here"
    finish
fi
u=$(new_db ext_update)
if out=$(q "$u" -c "CREATE EXTENSION mvrefresh VERSION '$OLD_RELEASE'" -c "$fixture" \
           -c "SELECT mvrefresh.watch('mv', '100 ms', '2 s'), mvrefresh.watch('mv_n', '100 ms', '2 s', false)" \
           -c "INSERT INTO t VALUES (1, 1)" 2>&1); then
    ok "CREATE EXTENSION mvrefresh VERSION '$OLD_RELEASE' (its script made from its SQL), views watched with it"
else
    bail_out "CREATE EXTENSION mvrefresh VERSION '$OLD_RELEASE', views watched with it" "$out"
fi
is "...with $OLD_RELEASE's triggers (a NOTIFY on every statement, no generation)" \
    "$OLD_RELEASE|mvrefresh_notify:0,mvrefresh_notify_truncate:0" "$u" \
    "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'mvrefresh'), ($triggers)"
if out=$(q "$u" -c "ALTER EXTENSION mvrefresh UPDATE" 2>&1); then
    ok "ALTER EXTENSION mvrefresh UPDATE"
else
    bail_out "ALTER EXTENSION mvrefresh UPDATE" "$out"
fi
is "...to $version, which mvrefresh.version() reports too" "$version|$version" "$u" \
    "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'mvrefresh'),
            (SELECT version FROM mvrefresh.version())"
is "...keeps the registrations, their settings and dependencies (now on the upstream view), and marks the table's reader pending" \
    "mv|00:00:00.1|00:00:02|t|{t}|t
mv_n|00:00:00.1|00:00:02|f|{mv}|" "$u" \
    "SELECT view, debounce, max_wait, \"concurrently\", depends_on,
            CASE WHEN view = 'mv'::regclass THEN pending_since IS NOT NULL END
     FROM mvrefresh.status ORDER BY view::text"
is "...replaces the triggers by quiet ones whose generation is not an extension member" \
    "mvrefresh_notify:1,mvrefresh_notify_truncate:1|0|1" "$u" \
    "SELECT ($triggers), ($(members 'gen\_%')),
            (SELECT count(*) FROM pg_class WHERE relname = 'gen_' || 't'::regclass::oid)"

# The daemon of this build on the updated database: the watch works end to end.
if [ -x "$build/mvrefreshd" ]; then
    "$build/mvrefreshd" -v --dsn "host=$PGHOST port=$PGPORT user=postgres dbname=$u" \
        >"$tmp/daemon.log" 2>&1 &
    daemon_pid=$!
    q "$u" -c "INSERT INTO t SELECT g, g FROM generate_series(10, 14) g" >/dev/null
    want="6|6"
    got=""
    for _ in $(seq 1 300); do   # polls for up to 30 s
        got=$(q "$u" -c "SELECT (SELECT count(*) FROM mv), (SELECT n FROM mv_n)" 2>&1) || true
        [ "$got" = "$want" ] && break
        sleep 0.1
    done
    if [ "$got" = "$want" ]; then
        ok "...and mvrefreshd refreshes both views after writes (the catch-up and the cascade)"
    else
        not_ok "...and mvrefreshd refreshes both views after writes (the catch-up and the cascade)" \
            "expected $want, got $got; daemon log:"$'\n'"$(tail -n 20 "$tmp/daemon.log")"
    fi
    kill "$daemon_pid" 2>/dev/null
    wait "$daemon_pid" 2>/dev/null
    daemon_pid=""
else
    skip "...and mvrefreshd refreshes the views" "no daemon in $build"
fi
is "...and unwatch() can drop what an update made for a table" "0|0" "$u" \
    "SELECT mvrefresh.unwatch('mv_n'), mvrefresh.unwatch('mv') \\g /dev/null
     SELECT (SELECT count(*) FROM mvrefresh.view),
            (SELECT count(*) FROM pg_class WHERE relname = 'gen_' || 't'::regclass::oid)"
finish
