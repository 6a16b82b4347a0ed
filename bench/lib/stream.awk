# Summarise one probe stream (scenarios 3 and 4). Input: the probe's output, plus "r START
# END" lines for refreshes the daemon ran (taken from its log). Times are epoch seconds.
#
# With -v windowed=1 everything is counted inside the window [w start, w end]: refreshes
# that started in it, stale time up to its end (a change not visible by then is stale
# until the end). Otherwise the stream ran until every change was visible, and the window
# ends when the last change became visible.
#
# Prints one line of name=value pairs:
#   changes   changes committed;  scheduled  changes the schedule asked for
#   invisible changes never seen in the view (before the end)
#   refreshes, refresh_s   refreshes and their total duration
#   stale_s   time the view was stale: some committed change not yet visible
#   never_s   stale time had nothing refreshed it: from the first commit to the end
#   change_s  the sum over committed changes of their staleness (change-seconds); a change
#             not visible by the end counts until the end
#   change_never_s  the same sum had nothing refreshed the view
#   lag_max   worst delay of a commit behind its schedule (s)
# and writes every visible change's staleness (visible - commit, seconds) to file `samples`.
$1 == "w" { w0 = $2; w1 = $3 }
$1 == "n" { scheduled = $2 }
$1 == "r" { nr++; rs[nr] = $2; re[nr] = $3 }
$1 == "c" {
    n++; commit[n] = $4; vis[n] = $5
    lag = $4 - $3; if (lag > lag_max) lag_max = lag
}
END {
    end = w1
    for (i = 1; i <= n; i++) {
        if (vis[i] >= 0) {
            print vis[i] - commit[i] > samples
            if (vis[i] > last_vis) last_vis = vis[i]
        } else invisible++
    }
    if (!windowed && last_vis > end) end = last_vis
    # Refreshes that started while this stream ran (the daemon's log also has other runs').
    for (i = 1; i <= nr; i++)
        if (rs[i] >= w0 && rs[i] < end) { refreshes++; refresh_s += re[i] - rs[i] }
    # Stale intervals [commit, visible) are nested in commit order (the view shows a prefix
    # of the ids), so one pass merges them.
    cur_s = -1; cur_e = -1
    for (i = 1; i <= n; i++) {
        s = commit[i]; e = (vis[i] >= 0) ? vis[i] : end
        if (e > end) e = end
        if (s >= end) continue
        if (s > cur_e) { if (cur_e > cur_s) stale += cur_e - cur_s; cur_s = s; cur_e = e }
        else if (e > cur_e) cur_e = e
    }
    if (cur_e > cur_s) stale += cur_e - cur_s
    never = (n > 0 && commit[1] < end) ? end - commit[1] : 0
    for (i = 1; i <= n; i++) {
        if (commit[i] >= end) continue
        e = (vis[i] >= 0 && vis[i] < end) ? vis[i] : end
        change_s += e - commit[i]; change_never += end - commit[i]
    }
    printf "changes=%d scheduled=%d invisible=%d refreshes=%d refresh_s=%.6f stale_s=%.6f never_s=%.6f change_s=%.6f change_never_s=%.6f lag_max=%.6f\n",
        n, scheduled, invisible, refreshes, refresh_s, stale, never, change_s, change_never, lag_max
}
