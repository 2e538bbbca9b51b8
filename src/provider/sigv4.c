/*
 * sigv4.c - SHA-256, HMAC and the SigV4 canonical request.
 *
 * The signer has to agree with botocore to the byte, so it follows botocore's
 * canonicalisation literally (auth.py SigV4Auth): header names lowercased and
 * sorted, values "trimall"ed (split on whitespace, joined by one space),
 * repeated names joined by ",", payload hash over the exact body bytes. A
 * request is signed a few times a second at most, so clarity wins over speed;
 * the only buffers are sized from the inputs and capped.
 */
#include "provider/sigv4.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/banned.h"

/* ---- SHA-256 (FIPS 180-4) ------------------------------------------------ */

struct sha256_ctx {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t nbuf;
};

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(struct sha256_ctx *c, const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3];
    uint32_t e = c->h[4], f = c->h[5], g = c->h[6], h = c->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + S1 + ch + K[i] + w[i];
        uint32_t S0 = ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22);
        uint32_t maj = (a & b) ^ (a & cc) ^ (b & cc);
        uint32_t t2 = S0 + maj;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = cc;
        cc = b;
        b = a;
        a = t1 + t2;
    }
    c->h[0] += a;
    c->h[1] += b;
    c->h[2] += cc;
    c->h[3] += d;
    c->h[4] += e;
    c->h[5] += f;
    c->h[6] += g;
    c->h[7] += h;
}

static void sha256_init(struct sha256_ctx *c)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof(iv));
    c->len = 0;
    c->nbuf = 0;
}

static void sha256_update(struct sha256_ctx *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    c->len += len;
    while (len > 0) {
        size_t take = 64 - c->nbuf;
        if (take > len)
            take = len;
        memcpy(c->buf + c->nbuf, p, take);
        c->nbuf += take;
        p += take;
        len -= take;
        if (c->nbuf == 64) {
            sha256_block(c, c->buf);
            c->nbuf = 0;
        }
    }
}

static void sha256_final(struct sha256_ctx *c, uint8_t out[32])
{
    uint64_t bits = c->len * 8;
    uint8_t pad = 0x80;
    sha256_update(c, &pad, 1);
    pad = 0;
    while (c->nbuf != 56)
        sha256_update(c, &pad, 1);
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++)
        lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(c, lenb, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

void sigv4_sha256(const void *data, size_t len, uint8_t out[SIGV4_SHA256_LEN])
{
    struct sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, data, len);
    sha256_final(&c, out);
}

void sigv4_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t msglen,
                       uint8_t out[SIGV4_SHA256_LEN])
{
    uint8_t k[64] = {0}, ipad[64], opad[64], inner[32];
    if (keylen > 64)
        sigv4_sha256(key, keylen, k);
    else if (keylen > 0)
        memcpy(k, key, keylen);
    for (int i = 0; i < 64; i++) {
        ipad[i] = k[i] ^ 0x36;
        opad[i] = k[i] ^ 0x5c;
    }
    struct sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, ipad, 64);
    sha256_update(&c, msg, msglen);
    sha256_final(&c, inner);
    sha256_init(&c);
    sha256_update(&c, opad, 64);
    sha256_update(&c, inner, 32);
    sha256_final(&c, out);
}

void sigv4_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void sigv4_amz_date(int64_t wall_ms, char out[SIGV4_DATE_LEN])
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, SIGV4_DATE_LEN, "%Y%m%dT%H%M%SZ", &tm);
}

int sigv4_uri_encode(const char *s, char *out, size_t cap, size_t *pos)
{
    static const char hexu[] = "0123456789ABCDEF";
    size_t p = *pos;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        int plain = (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
                    (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || *c == '.' || *c == '~';
        size_t need = plain ? 1 : 3;
        if (p + need + 1 > cap) {
            if (*pos < cap)
                out[*pos] = '\0';
            return -1;
        }
        if (plain) {
            out[p++] = (char)*c;
        } else {
            out[p++] = '%';
            out[p++] = hexu[*c >> 4];
            out[p++] = hexu[*c & 15];
        }
    }
    if (p + 1 > cap) {
        if (*pos < cap)
            out[*pos] = '\0';
        return -1;
    }
    out[p] = '\0';
    *pos = p;
    return 0;
}

/* ---- the canonical request ------------------------------------------------- */

#define SIGV4_MAX_HEADERS 32
#define SIGV4_MAX_CANON   65536

/* A growing string with a hard cap; a write past the cap sets failed. */
struct sbuf {
    char *p;
    size_t n, cap;
    int failed;
};

static void sb_put(struct sbuf *b, const char *s, size_t len)
{
    if (b->failed || b->n + len + 1 > b->cap) {
        b->failed = 1;
        return;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

/* Appends value with leading/trailing whitespace removed and inner runs collapsed. */
static void sb_trimall(struct sbuf *b, const char *v)
{
    int first = 1;
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v')
            p++;
        if (!*p)
            break;
        const char *start = p;
        while (*p &&
               !(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v'))
            p++;
        if (!first)
            sb_put(b, " ", 1);
        sb_put(b, start, (size_t)(p - start));
        first = 0;
    }
}

static void sb_lower(struct sbuf *b, const char *s)
{
    for (; *s; s++) {
        char c = *s;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        sb_put(b, &c, 1);
    }
}

static int header_cmp(const void *a, const void *b)
{
    const struct sigv4_header *x = a, *y = b;
    return strcasecmp(x->name, y->name);
}

int sigv4_sign(const struct sigv4_request *r, const char *access_key, const char *secret_key,
               char *out, size_t outlen)
{
    int rc = -1;
    char *canon = NULL, *sts = NULL, *keybuf = NULL;
    if (r == NULL || r->method == NULL || r->path == NULL || r->region == NULL ||
        r->service == NULL || r->amz_date == NULL || strlen(r->amz_date) != SIGV4_DATE_LEN - 1 ||
        access_key == NULL || secret_key == NULL || out == NULL ||
        r->n_headers > SIGV4_MAX_HEADERS || (r->n_headers > 0 && r->headers == NULL))
        return -1;

    /* Sorted copy of the headers (stable order for equal names keeps repeats in send order). */
    struct sigv4_header hs[SIGV4_MAX_HEADERS];
    size_t nh = r->n_headers;
    for (size_t i = 0; i < nh; i++) {
        if (r->headers[i].name == NULL || r->headers[i].value == NULL)
            return -1;
        hs[i] = r->headers[i];
    }
    /* insertion sort: stable, and n is tiny */
    for (size_t i = 1; i < nh; i++) {
        struct sigv4_header t = hs[i];
        size_t j = i;
        while (j > 0 && header_cmp(&hs[j - 1], &t) > 0) {
            hs[j] = hs[j - 1];
            j--;
        }
        hs[j] = t;
    }

    canon = malloc(SIGV4_MAX_CANON);
    if (canon == NULL)
        goto out;
    struct sbuf cb = {canon, 0, SIGV4_MAX_CANON, 0};
    canon[0] = '\0';
    sb_str(&cb, r->method);
    sb_str(&cb, "\n");
    sb_str(&cb, r->path);
    sb_str(&cb, "\n");
    sb_str(&cb, r->query ? r->query : "");
    sb_str(&cb, "\n");
    for (size_t i = 0; i < nh; i++) {
        if (i > 0 && strcasecmp(hs[i - 1].name, hs[i].name) == 0) {
            sb_str(&cb, ",");
        } else {
            if (i > 0)
                sb_str(&cb, "\n");
            sb_lower(&cb, hs[i].name);
            sb_str(&cb, ":");
        }
        sb_trimall(&cb, hs[i].value);
    }
    sb_str(&cb, "\n\n");
    /* the signed header list, also used in the Authorization header */
    size_t signed_start = cb.n;
    for (size_t i = 0; i < nh; i++) {
        if (i > 0 && strcasecmp(hs[i - 1].name, hs[i].name) == 0)
            continue;
        if (i > 0)
            sb_str(&cb, ";");
        sb_lower(&cb, hs[i].name);
    }
    size_t signed_end = cb.n;
    sb_str(&cb, "\n");
    uint8_t digest[32];
    char hex[65];
    sigv4_sha256(r->body ? r->body : "", r->body ? r->body_len : 0, digest);
    sigv4_hex(digest, 32, hex);
    sb_str(&cb, hex);
    if (cb.failed)
        goto out;

    /* string to sign */
    char scope[256];
    int n = snprintf(scope, sizeof(scope), "%.8s/%s/%s/aws4_request", r->amz_date, r->region,
                     r->service);
    if (n < 0 || (size_t)n >= sizeof(scope))
        goto out;
    sigv4_sha256(canon, cb.n, digest);
    sigv4_hex(digest, 32, hex);
    size_t stslen = strlen(scope) + 128;
    sts = malloc(stslen);
    if (sts == NULL)
        goto out;
    n = snprintf(sts, stslen, "AWS4-HMAC-SHA256\n%s\n%s\n%s", r->amz_date, scope, hex);
    if (n < 0 || (size_t)n >= stslen)
        goto out;

    /* signing key */
    size_t klen = strlen(secret_key) + 5;
    keybuf = malloc(klen);
    if (keybuf == NULL)
        goto out;
    snprintf(keybuf, klen, "AWS4%s", secret_key);
    uint8_t k1[32], k2[32];
    sigv4_hmac_sha256(keybuf, klen - 1, r->amz_date, 8, k1);
    sigv4_hmac_sha256(k1, 32, r->region, strlen(r->region), k2);
    sigv4_hmac_sha256(k2, 32, r->service, strlen(r->service), k1);
    sigv4_hmac_sha256(k1, 32, "aws4_request", 12, k2);
    sigv4_hmac_sha256(k2, 32, sts, (size_t)n, digest);
    sigv4_hex(digest, 32, hex);
    memset(k1, 0, sizeof(k1));
    memset(k2, 0, sizeof(k2));

    n = snprintf(out, outlen, "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%.*s, Signature=%s",
                 access_key, scope, (int)(signed_end - signed_start), canon + signed_start, hex);
    if (n < 0 || (size_t)n >= outlen)
        goto out;
    rc = 0;
out:
    if (keybuf != NULL) {
        memset(keybuf, 0, strlen(keybuf));
        free(keybuf);
    }
    free(sts);
    free(canon);
    if (rc != 0 && out != NULL && outlen > 0)
        out[0] = '\0';
    return rc;
}

int sigv4_sign_form_post(const char *host, const char *region, const char *service,
                         const char *content_type, const void *body, size_t body_len,
                         const char *access_key, const char *secret_key, const char *session_token,
                         const char *amz_date, char *out, size_t outlen)
{
    if (host == NULL || content_type == NULL)
        return -1;
    struct sigv4_header h[4] = {
        {"Content-Type", content_type},
        {"Host", host},
        {"X-Amz-Date", amz_date},
        {"X-Amz-Security-Token", session_token},
    };
    struct sigv4_request r = {
        .method = "POST",
        .path = "/",
        .query = "",
        .headers = h,
        .n_headers = (session_token != NULL && session_token[0] != '\0') ? 4 : 3,
        .body = body,
        .body_len = body_len,
        .region = region,
        .service = service,
        .amz_date = amz_date,
    };
    return sigv4_sign(&r, access_key, secret_key, out, outlen);
}
