/* Recover the struct that embeds a libev watcher (or any member) from the member's address. */
#ifndef MVR_CONTAINER_H
#define MVR_CONTAINER_H

#include <stddef.h>

#define MVR_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#endif
