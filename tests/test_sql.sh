#!/usr/bin/env bash
# Tests for sql/mvrefresh.sql against a running throwaway PostgreSQL server.
#
# Needs PGHOST/PGPORT/PGUSER (and optionally PGDATABASE, used only to create
# and drop the test database) pointing at a server where this user may create
# databases. MVREFRESH_SQL overrides the path of the SQL file.
# Prints one "ok N - ..." / "not ok N - ..." line per check and ends with
# "P passed, F failed"; exits non-zero if any check failed.
set -euo pipefail

SQL_FILE=${MVREFRESH_SQL:-"$(dirname "$0")/../sql/mvrefresh.sql"}
ADMIN_DB=${PGDATABASE:-postgres}
DB="mvr_sqltest_$$_${RANDOM}"

npass=0
nfail=0
n=0

# psql with the options every check uses; -X keeps ~/.psqlrc out.
db() { psql -X -v ON_ERROR_STOP=1 -qAt -d "$DB" "$@"; }

cleanup() {
    psql -X -qAt -d "$ADMIN_DB" \
        -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

report() { # report PASSED DESCRIPTION [DIAGNOSTIC]
    n=$((n + 1))
    if [ "$1" = 1 ]; then
        echo "ok $n - $2"
        npass=$((npass + 1))
    else
        echo "not ok $n - $2"
        # shellcheck disable=SC2001 # prefix every line of a multi-line text
        [ -z "${3:-}" ] || sed 's/^/#   /' <<<"$3"
        nfail=$((nfail + 1))
    fi
}

# bail_out DESCRIPTION [DIAGNOSTIC]: a failed prerequisite; later checks
# would only produce noise, so report it and stop.
bail_out() {
    report 0 "$1" "${2:-}"
    echo "$npass passed, $nfail failed"
    exit 1
}

# is DESCRIPTION EXPECTED SQL: the SQL's output (stdout and stderr) must equal EXPECTED.
is() {
    local got
    got=$(db 2>&1 <<<"$3") || true
    if [ "$got" = "$2" ]; then
        report 1 "$1"
    else
        report 0 "$1" "expected: $2"$'\n'"got:      $got"
    fi
}

# sqlstate SQL: prints the SQLSTATE of the (single, top-level) statement, 00000
# on success. psql's SQLSTATE variable avoids parsing possibly translated text.
sqlstate() {
    printf '%s\n' "$1;" '\echo SQLSTATE :SQLSTATE' |
        psql -X -qAt -d "$DB" 2>/dev/null | sed -n 's/^SQLSTATE //p' || true
}

# fails_with DESCRIPTION SQLSTATE SQL
fails_with() {
    local got
    got=$(sqlstate "$3")
    if [ "$got" = "$2" ]; then
        report 1 "$1"
    else
        report 0 "$1" "expected SQLSTATE $2, got '${got}'"
    fi
}

# notifications CHANNEL SQL...: runs the statements in one session that
# LISTENs on CHANNEL; prints the notifications psql reports, one per line.
notifications() {
    local channel=$1
    shift
    printf '%s\n' "LISTEN $channel;" "$@" "SELECT 1;" |
        db 2>&1 | sed -n 's/^Asynchronous notification "\([^"]*\)" with payload "\([^"]*\)".*/\1 \2/p' || true
}

# triggers TABLE: names of the mvrefresh triggers on TABLE, comma-separated.
triggers() {
    echo "SELECT coalesce(string_agg(tgname, ',' ORDER BY tgname), '')
          FROM pg_trigger WHERE tgrelid = '$1'::regclass AND tgname LIKE 'mvrefresh%'"
}

install() { db -f "$SQL_FILE" >/dev/null 2>&1; }

oid_of() { db -c "SELECT '$1'::regclass::oid"; }

# ---------------------------------------------------------------------------
psql -X -v ON_ERROR_STOP=1 -qAt -d "$ADMIN_DB" -c "CREATE DATABASE \"$DB\"" >/dev/null

if out=$(db -f "$SQL_FILE" 2>&1); then
    report 1 "install into a fresh database"
else
    bail_out "install into a fresh database" "$out"
fi

out=$(db 2>&1 >/dev/null <<'EOF'
CREATE TABLE t_a (id int PRIMARY KEY, v int);
CREATE TABLE t_b (id int PRIMARY KEY, w int);
CREATE TABLE t_c (id int);
CREATE TABLE t_lone (id int);
CREATE TABLE t_fresh (id int);
CREATE TABLE t_other (id int);
CREATE VIEW v_ab AS SELECT t_a.id, v, w FROM t_a JOIN t_b USING (id);
CREATE VIEW v_lone AS SELECT * FROM t_lone;
CREATE MATERIALIZED VIEW mv_a AS SELECT id, v FROM t_a;
CREATE UNIQUE INDEX ON mv_a (id);
CREATE MATERIALIZED VIEW mv_ab AS SELECT * FROM v_ab;
CREATE MATERIALIZED VIEW mv_inner AS SELECT id FROM t_c;
CREATE MATERIALIZED VIEW mv_outer AS SELECT count(*) AS n FROM mv_inner;
CREATE MATERIALIZED VIEW mv_fresh AS SELECT * FROM t_fresh;
CREATE MATERIALIZED VIEW mv_nodata AS SELECT id FROM t_a WITH NO DATA;
CREATE UNIQUE INDEX ON mv_nodata (id);
CREATE MATERIALIZED VIEW mv_nouniq AS SELECT id, v FROM t_a;
CREATE INDEX ON mv_nouniq (id);
CREATE UNIQUE INDEX ON mv_nouniq (id) WHERE v > 0;
CREATE UNIQUE INDEX ON mv_nouniq ((id + 1));
CREATE MATERIALIZED VIEW mv_const AS SELECT 1 AS one;
CREATE TABLE p (id int, k int) PARTITION BY RANGE (k);
CREATE TABLE p0 PARTITION OF p FOR VALUES FROM (0) TO (100);
CREATE MATERIALIZED VIEW mv_p AS SELECT * FROM p;
CREATE SCHEMA "My Schema";
CREATE TABLE "My Schema"."Base ""T""" (id int);
CREATE MATERIALIZED VIEW "My Schema"."Odd ""View""" AS SELECT * FROM "My Schema"."Base ""T""";
EOF
) || bail_out "create test fixtures" "$out"

# --- watch a materialized view on one table --------------------------------
is "watch() a matview succeeds" "" "SELECT mvrefresh.watch('mv_a')"
is "watch() puts both notify triggers on its table" \
    "mvrefresh_notify,mvrefresh_notify_truncate" "$(triggers t_a)"
is "triggers are statement-level AFTER I/U/D and TRUNCATE calling mvrefresh.notify()" \
    "CREATE TRIGGER mvrefresh_notify AFTER INSERT OR DELETE OR UPDATE ON public.t_a FOR EACH STATEMENT EXECUTE FUNCTION mvrefresh.notify()
CREATE TRIGGER mvrefresh_notify_truncate AFTER TRUNCATE ON public.t_a FOR EACH STATEMENT EXECUTE FUNCTION mvrefresh.notify()" \
    "SELECT pg_get_triggerdef(oid) FROM pg_trigger
     WHERE tgrelid = 't_a'::regclass AND tgname LIKE 'mvrefresh%' ORDER BY tgname"
is "dependency row (mv_a, t_a) recorded" "mv_a|t_a" \
    "SELECT view, base FROM mvrefresh.dependency WHERE view = 'mv_a'::regclass"
is "defaults: debounce 1s, max_wait 30s, concurrently, enabled; state row exists" \
    "00:00:01|00:00:30|t|t|1" \
    "SELECT v.debounce, v.max_wait, v.concurrently, v.enabled,
            (SELECT count(*) FROM mvrefresh.refresh_state s WHERE s.view = v.view)
     FROM mvrefresh.view v WHERE v.view = 'mv_a'::regclass"

# --- idempotent install -----------------------------------------------------
before=$(db -c "SELECT count(*) FROM mvrefresh.view" 2>&1) || true
if install; then report 1 "install a second time"; else report 0 "install a second time"; fi
is "second install keeps registrations and triggers" "$before|mvrefresh_notify,mvrefresh_notify_truncate" \
    "SELECT (SELECT count(*) FROM mvrefresh.view), ($(triggers t_a))"

# --- dependency discovery -----------------------------------------------------
is "watch() through a plain view over two tables finds both" "t_a,t_b" \
    "SELECT mvrefresh.watch('mv_ab') \\g /dev/null
     SELECT string_agg(base::text, ',' ORDER BY base::text)
     FROM mvrefresh.dependency WHERE view = 'mv_ab'::regclass"
is "...and both tables get the triggers" \
    "mvrefresh_notify,mvrefresh_notify_truncate|mvrefresh_notify,mvrefresh_notify_truncate" \
    "SELECT ($(triggers t_a)), ($(triggers t_b))"
is "matview over a matview: base tables of the inner one are found" "t_c|mvrefresh_notify,mvrefresh_notify_truncate" \
    "SELECT mvrefresh.watch('mv_outer') \\g /dev/null
     SELECT string_agg(base::text, ','), ($(triggers t_c))
     FROM mvrefresh.dependency WHERE view = 'mv_outer'::regclass"
is "partitioned table: trigger goes on the parent" "p|mvrefresh_notify,mvrefresh_notify_truncate|" \
    "SELECT mvrefresh.watch('mv_p') \\g /dev/null
     SELECT string_agg(base::text, ','), ($(triggers p)), ($(triggers p0))
     FROM mvrefresh.dependency WHERE view = 'mv_p'::regclass"

# --- not a materialized view ------------------------------------------------
fails_with "watch() on a table fails with 42809" 42809 "SELECT mvrefresh.watch('t_lone')"
fails_with "watch() on a plain view fails with 42809" 42809 "SELECT mvrefresh.watch('v_lone')"
msg=$(db -c "SELECT mvrefresh.watch('v_lone')" 2>&1 || true)
if grep -q '"public.v_lone" is not a materialized view' <<<"$msg"; then
    report 1 "...with a clear message"
else
    report 0 "...with a clear message" "$msg"
fi
is "...and nothing is registered, no trigger added" "0||" \
    "SELECT (SELECT count(*) FROM mvrefresh.view WHERE view IN ('t_lone'::regclass, 'v_lone'::regclass)),
            ($(triggers t_lone)), ($(triggers v_lone))"

# --- bad durations ------------------------------------------------------------
fails_with "zero debounce fails with 22023" 22023 "SELECT mvrefresh.watch('mv_fresh', '0')"
fails_with "negative debounce fails with 22023" 22023 "SELECT mvrefresh.watch('mv_fresh', '-1 s')"
fails_with "negative max_wait fails with 22023" 22023 "SELECT mvrefresh.watch('mv_fresh', '1 s', '-5 s')"
fails_with "max_wait < debounce fails with 22023" 22023 "SELECT mvrefresh.watch('mv_fresh', '10 s', '1 s')"
msg=$(db -c "SELECT mvrefresh.watch('mv_fresh', '10 s', '1 s')" 2>&1 || true)
if grep -q 'max_wait (00:00:01) must not be less than debounce (00:00:10)' <<<"$msg"; then
    report 1 "...with a message naming both values"
else
    report 0 "...with a message naming both values" "$msg"
fi
is "rejected watch() leaves nothing half-installed" "0|0|0|" \
    "SELECT (SELECT count(*) FROM mvrefresh.view WHERE view = 'mv_fresh'::regclass),
            (SELECT count(*) FROM mvrefresh.dependency WHERE view = 'mv_fresh'::regclass),
            (SELECT count(*) FROM mvrefresh.refresh_state WHERE view = 'mv_fresh'::regclass),
            ($(triggers t_fresh))"
fails_with "rejected retune of a watched view fails with 22023" 22023 "SELECT mvrefresh.watch('mv_a', '0')"
is "...and keeps its old settings" "00:00:01|00:00:30" \
    "SELECT debounce, max_wait FROM mvrefresh.view WHERE view = 'mv_a'::regclass"

# --- retune -------------------------------------------------------------------
is "watch() again retunes: one row, new values, no duplicate triggers" \
    "1|00:00:00.25|00:00:05|f|mvrefresh_notify,mvrefresh_notify_truncate" \
    "SELECT mvrefresh.watch('mv_a', '250 ms', '5 s', false) \\g /dev/null
     SELECT count(*), min(debounce), min(max_wait), bool_and(v.concurrently), ($(triggers t_a))
     FROM mvrefresh.view v WHERE view = 'mv_a'::regclass"
is "NULL durations are allowed (daemon defaults)" "||t" \
    "SELECT mvrefresh.watch('mv_outer', NULL, NULL) \\g /dev/null
     SELECT v.debounce, v.max_wait, v.concurrently FROM mvrefresh.view v WHERE view = 'mv_outer'::regclass"

# --- constraints against plain UPDATEs ----------------------------------------
fails_with "UPDATE debounce = '0' is rejected by a check constraint" 23514 \
    "UPDATE mvrefresh.view SET debounce = '0' WHERE view = 'mv_ab'::regclass"
fails_with "UPDATE max_wait < debounce is rejected by a check constraint" 23514 \
    "UPDATE mvrefresh.view SET max_wait = '1 ms' WHERE view = 'mv_ab'::regclass"
is "a valid UPDATE retunes" "00:00:00.2" \
    "UPDATE mvrefresh.view SET debounce = '200 ms' WHERE view = 'mv_ab'::regclass;
     SELECT debounce FROM mvrefresh.view WHERE view = 'mv_ab'::regclass"

# --- notifications ------------------------------------------------------------
oid_a=$(oid_of t_a)
oid_b=$(oid_of t_b)
oid_p=$(oid_of p)
got=$(notifications mvrefresh "INSERT INTO t_a VALUES (1, 1);")
if [ "$got" = "mvrefresh $oid_a" ]; then report 1 "INSERT on a watched table notifies mvrefresh with the table's OID"
else report 0 "INSERT on a watched table notifies mvrefresh with the table's OID" "got: $got"; fi
got=$(notifications mvrefresh "BEGIN;" "INSERT INTO t_a VALUES (2, 2);" "UPDATE t_a SET v = 3;" "DELETE FROM t_a WHERE id = 2;" "COMMIT;")
if [ "$got" = "mvrefresh $oid_a" ]; then report 1 "several statements in one transaction give one notification"
else report 0 "several statements in one transaction give one notification" "got: $got"; fi
got=$(notifications mvrefresh "TRUNCATE t_b;")
if [ "$got" = "mvrefresh $oid_b" ]; then report 1 "TRUNCATE on a watched table notifies with its OID"
else report 0 "TRUNCATE on a watched table notifies with its OID" "got: $got"; fi
got=$(notifications mvrefresh "INSERT INTO p VALUES (1, 1);")
if [ "$got" = "mvrefresh $oid_p" ]; then report 1 "INSERT through a partitioned parent notifies with the parent's OID"
else report 0 "INSERT through a partitioned parent notifies with the parent's OID" "got: $got"; fi
got=$(notifications mvrefresh "INSERT INTO t_other VALUES (1);")
if [ -z "$got" ]; then report 1 "a table nobody watches does not notify"
else report 0 "a table nobody watches does not notify" "got: $got"; fi

got=$(notifications mvrefresh_control "SELECT mvrefresh.watch('mv_fresh');")
if [ "$got" = "mvrefresh_control reload" ]; then report 1 "watch() notifies mvrefresh_control"
else report 0 "watch() notifies mvrefresh_control" "got: $got"; fi
got=$(notifications mvrefresh_control "UPDATE mvrefresh.view SET debounce = '300 ms' WHERE view = 'mv_fresh'::regclass;")
if [ "$got" = "mvrefresh_control reload" ]; then report 1 "UPDATE of mvrefresh.view notifies mvrefresh_control"
else report 0 "UPDATE of mvrefresh.view notifies mvrefresh_control" "got: $got"; fi
got=$(notifications mvrefresh_control "SELECT mvrefresh.unwatch('mv_fresh');")
if [ "$got" = "mvrefresh_control reload" ]; then report 1 "unwatch() notifies mvrefresh_control"
else report 0 "unwatch() notifies mvrefresh_control" "got: $got"; fi

# --- unwatch ------------------------------------------------------------------
is "unwatch() removes the registration, its dependency and state rows" "0|0|0" \
    "SELECT mvrefresh.unwatch('mv_ab') \\g /dev/null
     SELECT (SELECT count(*) FROM mvrefresh.view WHERE view = 'mv_ab'::regclass),
            (SELECT count(*) FROM mvrefresh.dependency WHERE view = 'mv_ab'::regclass),
            (SELECT count(*) FROM mvrefresh.refresh_state WHERE view = 'mv_ab'::regclass)"
is "...drops triggers no view needs, keeps those a remaining view needs" \
    "mvrefresh_notify,mvrefresh_notify_truncate|" "SELECT ($(triggers t_a)), ($(triggers t_b))"
is "...and leaves t_fresh (unwatched earlier) without triggers" "" "$(triggers t_fresh)"
msg=$(db -c "SELECT mvrefresh.unwatch('mv_ab')" 2>&1) && rc=0 || rc=$?
if [ "$rc" = 0 ] && grep -q '"public.mv_ab" is not watched' <<<"$msg"; then
    report 1 "unwatch() of an unwatched view is a NOTICE, not an error"
else
    report 0 "unwatch() of an unwatched view is a NOTICE, not an error" "rc=$rc $msg"
fi

# --- registry() -----------------------------------------------------------------
db -c "SELECT mvrefresh.watch('mv_nodata'); SELECT mvrefresh.watch('mv_nouniq');" >/dev/null
msg=$(db -c "SELECT mvrefresh.watch('mv_const')" 2>&1 || true)
if grep -q '"public.mv_const" reads no table' <<<"$msg"; then
    report 1 "watch() of a matview without base tables warns"
else
    report 0 "watch() of a matview without base tables warns" "$msg"
fi
is "registry(): one row per (enabled view, base), NULL base once, ms durations" \
    "public.mv_a|250|5000|f|t_a
public.mv_outer|||t|t_c
public.mv_nodata|1000|30000|t|t_a
public.mv_nouniq|1000|30000|t|t_a
public.mv_const|1000|30000|t|
public.mv_p|1000|30000|t|p" \
    "SELECT r.name, r.debounce_ms, r.max_wait_ms, r.concurrently, r.base::regclass
     FROM mvrefresh.registry() r"
is "registry() is ordered by view, base and its view column is the view's OID" "t" \
    "SELECT array_agg(r ORDER BY r.view, r.base) = array_agg(r)
            AND bool_and(r.view = r.name::regclass::oid)
     FROM mvrefresh.registry() r"
is "registry() leaves out disabled views" "0" \
    "UPDATE mvrefresh.view SET enabled = false WHERE view = 'mv_const'::regclass;
     SELECT count(*) FROM mvrefresh.registry() WHERE name = 'public.mv_const'"

# --- refresh_begin / refresh_end ------------------------------------------------
is "refresh_begin() returns no row for an unknown OID" "0" \
    "SELECT count(*) FROM mvrefresh.refresh_begin(0, NULL)"
is "refresh_begin() returns no row for a table or an unwatched matview" "0|0" \
    "SELECT (SELECT count(*) FROM mvrefresh.refresh_begin('t_a'::regclass, NULL)),
            (SELECT count(*) FROM mvrefresh.refresh_begin('mv_ab'::regclass, NULL))"
is "refresh_begin() on a WITH NO DATA matview: not populated" "public|mv_nodata|f|not populated" \
    "SELECT * FROM mvrefresh.refresh_begin('mv_nodata'::regclass, NULL)"
is "refresh_begin() without a usable unique index: no unique index" "public|mv_nouniq|f|no unique index" \
    "SELECT * FROM mvrefresh.refresh_begin('mv_nouniq'::regclass, NULL)"
is "refresh_begin() with concurrently => false: concurrently disabled" "public|mv_a|f|concurrently disabled" \
    "SELECT * FROM mvrefresh.refresh_begin('mv_a'::regclass, NULL)"
is "refresh_begin() with a unique index on a column: concurrent_ok, reason NULL" "public|mv_a|t|t" \
    "SELECT mvrefresh.watch('mv_a', '250 ms', '5 s', true) \\g /dev/null
     SELECT nspname, relname, concurrent_ok, reason IS NULL
     FROM mvrefresh.refresh_begin('mv_a'::regclass, 1700000000.5)"
is "refresh_begin() marks the view refreshing with start time and pending_since" \
    "t|t|2023-11-14 22:13:20.5+00" \
    "SET TimeZone = 'UTC';
     SELECT refreshing, last_start IS NOT NULL, pending_since
     FROM mvrefresh.status WHERE view = 'mv_a'::regclass"
is "refresh_end(ok) counts a refresh and records mode and duration" \
    "f|1|0|concurrently|t|t" \
    "SELECT mvrefresh.refresh_end('mv_a'::regclass, true, 'concurrently', NULL, NULL, NULL) \\g /dev/null
     SELECT refreshing, refresh_count, failure_count, last_mode,
            last_duration = last_finish - last_start, pending_since IS NULL
     FROM mvrefresh.status WHERE view = 'mv_a'::regclass"
is "refresh_end(failure) counts a failure with error text and SQLSTATE" \
    "1|1|plain|57014|canceling statement due to statement timeout|t" \
    "SELECT * FROM mvrefresh.refresh_begin('mv_a'::regclass, NULL) \\g /dev/null
     SELECT mvrefresh.refresh_end('mv_a'::regclass, false, 'plain', '57014',
                                  'canceling statement due to statement timeout', 1700000000) \\g /dev/null
     SELECT refresh_count, failure_count, last_mode, last_sqlstate, last_error, staleness > interval '0'
     FROM mvrefresh.status WHERE view = 'mv_a'::regclass"
is "a later success keeps the last error as history" "2|1|57014" \
    "SELECT mvrefresh.refresh_end('mv_a'::regclass, true, 'concurrently', NULL, NULL, NULL) \\g /dev/null
     SELECT refresh_count, failure_count, last_sqlstate FROM mvrefresh.status WHERE view = 'mv_a'::regclass"
is "status shows zero counts for a view registered by plain INSERT" "0|0|f" \
    "INSERT INTO mvrefresh.view (view) VALUES ('mv_ab');
     SELECT refresh_count, failure_count, refreshing FROM mvrefresh.status WHERE view = 'mv_ab'::regclass"
is "status is readable by any role" "t" \
    "BEGIN; CREATE ROLE mvr_sqltest_reader; SET ROLE mvr_sqltest_reader;
     SELECT count(*) > 0 FROM mvrefresh.status; ROLLBACK;"

# --- dropped matview ------------------------------------------------------------
is "a dropped matview drops out of registry() and refresh_begin() gives no row" "0|0" \
    "SELECT '$(oid_of mv_nouniq)' AS oid \\gset
     DROP MATERIALIZED VIEW mv_nouniq;
     SELECT (SELECT count(*) FROM mvrefresh.registry() WHERE view = :oid),
            (SELECT count(*) FROM mvrefresh.refresh_begin(:oid, NULL))"
is "the next watch()/unwatch() forgets it; shared triggers stay" "0|mvrefresh_notify,mvrefresh_notify_truncate" \
    "SELECT mvrefresh.unwatch('mv_outer') \\g /dev/null
     SELECT (SELECT count(*) FROM mvrefresh.view v
             WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = v.view)),
            ($(triggers t_a))"

# --- quoted mixed-case identifiers in another schema -----------------------------
odd='"My Schema"."Odd ""View"""'
base='"My Schema"."Base ""T"""'
oid_odd_base=$(oid_of "$base")
is "watch() a quoted mixed-case matview in a non-public schema" \
    "$odd|$base|mvrefresh_notify,mvrefresh_notify_truncate" \
    "SELECT mvrefresh.watch('$odd') \\g /dev/null
     SELECT view, base, ($(triggers "$base")) FROM mvrefresh.dependency
     WHERE view = '$odd'::regclass"
is "registry() and refresh_begin() give its exact names" \
    "$odd
My Schema|Odd \"View\"" \
    "SELECT DISTINCT name FROM mvrefresh.registry() WHERE view = '$odd'::regclass;
     SELECT nspname, relname FROM mvrefresh.refresh_begin('$odd'::regclass, NULL)"
got=$(notifications mvrefresh "INSERT INTO $base VALUES (1);")
if [ "$got" = "mvrefresh $oid_odd_base" ]; then report 1 "its base table notifies"
else report 0 "its base table notifies" "got: $got"; fi
is "unwatch() it removes row and triggers" "0|" \
    "SELECT mvrefresh.unwatch('$odd') \\g /dev/null
     SELECT count(*), ($(triggers "$base")) FROM mvrefresh.view WHERE view = '$odd'::regclass"

# --- dropped objects and interrupted refreshes -------------------------------------
db -c "CREATE TABLE drop_t (id int PRIMARY KEY);
       CREATE MATERIALIZED VIEW drop_mv1 AS SELECT * FROM drop_t;
       CREATE MATERIALIZED VIEW drop_mv2 AS SELECT * FROM drop_t;
       CREATE TABLE keep_t (id int PRIMARY KEY);
       CREATE MATERIALIZED VIEW keep_mv AS SELECT * FROM keep_t;
       SELECT mvrefresh.watch('drop_mv1'), mvrefresh.watch('drop_mv2'),
              mvrefresh.watch('keep_mv')" >/dev/null
is "DROP MATERIALIZED VIEW unregisters it at once (event trigger)" "1
0" \
    "DROP MATERIALIZED VIEW drop_mv1;
     SELECT count(*) FROM mvrefresh.view WHERE view::oid NOT IN (SELECT oid FROM pg_class)
       OR view::text = 'drop_mv2';
     SELECT count(*) FROM mvrefresh.dependency d
       WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = d.view)"
is "DROP TABLE ... CASCADE unregisters the views on it and its dependency rows" "0|0|1" \
    "SET client_min_messages = warning;
     DROP TABLE drop_t CASCADE;
     SELECT (SELECT count(*) FROM mvrefresh.view WHERE view::text LIKE 'drop_mv%'),
            (SELECT count(*) FROM mvrefresh.dependency d
             WHERE NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = d.base)),
            (SELECT count(*) FROM mvrefresh.view WHERE view = 'keep_mv'::regclass)"
is "mark_interrupted() closes rows a killed daemon left refreshing, once" \
    "1
f|1|interrupted: the daemon stopped during this refresh
0" \
    "UPDATE mvrefresh.refresh_state SET refreshing = (view = 'keep_mv'::regclass);
     SELECT mvrefresh.mark_interrupted();
     SELECT refreshing, failure_count, last_error
     FROM mvrefresh.refresh_state WHERE view = 'keep_mv'::regclass;
     SELECT mvrefresh.mark_interrupted()"
is "DROP SCHEMA mvrefresh CASCADE works with the event trigger, and reinstalling works" "ok
0" \
    "SET client_min_messages = warning;
     DROP SCHEMA mvrefresh CASCADE;
     SELECT 'ok' WHERE to_regnamespace('mvrefresh') IS NULL;
     \\i $SQL_FILE
     SELECT count(*) FROM mvrefresh.view"

echo "$npass passed, $nfail failed"
[ "$nfail" = 0 ]
