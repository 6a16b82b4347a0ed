/* resume: time how fast a stopped listener drains the notification queue (scenario 2).
 *
 *   resume PID [CONNINFO]
 *
 * The listener (mvrefreshd or drain) was stopped with SIGSTOP while a flood was queued. We
 * send SIGCONT and wait until (a) the listener is asleep (not 'R' in /proc/PID/stat) and
 * (b) pg_notification_queue_usage() is 0, twice in a row with no CPU used in between: the
 * server has handed over everything and the listener has read everything. Prints
 *   wall_s cpu_s
 * where cpu_s is the listener's on-CPU time over the drain (/proc/PID/schedstat, ns
 * resolution; utime+stime from /proc/PID/stat is only 10 ms resolution). */
#define _POSIX_C_SOURCE 200809L
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap(long usec)
{
    struct timespec ts = {0, usec * 1000};

    nanosleep(&ts, NULL);
}

/* On-CPU nanoseconds of the process's (single) thread. */
static long long cpu_ns(pid_t pid)
{
    char path[64];
    long long ns = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
    if ((f = fopen(path, "r")) != NULL) {
        if (fscanf(f, "%lld", &ns) != 1)
            ns = -1;
        fclose(f);
    }
    return ns;
}

/* The state letter from /proc/PID/stat (after the parenthesised command name). */
static char state_of(pid_t pid)
{
    char path[64], buf[512], *p;
    size_t n;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return '?';
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    return p && p[1] == ' ' ? p[2] : '?';
}

static int queue_empty(PGconn *pg)
{
    PGresult *r = PQexec(pg, "SELECT pg_notification_queue_usage() = 0");
    int empty = PQresultStatus(r) == PGRES_TUPLES_OK && PQgetvalue(r, 0, 0)[0] == 't';

    PQclear(r);
    return empty;
}

int main(int argc, char **argv)
{
    pid_t pid;
    PGconn *pg;
    long long cpu0, cpu_seen = -1;
    double t0, t_done = 0, deadline;
    int calm = 0;

    if (argc < 2) {
        fprintf(stderr, "usage: resume PID [CONNINFO]\n");
        return 64;
    }
    pid = (pid_t)atoi(argv[1]);
    pg = PQconnectdb(argc > 2 ? argv[2] : "");
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "resume: %s", PQerrorMessage(pg));
        return 1;
    }
    cpu0 = cpu_ns(pid);
    t0 = now();
    if (cpu0 < 0 || kill(pid, SIGCONT) != 0) {
        fprintf(stderr, "resume: no process %d\n", (int)pid);
        return 1;
    }
    deadline = t0 + 600;
    while (now() < deadline) {
        nap(100);
        if (state_of(pid) == 'R') {
            calm = 0;
            continue;
        }
        /* Asleep: is that because it is done, or waiting for the server? */
        double t = now();
        long long cpu = cpu_ns(pid);
        if (calm > 0 && cpu == cpu_seen && queue_empty(pg)) {
            printf("%.6f %.6f\n", t_done - t0, (double)(cpu_seen - cpu0) / 1e9);
            PQfinish(pg);
            return 0;
        }
        if (calm == 0 || cpu != cpu_seen) {
            if (!queue_empty(pg)) {
                calm = 0;
                continue;
            }
            t_done = t;
            cpu_seen = cpu;
            calm = 1;
        }
        nap(500); /* give a late flush from the server time to arrive */
    }
    fprintf(stderr, "resume: the queue did not drain within 600 s\n");
    return 1;
}
