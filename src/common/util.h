/*
 * util.h - small helpers that several modules need: one place, one behaviour.
 */
#ifndef ASGD_UTIL_H
#define ASGD_UTIL_H

#include <stddef.h>

/*
 * Formats into err (when err is not NULL and errlen > 0); always
 * NUL-terminated, truncated to errlen. The project's "error text for the
 * operator" convention.
 */
void util_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Reads the whole file at path, at most max bytes (larger files fail). On
 * success *out is a malloc'd buffer of *len bytes plus a terminating NUL the
 * caller frees, and 0 is returned. On failure returns -1 with "PATH: cannot
 * open: ...", "PATH: file too large (over N bytes)", "PATH: cannot read: ..."
 * or "PATH: out of memory" in err, and *out is untouched.
 */
int util_read_file(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen);

#endif
