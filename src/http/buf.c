/*
 * buf.c - the growable text buffer the http module builds answers in.
 *
 * Most answers are small (a few KiB of JSON, a /metrics page of a few hundred
 * lines per instance), so the buffer doubles from 1 KiB and stops at a hard
 * cap: a runaway loop fails with oom set rather than eating the heap.
 *
 * The JSON writers are for the one large answer, the unpaged instance list
 * (10,000 instances: 6 MB): built as a jansson tree it cost ~130 ms of
 * allocations, dumping and freeing; written here it is a few appends per
 * value. They write what json_dumps() would, byte for byte, so nobody
 * reading the API can tell which way an answer was made.
 */
#include "http/http_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/banned.h"

static int buf_reserve(struct http_buf *b, size_t extra)
{
    size_t max = b->max ? b->max : HTTP_BUF_MAX;
    if (b->oom)
        return -1;
    if (extra > max || b->len + extra + 1 > max) {
        b->oom = 1;
        return -1;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < need)
        cap *= 2;
    if (cap > max)
        cap = max;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

int http__buf_reserve(struct http_buf *b, size_t extra)
{
    return buf_reserve(b, extra);
}

int http__buf_append(struct http_buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, n))
        return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int http__buf_printf(struct http_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || buf_reserve(b, (size_t)n))
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

/* Length of the UTF-8 sequence at s (1..4), or 0 when it is none (truncated, overlong, a
   surrogate, above U+10FFFF): the same strings jansson's json_string() refuses. */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) /* also stops at the NUL */
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

int http__buf_json_str(struct http_buf *b, const char *s)
{
    if (!s)
        return HTTP_BUF_LIT(b, "null");
    const unsigned char *p = (const unsigned char *)s, *run = p;
    int rc = HTTP_BUF_LIT(b, "\"");
    while (*p) {
        /* runs of bytes written as they are go in one append */
        if (*p >= 0x20 && *p != '"' && *p != '\\' && *p < 0x80) {
            p++;
            continue;
        }
        size_t n = *p >= 0x80 ? utf8_len(p) : 1;
        if (n > 1) {
            p += n;
            continue;
        }
        rc |= http__buf_append(b, (const char *)run, (size_t)(p - run));
        char esc[8];
        switch (*p) {
        case '"':
            rc |= HTTP_BUF_LIT(b, "\\\"");
            break;
        case '\\':
            rc |= HTTP_BUF_LIT(b, "\\\\");
            break;
        case '\b':
            rc |= HTTP_BUF_LIT(b, "\\b");
            break;
        case '\f':
            rc |= HTTP_BUF_LIT(b, "\\f");
            break;
        case '\n':
            rc |= HTTP_BUF_LIT(b, "\\n");
            break;
        case '\r':
            rc |= HTTP_BUF_LIT(b, "\\r");
            break;
        case '\t':
            rc |= HTTP_BUF_LIT(b, "\\t");
            break;
        default: /* another control character, or a byte that starts no UTF-8 sequence */
            snprintf(esc, sizeof esc, "\\u%04X", *p < 0x20 ? (unsigned)*p : 0xFFFDu);
            rc |= http__buf_append(b, esc, 6);
        }
        run = ++p;
    }
    rc |= http__buf_append(b, (const char *)run, (size_t)(p - run));
    rc |= HTTP_BUF_LIT(b, "\"");
    return rc ? -1 : 0;
}

int http__buf_json_real(struct http_buf *b, double v)
{
    if (!isfinite(v))
        return HTTP_BUF_LIT(b, "null");
    if (v == 0)
        return signbit(v) ? HTTP_BUF_LIT(b, "-0.0") : HTTP_BUF_LIT(b, "0.0");
    char t[40];
    int n = snprintf(t, sizeof t - 2, "%.12g", v);
    if (n < 0 || (size_t)n >= sizeof t - 2)
        return HTTP_BUF_LIT(b, "null"); /* cannot happen: 12 digits, sign, point, exponent */
    char *e = strchr(t, 'e');
    if (!e && !strchr(t, '.')) { /* "3" would read back as an integer */
        memcpy(t + n, ".0", 3);
        n += 2;
    } else if (e) { /* "1e+20" -> "1e20", "1e-05" -> "1e-5" */
        char *d = e + 1, *q = e + 1;
        if (*q == '+')
            q++;
        else if (*q == '-')
            d = ++q;
        while (*q == '0' && q[1])
            q++;
        memmove(d, q, strlen(q) + 1);
        n = (int)strlen(t);
    }
    return http__buf_append(b, t, (size_t)n);
}

int http__buf_json_int(struct http_buf *b, long long v)
{
    char t[24];
    int n = snprintf(t, sizeof t, "%lld", v);
    return http__buf_append(b, t, (size_t)n);
}

void http__buf_release(struct http_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

char *http__buf_take(struct http_buf *b, size_t *len)
{
    char *p = b->p;
    if (len)
        *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
    return p;
}
