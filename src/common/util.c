/*
 * util.c - see util.h.
 */
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

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

int util_mkdir_p(const char *path, mode_t mode, char *err, size_t errlen)
{
    if (path == NULL || *path == '\0') {
        util_set_err(err, errlen, "(empty): cannot create: no path");
        return -1;
    }
    char *tmp = strdup(path);
    if (tmp == NULL) {
        util_set_err(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int rc = 0;
    for (char *p = tmp + 1; *p && rc == 0; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
            util_set_err(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
            rc = -1;
        }
        *p = '/';
    }
    if (rc == 0 && mkdir(tmp, mode) != 0) {
        struct stat sb;
        if (errno != EEXIST) {
            util_set_err(err, errlen, "%s: cannot create: %s", path, strerror(errno));
            rc = -1;
        } else if (stat(tmp, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            util_set_err(err, errlen, "%s: cannot create: exists and is not a directory", path);
            rc = -1;
        } else if ((sb.st_mode & 07777 & ~mode) != 0 && sb.st_uid == geteuid() &&
                   chmod(tmp, mode) != 0) {
            /* narrowing is best effort: say so, the directory is still usable */
            log_warn("%s: cannot restrict the mode to %04o: %s", path, (unsigned)mode,
                     strerror(errno));
        }
    }
    free(tmp);
    return rc;
}

int util_warn_exposed_secret(const char *path, const char *what)
{
    struct stat sb;
    if (path == NULL || stat(path, &sb) != 0)
        return 0;
    if ((sb.st_mode & (S_IRGRP | S_IROTH)) == 0)
        return 0;
    log_warn("%s file \"%s\" is readable by %s (mode %04o): anyone who can read it can use it; "
             "chmod 600 it",
             what ? what : "secret", path, (sb.st_mode & S_IROTH) ? "every user" : "its group",
             (unsigned)(sb.st_mode & 07777));
    return 1;
}

int util_token_file(const char *path, int create, char **out, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "re");
    if (fp == NULL && errno == ENOENT && create) {
        unsigned char raw[24];
        char hex[2 * sizeof(raw) + 2];
        if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
            util_set_err(err, errlen, "cannot generate a token: %s", strerror(errno));
            return -1;
        }
        for (size_t i = 0; i < sizeof(raw); i++)
            snprintf(hex + 2 * i, 3, "%02x", raw[i]);
        /* Written whole under a private name, then linked into place: link() fails when the
           file exists, so of two processes starting at once (asgd monitor and asgd
           controller) one token wins and both read it, never a file still being written. */
        size_t tlen = strlen(path) + 64;
        char *tmp = malloc(tlen);
        if (tmp == NULL) {
            util_set_err(err, errlen, "%s: out of memory", path);
            return -1;
        }
        snprintf(tmp, tlen, "%s.%ld.%02x%02x%02x.tmp", path, (long)getpid(), raw[0], raw[1],
                 raw[2]);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0) {
            util_set_err(err, errlen, "%s: cannot create: %s", path, strerror(errno));
            free(tmp);
            return -1;
        }
        size_t len = strlen(hex);
        hex[len] = '\n';
        ssize_t w = write(fd, hex, len + 1);
        int crc = close(fd);
        int lrc = w == (ssize_t)(len + 1) && crc == 0 ? link(tmp, path) : -1;
        int le = errno;
        unlink(tmp);
        free(tmp);
        if (w != (ssize_t)(len + 1) || crc != 0) {
            util_set_err(err, errlen, "%s: cannot write", path);
            return -1;
        }
        if (lrc != 0 && le != EEXIST) {
            util_set_err(err, errlen, "%s: cannot create: %s", path, strerror(le));
            return -1;
        }
        fp = fopen(path, "re");
    }
    if (fp == NULL) {
        util_set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, fp);
    fclose(fp);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
        line[--n] = '\0';
    if (n <= 0) {
        free(line);
        util_set_err(err, errlen, "%s: empty token file", path);
        return -1;
    }
    *out = line;
    return 0;
}

char *util_path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

char *util_base64(const unsigned char *in, size_t len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tbl[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}
