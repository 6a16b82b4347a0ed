#include "listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USAGE "expected ADDRESS:PORT, [IPV6-ADDRESS]:PORT or :PORT with a numeric address"

static int parse_port(const char *text, in_port_t *port)
{
    char *end;
    long v;

    if (text[0] < '0' || text[0] > '9')
        return -1;
    errno = 0;
    v = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0 || v > 65535)
        return -1;
    *port = htons((in_port_t)v);
    return 0;
}

static int parse_v4(const char *host, const char *port, struct mvr_listen_addr *addr)
{
    struct sockaddr_in *in = (struct sockaddr_in *)(void *)&addr->ss;

    in->sin_family = AF_INET;
    addr->len = sizeof *in;
    /* ":9187": every IPv4 address, as most exporters read it. */
    if (host[0] == '\0')
        in->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
        return -1;
    return parse_port(port, &in->sin_port);
}

static int parse_v6(const char *host, const char *port, struct mvr_listen_addr *addr)
{
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)&addr->ss;

    in6->sin6_family = AF_INET6;
    addr->len = sizeof *in6;
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
        return -1;
    return parse_port(port, &in6->sin6_port);
}

/* Split "host:port" or "[host]:port" in a copy; the port is after the last colon. */
static int split(char *copy, char **host, char **port, int *family)
{
    char *colon;

    if (copy[0] == '[') {
        char *close = strchr(copy, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        *close = '\0';
        *host = copy + 1;
        *port = close + 2;
        *family = AF_INET6;
        return 0;
    }
    colon = strrchr(copy, ':');
    if (colon == NULL || strchr(copy, ':') != colon)
        return -1; /* no port, or an IPv6 address without brackets */
    *colon = '\0';
    *host = copy;
    *port = colon + 1;
    *family = AF_INET;
    return 0;
}

int mvr_listen_parse(const char *text, struct mvr_listen_addr *addr, char *err, size_t errlen)
{
    char copy[80], *host, *port;
    int family, rc = -1;

    memset(addr, 0, sizeof *addr);
    if (strlen(text) < sizeof copy) {
        memcpy(copy, text, strlen(text) + 1);
        if (split(copy, &host, &port, &family) == 0)
            rc = family == AF_INET6 ? parse_v6(host, port, addr) : parse_v4(host, port, addr);
    }
    if (rc != 0)
        snprintf(err, errlen, USAGE ", not \"%s\"", text);
    return rc;
}

void mvr_listen_format(const struct mvr_listen_addr *addr, char *buf, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";

    if (addr->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)&addr->ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(buf, size, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
    } else {
        const struct sockaddr_in *in = (const void *)&addr->ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(buf, size, "%s:%u", host, (unsigned)ntohs(in->sin_port));
    }
}
