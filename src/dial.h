/*
 * A libpq connection attempt, made on a thread of its own. libpq's non-blocking connect is
 * not quite: PQconnectStartParams() and PQconnectPoll() look each host name up with
 * getaddrinfo(), which waits for the resolver (seconds per name and per try; as long as its
 * timeouts allow when a nameserver never answers), and they read the service and password
 * files. On the loop, every database the daemon serves, its lease renewals and its watchdog
 * would wait for that. The thread waits instead, and hands the loop the connection once it is
 * made, or why it failed; from there the loop drives it as any other. What libpq does while
 * connecting stays libpq's: several hosts, every address of a name, target_session_attrs,
 * services, TLS.
 */
#ifndef MVR_DIAL_H
#define MVR_DIAL_H

#include <ev.h>
#include <libpq-fe.h>
#include <stddef.h>

struct mvr_dial;

/* Runs on the loop, once: pg is the connection (CONNECTION_OK, blocking as libpq made it,
 * now the callee's), or NULL and error says why (valid during the call). */
typedef void (*mvr_dial_fn)(void *arg, PGconn *pg, const char *error);

/* Start connecting with libpq's keywords and values (PQconnectStartParams with
 * expand_dbname; both copied, at most 16 pairs). The attempt fails once one socket has waited
 * timeout seconds without libpq moving on (libpq heeds connect_timeout only in its blocking
 * calls). Returns NULL, with err set, when no attempt could start (fn never runs). */
struct mvr_dial *mvr_dial_start(struct ev_loop *loop, const char *const *keys,
                                const char *const *values, double timeout, mvr_dial_fn fn,
                                void *arg, char *err, size_t errlen);
/* Give the attempt up, on the loop: fn will not run. The thread stops waiting on the network
 * at once (inside a name lookup, as soon as that ends) and closes what it made. */
void mvr_dial_abandon(struct mvr_dial *d);

#endif
