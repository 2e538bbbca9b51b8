/*
 * token.c - the bearer token: read from its file, compared in constant time.
 *
 * The comparison walks the longer of the two strings whatever their contents,
 * so the time a wrong guess takes says nothing about how many leading bytes
 * were right. The token is never logged; a token file other users can read is
 * used, with a warning naming it.
 */
#include "http/http.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#include "common/banned.h"

#define TOKEN_FILE_MAX 4096

int http_token_load(const char *path, char **out, char *err, size_t errlen)
{
    if (!path || !*path) {
        snprintf(err, errlen, "no token file given");
        return -1;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read token file \"%s\": %s", path, strerror(errno));
        return -1;
    }
    util_warn_exposed_secret(path, "token");
    char buf[TOKEN_FILE_MAX];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    int rd_err = ferror(f);
    fclose(f);
    if (rd_err) {
        snprintf(err, errlen, "cannot read token file \"%s\": read error", path);
        return -1;
    }
    buf[n] = '\0';
    /* first line, trimmed */
    char *s = buf;
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t len = strcspn(s, "\r\n");
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--;
    if (len == 0) {
        snprintf(err, errlen, "token file \"%s\" holds no token", path);
        return -1;
    }
    char *tok = malloc(len + 1);
    if (!tok) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(tok, s, len);
    tok[len] = '\0';
    *out = tok;
    return 0;
}

int http_token_equal(const char *a, const char *b)
{
    if (!a || !b)
        return 0;
    size_t la = strlen(a), lb = strlen(b);
    size_t n = la > lb ? la : lb;
    unsigned diff = (unsigned)(la != lb);
    for (size_t i = 0; i < n; i++) {
        unsigned char ca = i < la ? (unsigned char)a[i] : 0;
        unsigned char cb = i < lb ? (unsigned char)b[i] : 0;
        diff |= (unsigned)(ca ^ cb);
    }
    return diff == 0;
}
