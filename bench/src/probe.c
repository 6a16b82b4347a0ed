/* probe: commit changes on a schedule and measure when a materialized view shows each one
 * (bench scenarios 3 and 4).
 *
 *   probe --table T --view V (--rate R --duration S | --trace FILE | --isolated N) [options]
 *
 * One writer connection inserts rows (age 30, so the view "WHERE age >= 25" shows them) into
 * T, one per scheduled instant; ids come from a serial, so with a single writer "the view
 * shows change i" is "max(id) in V >= id_i". A poll connection asks exactly that every
 * --poll-ms. Optionally the probe itself refreshes V, as the baselines do:
 *   --cron P        REFRESH ... CONCURRENTLY every P seconds (ticks at start + k*P + phase),
 *                   on a third connection, asynchronously so writes and polls go on;
 *   --every-commit  the writer refreshes right after each commit, before its next write.
 * Otherwise mvrefreshd is expected to do it.
 *
 * --isolated N writes N changes one at a time: write, wait until visible, wait until
 * mvrefresh.refresh_state shows the refresh that covered it has finished, pause
 * --gap-ms, repeat. Used to split staleness into debounce + refresh + overhead.
 *
 * Output on stdout, times are epoch seconds (CLOCK_REALTIME, comparable with the server's
 * clock_timestamp()):
 *   c ID SCHEDULED COMMITTED VISIBLE     one per change (VISIBLE -1: not seen before the end)
 *   r START END                          one per refresh the probe ran itself
 *   i COMMITTED VISIBLE LAST_START LAST_FINISH   one per --isolated sample
 *   w START END                          the schedule (or --window) start and end
 *   n COUNT                              changes scheduled
 *
 * Without --window the probe stops once every change is visible, or --tail seconds after
 * the last write. With --window S it stops at start + S, whatever is left: writes still
 * due are not made (a writer that refreshes after every commit falls behind), changes not
 * yet visible are reported with VISIBLE -1.
 */
#define _POSIX_C_SOURCE 200809L
#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct change {
    long long id;
    double sched, commit, visible;
};

struct opts {
    const char *conninfo, *table, *view, *trace;
    double rate, duration, start_at, cron, cron_phase, poll, tail, window, gap_min, gap_max;
    int every_commit, isolated;
};

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_until(double t)
{
    double d = t - now();
    struct timespec ts;

    if (d <= 0)
        return;
    ts.tv_sec = (time_t)d;
    ts.tv_nsec = (long)((d - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
}

static void die(const char *what, PGconn *pg)
{
    fprintf(stderr, "probe: %s: %s\n", what, pg ? PQerrorMessage(pg) : "");
    exit(1);
}

static PGconn *connect_db(const char *conninfo)
{
    PGconn *pg = PQconnectdb(conninfo);

    if (PQstatus(pg) != CONNECTION_OK)
        die("connect", pg);
    return pg;
}

/* Run a query that returns one value; returns it as a double (NAN for NULL). */
static double query_num(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);
    double v;

    if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
        die(sql, pg);
    v = PQntuples(r) > 0 && !PQgetisnull(r, 0, 0) ? atof(PQgetvalue(r, 0, 0)) : NAN;
    PQclear(r);
    return v;
}

static void exec_ok(PGconn *pg, const char *sql)
{
    PGresult *r = PQexec(pg, sql);

    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        die(sql, pg);
    PQclear(r);
}

/* Schedule: offsets in seconds from the start. */
static double *load_schedule(const struct opts *o, size_t *n)
{
    size_t cap = 1024, k = 0;
    double *at = malloc(cap * sizeof *at), x;
    FILE *f;

    if (at == NULL)
        die("out of memory", NULL);
    if (o->trace == NULL) {
        size_t total = (size_t)llround(o->rate * o->duration);
        free(at);
        if ((at = malloc((total ? total : 1) * sizeof *at)) == NULL)
            die("out of memory", NULL);
        for (k = 0; k < total; k++)
            at[k] = (double)k / o->rate;
        *n = total;
        return at;
    }
    if ((f = fopen(o->trace, "r")) == NULL)
        die("cannot open the trace", NULL);
    while (fscanf(f, "%lf", &x) == 1) {
        if (k == cap && (at = realloc(at, (cap *= 2) * sizeof *at)) == NULL)
            die("out of memory", NULL);
        at[k++] = x;
    }
    fclose(f);
    *n = k;
    return at;
}

struct probe {
    const struct opts *o;
    PGconn *writer, *poller, *cron;
    char insert_sql[512], poll_sql[512], refresh_sql[512], state_sql[512];
    struct change *ch;
    size_t n, written, seen;
    int cron_busy;
    double cron_started, next_tick;
};

static void build_sql(struct probe *p)
{
    char *t = PQescapeIdentifier(p->writer, p->o->table, strlen(p->o->table));
    char *v = PQescapeIdentifier(p->writer, p->o->view, strlen(p->o->view));
    char *lit = PQescapeLiteral(p->writer, p->o->view, strlen(p->o->view));

    if (t == NULL || v == NULL || lit == NULL)
        die("escape", p->writer);
    snprintf(p->insert_sql, sizeof p->insert_sql,
             "INSERT INTO %s (name, age, phone_num) VALUES ('probe', 30, '5550000') RETURNING id",
             t);
    snprintf(p->poll_sql, sizeof p->poll_sql, "SELECT coalesce(max(id), 0) FROM %s", v);
    snprintf(p->refresh_sql, sizeof p->refresh_sql, "REFRESH MATERIALIZED VIEW CONCURRENTLY %s", v);
    snprintf(p->state_sql, sizeof p->state_sql,
             "SELECT refreshing, extract(epoch FROM last_start), extract(epoch FROM last_finish)"
             " FROM mvrefresh.refresh_state WHERE view = %s::regclass",
             lit);
    PQfreemem(t);
    PQfreemem(v);
    PQfreemem(lit);
}

static void refresh_now(struct probe *p)
{
    double t0 = now();

    exec_ok(p->writer, p->refresh_sql);
    printf("r %.6f %.6f\n", t0, now());
}

static void write_one(struct probe *p, double sched)
{
    struct change *c = &p->ch[p->written++];

    c->sched = sched;
    c->id = (long long)query_num(p->writer, p->insert_sql);
    c->commit = now();
    c->visible = -1;
    if (p->o->every_commit)
        refresh_now(p);
}

/* Every change whose id the view shows is visible since this poll was sent. */
static void poll_view(struct probe *p)
{
    double sent = now();
    long long top = (long long)query_num(p->poller, p->poll_sql);

    while (p->seen < p->written && p->ch[p->seen].id <= top)
        p->ch[p->seen++].visible = sent;
}

static void cron_step(struct probe *p, double t)
{
    if (p->cron_busy) {
        PGresult *r;
        if (!PQconsumeInput(p->cron))
            die("cron refresh", p->cron);
        while (!PQisBusy(p->cron)) {
            if ((r = PQgetResult(p->cron)) == NULL) {
                printf("r %.6f %.6f\n", p->cron_started, now());
                p->cron_busy = 0;
                break;
            }
            if (PQresultStatus(r) != PGRES_COMMAND_OK)
                die("cron refresh", p->cron);
            PQclear(r);
        }
    }
    if (!p->cron_busy && t >= p->next_tick) {
        if (!PQsendQuery(p->cron, p->refresh_sql))
            die("cron refresh", p->cron);
        p->cron_busy = 1;
        p->cron_started = now();
        /* A tick missed because the last refresh ran long is not made up: cron skips it. */
        while (p->next_tick <= t)
            p->next_tick += p->o->cron;
    }
}

static void run_schedule(struct probe *p, const double *at, double start)
{
    double next_poll = start, end_writes = start + (p->n ? at[p->n - 1] : 0), deadline = 0;

    p->next_tick = start + (p->o->cron_phase > 0 ? p->o->cron_phase : p->o->cron);
    printf("w %.6f %.6f\nn %zu\n", start, p->o->window > 0 ? start + p->o->window : end_writes,
           p->n);
    for (;;) {
        double t = now(), wake;
        if (p->written < p->n && t >= start + at[p->written])
            write_one(p, start + at[p->written]);
        if (p->cron != NULL)
            cron_step(p, t);
        if (t >= next_poll) {
            poll_view(p);
            next_poll = t + p->o->poll;
        }
        if (p->o->window > 0 && t >= start + p->o->window)
            break;
        if (p->written == p->n && p->o->window <= 0) {
            if (deadline == 0)
                deadline = now() + p->o->tail;
            if (p->seen == p->n || now() > deadline)
                break;
        }
        wake = next_poll;
        if (p->written < p->n && start + at[p->written] < wake)
            wake = start + at[p->written];
        if (p->cron != NULL && !p->cron_busy && p->next_tick < wake)
            wake = p->next_tick;
        if (p->cron_busy && wake > now() + 0.0005)
            wake = now() + 0.0005;
        sleep_until(wake);
    }
    if (p->cron_busy) {
        while (PQisBusy(p->cron) && PQconsumeInput(p->cron))
            sleep_until(now() + 0.001);
        cron_step(p, 0);
    }
    for (size_t k = 0; k < p->written; k++)
        printf("c %lld %.6f %.6f %.6f\n", p->ch[k].id, p->ch[k].sched, p->ch[k].commit,
               p->ch[k].visible);
}

/* Wait until the refresh that made change c visible has been recorded as finished. */
static void wait_recorded(struct probe *p, double commit, double *start, double *finish)
{
    double give_up = now() + 60;

    while (now() < give_up) {
        PGresult *r = PQexec(p->poller, p->state_sql);
        int done;
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
            die("refresh_state", p->poller);
        *start = atof(PQgetvalue(r, 0, 1));
        *finish = atof(PQgetvalue(r, 0, 2));
        done = PQgetvalue(r, 0, 0)[0] == 'f' && *finish >= commit;
        PQclear(r);
        if (done)
            return;
        sleep_until(now() + 0.001);
    }
    die("no refresh was recorded within 60 s", NULL);
}

static void run_isolated(struct probe *p)
{
    for (int k = 0; k < p->o->isolated; k++) {
        double give_up, start, finish;
        struct change *c;
        write_one(p, now());
        c = &p->ch[p->written - 1];
        give_up = now() + 60;
        while (c->visible < 0 && now() < give_up) {
            poll_view(p);
            if (c->visible < 0)
                sleep_until(now() + p->o->poll);
        }
        if (c->visible < 0)
            die("a change did not show up within 60 s", NULL);
        wait_recorded(p, c->commit, &start, &finish);
        printf("i %.6f %.6f %.6f %.6f\n", c->commit, c->visible, start, finish);
        fflush(stdout);
        sleep_until(now() + (p->o->gap_min +
                             (p->o->gap_max - p->o->gap_min) * ((double)rand() / RAND_MAX)) /
                                1000.0);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: probe --table T --view V (--rate R --duration S | --trace FILE | "
                    "--isolated N) [--start-at EPOCH] [--cron P [--cron-phase S]] "
                    "[--every-commit] [--poll-ms MS] [--tail S | --window S] [--gap-ms MIN:MAX] "
                    "[--conninfo STR]\n");
    exit(64);
}

static void parse(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.conninfo = "", .poll = 0.002, .tail = 5, .gap_min = 30, .gap_max = 80};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--every-commit") == 0) {
            o->every_commit = 1;
            continue;
        }
        if (v == NULL)
            usage();
        i++;
        if (strcmp(a, "--conninfo") == 0)
            o->conninfo = v;
        else if (strcmp(a, "--table") == 0)
            o->table = v;
        else if (strcmp(a, "--view") == 0)
            o->view = v;
        else if (strcmp(a, "--trace") == 0)
            o->trace = v;
        else if (strcmp(a, "--rate") == 0)
            o->rate = atof(v);
        else if (strcmp(a, "--duration") == 0)
            o->duration = atof(v);
        else if (strcmp(a, "--start-at") == 0)
            o->start_at = atof(v);
        else if (strcmp(a, "--cron") == 0)
            o->cron = atof(v);
        else if (strcmp(a, "--cron-phase") == 0)
            o->cron_phase = atof(v);
        else if (strcmp(a, "--poll-ms") == 0)
            o->poll = atof(v) / 1000.0;
        else if (strcmp(a, "--tail") == 0)
            o->tail = atof(v);
        else if (strcmp(a, "--window") == 0)
            o->window = atof(v);
        else if (strcmp(a, "--isolated") == 0)
            o->isolated = atoi(v);
        else if (strcmp(a, "--gap-ms") == 0 && sscanf(v, "%lf:%lf", &o->gap_min, &o->gap_max) == 2)
            ;
        else
            usage();
    }
    if (o->table == NULL || o->view == NULL ||
        (o->isolated <= 0 && o->trace == NULL && (o->rate <= 0 || o->duration <= 0)))
        usage();
}

int main(int argc, char **argv)
{
    struct opts o;
    struct probe p = {0};
    double *at = NULL;

    parse(argc, argv, &o);
    p.o = &o;
    p.writer = connect_db(o.conninfo);
    p.poller = connect_db(o.conninfo);
    build_sql(&p);
    if (o.isolated > 0) {
        p.n = (size_t)o.isolated;
    } else {
        at = load_schedule(&o, &p.n);
        if (o.cron > 0) {
            p.cron = connect_db(o.conninfo);
            PQsetnonblocking(p.cron, 1);
        }
    }
    if ((p.ch = calloc(p.n ? p.n : 1, sizeof *p.ch)) == NULL)
        die("out of memory", NULL);
    srand(42); /* the same pauses between isolated changes in every run */
    if (o.isolated > 0) {
        run_isolated(&p);
    } else {
        sleep_until(o.start_at);
        run_schedule(&p, at, o.start_at > 0 ? o.start_at : now());
    }
    PQfinish(p.writer);
    PQfinish(p.poller);
    if (p.cron != NULL)
        PQfinish(p.cron);
    free(p.ch);
    free(at);
    return 0;
}
