/*
 * util.c - see util.h.
 */
#include "common/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/banned.h"

void util_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int util_read_file(const char *path, size_t max, char **out, size_t *len_out, char *err,
                   size_t errlen)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = -1;
    if (path == NULL) {
        util_set_err(err, errlen, "(null): cannot open: no path");
        return -1;
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        util_set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (len == cap) {
            if (cap >= max) {
                util_set_err(err, errlen, "%s: file too large (over %zu bytes)", path, max);
                goto out;
            }
            cap = cap ? cap * 2 : 4096;
            if (cap > max)
                cap = max;
            char *nb = realloc(buf, cap + 1);
            if (nb == NULL) {
                util_set_err(err, errlen, "%s: out of memory", path);
                goto out;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                util_set_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
                goto out;
            }
            break;
        }
    }
    if (buf == NULL && (buf = malloc(1)) == NULL) {
        util_set_err(err, errlen, "%s: out of memory", path);
        goto out;
    }
    buf[len] = '\0';
    *out = buf;
    *len_out = len;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    fclose(f);
    return rc;
}
