/*
 * UTF-8 checks of the bottom layer: pprof strings must be valid UTF-8, and
 * symbol names and label values come from the program unchecked.
 */
#include "utf8.h"

/* Count (and with fix, replace by '?') bytes that are not valid UTF-8. */
static size_t
utf8_scan(char *s, bool fix)
{
    unsigned char *p = (unsigned char *)s;
    size_t bad = 0;
    while (*p != 0) {
        unsigned c = p[0];
        size_t n;
        unsigned min;
        if (c < 0x80) {
            p++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 2, min = 0x80, c &= 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 3, min = 0x800, c &= 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 4, min = 0x10000, c &= 0x07;
        } else {
            n = 0, min = 0;
        }
        size_t i = 1;
        for (; i < n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                break;
            c = (c << 6) | (p[i] & 0x3f);
        }
        /* Stray continuation, truncated, overlong, surrogate or beyond
         * U+10FFFF: replace the lead byte and resynchronise on the next. */
        if (n == 0 || i < n || c < min || (c >= 0xd800 && c <= 0xdfff) ||
            c > 0x10ffff) {
            if (fix)
                *p = '?';
            bad++;
            p++;
            continue;
        }
        p += n;
    }
    return bad;
}

void
hp_utf8_sanitize(char *s)
{
    utf8_scan(s, true);
}

bool
hp_utf8_valid(const char *s)
{
    return utf8_scan((char *)s, false) == 0;
}
