/*
 * The address a listening socket binds to, from the text of a setting such as metrics_listen:
 * "127.0.0.1:9187", "[::1]:9187", ":9187" (every IPv4 address). Pure: numeric addresses only,
 * so that parsing the configuration never waits on a name lookup, and a typo is an error at
 * the line that has it instead of a failure at start.
 */
#ifndef MVR_LISTEN_H
#define MVR_LISTEN_H

#include <stddef.h>
#include <sys/socket.h>

struct mvr_listen_addr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* Parse text; -1 with a message in err when it is not ADDRESS:PORT. Port 0 means any free
 * port (the daemon logs the one it got). */
int mvr_listen_parse(const char *text, struct mvr_listen_addr *addr, char *err, size_t errlen);
/* "127.0.0.1:9187" or "[::1]:9187", as the kernel has it. */
void mvr_listen_format(const struct mvr_listen_addr *addr, char *buf, size_t size);

#endif
