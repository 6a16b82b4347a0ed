# shellcheck shell=bash
# Shared helpers for bench/run: logging, background processes and their cleanup, the daemon,
# psql, and small statistics. Sourced by bench/run; defines functions only.

bench_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
bench_die() { bench_log "error: $*"; exit 1; }

# Wall-clock seconds with microseconds (the same clock as the server's clock_timestamp()).
now_s() { date +%s.%6N; }

q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }
qf() { psql -X -q -v ON_ERROR_STOP=1 "$@" >/dev/null; }

# ---- background processes -------------------------------------------------------------
# Every process we start in the background is registered, so the EXIT trap can stop it
# however the run ends (error, ^C, kill). Stopped (SIGSTOP) processes get SIGCONT too,
# since a stopped process does not act on SIGTERM.
BENCH_PIDS=()

bench_track() { BENCH_PIDS+=("$1"); }

bench_untrack() {
    local keep=() p
    for p in "${BENCH_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    BENCH_PIDS=("${keep[@]}")
}

# Stop one process we started: TERM (+CONT), wait up to 10 s, then KILL.
bench_stop_pid() {
    local pid=$1 _
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; bench_untrack "$pid"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    kill -CONT "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    bench_untrack "$pid"
}

bench_stop_all() {
    local p
    for p in "${BENCH_PIDS[@]}"; do bench_stop_pid "$p"; done
    BENCH_PIDS=()
}

# ---- the daemon -----------------------------------------------------------------------
# daemon_start DB LOG [extra args...]: start mvrefreshd on database DB, logging to LOG;
# sets DAEMON_PID and DAEMON_T0 (start time, epoch seconds).
DAEMON_PID=""
DAEMON_T0=""
daemon_start() {
    local db=$1 log=$2; shift 2
    # shellcheck disable=SC2034 # read by the scenarios
    DAEMON_T0=$(now_s)
    "$BENCH_DAEMON" --dsn "dbname=$db" "$@" 2>"$log" &
    DAEMON_PID=$!
    bench_track "$DAEMON_PID"
}

daemon_stop() {
    [ -n "$DAEMON_PID" ] && bench_stop_pid "$DAEMON_PID"
    DAEMON_PID=""
}

# wait_for TIMEOUT_S COMMAND...: poll COMMAND every 20 ms until it succeeds.
wait_for() {
    local timeout=$1; shift
    local deadline
    deadline=$(( $(date +%s%N) + ${timeout%.*} * 1000000000 ))
    until "$@"; do
        [ "$(date +%s%N)" -lt "$deadline" ] || return 1
        if [ -n "$DAEMON_PID" ] && ! kill -0 "$DAEMON_PID" 2>/dev/null; then
            bench_log "the daemon exited"
            return 1
        fi
        sleep 0.02
    done
}

log_count() { grep -c -- "$2" "$1" 2>/dev/null || true; }
log_has_n() { [ "$(log_count "$1" "$2")" -ge "$3" ]; }

# Seconds since the epoch of a daemon log line's "YYYY-MM-DD HH:MM:SS.mmm UTC" stamp.
log_stamp_s() { date -u -d "$(cut -c1-23 <<<"$1")" +%s.%3N; }

# ---- /proc ------------------------------------------------------------------------------
proc_cpu_ns() { awk '{print $1}' "/proc/$1/schedstat"; }
proc_rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
proc_hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

# ---- statistics -------------------------------------------------------------------------
# median of the numbers on stdin (one per line)
median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) {print "nan"; exit}
    if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

# percentile P (0-100, nearest rank) of the numbers on stdin
percentile() { sort -g | awk -v p="$1" '{v[NR]=$1} END {if (NR==0) {print "nan"; exit}
    k=int(p/100*NR+0.999999); if (k<1) k=1; if (k>NR) k=NR; print v[k]}'; }

# fmt FORMAT NUMBER: printf via awk (handles "nan")
fmt() { awk -v f="$1" -v x="$2" 'BEGIN {if (x=="nan"||x=="") print "n/a"; else printf f"\n", x}'; }
