/*
 * UTF-8 validation and repair (bottom layer; utf8.c).
 */
#ifndef HP_UTF8_H
#define HP_UTF8_H

#include "internal.h"

/* Replace every byte that is not part of valid UTF-8 with '?', in place. */
HP_HIDDEN void hp_utf8_sanitize(char *s);
HP_HIDDEN bool hp_utf8_valid(const char *s);

#endif
