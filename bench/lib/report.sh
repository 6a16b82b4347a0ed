# shellcheck shell=bash
# Assemble bench/results/: results.md (every table), summary.md (the headline for the README)
# and the plots. Each part is written only when its scenario ran.

GP_TERM="set terminal pngcairo size 960,540 font 'DejaVu Sans,11' noenhanced"

report_write() {
    local elapsed=$1
    # Tables from the raw data of whichever scenarios ran.
    [ -f "$RAW/s1_write.tsv" ] && write_report
    grep -q '^drain-big' "$RAW/flood.tsv" 2>/dev/null && listener_report
    [ -f "$RAW/start.tsv" ] && scale_report
    [ -f "$RAW/s3_steady_mvr_1ms_r1.txt" ] && staleness_report
    [ -f "$RAW/s4_every_r1.txt" ] && coalescing_report
    report_plots
    {
        echo "# mvrefresh benchmark results"
        echo
        echo "- mode: **$MODE** ($RUNS run(s) per point$( [ "$QUICK" = 1 ] && echo "; smaller sizes and shorter runs than the full benchmark: a smoke test, not numbers to quote"))"
        echo "- run: ${RUN_DATE:-$(date -u '+%Y-%m-%d %H:%M UTC')}, took ${elapsed} s; mvrefresh commit ${GIT_REV:-unknown}"
        echo "- machine: $(nproc) CPU ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo) RAM, $(uname -sr)"
        echo "- PostgreSQL $PG_VERSION, throwaway cluster: fsync = off, synchronous_commit = off (scenario 1 also with both on), shared_buffers = 512MB, Unix socket"
        echo "- mvrefreshd $("$BENCH_DAEMON" -V 2>&1 | head -n 1 | awk '{print $NF}') built Release ($BENCH_DAEMON)"
        echo "- reproduce: \`bench/run$( [ "$QUICK" = 1 ] && echo " --quick")\`"
        echo
        local t
        for t in s1 s2 s3 s4 s5; do
            [ -f "$RAW/${t}_table.md" ] || continue
            cat "$RAW/${t}_table.md"
            echo
            for png in "$RESULTS/${t}"_*.png; do
                [ -f "$png" ] && printf '![%s](%s)\n\n' "$(basename "$png" .png)" "$(basename "$png")"
            done
        done
    } >"$RESULTS/results.md"
    report_summary
}

# ---- summary ----------------------------------------------------------------------------
# One row per claim, mvrefresh next to what it is compared with; medians as in results.md.
report_summary() {
    local out=$RESULTS/summary.md
    {
        echo "Measured by \`bench/run$( [ "$QUICK" = 1 ] && echo " --quick")\` (reproduce with the same command) on $(nproc) cores with PostgreSQL ${PG_VERSION%% *}, mvrefresh ${GIT_REV:-unknown}, $MODE mode, $RUNS run(s) per point; every table is in bench/results/results.md."
        echo
        echo "| | mvrefresh | compared with |"
        echo "| --- | --- | --- |"
        [ -f "$RAW/s1_plot.tsv" ] && summary_s1
        [ -f "$RAW/s2_table.md" ] && summary_s2
        [ -f "$RAW/s3_plot.tsv" ] && summary_s3
        [ -f "$RAW/s4.tsv" ] && summary_s4
        [ -f "$RAW/s5_table.md" ] && summary_s5
        echo
        if [ -f "$RESULTS/s3_staleness.png" ]; then
            echo "<!-- bench/results/ is not committed: copy the plot next to the README to use it -->"
            echo "![Staleness of each change at 50 commits/s: mvrefresh vs cron-style refresh](s3_staleness.png)"
        fi
    } >"$out"
}

summary_s1() {
    local fsync script label
    for fsync in off on; do
        for script in insert update; do
            label=$([ "$script" = insert ] && echo "single-row INSERT" || echo "UPDATE by primary key")
            awk -F'\t' -v key="fsync $fsync/$script/" -v label="$label" -v fs="$fsync" \
                'NR > 1 && index($1, key) == 1 {c = substr($1, length(key) + 1)
                     cl = cl (cl ? " / " : "") c
                     q = q (q ? " / " : "") sprintf("%.0f %%", $2 * 100)
                     n = n (n ? " / " : "") sprintf("%.0f %%", $4 * 100)}
                 END {if (cl != "") printf "| write TPS on a watched table, fsync %s, %s, %s clients, view refreshed every second | quiet triggers: %s of the TPS without a trigger | per-statement NOTIFY (previous release): %s |\n", fs, label, cl, q, n}' \
                "$RAW/s1_plot.tsv"
        done
    done
}

summary_s2() {
    awk -F'\t' -v k="$MAXV" 'NR > 1 && $2 == k && ($1 == "mvrefreshd-big" || $1 == "drain-big") {
            n[$1] = n[$1] " " $3; w[$1] = w[$1] " " $4; c[$1] = c[$1] " " $5 }
        function med(s,   a, m, i, j, t) { m = split(s, a, " ")
            for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
        END {
            d = "mvrefreshd-big"; b = "drain-big"
            printf "| listener: a queued flood of %s notifications for %d watched tables | %.2f M/s; %.2f µs of daemon CPU each | bare libpq + libev drain loop: %.2f M/s; %.2f µs |\n",
                (med(n[d]) >= 1e6 ? sprintf("%gM", med(n[d]) / 1e6) : sprintf("%gk", med(n[d]) / 1000)), k, med(n[d]) / med(w[d]) / 1e6, med(c[d]) / med(n[d]) * 1e6,
                med(n[b]) / med(w[b]) / 1e6, med(c[b]) / med(n[b]) * 1e6 }' "$RAW/flood.tsv"
}

summary_s3() {
    awk -F'\t' 'NR > 1 {p50[$1] = $2; p99[$1] = $3; order[++n] = $1}
        function h(x) { return x < 1 ? sprintf("%.0f ms", x * 1000) : sprintf("%.1f s", x) }
        END {
            m = "mvrefresh, debounce 100ms"; other = ""
            for (i = 1; i <= n; i++) if (order[i] ~ /^cron/) {
                s = order[i]; sub(/^cron-style, /, "cron ", s)
                other = other (other ? "; " : "") s ": " h(p50[order[i]]) " / " h(p99[order[i]]) }
            printf "| staleness (commit → visible) at a steady 50 commits/s, p50 / p99 | debounce 100 ms: %s / %s | %s |\n",
                h(p50[m]), h(p99[m]), other }' "$RAW/s3_plot.tsv"
    if [ -f "$RAW/s3_isolated.tsv" ]; then
        awk -F'\t' 'NR > 1 {print $5}' "$RAW/s3_isolated.tsv" | sort -g |
            awk '{v[NR] = $1} END {k = int(0.99 * NR + 0.999999); if (k < 1) k = 1
                a = sprintf("%.1f", v[int((NR + 1) / 2)]); if (a == "-0.0") a = "0.0"
                printf "| overhead beyond debounce + refresh time, isolated changes | p50 %s ms, p99 %.1f ms (%d changes) | target: p99 ≤ 5 ms |\n", a, v[k], NR }'
    fi
}

summary_s4() {
    awk -F'\t' -v runs="$RUNS" -v T="$S4_SECONDS" 'NR > 1 {r[$1] += $2; cs[$1] += $9; c[$1] += $6; due[$1] += $7; if ($8 > lag[$1]) lag[$1] = $8}
        function h(x) { return x < 1 ? sprintf("%.0f ms", x * 1000) : sprintf("%.1f s", x) }
        function one(s,   k) { k = r[s] / runs; return sprintf(k < 10 ? "%.1f refreshes, %s" : "%.0f refreshes, %s", k, h(cs[s] / c[s])) }
        END {
            other = ""
            for (s in r) if (s ~ /^cron_/) { p = s; sub(/^cron_/, "", p); cr[p + 0] = s }
            for (p = 1; p <= 3600; p++) if (p in cr) other = other sprintf("cron %d s: %s; ", p, one(cr[p]))
            other = other sprintf("after every commit: %s, and the writer up to %s behind", one("every"), h(lag["every"]))
            printf "| %d s bursty trace of %d commits: refreshes, mean staleness of a change | defaults (1 s / 30 s): %s; 200 ms / 5 s: %s | %s |\n",
                T, due["mvr_default"] / runs, one("mvr_default"), one("mvr_tuned"), other }' "$RAW/s4.tsv"
}

summary_s5() {
    awk -F'\t' 'NR > 1 && $1 > max {max = $1; line = $0} END {split(line, f, "\t")
        printf "| %d watched views: memory and start-up | RSS %.1f MB; registry load %d ms (logged %.0f ms after exec); catch-up refresh of every view done in %.1f s; a change made meanwhile refreshed after %d ms, %d views still to catch up | target: RSS ≤ 16 MB, registry load ≤ 200 ms at 10,000 views; a change never waits behind catch-up |\n",
            f[1], f[4] / 1024, f[6], f[2] * 1000, f[3], f[7], f[8] }' "$RAW/start.tsv"
    sort -n "$RAW/s5_plot.tsv" | awk -F'\t' '{v[$1] = v[$1] " " $2; if (!($1 in seen)) {seen[$1] = 1; k[++n] = $1}}
        function med(s,   a, m, i, j, t) { m = split(s, a, " ")
            for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
        END { for (i = 1; i <= n; i++) { a = a (a ? " → " : "") sprintf("%.2f", med(v[k[i]])); b = b (b ? " → " : "") k[i] }
            printf "| daemon CPU per notification as watched views grow (%s) | %s µs | should stay flat |\n", b, a }'
}

# ---- plots ------------------------------------------------------------------------------
report_plots() {
    command -v gnuplot >/dev/null || { bench_log "no gnuplot: skipping plots"; return 0; }
    [ -f "$RAW/s1_plot.tsv" ] && plot_s1
    [ -f "$RAW/flood.tsv" ] && [ -f "$RAW/s2_table.md" ] && plot_s2
    [ -f "$RAW/s3_plot.tsv" ] && plot_s3
    [ -f "$RAW/s4.tsv" ] && plot_s4
    [ -f "$RAW/s5_plot.tsv" ] && plot_s5
    return 0
}

plot_s1() {
    local plots="" col title colour
    awk -F'\t' 'NR > 1 {split($1, a, "/"); sub(/^fsync /, "", a[1])
        printf "\"%s %s\\n%s cl., fsync %s\"\t%s\t%s\t%s\n", (a[2] == "insert") ? "INSERT" : "UPDATE", "", a[3], a[1],
               $2 * 100, $3 * 100, $4 * 100}' "$RAW/s1_plot.tsv" >"$RAW/s1_gp.tsv"
    # Only the variants measured (BENCH_S1_VARIANTS may leave some out): gnuplot refuses a
    # histogram column without a single number.
    for col in "2|quiet triggers + mvrefreshd|#1f77b4" "3|advisory-lock probe|#ff7f0e" \
               "4|NOTIFY per statement|#7f7f7f"; do
        IFS='|' read -r col title colour <<<"$col"
        awk -F'\t' -v c="$col" '$c != "nan" && $c != "" {found = 1} END {exit !found}' \
            "$RAW/s1_gp.tsv" || continue
        plots="$plots'$RAW/s1_gp.tsv' using $col:xtic(1) title '$title' lc rgb '$colour', "
    done
    gnuplot <<GP
$GP_TERM
set output '$RESULTS/s1_write.png'
set title "1. Write TPS on a watched table, % of the same table without a trigger (view refreshed every second)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set ylabel '% of the TPS without a trigger'
set yrange [0:120]
set grid ytics
set key top right
set xtics font ',9'
set bmargin 4.5
plot $plots 95 with lines dt 2 lc rgb '#2ca02c' title '95 %'
GP
}

plot_s2() {
    local k=${MAXV:-0}
    awk -F'\t' -v k="$k" 'NR > 1 && $2 == k {n[$1] = n[$1] " " $3; w[$1] = w[$1] " " $4; c[$1] = c[$1] " " $5}
        function med(s,   a, m, i, j, t) { m = split(s, a, " ")
            for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
            return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
        END {
            printf "\"wall clock\\n%d payloads/txn\"\t%f\t%f\n", k, med(n["mvrefreshd-big"]) / med(w["mvrefreshd-big"]) / 1e6, med(n["drain-big"]) / med(w["drain-big"]) / 1e6
            printf "\"wall clock\\n1 payload/txn\"\t%f\t%f\n", med(n["mvrefreshd-small"]) / med(w["mvrefreshd-small"]) / 1e6, med(n["drain-small"]) / med(w["drain-small"]) / 1e6
            printf "\"per CPU-second\\n%d payloads/txn\"\t%f\t%f\n", k, med(n["mvrefreshd-big"]) / med(c["mvrefreshd-big"]) / 1e6, med(n["drain-big"]) / med(c["drain-big"]) / 1e6
            printf "\"per CPU-second\\n1 payload/txn\"\t%f\t%f\n", med(n["mvrefreshd-small"]) / med(c["mvrefreshd-small"]) / 1e6, med(n["drain-small"]) / med(c["drain-small"]) / 1e6
        }' "$RAW/flood.tsv" >"$RAW/s2_gp.tsv"
    gnuplot <<GP
$GP_TERM
set output '$RESULTS/s2_listener.png'
set title "2. Listener: millions of notifications drained per wall-clock second and per second of the listener's CPU"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set ylabel 'million notifications per second'
set yrange [0:*]
set grid ytics
set key top left
set bmargin 4.5
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb '#d62728'
set label 'target: 1 M/s' at graph 0.01, first 1 offset 0,0.6 tc rgb '#d62728'
plot '$RAW/s2_gp.tsv' using 2:xtic(1) title 'mvrefreshd' lc rgb '#1f77b4', \
     '' using 3 title 'bare drain loop (drain.c)' lc rgb '#7f7f7f'
GP
}

plot_s3() {
    local strat f n plots="" i=0 colors=('#1f77b4' '#2ca02c' '#9467bd' '#ff7f0e' '#d62728') label
    for strat in mvr_1ms mvr_100ms mvr_1s $(for s in $S3_CRONS; do echo "cron_$s"; done); do
        f=$RAW/s3_cdf_$strat.tsv
        cat "$RAW"/s3_steady_"${strat}"_r*.txt.samples 2>/dev/null | sort -g >"$f.tmp"
        n=$(wc -l <"$f.tmp")
        [ "$n" -gt 0 ] || continue
        awk -v n="$n" '{printf "%.6f\t%.6f\n", $1 * 1000, NR / n}' "$f.tmp" >"$f"
        rm -f "$f.tmp"
        case $strat in
            mvr_*) label="mvrefresh, debounce ${strat#mvr_}" ;;
            cron_*) label="cron-style, every ${strat#cron_} s" ;;
        esac
        plots+="${plots:+, }'$f' using 1:2 with lines lw 2.5 lc rgb '${colors[$i]}' title '$label'"
        i=$((i + 1))
    done
    gnuplot <<GP
$GP_TERM
set output '$RESULTS/s3_staleness.png'
set title "3. Staleness of each change at 50 commits/s: time from commit until the view shows it"
set logscale x
set xlabel 'staleness (ms, log scale)'
set ylabel 'share of changes'
set format x '%g'
set yrange [0:1.02]
set grid xtics ytics mxtics
set key top left
plot $plots
GP
}

plot_s4() {
    local name lane=0 plots="" labels="" w0 f colors=('#1f77b4' '#2ca02c' '#ff7f0e' '#8c564b' '#d62728' '#9467bd') i=0
    w0=$(awk '$1 == "w" {print $2; exit}' "$RAW/s4_mvr_default_r1.txt")
    # commits per 0.5 s from the trace
    awk '{b = int($1 * 2); c[b]++; if (b > m) m = b} END {for (i = 0; i <= m; i++) printf "%.2f\t%d\n", i / 2 + 0.25, c[i] * 2}' \
        "$RAW/s4_trace.txt" >"$RAW/s4_rate.tsv"
    for name in $(s4_strategies); do
        f=$RAW/s4_${name}_r1.txt
        awk -v w0="$w0" -v y="$lane" '$1 == "w" {w1 = $3} $1 == "r" && $2 >= w0 && $2 < w1 {printf "%.4f\t%s\t%.4f\n", $2 - w0, y, $3 - $2}' \
            "$f" >"$RAW/s4_lane_$name.tsv"
        labels+="${labels:+, }\"$(s4_label "$name" | sed 's/ (debounce.*)//; s/cron-style, //; s/mvrefresh, debounce /mvrefresh /; s/max_wait //; s/mvrefresh, defaults/mvrefresh defaults/')\" $lane"
        lane=$((lane + 1)); i=$((i + 1))
    done
    # each refresh a filled bar from its start to its end (at least 1/300 of the axis wide)
    local minw
    minw=$(awk -v t="$S4_SECONDS" 'BEGIN {print t / 300}')
    lane=0; i=0
    for name in $(s4_strategies); do
        plots+="${plots:+, }'$RAW/s4_lane_$name.tsv' using (\$1 + (\$3 < $minw ? $minw / 2 : \$3 / 2)):2:(\$3 < $minw ? $minw / 2 : \$3 / 2):(0.32) with boxxyerrorbars fs solid 0.9 noborder lc rgb '${colors[$i]}' notitle"
        lane=$((lane + 1)); i=$((i + 1))
    done
    gnuplot <<GP
$GP_TERM
set terminal pngcairo size 960,620 font 'DejaVu Sans,11' noenhanced
set output '$RESULTS/s4_timeline.png'
set multiplot layout 2,1 title "4. The bursty trace (run 1) and when each strategy refreshed"
set lmargin 30
set rmargin 3
set size 1,0.32
set origin 0,0.62
set ylabel 'commits/s'
set xrange [0:$S4_SECONDS]
set yrange [0:*]
set format x ''
set grid xtics
set style fill solid 0.6 noborder
plot '$RAW/s4_rate.tsv' using 1:2:(0.5) with boxes lc rgb '#555555' notitle
set size 1,0.62
set origin 0,0
set format x '%g'
set xlabel 'seconds into the trace (each bar is one refresh, from its start to its end)'
set ylabel ''
set yrange [-0.6:$lane - 0.4]
set ytics ($labels)
set grid xtics
plot $plots
unset multiplot
GP
}

plot_s5() {
    sort -n "$RAW/s5_plot.tsv" | awk -F'\t' '{s[$1] += $2; n[$1]++} END {for (k in s) printf "%s\t%f\n", k, s[k] / n[k]}' |
        sort -n >"$RAW/s5_gp.tsv"
    [ "$(wc -l <"$RAW/s5_gp.tsv")" -ge 2 ] || return 0 # one size: nothing to draw
    awk -F'\t' 'NR > 1 {print $1 "\t" $4 / 1024}' "$RAW/start.tsv" | sort -n >"$RAW/s5_rss.tsv"
    # the bare drain loop's CPU per notification, as a floor
    local floor
    floor=$(awk -F'\t' '$1 == "drain-big" {print $5 / $3 * 1e6}' "$RAW/flood.tsv" | median)
    local floor_plot=""
    [ "$floor" = nan ] ||
        floor_plot=", $floor with lines dt 3 lw 2 lc rgb '#7f7f7f' title 'bare drain loop, CPU per notification'"
    gnuplot <<GP
$GP_TERM
set output '$RESULTS/s5_scale.png'
set title "5. Scale: daemon CPU per notification and memory as watched views grow"
set logscale x
set xlabel 'watched views (one table each)'
set ylabel 'CPU per notification (µs)'
set y2label 'RSS after start (MB)'
set yrange [0:*]
set y2range [0:20]
set ytics nomirror
set y2tics
set grid xtics ytics
set key bottom right
set arrow from graph 0, second 16 to graph 1, second 16 nohead dt 2 lc rgb '#d62728'
set label 'RSS target 16 MB (10,000 views)' at graph 0.55, second 16 offset 0,0.6 tc rgb '#d62728'
plot '$RAW/s5_gp.tsv' using 1:2 with linespoints lw 2 pt 7 lc rgb '#1f77b4' title 'mvrefreshd CPU per notification', \
     '$RAW/s5_rss.tsv' using 1:2 axes x1y2 with linespoints lw 2 pt 5 lc rgb '#ff7f0e' title 'RSS'$floor_plot
GP
}
