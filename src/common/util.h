/*
 * util.h - small helpers that several modules need: one place, one behaviour.
 */
#ifndef ASGD_UTIL_H
#define ASGD_UTIL_H

#include <stddef.h>
#include <sys/types.h>

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

/*
 * Creates path and its missing parents (like mkdir -p). Parents are made
 * 0755 (they may be shared, e.g. /var/lib); the last component gets `mode`,
 * and when it already exists with more permission bits than `mode` (and we
 * own it) it is narrowed to `mode`: a state directory created 0755 by an
 * older version becomes private. Returns 0, or -1 with "PATH: cannot create:
 * ..." in err.
 */
int util_mkdir_p(const char *path, mode_t mode, char *err, size_t errlen);

/*
 * 1 when the file at path can be read by its group or by others (a secret
 * there is exposed to other users), after logging a warning that names the
 * file and its mode; 0 otherwise (also when it cannot be stat'ed: the caller
 * reports the open error). `what` names the secret in the warning ("API
 * token", ...).
 */
int util_warn_exposed_secret(const char *path, const char *what);

/*
 * A secret from a token file: its first line, surrounding white space
 * removed, into *out (malloc'd, caller frees). When the file does not exist
 * and create is set, a random 192-bit hex token is written there first
 * (created 0600, O_EXCL). Returns 0, or -1 with "PATH: ..." in err.
 */
int util_token_file(const char *path, int create, char **out, char *err, size_t errlen);

/* "dir/name", malloc'd (caller frees); NULL when out of memory. */
char *util_path_join(const char *dir, const char *name);

/* Standard base64 (RFC 4648, with '=' padding) of len bytes: a NUL-terminated malloc'd string,
   NULL on ENOMEM or when len is too large to encode. */
char *util_base64(const unsigned char *in, size_t len);

#endif
