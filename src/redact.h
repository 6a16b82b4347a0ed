/* Keep passwords out of logs: libpq's connection errors can quote the connection string. */
#ifndef MVR_REDACT_H
#define MVR_REDACT_H

#include <stddef.h>

/* Copy text to out (always NUL-terminated, truncated to outlen), masking as "***" the
 * password of any URI ("scheme://user:SECRET@host") and the value of any "password=SECRET"
 * keyword (quoted or not). */
void mvr_redact(const char *text, char *out, size_t outlen);

#endif
