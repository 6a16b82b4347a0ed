/* NOTIFY payloads are untrusted: anyone who can connect may NOTIFY our channel. */
#ifndef MVR_PAYLOAD_H
#define MVR_PAYLOAD_H

#include <stdbool.h>
#include <stdint.h>

/* Accepts exactly what TG_RELID::text produces: a decimal OID, 1 to 4294967295, digits only,
 * no sign, spaces or leading zeros. Anything else returns false and leaves *oid alone. */
bool mvr_payload_parse_oid(const char *payload, uint32_t *oid);

#endif
