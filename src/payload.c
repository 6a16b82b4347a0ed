#include "payload.h"

#include <stddef.h>

bool mvr_payload_parse_oid(const char *payload, uint32_t *oid)
{
    uint64_t value = 0;
    size_t i;

    if (payload == NULL || payload[0] < '1' || payload[0] > '9')
        return false;
    /* 10 digits hold any 32-bit value; stop early so a huge payload costs nothing. */
    for (i = 0; payload[i] != '\0'; i++) {
        if (i >= 10 || payload[i] < '0' || payload[i] > '9')
            return false;
        value = value * 10 + (uint64_t)(payload[i] - '0');
    }
    if (value > UINT32_MAX)
        return false;
    *oid = (uint32_t)value;
    return true;
}
