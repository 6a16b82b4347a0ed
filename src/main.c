/* mvrefreshd: command line, configuration, exit codes. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "daemon.h"
#include "redact.h"

#include <libpq-fe.h>

/* Exit codes from sysexits(3), as PostgreSQL tools' users expect. */
#define EXIT_USAGE 64
#define EXIT_CONFIG 78

static void usage(FILE *out)
{
    fprintf(out,
            "mvrefreshd refreshes PostgreSQL materialized views when their tables change.\n"
            "\n"
            "Usage: mvrefreshd [OPTION]...\n"
            "\n"
            "  -c, --config=FILE   read settings from FILE (INI, section [mvrefreshd])\n"
            "  -d, --dsn=CONNINFO  libpq connection string or URI (overrides the file's dsn;\n"
            "                      PGHOST, PGDATABASE and the other PG* variables also apply)\n"
            "  -v, --verbose       log debug messages\n"
            "  -q, --quiet         log warnings and errors only\n"
            "  -V, --version       print the version and exit\n"
            "  -h, --help          print this help and exit\n"
            "\n"
            "Signals: SIGHUP reloads FILE and the registry; SIGTERM or SIGINT stop after\n"
            "running refreshes finish (cancelled after shutdown_timeout).\n");
}

/* Returns -1 to continue, or an exit status. */
static int parse_args(int argc, char **argv, struct mvr_daemon_options *opts)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"dsn", required_argument, NULL, 'd'},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    while ((ch = getopt_long(argc, argv, "c:d:vqVh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            opts->config_path = optarg;
            break;
        case 'd':
            opts->dsn = optarg;
            break;
        case 'v':
            opts->verbosity = 1;
            break;
        case 'q':
            opts->verbosity = -1;
            break;
        case 'V':
            printf("mvrefreshd %s\n", MVR_VERSION);
            return EXIT_SUCCESS;
        case 'h':
            usage(stdout);
            return EXIT_SUCCESS;
        default:
            fprintf(stderr, "Try \"mvrefreshd --help\" for more information.\n");
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "mvrefreshd: unexpected argument \"%s\"\n", argv[optind]);
        fprintf(stderr, "Try \"mvrefreshd --help\" for more information.\n");
        return EXIT_USAGE;
    }
    return -1;
}

/* A malformed DSN can never connect: say so once, at start, without echoing it (libpq's
 * message may quote it, password included). */
static int check_dsn(const char *dsn)
{
    char *err = NULL, msg[1024];
    PQconninfoOption *opts;

    /* libpq's rule for expand_dbname: anything else is a plain database name. */
    if (strchr(dsn, '=') == NULL && strncmp(dsn, "postgresql://", 13) != 0 &&
        strncmp(dsn, "postgres://", 11) != 0)
        return 0;
    opts = PQconninfoParse(dsn, &err);
    if (opts != NULL) {
        PQconninfoFree(opts);
        return 0;
    }
    mvr_redact(err ? err : "out of memory", msg, sizeof msg);
    fprintf(stderr, "mvrefreshd: invalid dsn: %s", msg);
    PQfreemem(err);
    return -1;
}

int main(int argc, char **argv)
{
    struct mvr_daemon_options opts = {0};
    struct mvr_config cfg;
    char err[1024];
    int status = parse_args(argc, argv, &opts);

    if (status >= 0)
        return status;
    if (mvr_config_load(&cfg, opts.config_path, err, sizeof err) != 0) {
        fprintf(stderr, "mvrefreshd: %s\n", err);
        return EXIT_CONFIG;
    }
    if (mvr_daemon_override(&opts, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "mvrefreshd: %s\n", err);
        mvr_config_free(&cfg);
        return EXIT_USAGE;
    }
    if (check_dsn(cfg.dsn) != 0) {
        mvr_config_free(&cfg);
        return opts.dsn != NULL ? EXIT_USAGE : EXIT_CONFIG;
    }
    return mvr_daemon_run(&opts, &cfg);
}
