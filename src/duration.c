#include "duration.h"

#include <ctype.h>
#include <string.h>

struct unit {
    const char *name;
    int64_t ms;
};

static const struct unit units[] = {
    {"ms", 1}, {"s", 1000}, {"min", 60 * 1000}, {"h", 3600 * 1000}, {"d", 86400 * 1000},
};

static const char *skip_space(const char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

/* Reads the digits at *p, advancing it; -1 on no digits or overflow past the maximum. */
static int64_t read_number(const char **p)
{
    int64_t value = 0;
    const char *start = *p;

    while (isdigit((unsigned char)**p)) {
        value = value * 10 + (**p - '0');
        if (value > MVR_DURATION_MAX_MS)
            return -1;
        (*p)++;
    }
    return *p == start ? -1 : value;
}

static int lookup_unit(const char *name, size_t len, int64_t *factor)
{
    if (len == 0) {
        *factor = 1;
        return 0;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strlen(units[i].name) == len && strncmp(units[i].name, name, len) == 0) {
            *factor = units[i].ms;
            return 0;
        }
    }
    return -1;
}

int mvr_duration_parse(const char *text, int64_t *ms, const char **err)
{
    const char *p = skip_space(text);
    int64_t value, factor;

    if (*p == '-') {
        *err = "duration must not be negative";
        return -1;
    }
    value = read_number(&p);
    if (value < 0) {
        *err = isdigit((unsigned char)*skip_space(text)) ? "duration is too large"
                                                         : "duration must start with a number";
        return -1;
    }
    p = skip_space(p);
    const char *unit = p;
    while (isalpha((unsigned char)*p))
        p++;
    if (lookup_unit(unit, (size_t)(p - unit), &factor) != 0 || *skip_space(p) != '\0') {
        *err = "invalid duration unit (valid units are ms, s, min, h, d)";
        return -1;
    }
    if (value > MVR_DURATION_MAX_MS / factor) {
        *err = "duration is too large";
        return -1;
    }
    *ms = value * factor;
    return 0;
}
