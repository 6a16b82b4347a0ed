# shellcheck shell=bash
# Scenario 1 — write-path cost: pgbench TPS on a watched table, against the same table with
# no trigger, while its view refreshes about once a second.
#
# One table, polls_user (S1_ROWS rows), and polls_user_matt_view, users per age (an aggregate
# with a unique index on age: its refresh reads the whole table but writes little, so the
# refreshes load the machine lightly and evenly across variants). Four variants (six with the
# optional ones), alternating within each run (the order rotates from run to run), on
# the same table, reset to S1_ROWS rows and vacuumed before every measurement:
#
#   none      no trigger; an external loop refreshes the view, then sleeps a second
#   quiet     mvrefresh's triggers (mvrefresh.watch, debounce = max_wait = 1 s) with
#             mvrefreshd running: it re-arms the table every rearm_interval while the view
#             debounces and before every refresh, and refreshes it about once a second
#   disarmed  (only when BENCH_S1_VARIANTS names it) mvrefresh's triggers on the table,
#             disarmed, and no daemon: what the WHEN check costs by itself; external loop
#   floor     (only when BENCH_S1_VARIANTS names it) a statement trigger whose WHEN is the
#             constant false: what any statement trigger costs, the floor of every variant
#             with one; external loop
#   advisory  the alternative the issue proposed: a statement trigger whose WHEN probes a
#             session advisory lock that a "disarming" session holds (the quiet path is a
#             failed pg_try_advisory_lock_shared); refreshed by the external loop
#   notify    the previous release's trigger: one NOTIFY per writing statement, a bare
#             LISTEN/drain loop (bench/src/drain.c) reading them; external refresh loop
#
# Each combination is measured with fsync = off (synchronous_commit = off, the cluster's
# default here) and with fsync = on and synchronous_commit = on (ALTER SYSTEM + reload).
# Also recorded: refreshes during each measurement, and for "quiet" the change markers the
# armed path wrote (one per armed statement, each with its NOTIFY); at the end, the latency
# of the re-arm step (mvrefresh.rearm_view) idle and under the 8-client INSERT load.

S1_DB=bench_s1
# (BENCH_S1_VARIANTS narrows them for a headline number, e.g. "none quiet"; "none" is
# the reference of every ratio and must be among them. BENCH_S1_FSYNC: "off", "on" or both.)
S1_VARIANTS=${BENCH_S1_VARIANTS:-none quiet advisory notify}
S1_FSYNC=${BENCH_S1_FSYNC:-off on}
S1_ADVISORY_KEY=7001

s1_q() { PGDATABASE=$S1_DB q "$1"; }

s1_setup() {
    createdb "$S1_DB"
    PGDATABASE=$S1_DB qf -f "$BENCH_REPO/sql/mvrefresh.sql"
    bench_log "s1: loading polls_user with $S1_ROWS rows"
    PGDATABASE=$S1_DB qf <<SQL
CREATE TABLE polls_user (
    id        serial PRIMARY KEY,
    name      varchar(10),
    age       smallint,
    phone_num varchar(10)
) WITH (autovacuum_enabled = off);
INSERT INTO polls_user (name, age, phone_num)
SELECT 'u' || g, 18 + (g::bigint * 7919) % 63, '555' || lpad((g % 10000000)::text, 7, '0')
FROM generate_series(1, $S1_ROWS) g;
CREATE MATERIALIZED VIEW polls_user_matt_view AS
    SELECT age, count(*) AS users FROM polls_user GROUP BY age;
CREATE UNIQUE INDEX ON polls_user_matt_view (age);
VACUUM ANALYZE polls_user;
SELECT mvrefresh.watch('polls_user_matt_view', debounce => '1 s', max_wait => '1 s');

-- The baselines' trigger functions.
CREATE FUNCTION bench_notify() RETURNS trigger LANGUAGE plpgsql AS \$fn\$
BEGIN
    PERFORM pg_notify('mvrefresh', TG_RELID::text);
    RETURN NULL;
END
\$fn\$;
CREATE FUNCTION bench_advisory_armed() RETURNS trigger LANGUAGE plpgsql AS \$fn\$
BEGIN
    PERFORM pg_advisory_unlock_shared($S1_ADVISORY_KEY);
    PERFORM pg_notify('mvrefresh', TG_RELID::text);
    RETURN NULL;
END
\$fn\$;
SQL
    cat >"$WORK/s1_insert.sql" <<'SQL'
\set age random(18, 80)
INSERT INTO polls_user (name, age, phone_num) VALUES ('bench', :age, '5550000');
SQL
    cat >"$WORK/s1_update.sql" <<'SQL'
\set id random(1, :rows)
\set age random(18, 80)
UPDATE polls_user SET age = :age WHERE id = :id;
SQL
    # Refresh, then wait a second: the cadence of the daemon under continuous writes with
    # max_wait = 1 s (a rate-limited pgbench -R would schedule at random, Poisson intervals).
    printf '%s\n' 'REFRESH MATERIALIZED VIEW CONCURRENTLY polls_user_matt_view;' '\sleep 1 s' \
        >"$WORK/s1_refresh.sql"
    echo "SELECT mvrefresh.rearm_view('polls_user_matt_view'::regclass);" >"$WORK/s1_rearm.sql"
}

s1_drop_triggers() {
    PGDATABASE=$S1_DB qf -c "SET client_min_messages = warning" \
        -c "DROP TRIGGER IF EXISTS mvrefresh_notify ON polls_user" \
        -c "DROP TRIGGER IF EXISTS mvrefresh_notify_truncate ON polls_user" \
        -c "DROP TRIGGER IF EXISTS bench_trigger ON polls_user"
}

# s1_fsync on|off
s1_fsync() {
    local sc=off
    [ "$1" = on ] && sc=on
    q "ALTER SYSTEM SET fsync = $1" >/dev/null
    q "ALTER SYSTEM SET synchronous_commit = $sc" >/dev/null
    q "SELECT pg_reload_conf()" >/dev/null
    s1_fsync_is() { [ "$(q "SHOW fsync")/$(q "SHOW synchronous_commit")" = "$1/$2" ]; }
    wait_for 10 s1_fsync_is "$1" "$sc" || bench_die "s1: fsync = $1 did not take effect"
}

# Start what VARIANT needs besides the writers; S1_HELPERS lists what to stop afterwards.
s1_variant_start() {
    S1_HELPERS=()
    s1_drop_triggers
    case $1 in
        quiet)
            s1_q "SELECT mvrefresh.add_triggers(ARRAY['polls_user'::regclass])" >/dev/null
            daemon_start "$S1_DB" "$LOGS/s1_daemon.log"
            # (Each start rewrites the log.) New writer sessions notify once in any case.
            wait_for 60 log_has_n "$LOGS/s1_daemon.log" "registry loaded" 1 ||
                bench_die "s1: the daemon did not start; see $LOGS/s1_daemon.log"
            # Measure the daemon at work, not starting: its catch-up (the reset changed the
            # table, so the view is pending) is over first. Starting costs a few hundred ms
            # of CPU (connections, session checks, arming, the catch-up refresh), which
            # landed in the first second of each 5 s measurement and cost "quiet" about
            # 4 points against the variants that have no daemon.
            s1_settled() { [ "$(s1_q "SELECT count(*) FROM mvrefresh.status
                                      WHERE pending_since IS NULL AND NOT refreshing
                                        AND refresh_count > 0")" = 1 ]; }
            wait_for 60 s1_settled || bench_die "s1: the daemon did not catch up; see $LOGS/s1_daemon.log"
            ;;
        disarmed)
            # What the quiet triggers cost by themselves: installed, the table disarmed (as
            # take_changes() leaves it), no daemon; refreshed by the external loop.
            s1_q "SELECT mvrefresh.add_triggers(ARRAY['polls_user'::regclass])" >/dev/null
            s1_q "SELECT setval(g.seq, pg_sequence_last_value(g.seq), false)
                  FROM mvrefresh.generations(ARRAY['polls_user'::regclass::oid]) g" >/dev/null
            ;;
        floor)
            s1_q "CREATE TRIGGER bench_trigger AFTER INSERT OR UPDATE OR DELETE ON polls_user
                  FOR EACH STATEMENT WHEN (false) EXECUTE FUNCTION bench_notify()" >/dev/null
            ;;
        advisory)
            s1_q "CREATE TRIGGER bench_trigger AFTER INSERT OR UPDATE OR DELETE ON polls_user
                  FOR EACH STATEMENT WHEN (pg_try_advisory_lock_shared($S1_ADVISORY_KEY))
                  EXECUTE FUNCTION bench_advisory_armed()" >/dev/null
            PGDATABASE=$S1_DB PGAPPNAME=bench_disarm psql -X -q \
                -c "SELECT pg_advisory_lock($S1_ADVISORY_KEY)" -c "SELECT pg_sleep(86400)" \
                >/dev/null 2>&1 &
            bench_track $!
            S1_HELPERS+=("$!")
            s1_disarmed() { [ "$(s1_q "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
                                    AND objid = $S1_ADVISORY_KEY AND granted")" = 1 ]; }
            wait_for 10 s1_disarmed || bench_die "s1: the disarming session did not lock"
            ;;
        notify)
            s1_q "CREATE TRIGGER bench_trigger AFTER INSERT OR UPDATE OR DELETE ON polls_user
                  FOR EACH STATEMENT EXECUTE FUNCTION bench_notify()" >/dev/null
            "$BENCH_DIR/build/drain" "dbname=$S1_DB" >/dev/null 2>&1 &
            bench_track $!
            S1_HELPERS+=("$!")
            s1_listening() { [ "$(s1_q "SELECT count(*) FROM pg_stat_activity
                                        WHERE query = 'LISTEN mvrefresh'")" = 1 ]; }
            wait_for 10 s1_listening || bench_die "s1: drain did not start"
            ;;
    esac
}

s1_variant_stop() {
    local p
    [ "$1" = quiet ] && daemon_stop
    # A backend sleeping in pg_sleep outlives its client: end it from the server side.
    s1_q "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
          WHERE application_name = 'bench_disarm'" >/dev/null
    for p in "${S1_HELPERS[@]}"; do bench_stop_pid "$p"; done
    S1_HELPERS=()
}

s1_reset() {
    PGDATABASE=$S1_DB qf -c "DELETE FROM polls_user WHERE id > $S1_ROWS" \
        -c "VACUUM polls_user" -c "CHECKPOINT"
}

s1_markers() { s1_q "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relid = 'mvrefresh.change_log'::regclass"; }

# CPU time the PostgreSQL server has used so far, in µs: the postmaster's own and that of the
# children it has reaped (cutime, cstime: backends that ended, e.g. pgbench's), plus that of
# its children still running (the background processes, the refresh loop's and the daemon's
# backends). USER_HZ = 100. TPS on a shared 2-core VM swings by several per cent from minute
# to minute; server CPU per transaction depends neither on how much CPU the VM got meanwhile
# nor on anything else running on the machine, so it is the steadier measure of what a
# trigger costs (the clients' CPU, the same in every variant, is left out).
s1_cpu_us() {
    local pm
    pm=$(head -n 1 "$PGWORK/data/postmaster.pid")
    {
        awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat"
        for c in $(cat "/proc/$pm/task/$pm/children" 2>/dev/null || true); do
            # (A child may have ended since the list was read: its time is in cutime now.)
            awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || true
        done
    } | awk '{t += $1} END {print t * 10000}'
}

# s1_measure FSYNC SCRIPT CLIENTS RUN VARIANT: one measurement, one line of s1_write.tsv.
s1_measure() {
    local fsync=$1 script=$2 clients=$3 run=$4 variant=$5 jobs tps refreshes=0 markers=0
    local m0 r0 refresher="" c0 cpu tx
    jobs=$(( clients < NCPU ? clients : NCPU ))
    s1_reset
    s1_variant_start "$variant"
    m0=$(s1_markers)
    r0=$(log_count "$LOGS/s1_daemon.log" "refreshed public.polls_user_matt_view")
    if [ "$variant" != quiet ]; then
        "$PGBIN/pgbench" -n -f "$WORK/s1_refresh.sql" -c 1 -T "$S1_SECONDS" "$S1_DB" \
            >"$WORK/refresher.out" 2>&1 &
        refresher=$!
        bench_track "$refresher"
    fi
    c0=$(s1_cpu_us)
    "$PGBIN/pgbench" -n -f "$WORK/s1_$script.sql" -c "$clients" -j "$jobs" \
        -T "$S1_SECONDS" -D rows="$S1_ROWS" "$S1_DB" >"$WORK/pgbench.out" 2>"$LOGS/pgbench.err" || true
    cpu=$(( $(s1_cpu_us) - c0 ))
    tps=$(awk '/^tps = / {print $3; exit}' "$WORK/pgbench.out")
    tx=$(awk '/^number of transactions actually processed:/ {split($NF, a, "/"); print a[1]; exit}' \
             "$WORK/pgbench.out")
    [ -n "$tps" ] && [ -n "$tx" ] || bench_die "s1: pgbench failed: $(tail -n 5 "$LOGS/pgbench.err")"
    if [ -n "$refresher" ]; then
        wait "$refresher" || bench_die "s1: the refresh loop failed: $(tail -n 5 "$WORK/refresher.out")"
        bench_untrack "$refresher"
        refreshes=$(awk '/^number of transactions actually processed:/ {print $NF; exit}' "$WORK/refresher.out")
    else
        refreshes=$(( $(log_count "$LOGS/s1_daemon.log" "refreshed public.polls_user_matt_view") - r0 ))
    fi
    # The writers' backends have exited, so their statistics are flushed.
    markers=$(( $(s1_markers) - m0 ))
    s1_variant_stop "$variant"
    cpu=$(awk -v c="$cpu" -v n="$tx" 'BEGIN {if (n > 0) printf "%.1f", c / n; else print "nan"}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$fsync" "$script" "$clients" "$run" "$variant" \
        "$tps" "$refreshes" "$markers" "$cpu" >>"$RAW/s1_write.tsv"
    bench_log "s1: fsync $fsync, $script, $clients client(s), run $run, $variant: $tps TPS, $cpu µs CPU/tx, $refreshes refreshes, $markers markers"
}

# The re-arm step's latency (mean of a pgbench run calling rearm_view), idle and under load.
s1_rearm_latency() {
    local load lat writers=""
    printf 'load\tlatency_ms\n' >"$RAW/s1_rearm.tsv"
    for load in idle 8-client-insert; do
        s1_reset
        s1_variant_start quiet
        if [ "$load" != idle ]; then
            "$PGBIN/pgbench" -n -f "$WORK/s1_insert.sql" -c 8 -j "$NCPU" -T "$((S1_SECONDS + 2))" \
                "$S1_DB" >/dev/null 2>&1 &
            writers=$!
            bench_track "$writers"
            sleep 1 # let the writers connect: this is load, not synchronisation
        fi
        lat=$("$PGBIN/pgbench" -n -f "$WORK/s1_rearm.sql" -c 1 -T "$S1_SECONDS" "$S1_DB" 2>/dev/null |
              awk '/^latency average = / {print $4; exit}')
        if [ -n "$writers" ]; then bench_stop_pid "$writers"; writers=""; fi
        s1_variant_stop quiet
        printf '%s\t%s\n' "$load" "${lat:-nan}" >>"$RAW/s1_rearm.tsv"
        bench_log "s1: rearm_view latency, $load: ${lat:-n/a} ms"
    done
}

# Every variant there is: none, then the others in the report's order.
S1_ALL_VARIANTS="none quiet disarmed floor advisory notify"

write_run() {
    local fsync script clients run variant order k
    [[ " $S1_VARIANTS " == *" none "* ]] || bench_die "s1: BENCH_S1_VARIANTS must include none"
    for variant in $S1_VARIANTS; do
        [[ " $S1_ALL_VARIANTS " == *" $variant "* ]] ||
            bench_die "s1: unknown variant in BENCH_S1_VARIANTS: $variant"
    done
    s1_setup
    printf 'fsync\tscript\tclients\trun\tvariant\ttps\trefreshes\tmarkers\tcpu_us_per_tx\n' >"$RAW/s1_write.tsv"
    read -r -a order <<<"$S1_VARIANTS"
    for fsync in $S1_FSYNC; do
        s1_fsync "$fsync"
        for script in insert update; do
            for clients in $S1_CLIENTS; do
                for run in $(seq 1 "$RUNS"); do
                    # Rotate the order so no variant always runs first (or last).
                    for k in "${!order[@]}"; do
                        variant=${order[$(( (k + run - 1) % ${#order[@]} ))]}
                        s1_measure "$fsync" "$script" "$clients" "$run" "$variant"
                    done
                done
            done
        done
    done
    s1_fsync off
    s1_rearm_latency
}

# median of column COL (tps 6, refreshes 7, markers 8) for FSYNC SCRIPT CLIENTS VARIANT
s1_median() {
    awk -F'\t' -v f="$1" -v s="$2" -v c="$3" -v v="$4" -v col="$5" \
        'NR > 1 && $1==f && $2==s && $3==c && $5==v {print $col}' "$RAW/s1_write.tsv" | median
}

# median over runs of the per-run ratio VARIANT / none
s1_ratio() {
    awk -F'\t' -v f="$1" -v s="$2" -v c="$3" -v v="$4" \
        'NR > 1 && $1==f && $2==s && $3==c {t[$4" "$5]=$6; r[$4]=1}
         END {for (k in r) if (t[k" none"] > 0 && (k" "v) in t) print t[k" "v] / t[k" none"]}' \
        "$RAW/s1_write.tsv" | median
}

# Tables: TPS and ratios per fsync mode; refreshes and markers; re-arm latency.
write_report() {
    local fsync script clients v none row
    {
        echo "### 1. Write-path cost while the view refreshes about once a second"
        echo
        echo "pgbench TPS on a $S1_ROWS-row table, ${S1_SECONDS} s per measurement, median of $RUNS run(s);"
        echo "in brackets, the median of the per-run ratios to *no trigger*. *quiet*: mvrefresh's"
        echo "triggers with mvrefreshd running; *disarmed*: the same triggers on a disarmed table, no"
        echo "daemon; *floor*: a statement trigger whose WHEN is the constant false (what any statement"
        echo "trigger costs); *advisory*: a WHEN probe of an advisory lock held by a disarming session;"
        echo "*notify*: the previous release's NOTIFY per statement, with a listener. (Only the variants"
        echo "measured: BENCH_S1_VARIANTS.)"
    } >"$RAW/s1_table.md"
    printf 'label\tquiet\tadvisory\tnotify\n' >"$RAW/s1_plot.tsv"
    for fsync in off on; do
        grep -q "^$fsync	" "$RAW/s1_write.tsv" || continue
        {
            echo
            if [ "$fsync" = off ]; then echo "**fsync = off, synchronous_commit = off**"
            else echo "**fsync = on, synchronous_commit = on**"; fi
            echo
            echo "| statement | clients | no trigger |$(s1_columns)"
            echo "| --- | ---: | ---: |$(s1_columns -)"
        } >>"$RAW/s1_table.md"
        for script in insert update; do
            for clients in $S1_CLIENTS; do
                none=$(s1_median "$fsync" "$script" "$clients" none 6)
                row="| $(s1_label "$script") | $clients | $(fmt %.0f "$none")"
                for v in $(s1_measured); do
                    row="$row | $(fmt %.0f "$(s1_median "$fsync" "$script" "$clients" "$v" 6)") ($(fmt %.0f "$(awk -v r="$(s1_ratio "$fsync" "$script" "$clients" "$v")" 'BEGIN {print (r == "nan") ? "nan" : r * 100}')") %)"
                done
                echo "$row |" >>"$RAW/s1_table.md"
                printf 'fsync %s/%s/%s\t%s\t%s\t%s\n' "$fsync" "$script" "$clients" \
                    "$(s1_ratio "$fsync" "$script" "$clients" quiet)" \
                    "$(s1_ratio "$fsync" "$script" "$clients" advisory)" \
                    "$(s1_ratio "$fsync" "$script" "$clients" notify)" >>"$RAW/s1_plot.tsv"
            done
        done
    done
    s1_cpu_report
    s1_activity_report
}

# median over runs of the per-run ratio none / VARIANT of CPU per transaction: the share of
# the unwatched throughput the variant would keep where the machine's CPU is the limit.
s1_cpu_ratio() {
    awk -F'\t' -v f="$1" -v s="$2" -v c="$3" -v v="$4" \
        'NR > 1 && $1==f && $2==s && $3==c && $9 != "" {t[$4" "$5]=$9; r[$4]=1}
         END {for (k in r) if (t[k" "v] > 0 && (k" none") in t) print t[k" none"] / t[k" "v]}' \
        "$RAW/s1_write.tsv" | median
}

s1_cpu_report() {
    local fsync script clients row v
    {
        echo
        echo "Server CPU per transaction (µs the PostgreSQL server — its backends, including the refresh"
        echo "loop's or the daemon's, and background processes — used per pgbench transaction; median"
        echo "of $RUNS run(s)); in brackets, the median of the per-run ratios *no trigger* / variant: the"
        echo "share of the unwatched throughput kept where the server's CPU is the limit. Unlike TPS,"
        echo "not moved by how much CPU the VM got meanwhile nor by other work on the machine:"
        echo
        echo "| fsync | statement | clients | no trigger |$(s1_columns)"
        echo "| --- | --- | ---: | ---: |$(s1_columns -)"
    } >>"$RAW/s1_table.md"
    for fsync in off on; do
        grep -q "^$fsync	" "$RAW/s1_write.tsv" || continue
        for script in insert update; do
            for clients in $S1_CLIENTS; do
                row="| $fsync | $(s1_label "$script") | $clients | $(fmt %.1f "$(s1_median "$fsync" "$script" "$clients" none 9)")"
                for v in $(s1_measured); do
                    row="$row | $(fmt %.1f "$(s1_median "$fsync" "$script" "$clients" "$v" 9)") ($(fmt %.0f "$(awk -v r="$(s1_cpu_ratio "$fsync" "$script" "$clients" "$v")" 'BEGIN {print (r == "nan") ? "nan" : r * 100}')") %)"
                done
                echo "$row |" >>"$RAW/s1_table.md"
            done
        done
    done
}

s1_activity_report() {
    local fsync script clients row v
    {
        echo
        echo "Refreshes per measurement (median; the daemon's for *quiet*, the 1/s loop's otherwise) and,"
        echo "for *quiet*, armed statements per second (each writes a change marker and sends a NOTIFY):"
        echo
        echo "| fsync | statement | clients | refreshes ${S1_VARIANTS// / \/ } | quiet: armed statements/s |"
        echo "| --- | --- | ---: | ---: | ---: |"
    } >>"$RAW/s1_table.md"
    for fsync in off on; do
        grep -q "^$fsync	" "$RAW/s1_write.tsv" || continue
        for script in insert update; do
            for clients in $S1_CLIENTS; do
                row="| $fsync | $(s1_label "$script") | $clients |"
                for v in $S1_VARIANTS; do
                    row="$row $(fmt %.0f "$(s1_median "$fsync" "$script" "$clients" "$v" 7)") /"
                done
                row=${row% /}
                row="$row | $(fmt %.1f "$(awk -v m="$(s1_median "$fsync" "$script" "$clients" quiet 8)" \
                    -v s="$S1_SECONDS" 'BEGIN {print (m == "nan") ? "nan" : m / s}')") |"
                echo "$row" >>"$RAW/s1_table.md"
            done
        done
    done
    [ -f "$RAW/s1_rearm.tsv" ] || return 0
    {
        echo
        echo "Latency of the re-arm step before each refresh (\`mvrefresh.rearm_view\`: bump the"
        echo "generations of the view's tables, read the write-mode lock holders from \`pg_locks\`):"
        echo
        echo "| load | mean latency |"
        echo "| --- | ---: |"
        awk -F'\t' 'NR > 1 {printf "| %s | %s ms |\n", $1, $2}' "$RAW/s1_rearm.tsv"
    } >>"$RAW/s1_table.md"
}

# The variants measured besides none, in the report's order.
s1_measured() {
    local v
    for v in ${S1_ALL_VARIANTS#none }; do
        [[ " $S1_VARIANTS " == *" $v "* ]] && echo "$v"
    done
    return 0
}

# Table header cells for the measured variants: their names, or (with "-") alignments.
s1_columns() {
    local v
    for v in $(s1_measured); do
        if [ "${1:-}" = - ]; then printf ' ---: |'; else printf ' %s |' "$v"; fi
    done
}

s1_label() {
    case $1 in
        insert) echo "single-row INSERT" ;;
        update) echo "UPDATE by primary key" ;;
    esac
}
