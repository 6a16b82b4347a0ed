/*
 * A connection attempt on its own thread (src/dial.h), against fake servers made here: local
 * listening sockets that answer nothing, or hang up after a while. No PostgreSQL needed: what
 * is checked is the attempt's timing and its hand-over to the loop, not the protocol.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "dial.h"

/* A TCP socket listening on 127.0.0.1, on a port of the kernel's choice. */
static int listen_local(int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

struct outcome {
    bool called;
    bool made;
    double at;
    char error[1024];
};

static void on_dialled(void *arg, PGconn *pg, const char *error)
{
    struct outcome *o = arg;

    o->called = true;
    o->made = pg != NULL;
    o->at = mvr_clock_now();
    snprintf(o->error, sizeof o->error, "%s", error != NULL ? error : "");
    PQfinish(pg);
}

/* A server that takes the connection and, `later`, lets it in as a read-only session: with
 * target_session_attrs=read-write libpq then moves on to the next host. (The messages: auth
 * ok, the parameters libpq judges a session by, key data, ready for a query.) */
struct read_only_server {
    ev_io accept_io;
    ev_timer later;
    int client;
};

static size_t put_message(char *at, char type, const char *body, size_t len)
{
    uint32_t n = htonl((uint32_t)(len + 4));

    at[0] = type;
    memcpy(at + 1, &n, 4);
    memcpy(at + 5, body, len);
    return 5 + len;
}

static void let_in_read_only(struct ev_loop *loop, ev_timer *w, int revents)
{
    static const char params[][48] = {"server_version\0"
                                      "15.0",
                                      "in_hot_standby\0"
                                      "on",
                                      "default_transaction_read_only\0"
                                      "on"};
    static const char zeros[8] = {0};
    const struct read_only_server *srv = w->data;
    char out[256];
    size_t n = put_message(out, 'R', zeros, 4);

    (void)loop;
    (void)revents;
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        size_t name = strlen(params[i]) + 1;
        n += put_message(out + n, 'S', params[i], name + strlen(params[i] + name) + 1);
    }
    n += put_message(out + n, 'K', zeros, 8);
    n += put_message(out + n, 'Z', "I", 1);
    assert_int_equal(write(srv->client, out, n), (ssize_t)n);
}

static void take_client(struct ev_loop *loop, ev_io *w, int revents)
{
    struct read_only_server *srv = w->data;

    (void)revents;
    srv->client = accept(w->fd, NULL, NULL);
    ev_io_stop(loop, w);
    ev_timer_start(loop, &srv->later);
}

static struct mvr_dial *dial(struct ev_loop *loop, const char *conninfo, double timeout,
                             struct outcome *o)
{
    const char *const keys[] = {"dbname", NULL};
    const char *const values[] = {conninfo, NULL};
    char err[256];
    struct mvr_dial *d =
        mvr_dial_start(loop, keys, values, timeout, on_dialled, o, err, sizeof err);

    assert_non_null(d);
    return d;
}

static void run_until_called(struct ev_loop *loop, const struct outcome *o, double limit)
{
    double end = mvr_clock_now() + limit;

    while (!o->called && mvr_clock_now() < end)
        ev_run(loop, EVRUN_ONCE);
}

/* libpq moves on to the second host when the first turns out read-only (0.6 s in); the
 * second, which never answers, gets the whole timeout (1 s) of its own, though its socket most
 * often has the number the first one's had. */
static void test_each_host_gets_its_own_timeout(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct read_only_server h = {.client = -1};
    struct outcome o = {0};
    char conninfo[256];
    int first_port, second_port;
    int first = listen_local(&first_port), second = listen_local(&second_port);
    double start;

    (void)state;
    ev_io_init(&h.accept_io, take_client, first, EV_READ);
    h.accept_io.data = &h;
    ev_timer_init(&h.later, let_in_read_only, 0.6, 0.0);
    h.later.data = &h;
    ev_io_start(loop, &h.accept_io);
    snprintf(conninfo, sizeof conninfo,
             "host=127.0.0.1,127.0.0.1 port=%d,%d dbname=x user=x sslmode=disable "
             "gssencmode=disable target_session_attrs=read-write",
             first_port, second_port);
    start = mvr_clock_now();
    dial(loop, conninfo, 1.0, &o);
    run_until_called(loop, &o, 10.0);
    assert_true(o.called);
    assert_false(o.made);
    if (strstr(o.error, "timeout expired while connecting") == NULL)
        fail_msg("after %.1f s: %s", o.at - start, o.error);
    assert_true(o.at - start >= 1.5); /* 0.6 s on the first, 1 s on the second */
    close(h.client);
    close(first);
    close(second);
    ev_loop_destroy(loop);
}

/* Given up while it waits: no callback, ever, and the thread lets go of its connection at
 * once (the server sees it closed). */
static void test_an_abandoned_attempt_lets_go_at_once(void **state)
{
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    struct outcome o = {0};
    char conninfo[256], byte[64];
    int port, server = listen_local(&port), client;
    struct mvr_dial *d;
    struct pollfd p;

    (void)state;
    snprintf(conninfo, sizeof conninfo,
             "host=127.0.0.1 port=%d dbname=x user=x sslmode=disable gssencmode=disable", port);
    d = dial(loop, conninfo, 30.0, &o);
    client = accept(server, NULL, NULL); /* blocks until the thread has connected */
    assert_true(client >= 0);
    mvr_dial_abandon(d);
    p = (struct pollfd){.fd = client, .events = POLLIN};
    /* The startup packet, then the end of the stream: well within the 30 s timeout. */
    for (ssize_t n = 1; n > 0;) {
        assert_int_equal(poll(&p, 1, 5000), 1);
        n = read(client, byte, sizeof byte);
    }
    for (int i = 0; i < 10; i++)
        ev_run(loop, EVRUN_NOWAIT);
    assert_false(o.called);
    close(client);
    close(server);
    ev_loop_destroy(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_host_gets_its_own_timeout),
        cmocka_unit_test(test_an_abandoned_attempt_lets_go_at_once),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
