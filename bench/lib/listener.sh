# shellcheck shell=bash
# Scenarios 2 (listener throughput) and 5 (scale). Both use database bench_many: MAXV tables
# t_00001.. each with a watched materialized view v_00001.., debounce = max_wait = 1 hour so no
# refresh runs during a flood. A view is taken out of the daemon's registry with
# enabled = false, which is how scale varies the number of watched views.
#
# A flood is measured "queued": the listener (mvrefreshd or bench/src/drain.c) is stopped
# with SIGSTOP, N notifications are committed, then bench/src/resume.c sends SIGCONT and
# times until the listener is idle and pg_notification_queue_usage() is back to 0 (it is
# > 0 while any listener lags by a page or more: checked before every resume). The
# listener's CPU time comes from /proc/PID/schedstat over the same interval.
# "live" runs pgbench (2 clients, one NOTIFY per transaction) against a running listener.

MANY_DB=bench_many

many_setup() {
    local maxv=0 k
    for k in $S5_VIEWS; do [ "$k" -gt "$maxv" ] && maxv=$k; done
    MAXV=$maxv
    [ "$(q "SELECT count(*) FROM pg_database WHERE datname = '$MANY_DB'")" = 1 ] && return 0
    bench_log "s2/s5: creating $MAXV tables and watched views"
    createdb "$MANY_DB"
    PGDATABASE=$MANY_DB qf -f "$BENCH_REPO/sql/mvrefresh.sql"
    PGDATABASE=$MANY_DB qf <<SQL
CREATE TABLE bench_view (n int PRIMARY KEY, tbl oid, view regclass);
DO \$\$
BEGIN
    FOR i IN 1..$MAXV LOOP
        EXECUTE format('CREATE TABLE t_%s (id int PRIMARY KEY, v int)', lpad(i::text, 5, '0'));
        EXECUTE format('CREATE MATERIALIZED VIEW v_%s AS SELECT id, v FROM t_%s',
                       lpad(i::text, 5, '0'), lpad(i::text, 5, '0'));
        EXECUTE format('CREATE UNIQUE INDEX ON v_%s (id)', lpad(i::text, 5, '0'));
        INSERT INTO bench_view VALUES (i, format('t_%s', lpad(i::text, 5, '0'))::regclass::oid,
                                       format('v_%s', lpad(i::text, 5, '0'))::regclass);
        -- In batches: one transaction holding the locks of 10,000 new relations would
        -- exhaust the lock table (max_locks_per_transaction).
        IF i % 500 = 0 THEN
            COMMIT;
        END IF;
    END LOOP;
END
\$\$;
DO \$\$
DECLARE
    v regclass;
BEGIN
    FOR v IN SELECT view FROM bench_view ORDER BY n LOOP
        PERFORM mvrefresh.watch(v, debounce => '1 hour', max_wait => '1 hour');
        COMMIT;
    END LOOP;
END
\$\$;
-- The probe: one more watched view, on a short debounce, written while the others catch up.
CREATE TABLE probe (id serial PRIMARY KEY, v int);
CREATE MATERIALIZED VIEW probe_mv AS SELECT id, v FROM probe;
CREATE UNIQUE INDEX ON probe_mv (id);
SELECT mvrefresh.watch('probe_mv', debounce => '10 ms', max_wait => '10 ms');
-- ntx transactions of per_tx notifications each, payloads cycling through the OIDs of the
-- first nviews tables (distinct within a transaction as long as per_tx <= nviews).
CREATE PROCEDURE bench_flood(ntx int, per_tx int, nviews int)
LANGUAGE plpgsql AS \$fn\$
DECLARE
    payloads text[] := ARRAY(SELECT tbl::text FROM bench_view WHERE n <= nviews ORDER BY n);
    k int := 0;
BEGIN
    FOR t IN 1..ntx LOOP
        FOR j IN 1..per_tx LOOP
            PERFORM pg_notify('mvrefresh', payloads[1 + k % nviews]);
            k := k + 1;
        END LOOP;
        COMMIT;
    END LOOP;
END
\$fn\$;
SQL
    cat >"$WORK/live_notify.sql" <<'SQL'
\set k random(1, :nviews)
SELECT pg_notify('mvrefresh', tbl::text) FROM bench_view WHERE n = :k;
SQL
}

many_enable() {
    PGDATABASE=$MANY_DB qf -c "UPDATE mvrefresh.view v SET enabled = (b.n <= $1)
                               FROM bench_view b WHERE b.view = v.view"
}

# flood_queued PID LABEL K NTX PER_TX: one queued flood; appends to $RAW/flood.tsv
flood_queued() {
    local pid=$1 label=$2 k=$3 ntx=$4 per=$5 usage res
    kill -STOP "$pid"
    PGDATABASE=$MANY_DB q "CALL bench_flood($ntx, $per, $k)" >/dev/null
    usage=$(PGDATABASE=$MANY_DB q "SELECT pg_notification_queue_usage()")
    awk -v u="$usage" 'BEGIN {exit !(u > 0)}' ||
        bench_die "queue usage is $usage with the listener stopped: cannot detect the drain"
    res=$(PGDATABASE=$MANY_DB "$BENCH_DIR/build/resume" "$pid") || bench_die "resume failed"
    printf '%s\t%s\t%s\t%s\t%s\n' "$label" "$k" "$((ntx * per))" "${res% *}" "${res#* }" >>"$RAW/flood.tsv"
    bench_log "flood $label, $k views: $((ntx * per)) notifications in ${res% *} s, CPU ${res#* } s"
}

# flood_warmup PID K: one unrecorded flood (a tenth of the size), so the first measured one
# does not pay for the server creating its queue segment files and the listener growing its
# buffers.
flood_warmup() {
    kill -STOP "$1"
    PGDATABASE=$MANY_DB q "CALL bench_flood($(( S2_N / 10 / $2 )), $2, $2)" >/dev/null
    PGDATABASE=$MANY_DB "$BENCH_DIR/build/resume" "$1" >/dev/null || bench_die "resume failed"
}

# flood_live PID LABEL K: pgbench sends single-notification transactions for S2_LIVE_SECONDS.
flood_live() {
    local pid=$1 label=$2 k=$3 cpu0 cpu1 n t0 res
    cpu0=$(proc_cpu_ns "$pid")
    t0=$(now_s)
    n=$(PGDATABASE=$MANY_DB "$PGBIN/pgbench" -n -f "$WORK/live_notify.sql" -c 2 -j 2 \
            -T "$S2_LIVE_SECONDS" -D nviews="$k" "$MANY_DB" 2>"$LOGS/pgbench.err" |
        awk '/^number of transactions actually processed/ {print $NF}')
    [ -n "$n" ] || bench_die "live flood: pgbench failed: $(tail -n 5 "$LOGS/pgbench.err")"
    # resume on a running process only waits for it to be idle with an empty queue.
    res=$(PGDATABASE=$MANY_DB "$BENCH_DIR/build/resume" "$pid") || bench_die "resume failed"
    cpu1=$(proc_cpu_ns "$pid")
    awk -v l="$label" -v k="$k" -v n="$n" -v t0="$t0" -v t1="$(now_s)" -v c="$((cpu1 - cpu0))" \
        -v lag="${res% *}" 'BEGIN {printf "%s\t%s\t%s\t%.6f\t%.6f\t%.6f\n", l, k, n, t1 - t0, c / 1e9, lag}' \
        >>"$RAW/live.tsv"
    bench_log "live $label: $n notifications in ${S2_LIVE_SECONDS} s, drained ${res% *} s after the writers stopped"
}

# daemon_measure_start K: start the daemon with K views enabled, record start-up figures.
daemon_measure_start() {
    local k=$1 log=$LOGS/s5_daemon_$1.log line t_reg t_done t_probe n_probe probe_line
    many_enable "$k"
    # A restart refreshes only the views whose tables changed meanwhile: measure the worst
    # case, every one of the K views pending.
    PGDATABASE=$MANY_DB qf -c "UPDATE mvrefresh.refresh_state s SET pending_since = now()
                               FROM bench_view b WHERE b.view = s.view AND b.n <= $k" \
        -c "UPDATE mvrefresh.refresh_state SET pending_since = NULL WHERE view = 'probe_mv'::regclass"
    # A flood keeps the daemon stopped (SIGSTOP) for seconds: with the default lease (a TTL of
    # 3 s) it would wake up as a standby and measure nothing. A lone daemon needs no quick
    # takeover.
    printf '[mvrefreshd]\nlease_interval = 60s\n' >"$WORK/many.ini"
    daemon_start "$MANY_DB" "$log" --config "$WORK/many.ini"
    # (+ 1: the probe)
    wait_for 120 log_has_n "$log" "registry loaded: $((k + 1)) views" 1 ||
        bench_die "no 'registry loaded: $((k + 1)) views' in $log"
    # A change made while the K views catch up: it must not wait behind them.
    wait_for 120 log_has_n "$log" "refreshed public.v_" 1 || bench_die "no refresh; see $log"
    n_probe=$(( $(log_count "$log" "refreshed public.probe_mv ") + 1 ))
    t_probe=$(now_s)
    PGDATABASE=$MANY_DB qf -c "INSERT INTO probe (v) VALUES (1)"
    wait_for 900 log_has_n "$log" "refreshed public.v_" "$k" ||
        bench_die "catch-up refreshes did not finish; see $log"
    wait_for 60 log_has_n "$log" "refreshed public.probe_mv " "$n_probe" ||
        bench_die "the probe's change was not refreshed; see $log"
    probe_line=$(grep "refreshed public.probe_mv " "$log" | sed -n "${n_probe}p")
    line=$(grep -m1 "registry loaded: $((k + 1)) views" "$log")
    t_reg=$(log_stamp_s "$line")
    t_done=$(log_stamp_s "$(grep "refreshed public.v_" "$log" | tail -n 1)")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$k" \
        "$(awk -v a="$DAEMON_T0" -v b="$t_reg" 'BEGIN {printf "%.3f", b - a}')" \
        "$(awk -v a="$DAEMON_T0" -v b="$t_done" 'BEGIN {printf "%.3f", b - a}')" \
        "$(proc_rss_kb "$DAEMON_PID")" "$(proc_hwm_kb "$DAEMON_PID")" \
        "$(sed -n 's/.* in \([0-9]*\) ms$/\1/p' <<<"$line")" \
        "$(awk -v a="$t_probe" -v b="$(log_stamp_s "$probe_line")" 'BEGIN {printf "%.0f", (b - a) * 1000}')" \
        "$(awk -v k="$k" -v m="$n_probe" '/refreshed public.probe_mv / && ++p == m {print k - n; exit}
                                          /refreshed public.v_/ {n++}' "$log")" \
        >>"$RAW/start.tsv"
    bench_log "s5: $k views: registry loaded after $(tail -n 1 "$RAW/start.tsv" | cut -f2) s," \
        "catch-up done after $(tail -n 1 "$RAW/start.tsv" | cut -f3) s, RSS $(proc_rss_kb "$DAEMON_PID") kB;" \
        "a change made during catch-up refreshed after $(tail -n 1 "$RAW/start.tsv" | cut -f7) ms," \
        "$(tail -n 1 "$RAW/start.tsv" | cut -f8) views still to catch up"
}

# A daemon that lost its lease while stopped listened to nothing: its figures are void.
daemon_still_active() {
    ! grep -q "lease: lost" "$LOGS/s5_daemon_$1.log" ||
        bench_die "the daemon lost its lease during the floods; see $LOGS/s5_daemon_$1.log"
}

rss_after() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$(proc_rss_kb "$3")" "$(proc_hwm_kb "$3")" >>"$RAW/rss.tsv"; }

listener_run() {
    local pid
    many_setup
    [ -f "$RAW/start.tsv" ] || printf 'views\tregistry_s\tcatchup_s\trss_kb\thwm_kb\tload_ms\tprobe_ms\tprobe_behind\n' >"$RAW/start.tsv"
    [ -f "$RAW/flood.tsv" ] || printf 'listener\tviews\tn\twall_s\tcpu_s\n' >"$RAW/flood.tsv"
    [ -f "$RAW/live.tsv" ] || printf 'listener\tviews\tn\twall_s\tcpu_s\tlag_s\n' >"$RAW/live.tsv"
    [ -f "$RAW/rss.tsv" ] || printf 'when\tviews\trss_kb\thwm_kb\n' >"$RAW/rss.tsv"

    daemon_measure_start "$MAXV"
    flood_warmup "$DAEMON_PID" "$MAXV"
    for _ in $(seq 1 "$RUNS"); do
        flood_queued "$DAEMON_PID" mvrefreshd-big "$MAXV" $((S2_N / MAXV)) "$MAXV"
        flood_queued "$DAEMON_PID" mvrefreshd-small "$MAXV" "$S2_SMALL_N" 1
        flood_live "$DAEMON_PID" mvrefreshd "$MAXV"
    done
    rss_after "after floods" "$MAXV" "$DAEMON_PID"
    daemon_still_active "$MAXV"
    if [ "$(log_count "$LOGS/s5_daemon_$MAXV.log" "refreshed public.v_")" -ne "$MAXV" ]; then
        bench_log "warning: the daemon refreshed during the floods"
    fi
    daemon_stop

    "$BENCH_DIR/build/drain" "dbname=$MANY_DB" >"$LOGS/drain.out" 2>&1 &
    pid=$!
    bench_track "$pid"
    wait_for 30 grep -q listening "$LOGS/drain.out" || bench_die "drain did not start"
    flood_warmup "$pid" "$MAXV"
    for _ in $(seq 1 "$RUNS"); do
        flood_queued "$pid" drain-big "$MAXV" $((S2_N / MAXV)) "$MAXV"
        flood_queued "$pid" drain-small "$MAXV" "$S2_SMALL_N" 1
        flood_live "$pid" drain "$MAXV"
    done
    bench_stop_pid "$pid"
    bench_log "drain: $(grep -o '[0-9]* notifications' "$LOGS/drain.out")"
}

scale_run() {
    local k
    many_setup
    [ -f "$RAW/start.tsv" ] || printf 'views\tregistry_s\tcatchup_s\trss_kb\thwm_kb\tload_ms\tprobe_ms\tprobe_behind\n' >"$RAW/start.tsv"
    [ -f "$RAW/flood.tsv" ] || printf 'listener\tviews\tn\twall_s\tcpu_s\n' >"$RAW/flood.tsv"
    [ -f "$RAW/rss.tsv" ] || printf 'when\tviews\trss_kb\thwm_kb\n' >"$RAW/rss.tsv"
    for k in $S5_VIEWS; do
        # The largest size was measured by the listener scenario when it ran.
        awk -F'\t' -v k="$k" '$2==k && $1=="mvrefreshd-big" {f=1} END {exit !f}' "$RAW/flood.tsv" &&
            continue
        daemon_measure_start "$k"
        flood_warmup "$DAEMON_PID" "$k"
        for _ in $(seq 1 "$RUNS"); do
            flood_queued "$DAEMON_PID" mvrefreshd-big "$k" $((S2_N / k)) "$k"
        done
        rss_after "after floods" "$k" "$DAEMON_PID"
        daemon_still_active "$k"
        daemon_stop
    done
    watch_cost
}

# watch_cost: with every view of bench_many watched and no daemon running, one session watches
# S5_WATCH more views over tables already watched, then as many over new tables (which need
# triggers and a generation); the time per view goes to $RAW/watch.tsv. They go again after,
# so that the database is as it was.
watch_cost() {
    local n=$S5_WATCH kind t0 t1 sql=$WORK/watch_cost.sql
    [ -f "$RAW/watch.tsv" ] || printf 'watched\tkind\tn\tms_per_view\n' >"$RAW/watch.tsv"
    many_enable "$MAXV"
    watch_cost_clean "$n"
    PGDATABASE=$MANY_DB qf <<SQL
DO \$\$
BEGIN
    FOR i IN 1..$n LOOP
        EXECUTE format('CREATE MATERIALIZED VIEW wc_old_%s AS SELECT id, v FROM t_%s',
                       i, lpad(i::text, 5, '0'));
        EXECUTE format('CREATE UNIQUE INDEX ON wc_old_%s (id)', i);
        EXECUTE format('CREATE TABLE wc_t_%s (id int PRIMARY KEY, v int)', i);
        EXECUTE format('CREATE MATERIALIZED VIEW wc_new_%s AS SELECT id, v FROM wc_t_%s', i, i);
        EXECUTE format('CREATE UNIQUE INDEX ON wc_new_%s (id)', i);
    END LOOP;
END
\$\$;
SQL
    for kind in old new; do
        seq 1 "$n" | awk -v k="$kind" \
            '{printf "SELECT mvrefresh.watch(\047wc_%s_%d\047, debounce => \0471 hour\047, max_wait => \0471 hour\047);\n", k, $1}' \
            >"$sql"
        t0=$(now_s)
        PGDATABASE=$MANY_DB qf -f "$sql"
        t1=$(now_s)
        awk -v w="$MAXV" -v k="$kind" -v n="$n" -v a="$t0" -v b="$t1" \
            'BEGIN {printf "%s\t%s\t%s\t%.3f\n", w, k, n, (b - a) * 1000 / n}' >>"$RAW/watch.tsv"
        bench_log "s5: watch() of $n views over $kind tables, $MAXV watched: $(tail -n 1 "$RAW/watch.tsv" | cut -f4) ms per view"
    done
    watch_cost_clean "$n"
}

# watch_cost_clean N: unwatch and drop what watch_cost made, also what an interrupted run left.
watch_cost_clean() {
    PGDATABASE=$MANY_DB qf <<SQL
SET client_min_messages = warning;
DO \$\$
DECLARE
    v regclass;
BEGIN
    FOR i IN 1..$1 LOOP
        FOREACH v IN ARRAY ARRAY[to_regclass(format('wc_old_%s', i)),
                                 to_regclass(format('wc_new_%s', i))] LOOP
            IF v IS NOT NULL THEN
                IF EXISTS (SELECT 1 FROM mvrefresh.view w WHERE w.view = v) THEN
                    PERFORM mvrefresh.unwatch(v);
                END IF;
                EXECUTE format('DROP MATERIALIZED VIEW %s', v);
            END IF;
        END LOOP;
        EXECUTE format('DROP TABLE IF EXISTS wc_t_%s', i);
    END LOOP;
END
\$\$;
SQL
}

# median over runs of column COL for rows of LISTENER and VIEWS in FILE
med_of() { awk -F'\t' -v l="$2" -v k="$3" -v c="$4" '$1==l && $2==k {print $c}' "$1" | median; }

listener_report() {
    local l k=$MAXV n wall cpu
    {
        echo "### 2. Listener throughput ($MAXV watched tables; median of $RUNS run(s))"
        echo
        echo "Queued floods: the listener is paused, N notifications are committed, then it is resumed and timed until the server's queue is empty and it is idle."
        echo
        echo "| listener | flood | notifications | wall time | notifications/s | listener CPU | CPU per notification | notifications per CPU-second |"
        echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
        for l in mvrefreshd drain; do
            for kind in big small; do
                n=$(med_of "$RAW/flood.tsv" "$l-$kind" "$k" 3)
                wall=$(med_of "$RAW/flood.tsv" "$l-$kind" "$k" 4)
                cpu=$(med_of "$RAW/flood.tsv" "$l-$kind" "$k" 5)
                awk -v l="$l" -v kind="$kind" -v n="$n" -v w="$wall" -v c="$cpu" -v k="$k" 'BEGIN {
                    name = (l == "drain") ? "bare drain loop (bench/src/drain.c)" : "mvrefreshd";
                    what = (kind == "big") ? k " distinct per transaction" : "1 per transaction";
                    printf "| %s | %s | %d | %.3f s | %.0f | %.3f s | %.3f µs | %.0f |\n",
                        name, what, n, w, n / w, c, c / n * 1e6, n / c }'
            done
        done
        echo
        echo "Live: 2 pgbench clients commit one NOTIFY per transaction for ${S2_LIVE_SECONDS} s against a running listener."
        echo
        echo "| listener | notifications | notifications/s offered | listener CPU | CPU per notification | listener busy | drained after writers stopped |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
        for l in mvrefreshd drain; do
            awk -F'\t' -v l="$l" '$1==l {n[++i]=$3; w[i]=$4; c[i]=$5; g[i]=$6}
                END {
                    # the run with the median notification count
                    for (a = 1; a <= i; a++) { r = 0; for (b = 1; b <= i; b++) if (n[b] < n[a]) r++;
                        if (r == int((i - 1) / 2)) m = a }
                    name = (l == "drain") ? "bare drain loop" : "mvrefreshd";
                    printf "| %s | %d | %.0f | %.3f s | %.3f µs | %.1f %% | %.1f ms |\n",
                        name, n[m], n[m] / w[m], c[m], c[m] / n[m] * 1e6, c[m] / w[m] * 100, g[m] * 1000 }' \
                "$RAW/live.tsv"
        done
    } >"$RAW/s2_table.md"
}

scale_report() {
    local k
    {
        echo "### 5. Scale (median of $RUNS run(s) per size)"
        echo
        echo "Start = from exec until the log says \`registry loaded\` (connections, session checks, the load), and until the catch-up refresh of every view has finished (each start finds all its views pending, as if every table had changed while no daemon ran: the worst case). Registry load = the load itself, from sending \`mvrefresh.registry()\` to the parsed result, as the daemon logs it. A change during catch-up = a write to one more watched view (debounce 10 ms) made just after the first catch-up refresh, until the log says it was refreshed, and how many views were still waiting to catch up then. Queued floods of $S2_N notifications."
        echo
        echo "| watched views | registry loaded | registry load | all catch-up refreshes done | a change during catch-up | RSS after start | RSS after floods (peak) | CPU per notification | notifications per CPU-second |"
        echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        for k in $S5_VIEWS; do
            awk -F'\t' -v k="$k" -v rss="$(awk -F'\t' -v k="$k" '$2==k {print $3 " " $4}' "$RAW/rss.tsv" | tail -n 1)" \
                -v cpu="$(med_of "$RAW/flood.tsv" mvrefreshd-big "$k" 5)" \
                -v n="$(med_of "$RAW/flood.tsv" mvrefreshd-big "$k" 3)" \
                '$1==k {split(rss, r, " ");
                        printf "| %d | %.3f s | %d ms | %.2f s | %d ms (%d still waiting) | %.1f MB | %.1f MB (%.1f MB) | %.3f µs | %.0f |\n",
                            k, $2, $6, $3, $7, $8, $4 / 1024, r[1] / 1024, r[2] / 1024, cpu / n * 1e6, n / cpu}' \
                "$RAW/start.tsv"
        done
        if [ -f "$RAW/watch.tsv" ]; then
            echo
            awk -F'\t' 'NR > 1 {ms[$2] = $4; w = $1; n = $3}
                END {if (("old" in ms) && ("new" in ms)) printf "watch() from one session, %d views one after the other with %d already watched (no daemon running): %.1f ms per view over tables already watched, %.1f ms over new tables (triggers and a generation to create).\n",
                            n, w, ms["old"], ms["new"]}' "$RAW/watch.tsv"
        fi
    } >"$RAW/s5_table.md"
    awk -F'\t' 'NR > 1 && $1 == "mvrefreshd-big" {print $2 "\t" $5 / $3 * 1e6}' "$RAW/flood.tsv" >"$RAW/s5_plot.tsv"
}
