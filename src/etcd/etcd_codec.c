/*
 * etcd_codec.c - the gateway's encoding (see etcd_int.h): base64 for keys and
 * values, int64 as JSON strings, zero values omitted, and the decoders of the
 * objects several requests share (a kv, a RangeResponse, a header's
 * revision), plus the key / range_end pair of a prefix request.
 *
 * Separate from the requests because it is the one place that turns
 * untrusted reply text into C values: every field is checked here (strict
 * base64, digits-only int64, types), and KV, txn, lease and watch decoding
 * all go through it. No handle, no network: pure functions.
 */
#include "etcd/etcd_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#include "common/banned.h"

/* ---- base64 (standard alphabet, padded: what Go's encoding/json writes) -- */

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Strict decoding into a malloc'd buffer with a NUL after *out_len bytes.
 * 0, ETCD_EPROTO (bad input) or ETCD_ENOMEM. */
static int b64_decode(const char *in, size_t len, char **out, size_t *out_len)
{
    if (len % 4 != 0)
        return ETCD_EPROTO;
    char *buf = malloc(len / 4 * 3 + 1);
    if (!buf)
        return ETCD_ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                pad++;
                v[k] = 0;
                continue;
            }
            if (pad) /* data after padding */
                goto bad;
            v[k] = b64_val(c);
            if (v[k] < 0)
                goto bad;
        }
        uint32_t w =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        buf[o++] = (char)(w >> 16);
        if (pad < 2)
            buf[o++] = (char)(w >> 8);
        if (pad < 1)
            buf[o++] = (char)w;
    }
    buf[o] = '\0';
    *out = buf;
    *out_len = o;
    return 0;
bad:
    free(buf);
    return ETCD_EPROTO;
}

/* ---- JSON helpers -------------------------------------------------------- */

/* An int64 field: a JSON string of digits (the gateway's form) or a number;
 * absent or null = 0 (the gateway omits zero values). Else ETCD_EPROTO. */
int etcd__j_int64(const json_t *obj, const char *name, int64_t *out)
{
    json_t *v = json_object_get(obj, name);
    if (!v || json_is_null(v)) {
        *out = 0;
        return 0;
    }
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v))
        return ETCD_EPROTO;
    const char *s = json_string_value(v);
    if (json_string_length(v) == 0 || json_string_length(v) > 20 ||
        strlen(s) != json_string_length(v))
        return ETCD_EPROTO;
    char *end = NULL;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || !end || *end != '\0' || end == s || s[0] == ' ' || s[0] == '+')
        return ETCD_EPROTO;
    *out = (int64_t)x;
    return 0;
}

int etcd__j_bool(const json_t *obj, const char *name, int *out)
{
    json_t *v = json_object_get(obj, name);
    if (!v || json_is_null(v)) {
        *out = 0;
        return 0;
    }
    if (!json_is_boolean(v))
        return ETCD_EPROTO;
    *out = json_is_true(v);
    return 0;
}

/* A base64 bytes field; absent = empty. Allocates (plus NUL). */
static int j_bytes(const json_t *obj, const char *name, char **out, size_t *out_len)
{
    json_t *v = json_object_get(obj, name);
    if (!v || json_is_null(v)) {
        char *e = calloc(1, 1);
        if (!e)
            return ETCD_ENOMEM;
        *out = e;
        *out_len = 0;
        return 0;
    }
    if (!json_is_string(v))
        return ETCD_EPROTO;
    return b64_decode(json_string_value(v), json_string_length(v), out, out_len);
}

json_t *etcd__j_i64str(int64_t x)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, x);
    return json_string(buf);
}

/* Sets obj[name] = v (stealing v); a NULL v means allocation failed. */
int etcd__j_set(json_t *obj, const char *name, json_t *v)
{
    if (!v || json_object_set_new(obj, name, v) != 0)
        return ETCD_ENOMEM;
    return 0;
}

int etcd__j_set_bytes(json_t *obj, const char *name, const void *p, size_t len)
{
    char *enc = util_base64(p, len);
    if (!enc)
        return ETCD_ENOMEM;
    int rc = etcd__j_set(obj, name, json_string(enc));
    free(enc);
    return rc;
}

size_t etcd__arg_len(const void *p, size_t len)
{
    if (len == ETCD_NUL)
        return p ? strlen(p) : 0;
    return len;
}

/* ---- kv decoding ---------------------------------------------------------- */

void etcd__kv_release(struct etcd_kv *kv)
{
    free(kv->key);
    free(kv->value);
    memset(kv, 0, sizeof *kv);
}

int etcd__kv_decode(const json_t *j, struct etcd_kv *kv)
{
    memset(kv, 0, sizeof *kv);
    if (!json_is_object(j))
        return ETCD_EPROTO;
    int rc = j_bytes(j, "key", &kv->key, &kv->key_len);
    if (!rc)
        rc = j_bytes(j, "value", &kv->value, &kv->value_len);
    if (!rc)
        rc = etcd__j_int64(j, "create_revision", &kv->create_revision);
    if (!rc)
        rc = etcd__j_int64(j, "mod_revision", &kv->mod_revision);
    if (!rc)
        rc = etcd__j_int64(j, "version", &kv->version);
    if (!rc)
        rc = etcd__j_int64(j, "lease", &kv->lease);
    if (rc)
        etcd__kv_release(kv);
    return rc;
}

int etcd__header_revision(const json_t *reply, int64_t *rev)
{
    json_t *hdr = json_object_get(reply, "header");
    if (!hdr) {
        *rev = 0;
        return 0;
    }
    if (!json_is_object(hdr))
        return ETCD_EPROTO;
    return etcd__j_int64(hdr, "revision", rev);
}

/* Every unary reply of etcd carries header.revision (>= 1: the store starts at
 * 1). A 200 without it is not etcd's answer (e.g. "{}" from something else). */
int etcd__need_header(const json_t *reply)
{
    int64_t rev = 0;
    if (!json_is_object(json_object_get(reply, "header")) || etcd__header_revision(reply, &rev) ||
        rev < 1)
        return ETCD_EPROTO;
    return 0;
}

void etcd__range_release(struct etcd_range_result *r)
{
    for (size_t i = 0; i < r->n_kvs; i++)
        etcd__kv_release(&r->kvs[i]);
    free(r->kvs);
    memset(r, 0, sizeof *r);
}

/* Fills r from a RangeResponse object. */
int etcd__range_decode(const json_t *j, struct etcd_range_result *r)
{
    memset(r, 0, sizeof *r);
    if (!json_is_object(j))
        return ETCD_EPROTO;
    int rc = etcd__header_revision(j, &r->revision);
    if (!rc)
        rc = etcd__j_bool(j, "more", &r->more);
    if (!rc)
        rc = etcd__j_int64(j, "count", &r->count);
    if (rc)
        return rc;
    json_t *kvs = json_object_get(j, "kvs");
    if (!kvs || json_is_null(kvs))
        return 0;
    if (!json_is_array(kvs))
        return ETCD_EPROTO;
    size_t n = json_array_size(kvs);
    if (n == 0)
        return 0;
    r->kvs = calloc(n, sizeof *r->kvs);
    if (!r->kvs)
        return ETCD_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        rc = etcd__kv_decode(json_array_get(kvs, i), &r->kvs[i]);
        if (rc) {
            etcd__range_release(r);
            return rc;
        }
        r->n_kvs = i + 1;
    }
    return 0;
}

/* Sets key (and range_end when prefix) on obj. */
int etcd__set_key_range(json_t *obj, const void *key, size_t len, int prefix)
{
    static const char zero = '\0';
    if (!prefix)
        return etcd__j_set_bytes(obj, "key", key, len);
    /* range_end = the prefix with its last byte below 0xff incremented and
     * what follows dropped; no such byte (or empty prefix): "\0" = to the end. */
    const unsigned char *k = key;
    size_t n = len;
    while (n > 0 && k[n - 1] == 0xff)
        n--;
    int rc =
        len ? etcd__j_set_bytes(obj, "key", key, len) : etcd__j_set_bytes(obj, "key", &zero, 1);
    if (rc)
        return rc;
    if (n == 0)
        return etcd__j_set_bytes(obj, "range_end", &zero, 1);
    unsigned char *end = malloc(n);
    if (!end)
        return ETCD_ENOMEM;
    memcpy(end, k, n);
    end[n - 1]++;
    rc = etcd__j_set_bytes(obj, "range_end", end, n);
    free(end);
    return rc;
}
