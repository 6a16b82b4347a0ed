#include "httpd.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "container.h"
#include "listen.h"

#ifndef MVR_HAVE_METRICS

int mvr_httpd_start(struct mvr_httpd *h, struct ev_loop *loop, const struct mvr_log *log,
                    const char *listen, const struct mvr_httpd_hooks *hooks, void *owner, char *err,
                    size_t errlen)
{
    (void)loop, (void)log, (void)hooks, (void)owner;
    memset(h, 0, sizeof *h);
    snprintf(err, errlen, "cannot serve metrics on %s: built without libmicrohttpd", listen);
    return -1;
}

void mvr_httpd_stop(struct mvr_httpd *h)
{
    (void)h;
}

#else

#include <microhttpd.h>

/* A scraper sends one short request and reads one response: 10 s of silence is a client gone
 * or hostile, and 16 at once is more than any number of Prometheus servers. */
#define CONNECTION_TIMEOUT_S 10u
#define CONNECTION_LIMIT 16u
#define BACKLOG 16

static const char not_found[] = "Not found: the metrics are at /metrics\n";
static const char not_allowed[] = "Only GET and HEAD are allowed\n";
static const char no_memory[] = "Out of memory\n";

/* ---- the socket ---- */

/* Bound here rather than by libmicrohttpd, so that a failure names its reason (errno). */
static int bind_socket(const struct mvr_listen_addr *addr, char *err, size_t errlen)
{
    int one = 1, fd, family = addr->ss.ss_family;
    char where[64];

    mvr_listen_format(addr, where, sizeof where);
    fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
        (family != AF_INET6 || setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) == 0) &&
        bind(fd, (const struct sockaddr *)&addr->ss, addr->len) == 0 && listen(fd, BACKLOG) == 0)
        return fd;
    snprintf(err, errlen, "metrics_listen: cannot listen on %s: %s", where, strerror(errno));
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Where it listens, as the kernel says (port 0 becomes the port chosen). */
static void describe(int fd, char *buf, size_t size)
{
    struct mvr_listen_addr bound;

    bound.len = sizeof bound.ss;
    if (getsockname(fd, (struct sockaddr *)&bound.ss, &bound.len) == 0)
        mvr_listen_format(&bound, buf, size);
    else
        snprintf(buf, size, "?");
}

/* ---- requests ---- */

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, struct MHD_Response *r,
                               const char *type)
{
    enum MHD_Result rc;

    if (r == NULL)
        return MHD_NO; /* out of memory: libmicrohttpd closes the connection */
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r); /* the queued response holds its own reference */
    return rc;
}

static enum MHD_Result respond_static(struct MHD_Connection *conn, unsigned status,
                                      const char *text, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)(uintptr_t)text, MHD_RESPMEM_PERSISTENT);

    return respond(conn, status, r, "text/plain; charset=utf-8");
}

static enum MHD_Result serve_metrics(struct mvr_httpd *h, struct MHD_Connection *conn)
{
    size_t len = 0;
    char *body = h->hooks->metrics(h->owner, &len);
    struct MHD_Response *r;

    if (body == NULL)
        return respond_static(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, no_memory,
                              sizeof no_memory - 1);
    /* MUST_FREE: libmicrohttpd free()s the body once it has been sent. */
    r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL)
        free(body);
    return respond(conn, MHD_HTTP_OK, r, "text/plain; version=0.0.4; charset=utf-8");
}

/* Answered at the first call, from the headers alone: no request has a body we want. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct mvr_httpd *h = cls;

    (void)version, (void)upload_data, (void)upload_data_size, (void)con_cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return respond_static(conn, MHD_HTTP_METHOD_NOT_ALLOWED, not_allowed,
                              sizeof not_allowed - 1);
    if (strcmp(url, "/metrics") != 0)
        return respond_static(conn, MHD_HTTP_NOT_FOUND, not_found, sizeof not_found - 1);
    return serve_metrics(h, conn);
}

/* libmicrohttpd's own messages: about clients (limits, bad requests), so debug only, or a
 * hostile client could fill the log. */
static void on_log(void *cls, const char *fmt, va_list ap)
{
    struct mvr_httpd *h = cls;
    char line[256];
    size_t n;

    vsnprintf(line, sizeof line, fmt, ap);
    n = strlen(line);
    while (n > 0 && line[n - 1] == '\n')
        line[--n] = '\0';
    mvr_debug(h->log, "metrics server: %s", line);
}

/* ---- the loop ---- */

static unsigned connections(struct mvr_httpd *h)
{
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);

    return info != NULL ? info->num_connections : 0;
}

/* After every run: wake up again no later than libmicrohttpd asks (0 while it has buffered
 * work; its earliest connection timeout otherwise), and never when it has nothing to do.
 * At its connection limit libmicrohttpd takes the listening socket out of its epoll set, and
 * puts it back only at the start of a run: a run that closed connections there is followed
 * by another at once, or nothing (its epoll set quiet, no timeout) would ever bring it back. */
static void run(struct mvr_httpd *h)
{
    MHD_UNSIGNED_LONG_LONG ms;
    unsigned before = connections(h);

    MHD_run(h->mhd);
    if (before >= CONNECTION_LIMIT && connections(h) < before)
        MHD_run(h->mhd);
    ev_timer_stop(h->loop, &h->timer);
    if (MHD_get_timeout(h->mhd, &ms) == MHD_YES) {
        ev_timer_set(&h->timer, (double)ms / 1000.0, 0.0);
        ev_timer_start(h->loop, &h->timer);
    }
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop, (void)revents;
    run(MVR_CONTAINER_OF(w, struct mvr_httpd, io));
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop, (void)revents;
    run(MVR_CONTAINER_OF(w, struct mvr_httpd, timer));
}

/* External-loop epoll mode: no thread; libmicrohttpd's descriptors sit in one epoll set of
 * its own, which the loop watches. */
static struct MHD_Daemon *start_mhd(struct mvr_httpd *h, int fd)
{
    return MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, h,
                            MHD_OPTION_EXTERNAL_LOGGER, on_log, h, MHD_OPTION_LISTEN_SOCKET, fd,
                            MHD_OPTION_CONNECTION_TIMEOUT, CONNECTION_TIMEOUT_S,
                            MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT, MHD_OPTION_END);
}

int mvr_httpd_start(struct mvr_httpd *h, struct ev_loop *loop, const struct mvr_log *log,
                    const char *listen, const struct mvr_httpd_hooks *hooks, void *owner, char *err,
                    size_t errlen)
{
    struct mvr_listen_addr addr;
    const union MHD_DaemonInfo *info;
    char why[256];
    int fd;

    memset(h, 0, sizeof *h);
    h->loop = loop, h->log = log, h->hooks = hooks, h->owner = owner;
    if (mvr_listen_parse(listen, &addr, why, sizeof why) != 0) {
        snprintf(err, errlen, "metrics_listen: %s", why);
        return -1;
    }
    if ((fd = bind_socket(&addr, err, errlen)) < 0)
        return -1;
    describe(fd, h->where, sizeof h->where);
    h->mhd = start_mhd(h, fd);
    info = h->mhd ? MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (info == NULL) {
        /* Whether a failed start closed the socket is not documented, so it is left alone:
         * the daemon exits at once. */
        snprintf(err, errlen, "metrics_listen: cannot serve on %s: libmicrohttpd refused to start",
                 h->where);
        mvr_httpd_stop(h);
        return -1;
    }
    ev_io_init(&h->io, io_cb, info->epoll_fd, EV_READ);
    ev_io_start(loop, &h->io);
    ev_init(&h->timer, timer_cb);
    run(h); /* arms the timer if libmicrohttpd wants one */
    mvr_info(log, "serving metrics on http://%s/metrics", h->where);
    return 0;
}

void mvr_httpd_stop(struct mvr_httpd *h)
{
    if (h->mhd == NULL)
        return;
    ev_io_stop(h->loop, &h->io);
    ev_timer_stop(h->loop, &h->timer);
    MHD_stop_daemon(h->mhd);
    h->mhd = NULL;
}

#endif
