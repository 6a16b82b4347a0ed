/* mvrefreshd: command line, configuration, exit codes. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "conninfo.h"
#include "daemon.h"

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
            "  -t, --check         check the configuration and the dsn's syntax, print the\n"
            "                      settings in effect and exit (0: fine); connects nowhere\n"
            "  -V, --version       print the version and exit\n"
            "  -h, --help          print this help and exit\n"
            "\n"
            "Signals: SIGHUP reloads FILE and the registry; SIGTERM or SIGINT stop after\n"
            "running refreshes finish (cancelled after shutdown_timeout).\n");
}

/* Returns -1 to continue, or an exit status. */
static int parse_args(int argc, char **argv, struct mvr_daemon_options *opts, bool *check)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"dsn", required_argument, NULL, 'd'},
        {"verbose", no_argument, NULL, 'v'},      {"quiet", no_argument, NULL, 'q'},
        {"check", no_argument, NULL, 't'},        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    int ch;

    while ((ch = getopt_long(argc, argv, "c:d:vqtVh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            if (optarg[0] == '\0') {
                fprintf(stderr, "mvrefreshd: --config: the path is empty\n");
                return EXIT_USAGE;
            }
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
        case 't':
            *check = true;
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

/* As libpq does for ~/.pgpass: a password in a file that others may read is no secret. Only a
 * warning, printed before anything else is checked: the daemon still starts, the file is the
 * operator's to fix. */
static void warn_if_exposed(const char *path, const struct mvr_config *cfg)
{
    struct stat st;
    bool password = mvr_conninfo_holds_password(cfg->dsn);

    for (size_t i = 0; i < cfg->ndbs; i++)
        password =
            password || (cfg->dbs[i].own_dsn && mvr_conninfo_holds_password(cfg->dbs[i].cfg.dsn));
    if (path == NULL || !password || stat(path, &st) != 0 || (st.st_mode & 077) == 0)
        return;
    fprintf(stderr,
            "mvrefreshd: WARNING: configuration file \"%s\" holds a password and has group or "
            "other access (mode %04o); it should be readable by its owner only: chmod 600 %s\n",
            path, (unsigned)(st.st_mode & 07777), path);
}

int main(int argc, char **argv)
{
    struct mvr_daemon_options opts = {0};
    struct mvr_config cfg;
    char err[1024];
    bool check = false;
    enum mvr_conninfo_fault fault;
    int status = parse_args(argc, argv, &opts, &check);

    if (status >= 0)
        return status;
    if (mvr_config_load(&cfg, opts.config_path, err, sizeof err) != 0) {
        fprintf(stderr, "mvrefreshd: %s\n", err);
        return EXIT_CONFIG;
    }
    /* The file's own dsn, before --dsn replaces it: the file holds the password either way. */
    warn_if_exposed(opts.config_path, &cfg);
    if (mvr_daemon_override(&opts, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "mvrefreshd: %s\n", err);
        mvr_config_free(&cfg);
        return EXIT_USAGE;
    }
    /* A dsn that cannot connect is refused at start (and at reload: daemon.c). */
    fault = mvr_conninfo_check(&cfg, opts.dsn != NULL, opts.config_path, err, sizeof err);
    if (fault != MVR_CONNINFO_OK) {
        fprintf(stderr, "mvrefreshd: %s\n", err);
        mvr_config_free(&cfg);
        return fault == MVR_CONNINFO_FLAG ? EXIT_USAGE : EXIT_CONFIG;
    }
    if (check) {
        mvr_config_print(&cfg, stdout);
        mvr_config_free(&cfg);
        return EXIT_SUCCESS;
    }
    return mvr_daemon_run(&opts, &cfg);
}
