#include "redact.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#define MASK "***"

struct sink {
    char *out;
    size_t len, cap;
};

static void put(struct sink *s, const char *p, size_t n)
{
    while (n-- > 0 && s->len + 1 < s->cap)
        s->out[s->len++] = *p++;
    s->out[s->len] = '\0';
}

/* At "://": if the authority has "user:secret@", emit up to ':' and the mask; returns the
 * number of input bytes consumed (0: nothing to mask). */
static size_t uri_password(const char *p, struct sink *s)
{
    size_t end = strcspn(p, "@/?#\" \t\n'");
    const char *colon = memchr(p, ':', end);

    if (p[end] != '@' || colon == NULL)
        return 0;
    put(s, p, (size_t)(colon - p) + 1);
    put(s, MASK, strlen(MASK));
    return end;
}

/* At "password": skip "= value" (quoted with '...' and \ escapes, or up to white space). */
static size_t keyword_password(const char *p, struct sink *s)
{
    size_t i = strlen("password");

    while (isspace((unsigned char)p[i]))
        i++;
    if (p[i] != '=')
        return 0;
    i++;
    while (isspace((unsigned char)p[i]))
        i++;
    put(s, "password=" MASK, strlen("password=" MASK));
    if (p[i] == '\'') {
        for (i++; p[i] != '\0' && p[i] != '\''; i++)
            if (p[i] == '\\' && p[i + 1] != '\0')
                i++;
        return p[i] == '\'' ? i + 1 : i;
    }
    while (p[i] != '\0' && !isspace((unsigned char)p[i]) && p[i] != '"')
        i++;
    return i;
}

void mvr_redact(const char *text, char *out, size_t outlen)
{
    struct sink s = {out, 0, outlen};
    const char *p = text;

    if (outlen == 0)
        return;
    out[0] = '\0';
    while (*p != '\0') {
        size_t skip = 0;
        if (strncmp(p, "://", 3) == 0) {
            put(&s, p, 3);
            p += 3;
            skip = uri_password(p, &s);
        } else if (strncasecmp(p, "password", 8) == 0) {
            skip = keyword_password(p, &s);
        }
        if (skip == 0)
            put(&s, p++, 1);
        p += skip;
    }
}
