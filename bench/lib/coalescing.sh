# shellcheck shell=bash
# Scenario 4 — coalescing / cost: the same bursty trace replayed against every strategy side
# by side (each its own table and view, as in scenario 3), counted inside one window of
# S4_SECONDS:
#   mvrefresh with its defaults (debounce 1 s, max_wait 30 s) and tuned (200 ms, 5 s);
#   cron-style refreshes every 5 s / 60 s (the probe runs them; run r of R starts its
#   ticks at phase r/R of the period, so the runs together cover the phases evenly);
#   refresh on every commit (the writer refreshes right after each commit, so during a
#   burst it falls behind its schedule: commits due after the window are not made).
#
# Definitions (also in the results and bench/README.md):
#   out of date  share of the window during which the view lacks some committed change
#   staleness    of a change: commit -> visible, or -> end of window if not visible by then
#   avoided      the sum of staleness over all changes had nothing refreshed the view
#                (end - commit), minus the actual sum: change-minutes of staleness avoided
#   cost         refreshes spent per change-minute of staleness avoided
# Totals are summed over the runs before dividing (phases averaged), not medians.

# trace SECONDS: commit offsets, a 60 s shape scaled to SECONDS (rates kept, spans scaled).
s4_trace() {
    awk -v T="$1" 'function span(a, b, rate,   t) { for (t = a * k; t < b * k; t += 1 / rate) print t }
    BEGIN {
        k = T / 60
        # 0-5 quiet; 5-7 burst; 7-20 trickle 1/s; 20-30 quiet; 30-35 five mini-bursts;
        # 35-45 trickle 2/s; 45-46 burst; 46-60 quiet
        span(5, 7, 150)
        span(7, 20, 1)
        for (b = 30; b < 35; b++) span(b, b + 0.2, 100)
        span(35, 45, 2)
        span(45, 46, 400)
    }' | sort -g
}

s4_strategies() {
    echo mvr_default mvr_tuned
    for s in $S4_CRONS; do echo "cron_$s"; done
    echo every
}

s4_reset() {
    local name
    for name in $(s4_strategies); do
        PGDATABASE=$STREAM_DB qf -c "DELETE FROM s4_$name WHERE id > $S3_ROWS" -c "VACUUM s4_$name" \
            -c "REFRESH MATERIALIZED VIEW CONCURRENTLY s4_${name}_mv"
    done
    # The daemon refreshes its views after that DELETE too: let it finish.
    sleep 1.5
    PGDATABASE=$STREAM_DB wait_for 60 idle_registry || bench_die "s4: refreshes did not settle"
}

coalescing_run() {
    stream_setup
    local log=$LOGS/s4_daemon.log name run start pids=() r phase opts
    s4_trace "$S4_SECONDS" >"$RAW/s4_trace.txt"
    make_stream s4_mvr_default "1 second" "30 seconds"
    make_stream s4_mvr_tuned "200 milliseconds" "5 seconds"
    for s in $S4_CRONS; do make_stream "s4_cron_$s"; done
    make_stream s4_every
    daemon_start "$STREAM_DB" "$log" --config "$WORK/mvrefresh.ini"
    wait_catch_up "$log" s4_mvr_default_mv s4_mvr_tuned_mv
    for run in $(seq 1 "$RUNS"); do
        s4_reset
        bench_log "s4: replaying a ${S4_SECONDS} s trace of $(wc -l <"$RAW/s4_trace.txt") commits, all strategies side by side (run $run)"
        start=$(awk -v t="$(now_s)" 'BEGIN {printf "%.3f", t + 1.5}')
        pids=()
        for name in $(s4_strategies); do
            opts=()
            case $name in
                cron_*) phase=$(awk -v p="${name#cron_}" -v r="$run" -v n="$RUNS" 'BEGIN {print p * r / n}')
                        opts=(--cron "${name#cron_}" --cron-phase "$phase") ;;
                every) opts=(--every-commit) ;;
            esac
            PGDATABASE=$STREAM_DB "$BENCH_DIR/build/probe" --table "s4_$name" --view "s4_${name}_mv" \
                --trace "$RAW/s4_trace.txt" --window "$S4_SECONDS" --start-at "$start" "${opts[@]}" \
                >"$RAW/s4_${name}_r$run.txt" &
            pids+=($!); bench_track $!
        done
        for r in "${pids[@]}"; do
            wait "$r" || bench_die "a probe failed (run $run)"
            bench_untrack "$r"
        done
    done
    daemon_stop
    for name in mvr_default mvr_tuned; do
        for run in $(seq 1 "$RUNS"); do
            daemon_refreshes "$log" "s4_${name}_mv" >>"$RAW/s4_${name}_r$run.txt"
        done
    done
}

coalescing_report() {
    local name run sum label
    {
        echo "### 4. Coalescing and cost over a ${S4_SECONDS} s bursty trace ($(wc -l <"$RAW/s4_trace.txt") commits: bursts, quiet periods, a trickle; totals over $RUNS run(s))"
        echo
        echo "*Out of date*: share of the window during which the view lacks at least one committed change. *Staleness of a change*: commit → visible (a change still invisible at the end of the window counts until then). *Avoided*: the change-minutes of staleness had nothing refreshed the view, minus the actual ones. *Cost* = refreshes spent per change-minute of staleness avoided: lower is better."
        echo
        echo "| strategy | refreshes per run | refresh time per run | view out of date | mean staleness of a change | staleness avoided | refreshes per change-minute avoided | commits made / due per run | worst writer delay |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    } >"$RAW/s4_table.md"
    printf 'strategy\trefreshes\trefresh_s\tstale_s\tnever_s\tchanges\tscheduled\tlag_max\tchange_s\tchange_never_s\n' >"$RAW/s4.tsv"
    for name in $(s4_strategies); do
        for run in $(seq 1 "$RUNS"); do
            sum=$(stream_summary "$RAW/s4_${name}_r$run.txt" 1)
            printf '%s' "$name" >>"$RAW/s4.tsv"
            for k in refreshes refresh_s stale_s never_s changes scheduled lag_max change_s change_never_s; do
                printf '\t%s' "$(kv "$sum" "$k")" >>"$RAW/s4.tsv"
            done
            printf '\n' >>"$RAW/s4.tsv"
        done
        label=$(s4_label "$name")
        awk -F'\t' -v n="$name" -v label="$label" -v runs="$RUNS" -v T="$S4_SECONDS" '$1 == n {
                r += $2; rs += $3; st += $4; c += $6; due += $7; if ($8 > lag) lag = $8
                cs += $9; cn += $10 }
            END {
                av = (cn - cs) / 60
                cost = av > 0 ? sprintf("%.3f", r / av) : "∞ (avoids none)"
                printf "| %s | %.1f | %.2f s | %.0f %% | %s | %.0f change-min (%.0f %%) | %s | %.0f / %.0f | %s |\n",
                    label, r / runs, rs / runs, st / runs / T * 100,
                    (c > 0 ? human(cs / c) : "n/a"), av / runs, (cn > 0 ? (cn - cs) / cn * 100 : 0),
                    cost, c / runs, due / runs, (lag < 1 ? sprintf("%.0f ms", lag * 1000) : sprintf("%.1f s", lag)) }
            function human(x) { return x < 1 ? sprintf("%.0f ms", x * 1000) : sprintf("%.2f s", x) }' \
            "$RAW/s4.tsv" >>"$RAW/s4_table.md"
    done
}

s4_label() {
    case $1 in
        mvr_default) echo "mvrefresh, defaults (debounce 1 s, max_wait 30 s)" ;;
        mvr_tuned) echo "mvrefresh, debounce 200 ms, max_wait 5 s" ;;
        cron_*) echo "cron-style, every ${1#cron_} s" ;;
        every) echo "refresh after every commit" ;;
    esac
}
