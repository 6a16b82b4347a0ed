/* mvrefreshd: command line, configuration, exit codes. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "daemon.h"
#include "dsn.h"

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

/* libpq decides which words are its keywords: one is, if "word=" parses. dsn.c only asks
 * about words of [a-z0-9_], which cannot turn "word=" into anything but one keyword. */
static bool libpq_knows(const char *word)
{
    char conninfo[80];
    PQconninfoOption *opts;
    bool known;

    if ((size_t)snprintf(conninfo, sizeof conninfo, "%s=", word) >= sizeof conninfo)
        return false;
    opts = PQconninfoParse(conninfo, NULL);
    known = opts != NULL;
    PQconninfoFree(opts);
    return known;
}

static const char *option_value(const PQconninfoOption *opts, const char *keyword)
{
    for (; opts->keyword != NULL; opts++)
        if (strcmp(opts->keyword, keyword) == 0)
            return opts->val;
    return NULL;
}

/* Say where the dsn came from: --dsn, or the file and the line of its dsn key (cfg is a
 * section's when the dsn is a [database.NAME]'s). */
static void report_malformed(const struct mvr_daemon_options *opts, const struct mvr_config *cfg,
                             bool section, const char *msg)
{
    if (opts->dsn != NULL && !section)
        fprintf(stderr, "mvrefreshd: --dsn: malformed dsn: %s\n", msg);
    else if (cfg->dsn_line > 0)
        fprintf(stderr, "mvrefreshd: %s:%d: malformed dsn: %s\n", opts->config_path, cfg->dsn_line,
                msg);
    else
        fprintf(stderr, "mvrefreshd: %s: malformed dsn: %s\n", opts->config_path, msg);
}

/* A dsn that cannot connect is refused once, at start. libpq's parse error is never shown: it
 * quotes the text it choked on, which in a malformed DSN is often part of the password. dsn.c
 * says what and where instead; libpq still decides whether the dsn is valid. */
static int check_one_dsn(const struct mvr_daemon_options *opts, const struct mvr_config *cfg,
                         bool section)
{
    const char *dsn = cfg->dsn;
    PQconninfoOption *parsed;
    char *err = NULL, msg[512];

    if (!mvr_dsn_is_conninfo(dsn))
        return 0; /* libpq takes it for a database name */
    parsed = PQconninfoParse(dsn, &err);
    if (parsed == NULL && err == NULL) {
        fprintf(stderr, "mvrefreshd: out of memory\n");
        return -1;
    }
    if (parsed == NULL) {
        PQfreemem(err);
        mvr_dsn_describe(dsn, libpq_knows, msg, sizeof msg);
    } else {
        int rc = mvr_dsn_check(dsn, option_value(parsed, "port"), msg, sizeof msg);
        PQconninfoFree(parsed);
        if (rc == 0)
            return 0;
    }
    report_malformed(opts, cfg, section, msg);
    return -1;
}

/* [mvrefreshd]'s dsn (or --dsn), then each section's own: 0, or the exit status. */
static int check_dsn(const struct mvr_daemon_options *opts, const struct mvr_config *cfg)
{
    if (check_one_dsn(opts, cfg, false) != 0)
        return opts->dsn != NULL ? EXIT_USAGE : EXIT_CONFIG;
    for (size_t i = 0; i < cfg->ndbs; i++)
        if (cfg->dbs[i].own_dsn && check_one_dsn(opts, &cfg->dbs[i].cfg, true) != 0)
            return EXIT_CONFIG;
    return 0;
}

/* libpq's reading, or dsn.c's lenient one: that also finds a password libpq cannot read. */
static bool holds_password(const char *dsn)
{
    PQconninfoOption *parsed;
    const char *password;
    bool found = false;

    if (!mvr_dsn_is_conninfo(dsn))
        return false;
    parsed = PQconninfoParse(dsn, NULL);
    if (parsed != NULL) {
        password = option_value(parsed, "password");
        found = password != NULL && password[0] != '\0';
        PQconninfoFree(parsed);
    }
    return found || mvr_dsn_has_password(dsn);
}

/* As libpq does for ~/.pgpass: a password in a file that others may read is no secret. Only a
 * warning, printed before anything else is checked: the daemon still starts, the file is the
 * operator's to fix. */
static void warn_if_exposed(const char *path, const struct mvr_config *cfg)
{
    struct stat st;
    bool password = holds_password(cfg->dsn);

    for (size_t i = 0; i < cfg->ndbs; i++)
        password = password || (cfg->dbs[i].own_dsn && holds_password(cfg->dbs[i].cfg.dsn));
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
    if ((status = check_dsn(&opts, &cfg)) != 0) {
        mvr_config_free(&cfg);
        return status;
    }
    if (check) {
        mvr_config_print(&cfg, stdout);
        mvr_config_free(&cfg);
        return EXIT_SUCCESS;
    }
    return mvr_daemon_run(&opts, &cfg);
}
