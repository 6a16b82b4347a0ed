/* The Prometheus exposition (src/metrics.h) and the refresh-duration histogram: every byte a
 * scrape returns, without a server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "histogram.h"
#include "metrics.h"

static char *render(const struct mvr_metrics_snapshot *s)
{
    struct mvr_metrics_text out = {0};

    assert_int_equal(mvr_metrics_render(s->version, s, 1, &out), 0);
    assert_non_null(out.data);
    assert_int_equal(strlen(out.data), out.len);
    return out.data;
}

static void assert_has_line(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return;
    fail_msg("no line \"%s\" in:\n%s", line, text);
}

/* A snapshot with one view, one connection, two states. */
struct fixture {
    struct mvr_histogram h;
    struct mvr_metrics_view view;
    struct mvr_metrics_conn conn;
    struct mvr_metrics_state states[2];
    struct mvr_metrics_snapshot snap;
};

static void fixture_init(struct fixture *f, const char *view_name, const char *database)
{
    memset(f, 0, sizeof *f);
    f->view = (struct mvr_metrics_view){.name = view_name, .refreshes = 3, .duration = &f->h};
    f->conn = (struct mvr_metrics_conn){"listener", true};
    f->states[0] = (struct mvr_metrics_state){"idle", 1};
    f->states[1] = (struct mvr_metrics_state){"debouncing", 0};
    f->snap = (struct mvr_metrics_snapshot){.version = "0.2.0",
                                            .database = database,
                                            .views = &f->view,
                                            .nviews = 1,
                                            .conns = &f->conn,
                                            .nconns = 1,
                                            .states = f->states,
                                            .nstates = 2,
                                            .notifications = 7,
                                            .invalid = 2};
}

/* Backslash, double quote and line feed in a label value are escaped; nothing else is. */
static void test_label_escaping(void **state)
{
    struct mvr_metrics_text out = {0};

    (void)state;
    mvr_metrics_escape(&out, "a\\b\"c\nd\te'");
    assert_string_equal(out.data, "a\\\\b\\\"c\\nd\te'");
    mvr_metrics_text_free(&out);
}

/* A view whose name holds all three, in a database whose name holds a quote. */
static void test_weird_view_name(void **state)
{
    struct fixture f;
    char *text;

    (void)state;
    fixture_init(&f, "s.\"we\"\"ird\\view\nx\"", "d\"b");
    text = render(&f.snap);
    assert_has_line(text, "mvrefresh_refreshes_total{database=\"d\\\"b\","
                          "view=\"s.\\\"we\\\"\\\"ird\\\\view\\nx\\\"\"} 3");
    /* No raw line feed inside any sample: every line is a comment or starts a metric. */
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n"))
        assert_true(line[0] == '#' || strncmp(line, "mvrefresh_", 10) == 0);
    free(text);
}

/* Buckets count every observation up to their bound ("le", inclusive), +Inf counts all, and
 * _count and _sum agree with the observations. */
static void test_histogram_cumulative(void **state)
{
    struct fixture f;
    char *text;
    const char *pre = "mvrefresh_refresh_duration_seconds_bucket{database=\"db\",view=\"v\",le=";

    (void)state;
    fixture_init(&f, "v", "db");
    mvr_histogram_observe(&f.h, 0.003);
    mvr_histogram_observe(&f.h, 0.007);
    mvr_histogram_observe(&f.h, 0.2);
    mvr_histogram_observe(&f.h, 1.0); /* on a bound: in that bucket */
    mvr_histogram_observe(&f.h, 400); /* beyond the last bound: +Inf only */
    assert_int_equal(mvr_histogram_count(&f.h), 5);
    text = render(&f.snap);
    {
        static const struct {
            const char *le;
            int n;
        } want[] = {{"0.005", 1}, {"0.01", 2}, {"0.025", 2}, {"0.05", 2}, {"0.1", 2},
                    {"0.25", 3},  {"0.5", 3},  {"1", 4},     {"2.5", 4},  {"5", 4},
                    {"10", 4},    {"30", 4},   {"60", 4},    {"300", 4},  {"+Inf", 5}};
        char line[256];
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            snprintf(line, sizeof line, "%s\"%s\"} %d", pre, want[i].le, want[i].n);
            assert_has_line(text, line);
        }
        assert_int_equal(sizeof want / sizeof want[0], MVR_HISTOGRAM_NBOUNDS + 1);
    }
    assert_has_line(text, "mvrefresh_refresh_duration_seconds_count{database=\"db\",view=\"v\"} 5");
    assert_has_line(text,
                    "mvrefresh_refresh_duration_seconds_sum{database=\"db\",view=\"v\"} 401.21");
    free(text);
}

/* A name on a "# TYPE" line, and whether sample is one of its series. */
static bool belongs(const char *family, const char *type, const char *sample)
{
    size_t n = strlen(family);
    const char *rest = sample + n;

    if (strncmp(sample, family, n) != 0)
        return false;
    if (strcmp(type, "histogram") == 0 &&
        (strncmp(rest, "_bucket", 7) == 0 || strncmp(rest, "_count", 6) == 0))
        rest += rest[1] == 'b' ? 7 : 6;
    else if (strcmp(type, "histogram") == 0 && strncmp(rest, "_sum", 4) == 0)
        rest += 4;
    return *rest == '{' || *rest == ' ';
}

/* Every family has one HELP and then one TYPE line, before its samples, which follow
 * together; no family appears twice. */
static void test_help_and_type_lines(void **state)
{
    struct fixture f;
    char *text, family[128] = "", type[32] = "", seen[4096] = " ";
    int families = 0;

    (void)state;
    fixture_init(&f, "v", "db");
    text = render(&f.snap);
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char help_of[128], key[140];
        if (sscanf(line, "# HELP %127s", help_of) == 1) {
            snprintf(key, sizeof key, " %s ", help_of);
            assert_null(strstr(seen, key));
            strncat(seen, key + 1, sizeof seen - strlen(seen) - 1);
            line = strtok(NULL, "\n");
            assert_non_null(line);
            assert_int_equal(sscanf(line, "# TYPE %127s %31s", family, type), 2);
            assert_string_equal(family, help_of);
            families++;
        } else {
            assert_true(family[0] != '\0');
            if (!belongs(family, type, line))
                fail_msg("\"%s\" follows # TYPE %s", line, family);
        }
    }
    assert_int_equal(families, 11);
    free(text);
}

/* Each family's samples carry the snapshot's values; counters print as integers, however
 * large. */
static void test_values(void **state)
{
    struct fixture f;
    char *text;

    (void)state;
    fixture_init(&f, "v", "db");
    f.view.refreshes = 12345678901234ull;
    f.view.failures = 4;
    f.view.staleness = 2.5;
    f.view.pending = true;
    f.snap.conn_failures = 3;
    text = render(&f.snap);
    assert_has_line(text, "mvrefresh_refreshes_total{database=\"db\",view=\"v\"} 12345678901234");
    assert_has_line(text, "mvrefresh_refresh_failures_total{database=\"db\",view=\"v\"} 4");
    assert_has_line(text, "mvrefresh_staleness_seconds{database=\"db\",view=\"v\"} 2.5");
    assert_has_line(text, "mvrefresh_pending{database=\"db\",view=\"v\"} 1");
    assert_has_line(text, "mvrefresh_views{database=\"db\",state=\"idle\"} 1");
    assert_has_line(text, "mvrefresh_views{database=\"db\",state=\"debouncing\"} 0");
    assert_has_line(text, "mvrefresh_notifications_total{database=\"db\"} 7");
    assert_has_line(text, "mvrefresh_invalid_payloads_total{database=\"db\"} 2");
    assert_has_line(text, "mvrefresh_connected{database=\"db\",connection=\"listener\"} 1");
    assert_has_line(text, "mvrefresh_connection_failures_total{database=\"db\"} 3");
    assert_has_line(text, "mvrefresh_build_info{version=\"0.2.0\"} 1");
    free(text);
}

/* Not pending: staleness is 0, whatever the snapshot's field says. */
static void test_fresh_view_is_not_stale(void **state)
{
    struct fixture f;
    char *text;

    (void)state;
    fixture_init(&f, "v", "db");
    f.view.staleness = 99;
    f.conn.connected = false;
    text = render(&f.snap);
    assert_has_line(text, "mvrefresh_staleness_seconds{database=\"db\",view=\"v\"} 0");
    assert_has_line(text, "mvrefresh_pending{database=\"db\",view=\"v\"} 0");
    assert_has_line(text, "mvrefresh_connected{database=\"db\",connection=\"listener\"} 0");
    free(text);
}

/* No views (all unwatched): no per-view series, and the text is still a string. */
static void test_no_views(void **state)
{
    struct fixture f;
    char *text;

    (void)state;
    fixture_init(&f, "v", "db");
    f.snap.nviews = 0;
    text = render(&f.snap);
    assert_null(strstr(text, "view=\""));
    assert_has_line(text, "# TYPE mvrefresh_refreshes_total counter");
    free(text);
}

/* A wrong clock must not poison the sum: a negative or NaN duration counts as 0. */
static void test_histogram_ignores_nonsense(void **state)
{
    struct mvr_histogram h = {0};

    (void)state;
    mvr_histogram_observe(&h, -1);
    mvr_histogram_observe(&h, NAN);
    assert_int_equal(mvr_histogram_count(&h), 2);
    assert_int_equal(h.counts[0], 2);
    assert_true(h.sum == 0.0);
}

static size_t count_of(const char *text, const char *needle)
{
    size_t n = 0;

    for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

/* Several databases: each family's HELP and TYPE once, with every database's samples under
 * it (the format wants a family's samples together); build_info once; none: build_info
 * alone. */
static void test_several_databases(void **state)
{
    struct fixture a, b;
    struct mvr_metrics_snapshot both[2];
    struct mvr_metrics_text out = {0};
    const char *refreshes_b;

    (void)state;
    fixture_init(&a, "public.mv", "sales");
    fixture_init(&b, "public.mv", "hr");
    both[0] = a.snap;
    both[1] = b.snap;
    assert_int_equal(mvr_metrics_render("0.2.0", both, 2, &out), 0);
    assert_int_equal(count_of(out.data, "# TYPE mvrefresh_refreshes_total counter\n"), 1);
    assert_has_line(out.data, "mvrefresh_refreshes_total{database=\"sales\",view=\"public.mv\"} 3");
    assert_has_line(out.data, "mvrefresh_refreshes_total{database=\"hr\",view=\"public.mv\"} 3");
    refreshes_b = strstr(out.data, "mvrefresh_refreshes_total{database=\"hr\"");
    assert_non_null(refreshes_b);
    assert_true(refreshes_b < strstr(out.data, "# HELP mvrefresh_refresh_failures_total"));
    assert_has_line(out.data, "mvrefresh_notifications_total{database=\"hr\"} 7");
    assert_int_equal(count_of(out.data, "mvrefresh_build_info{"), 1);
    mvr_metrics_text_free(&out);

    assert_int_equal(mvr_metrics_render("0.2.0", NULL, 0, &out), 0);
    assert_has_line(out.data, "mvrefresh_build_info{version=\"0.2.0\"} 1");
    assert_int_equal(count_of(out.data, "database="), 0);
    mvr_metrics_text_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_weird_view_name),
        cmocka_unit_test(test_histogram_cumulative),
        cmocka_unit_test(test_help_and_type_lines),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_fresh_view_is_not_stale),
        cmocka_unit_test(test_no_views),
        cmocka_unit_test(test_histogram_ignores_nonsense),
        cmocka_unit_test(test_several_databases),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
