# shellcheck shell=bash
# Scenario 3 — staleness: how long after its commit a change shows up in the view.
#
# Database bench_stream; every stream has its own table (S3_ROWS rows, polls_user's shape)
# and materialized view (age >= 25, unique index on id), so strategies never share a view.
#
# 3a "isolated": one change at a time (write, wait until visible, wait until the refresh
#    that covered it is recorded, pause 30-80 ms). staleness = debounce + refresh + overhead,
#    with refresh = last_finish - last_start from mvrefresh.refresh_state (what
#    mvrefresh.status reports as last_duration) and dispatch = last_start - commit - debounce
#    (notification delivery, the timer, the refresh_begin round trip).
# 3b "steady": every strategy side by side in one run, each stream committing 50 changes/s
#    for S3_SECONDS: mvrefresh with debounce 1 ms / 100 ms / 1 s, and cron-style refreshes
#    every 5 s / 60 s run by the probe itself. Under a steady 50/s stream a quiet period
#    longer than 20 ms never comes, so a view is refreshed when max_wait expires: these
#    streams use max_wait = debounce, making the setting the staleness budget.

STREAM_DB=bench_stream

stream_setup() {
    [ "$(q "SELECT count(*) FROM pg_database WHERE datname = '$STREAM_DB'")" = 1 ] && return 0
    createdb "$STREAM_DB"
    PGDATABASE=$STREAM_DB qf -f "$BENCH_REPO/sql/mvrefresh.sql"
    printf '[mvrefreshd]\n# every stream view refreshes without waiting for a worker\nmax_concurrent = 8\n' \
        >"$WORK/mvrefresh.ini"
}

# make_stream NAME [DEBOUNCE]: table NAME and view NAME_mv; watched when DEBOUNCE is given
# (max_wait = DEBOUNCE unless a third argument says otherwise).
make_stream() {
    local name=$1 debounce=${2:-} max_wait=${3:-${2:-}}
    PGDATABASE=$STREAM_DB qf <<SQL
CREATE TABLE $name (id serial PRIMARY KEY, name varchar(10), age smallint, phone_num varchar(10));
INSERT INTO $name (name, age, phone_num)
SELECT 'u' || g, 18 + (g::bigint * 7919) % 63, '555' || lpad(g::text, 7, '0') FROM generate_series(1, $S3_ROWS) g;
CREATE MATERIALIZED VIEW ${name}_mv AS SELECT * FROM $name WHERE age >= 25;
CREATE UNIQUE INDEX ON ${name}_mv (id);
VACUUM ANALYZE $name;
SQL
    if [ -n "$debounce" ]; then
        PGDATABASE=$STREAM_DB qf -c "SELECT mvrefresh.watch('${name}_mv', debounce => '$debounce', max_wait => '$max_wait')"
    fi
}

# daemon_refreshes LOG VIEW: "r START END" per refresh of VIEW in the daemon's log. The log
# stamp is when the refresh finished; "in N ms" is measured from when the daemon took it
# up (its refresh_begin round trip included).
daemon_refreshes() {
    TZ=UTC awk -v v="public.$2" '$6 == "refreshed" && $7 == v {
        split($1, d, "-"); split($2, t, ":"); s = t[3] + 0
        e = mktime(d[1] " " d[2] " " d[3] " " t[1] " " t[2] " " int(s)) + (s - int(s))
        printf "r %.6f %.6f\n", e - $(NF - 1) / 1000, e }' "$1"
}

# ms NUMBER_OF_SECONDS -> milliseconds, formatted
ms() { fmt %.1f "$(awk -v x="$1" 'BEGIN {if (x == "nan") print "nan"; else print x * 1000}')"; }

# Wait until the daemon finished its start-up refresh of every view in VIEWS.
wait_catch_up() {
    local log=$1 v; shift
    for v in "$@"; do
        wait_for 120 log_has_n "$log" "refreshed public.$v " 1 || bench_die "no start-up refresh of $v"
    done
}

staleness_run() {
    stream_setup
    local log=$LOGS/s3_daemon.log spec d n name views=() run r pids=() start s
    for spec in $S3_ISOLATED; do
        d=${spec%%:*}
        make_stream "s3_iso_$d" "$(sed 's/ms$/ milliseconds/; s/\([0-9]\)s$/\1 seconds/' <<<"$d")"
        views+=("s3_iso_${d}_mv")
    done
    for d in 1ms 100ms 1s; do
        make_stream "s3_mvr_$d" "$(sed 's/ms$/ milliseconds/; s/\([0-9]\)s$/\1 seconds/' <<<"$d")"
        views+=("s3_mvr_${d}_mv")
    done
    for s in $S3_CRONS; do make_stream "s3_cron_$s"; done

    daemon_start "$STREAM_DB" "$log" --config "$WORK/mvrefresh.ini"
    wait_catch_up "$log" "${views[@]}"

    # 3a: isolated changes, one debounce at a time.
    for spec in $S3_ISOLATED; do
        d=${spec%%:*}; n=${spec#*:}
        bench_log "s3: $n isolated changes, debounce $d"
        PGDATABASE=$STREAM_DB "$BENCH_DIR/build/probe" --table "s3_iso_$d" --view "s3_iso_${d}_mv" \
            --isolated "$n" --poll-ms 0.5 >"$RAW/s3_isolated_$d.txt"
    done

    # 3b: every strategy side by side, RUNS times, each from the same table sizes.
    for run in $(seq 1 "$RUNS"); do
        s3_reset
        bench_log "s3: steady 50 changes/s for $S3_SECONDS s, all strategies side by side (run $run)"
        start=$(awk -v t="$(now_s)" 'BEGIN {printf "%.3f", t + 1.5}')
        pids=()
        for d in 1ms 100ms 1s; do
            PGDATABASE=$STREAM_DB "$BENCH_DIR/build/probe" --table "s3_mvr_$d" --view "s3_mvr_${d}_mv" \
                --rate 50 --duration "$S3_SECONDS" --start-at "$start" --tail 10 \
                >"$RAW/s3_steady_mvr_${d}_r$run.txt" &
            pids+=($!); bench_track $!
        done
        for s in $S3_CRONS; do
            PGDATABASE=$STREAM_DB "$BENCH_DIR/build/probe" --table "s3_cron_$s" --view "s3_cron_${s}_mv" \
                --rate 50 --duration "$S3_SECONDS" --start-at "$start" --cron "$s" --tail $((s + 10)) \
                >"$RAW/s3_steady_cron_${s}_r$run.txt" &
            pids+=($!); bench_track $!
        done
        for r in "${pids[@]}"; do
            wait "$r" || bench_die "a probe failed (run $run)"
            bench_untrack "$r"
        done
    done
    daemon_stop
    for d in 1ms 100ms 1s; do
        for run in $(seq 1 "$RUNS"); do
            daemon_refreshes "$log" "s3_mvr_${d}_mv" >>"$RAW/s3_steady_mvr_${d}_r$run.txt"
        done
    done
}

s3_reset() {
    local name
    for name in s3_mvr_1ms s3_mvr_100ms s3_mvr_1s $(for s in $S3_CRONS; do echo "s3_cron_$s"; done); do
        PGDATABASE=$STREAM_DB qf -c "DELETE FROM $name WHERE id > $S3_ROWS" -c "VACUUM $name" \
            -c "REFRESH MATERIALIZED VIEW CONCURRENTLY ${name}_mv"
    done
    # The daemon refreshes its views after that DELETE too: let it finish.
    sleep 1.5
    PGDATABASE=$STREAM_DB wait_for 60 idle_registry || bench_die "s3: refreshes did not settle"
}
idle_registry() { [ "$(q "SELECT count(*) FROM mvrefresh.status WHERE refreshing")" = 0 ]; }

# stream_summary FILE [windowed]: run stream.awk; prints its name=value line, and leaves the
# staleness samples in FILE.samples
stream_summary() {
    awk -v windowed="${2:-0}" -v samples="$1.samples" -f "$BENCH_DIR/lib/stream.awk" "$1"
}
kv() { tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }

staleness_report() {
    local spec d n f label strat run sum p50s p99s maxs rpm avg
    {
        echo "### 3a. Staleness of isolated changes: where the time goes"
        echo
        echo "One change at a time; staleness = commit → first poll (every 0.5 ms) that sees it. refresh = \`last_duration\` in mvrefresh.status; dispatch = refresh start − commit − debounce; overhead = staleness − debounce − refresh. Times in ms. The SQL refuses a zero debounce, so 1 ms stands for 0 (the daemon treats a deadline within 1 ms as due)."
        echo
        echo "| debounce | changes | staleness p50 | staleness p99 | refresh p50 | dispatch p50 | dispatch p99 | overhead p50 | overhead p99 | overhead max |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        printf 'debounce\tstaleness_ms\trefresh_ms\tdispatch_ms\toverhead_ms\n' >"$RAW/s3_isolated.tsv"
        for spec in $S3_ISOLATED; do
            d=${spec%%:*}
            f=$RAW/s3_isolated_$d.txt
            local dsec
            dsec=$(awk -v d="$d" 'BEGIN {if (d ~ /ms$/) print d / 1000; else print d + 0}')
            awk -v d="$d" -v ds="$dsec" '$1 == "i" {printf "%s\t%.3f\t%.3f\t%.3f\t%.3f\n", d,
                ($3 - $2) * 1000, ($5 - $4) * 1000, ($4 - $2 - ds) * 1000, ($3 - $2 - ds - ($5 - $4)) * 1000}' \
                "$f" >>"$RAW/s3_isolated.tsv"
            col() { awk -F'\t' -v d="$d" -v c="$1" '$1 == d {print $c}' "$RAW/s3_isolated.tsv"; }
            printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$d" "$(col 2 | wc -l)" \
                "$(fmt %.1f "$(col 2 | percentile 50)")" "$(fmt %.1f "$(col 2 | percentile 99)")" \
                "$(fmt %.1f "$(col 3 | percentile 50)")" \
                "$(fmt %.1f "$(col 4 | percentile 50)")" "$(fmt %.1f "$(col 4 | percentile 99)")" \
                "$(fmt %.1f "$(col 5 | percentile 50)")" "$(fmt %.1f "$(col 5 | percentile 99)")" \
                "$(fmt %.1f "$(col 5 | percentile 100)")"
        done
        echo
        echo "### 3b. Staleness under a steady 50 commits/s, all strategies side by side ($S3_SECONDS s, median of $RUNS run(s))"
        echo
        echo "Each strategy has its own table and view ($S3_ROWS rows; REFRESH CONCURRENTLY takes tens of ms). mvrefresh streams use max_wait = debounce (see bench/README.md)."
        echo
        echo "| strategy | staleness p50 | p99 | max | refreshes per minute | mean refresh |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    } >"$RAW/s3_table.md"
    printf 'strategy\tp50_s\tp99_s\tmax_s\n' >"$RAW/s3_plot.tsv"
    for strat in mvr_1ms mvr_100ms mvr_1s $(for s in $S3_CRONS; do echo "cron_$s"; done); do
        p50s=(); p99s=(); maxs=(); rpm=(); avg=()
        for run in $(seq 1 "$RUNS"); do
            f=$RAW/s3_steady_${strat}_r$run.txt
            sum=$(stream_summary "$f")
            p50s+=("$(percentile 50 <"$f.samples")")
            p99s+=("$(percentile 99 <"$f.samples")")
            maxs+=("$(percentile 100 <"$f.samples")")
            rpm+=("$(awk -v r="$(kv "$sum" refreshes)" -v t="$S3_SECONDS" 'BEGIN {print r / t * 60}')")
            avg+=("$(awk -v r="$(kv "$sum" refreshes)" -v s="$(kv "$sum" refresh_s)" 'BEGIN {print r ? s / r : "nan"}')")
            [ "$(kv "$sum" invisible)" = 0 ] || bench_log "s3: warning: $strat run $run: $(kv "$sum" invisible) changes never shown"
        done
        case $strat in
            mvr_*) label="mvrefresh, debounce ${strat#mvr_}" ;;
            cron_*) label="cron-style, every ${strat#cron_} s" ;;
        esac
        local m50 m99 mmax
        m50=$(printf '%s\n' "${p50s[@]}" | median); m99=$(printf '%s\n' "${p99s[@]}" | median)
        mmax=$(printf '%s\n' "${maxs[@]}" | median)
        printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "$(human_s "$m50")" "$(human_s "$m99")" \
            "$(human_s "$mmax")" "$(fmt %.1f "$(printf '%s\n' "${rpm[@]}" | median)")" \
            "$(human_s "$(printf '%s\n' "${avg[@]}" | median)")" >>"$RAW/s3_table.md"
        printf '%s\t%s\t%s\t%s\n' "$label" "$m50" "$m99" "$mmax" >>"$RAW/s3_plot.tsv"
    done
}

# human_s SECONDS: "12.3 ms" below a second, "4.56 s" above
human_s() { awk -v x="$1" 'BEGIN {if (x == "nan" || x == "") print "n/a"; else if (x < 1) printf "%.1f ms\n", x * 1000; else printf "%.2f s\n", x}'; }
