/*
 * What systemd hears from mvrefreshd (Type=notify): the test plays systemd's part, binding the
 * datagram socket that $NOTIFY_SOCKET names and reading what the daemon sends. READY must wait
 * for the registry, a SIGHUP must say RELOADING then READY, SIGTERM STOPPING, the STATUS line
 * must count the views, and with $WATCHDOG_USEC set the pings must keep coming.
 */
#include "pgtest.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum { DEADLINE_MS = 10000 };

struct fake_systemd {
    int fd;
    char log[16384]; /* every datagram so far, each followed by "|" */
    size_t len;
};

static void listen_as_systemd(pgt_ctx *t, struct fake_systemd *s, const char *watchdog_usec)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    char path[PATH_MAX + 32];

    pgt_path(t, "notify.sock", path, sizeof path);
    assert_true(strlen(path) < sizeof addr.sun_path);
    strcpy(addr.sun_path, path);
    s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(s->fd >= 0);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&addr, sizeof addr), 0);
    s->len = 0;
    s->log[0] = '\0';
    /* The daemon inherits these; the test's own process never reads them. */
    setenv("NOTIFY_SOCKET", path, 1);
    if (watchdog_usec != NULL)
        setenv("WATCHDOG_USEC", watchdog_usec, 1);
}

static void forget_systemd(struct fake_systemd *s)
{
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    close(s->fd);
}

/* Read datagrams until the log holds `needle` `count` times, or fail at the deadline. */
static void expect(pgt_ctx *t, struct fake_systemd *s, const char *needle, int count)
{
    int64_t deadline = pgt_now_ms() + pgt_scaled(DEADLINE_MS);

    for (;;) {
        int seen = 0;
        for (const char *p = s->log; (p = strstr(p, needle)) != NULL; p++)
            seen++;
        if (seen >= count)
            return;
        struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
        int64_t left = deadline - pgt_now_ms();
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
            fprintf(stderr, "pgtest: %s: wanted %d x \"%s\"; systemd heard: %s\n", t->name, count,
                    needle, s->log);
            fail();
        }
        ssize_t n = recv(s->fd, s->log + s->len, sizeof s->log - s->len - 2, 0);
        assert_true(n >= 0);
        s->len += (size_t)n;
        s->log[s->len++] = '|';
        s->log[s->len] = '\0';
    }
}

static void watch_one(pgt_ctx *t)
{
    pgt_exec(t, "CREATE TABLE t (id int PRIMARY KEY)");
    pgt_exec(t, "CREATE MATERIALIZED VIEW mv AS SELECT id FROM t");
    pgt_exec(t, "CREATE UNIQUE INDEX ON mv (id)");
    pgt_exec(t, "SELECT mvrefresh.watch('mv', '50 ms', '1 s')");
}

/* READY only once the registry is loaded, with a status that counts the view; a SIGHUP says
 * RELOADING then READY again; SIGTERM says STOPPING. */
PGT_TEST(test_ready_reload_stop)
{
    struct fake_systemd s;

    watch_one(t);
    listen_as_systemd(t, &s, NULL);
    pgt_daemon_start(t, NULL);
    expect(t, &s, "READY=1", 1);
    assert_non_null(strstr(s.log, "STATUS=1 view: "));
    /* (The first TAKE's recheck loads again, unchanged, at DEBUG: perhaps already.) */
    assert_int_equal(pgt_log_count_lines(t, " INFO ", "registry loaded"), 1);
    pgt_daemon_signal(t, SIGHUP);
    expect(t, &s, "RELOADING=1", 1);
    expect(t, &s, "READY=1", 2);
    assert_true(strstr(s.log, "RELOADING=1") < strstr(strstr(s.log, "READY=1") + 1, "READY=1"));
    pgt_daemon_signal(t, SIGTERM);
    expect(t, &s, "STOPPING=1", 1);
    assert_int_equal(pgt_daemon_stop(t, 0, DEADLINE_MS), 0);
    forget_systemd(&s);
}

/* Not ready while the database cannot be reached: systemd must not think it is working. */
PGT_TEST(test_not_ready_without_the_database)
{
    struct fake_systemd s;
    char dsn[512];

    listen_as_systemd(t, &s, "200000");
    snprintf(dsn, sizeof dsn, "%s port=1", t->dsn);
    pgt_daemon_start_dsn(t, NULL, dsn);
    expect(t, &s, "WATCHDOG=1", 2); /* alive (the loop turns), but never READY */
    /* Past the first status tick too, which once took a failed connection for READY. */
    expect(t, &s, "STATUS=connecting", 1);
    assert_null(strstr(s.log, "READY=1"));
    assert_int_equal(pgt_daemon_stop(t, SIGTERM, DEADLINE_MS), 0);
    forget_systemd(&s);
}

/* With WatchdogSec set, pings come at about half the interval, and STATUS follows the views:
 * a change shows up as pending before the refresh. */
PGT_TEST(test_watchdog_and_status)
{
    struct fake_systemd s;

    watch_one(t);
    pgt_exec(t, "UPDATE mvrefresh.view SET debounce = '20 s', max_wait = '30 s'");
    listen_as_systemd(t, &s, "400000");
    pgt_daemon_start(t, NULL);
    expect(t, &s, "READY=1", 1);
    expect(t, &s, "WATCHDOG=1", 4);
    pgt_wait_refreshes(t, "mv", 1, DEADLINE_MS); /* the start-up refresh of the new view */
    expect(t, &s, "STATUS=1 view: 0 pending, 0 refreshing, 0 failing", 1);
    s.len = 0; /* from here on, only what comes after the write */
    s.log[0] = '\0';
    pgt_exec(t, "INSERT INTO t VALUES (1)");
    expect(t, &s, "STATUS=1 view: 1 pending, 0 refreshing", 1);
    assert_int_equal(pgt_daemon_stop(t, SIGTERM, DEADLINE_MS), 0);
    forget_systemd(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        PGT_UNIT(test_ready_reload_stop),
        PGT_UNIT(test_not_ready_without_the_database),
        PGT_UNIT(test_watchdog_and_status),
    };

    if (getenv("PGT_FILTER") != NULL)
        cmocka_set_test_filter(getenv("PGT_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
