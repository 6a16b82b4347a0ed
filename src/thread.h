/*
 * Helper threads. The daemon is one event loop, and nothing on it may wait; but a few libpq
 * calls wait for the network or the resolver with no time limit the caller can set (a cancel
 * request, a connection's host name lookup). Each of those runs on a detached thread of its
 * own, which may wait as long as it must while the loop goes on.
 */
#ifndef MVR_THREAD_H
#define MVR_THREAD_H

/* Run fn(arg) on a detached thread that takes no signal: the daemon's signals are the loop's
 * (ev_signal), and one delivered to a helper thread once the loop has stopped watching (at
 * exit) would take the default action instead. Returns 0, or an errno value (fn never runs). */
int mvr_thread_detach(void *(*fn)(void *), void *arg);

#endif
