/* drain: the least a listener can do. LISTEN mvrefresh, then read and free every
 * notification (PQconsumeInput + PQnotifies + PQfreemem) on a libev loop; nothing else.
 * The throughput baseline next to mvrefreshd (bench scenario 2). On SIGTERM/SIGINT it
 * prints how many notifications it read.   usage: drain CONNINFO */
#include <ev.h>
#include <libpq-fe.h>
#include <stdio.h>

static PGconn *pg;
static unsigned long long seen;

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    PGnotify *n;

    (void)revents;
    if (!PQconsumeInput(pg)) {
        fprintf(stderr, "drain: %s", PQerrorMessage(pg));
        ev_io_stop(loop, w);
        ev_break(loop, EVBREAK_ALL);
        return;
    }
    while ((n = PQnotifies(pg)) != NULL) {
        seen++;
        PQfreemem(n);
    }
}

static void on_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

int main(int argc, char **argv)
{
    struct ev_loop *loop = ev_default_loop(0);
    ev_io io;
    ev_signal term, intr;
    PGresult *r;

    pg = PQconnectdb(argc > 1 ? argv[1] : "");
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "drain: %s", PQerrorMessage(pg));
        return 1;
    }
    r = PQexec(pg, "LISTEN mvrefresh");
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "drain: LISTEN: %s", PQerrorMessage(pg));
        return 1;
    }
    PQclear(r);
    PQsetnonblocking(pg, 1);
    ev_io_init(&io, on_read, PQsocket(pg), EV_READ);
    ev_io_start(loop, &io);
    ev_signal_init(&term, on_stop, SIGTERM);
    ev_signal_init(&intr, on_stop, SIGINT);
    ev_signal_start(loop, &term);
    ev_signal_start(loop, &intr);
    printf("listening\n");
    fflush(stdout);
    ev_run(loop, 0);
    printf("drain: %llu notifications\n", seen);
    PQfinish(pg);
    return 0;
}
