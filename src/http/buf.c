/*
 * buf.c - the growable text buffer the http module builds answers in.
 *
 * Answers are small (a few KiB of JSON, a /metrics page of a few hundred
 * lines per instance), so the buffer doubles from 1 KiB and stops at a hard
 * cap: a runaway loop fails with oom set rather than eating the heap.
 */
#include "http/http_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/banned.h"

static int buf_reserve(struct http_buf *b, size_t extra)
{
    if (b->oom)
        return -1;
    if (extra > HTTP_BUF_MAX || b->len + extra + 1 > HTTP_BUF_MAX) {
        b->oom = 1;
        return -1;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < need)
        cap *= 2;
    if (cap > HTTP_BUF_MAX)
        cap = HTTP_BUF_MAX;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
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
