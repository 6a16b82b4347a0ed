# shellcheck shell=bash
# Scenario 1 — write-path cost: pgbench TPS with and without mvrefresh's notify triggers.
#
# One table, polls_user (ROWS rows), and polls_user_matt_view (age >= 25, unique index on
# id), watched with debounce = max_wait = 1 hour so no refresh runs while we measure: this
# is the cost of the trigger + NOTIFY + commit-time queue lock, with the daemon listening
# and draining. "none" drops the two triggers (the registration stays); "notify" puts them
# back with mvrefresh.watch(). The variants alternate within each run (order flipped every
# other run) on the same table, reset to ROWS rows and vacuumed before every measurement.

s1_setup() {
    local db=bench_s1
    createdb "$db"
    PGDATABASE=$db qf -f "$BENCH_REPO/sql/mvrefresh.sql"
    bench_log "s1: loading polls_user with $S1_ROWS rows"
    PGDATABASE=$db qf <<SQL
CREATE TABLE polls_user (
    id        serial PRIMARY KEY,
    name      varchar(10),
    age       smallint,
    phone_num varchar(10)
) WITH (autovacuum_enabled = off);
INSERT INTO polls_user (name, age, phone_num)
SELECT 'u' || g, 18 + (g::bigint * 7919) % 63, '555' || lpad((g % 10000000)::text, 7, '0')
FROM generate_series(1, $S1_ROWS) g;
CREATE MATERIALIZED VIEW polls_user_matt_view AS SELECT * FROM polls_user WHERE age >= 25;
CREATE UNIQUE INDEX ON polls_user_matt_view (id);
VACUUM ANALYZE polls_user;
SELECT mvrefresh.watch('polls_user_matt_view', debounce => '1 hour', max_wait => '1 hour');
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
    cat >"$WORK/s1_insert100.sql" <<'SQL'
INSERT INTO polls_user (name, age, phone_num)
SELECT 'b' || g, 18 + g % 63, '5550000' FROM generate_series(1, 100) g;
SQL
}

s1_variant() {
    if [ "$1" = none ]; then
        PGDATABASE=bench_s1 qf -c "SET client_min_messages = warning" \
            -c "DROP TRIGGER IF EXISTS mvrefresh_notify ON polls_user" \
            -c "DROP TRIGGER IF EXISTS mvrefresh_notify_truncate ON polls_user"
    else
        PGDATABASE=bench_s1 qf -c "SELECT mvrefresh.watch('polls_user_matt_view',
                                    debounce => '1 hour', max_wait => '1 hour')"
    fi
}

s1_reset() {
    PGDATABASE=bench_s1 qf -c "DELETE FROM polls_user WHERE id > $S1_ROWS" \
        -c "VACUUM polls_user" -c "CHECKPOINT"
}

queue_empty() { [ "$(q "SELECT pg_notification_queue_usage() = 0")" = t ]; }

write_run() {
    local out=$RAW/s1_write.tsv script clients run variant order tps jobs
    s1_setup
    daemon_start bench_s1 "$LOGS/s1_daemon.log"
    bench_log "s1: waiting for the daemon's start-up refresh of polls_user_matt_view"
    wait_for 600 log_has_n "$LOGS/s1_daemon.log" "refreshed public.polls_user_matt_view" 1 ||
        bench_die "s1: no start-up refresh; see $LOGS/s1_daemon.log"
    printf 'script\tclients\trun\tvariant\ttps\n' >"$out"
    for script in insert update insert100; do
        for clients in $S1_CLIENTS; do
            jobs=$(( clients < NCPU ? clients : NCPU ))
            for run in $(seq 1 "$RUNS"); do
                order="none notify"
                [ $((run % 2)) -eq 0 ] && order="notify none"
                for variant in $order; do
                    s1_variant "$variant"
                    s1_reset
                    tps=$("$PGBIN/pgbench" -n -f "$WORK/s1_$script.sql" -c "$clients" -j "$jobs" \
                              -T "$S1_SECONDS" -D rows="$S1_ROWS" bench_s1 2>"$LOGS/pgbench.err" |
                          awk '/^tps = / {print $3; exit}')
                    [ -n "$tps" ] || bench_die "s1: pgbench failed: $(tail -n 5 "$LOGS/pgbench.err")"
                    printf '%s\t%s\t%s\t%s\t%s\n' "$script" "$clients" "$run" "$variant" "$tps" >>"$out"
                    bench_log "s1: $script, $clients client(s), run $run, $variant: $tps TPS"
                    # The daemon must keep up: the queue is drained before the next run.
                    PGDATABASE=bench_s1 wait_for 60 queue_empty ||
                        bench_die "s1: the notification queue was not drained"
                done
            done
        done
    done
    local refreshes
    refreshes=$(log_count "$LOGS/s1_daemon.log" "refreshed ")
    [ "$refreshes" -eq 1 ] || bench_log "s1: warning: $refreshes refreshes during the runs (expected only the start-up one)"
    daemon_stop
}

# Table: medians over runs; ratio = median of the per-run ratios notify/none.
write_report() {
    local in=$RAW/s1_write.tsv script clients none notify ratio
    {
        echo "### 1. Write-path cost (pgbench TPS, $S1_ROWS-row polls_user, ${S1_SECONDS} s per measurement, median of $RUNS run(s))"
        echo
        echo "| statement | clients | TPS no trigger | TPS mvrefresh trigger + daemon | ratio |"
        echo "| --- | ---: | ---: | ---: | ---: |"
    } >"$RAW/s1_table.md"
    printf 'label\tnone\tnotify\tratio\n' >"$RAW/s1_plot.tsv"
    for script in insert update insert100; do
        for clients in $S1_CLIENTS; do
            none=$(awk -F'\t' -v s="$script" -v c="$clients" '$1==s && $2==c && $4=="none" {print $5}' "$in" | median)
            notify=$(awk -F'\t' -v s="$script" -v c="$clients" '$1==s && $2==c && $4=="notify" {print $5}' "$in" | median)
            ratio=$(awk -F'\t' -v s="$script" -v c="$clients" '$1==s && $2==c {t[$3" "$4]=$5; r[$3]=1}
                     END {for (k in r) if (t[k" none"] > 0) print t[k" notify"] / t[k" none"]}' "$in" | median)
            printf '| %s | %s | %s | %s | %s |\n' "$(s1_label "$script")" "$clients" \
                "$(fmt %.0f "$none")" "$(fmt %.0f "$notify")" "$(fmt %.2f "$ratio")" >>"$RAW/s1_table.md"
            printf '%s/%s\t%s\t%s\t%s\n' "$script" "$clients" "$none" "$notify" "$ratio" >>"$RAW/s1_plot.tsv"
        done
    done
}

s1_label() {
    case $1 in
        insert) echo "single-row INSERT" ;;
        update) echo "UPDATE by primary key" ;;
        insert100) echo "100-row INSERT ... SELECT" ;;
    esac
}
