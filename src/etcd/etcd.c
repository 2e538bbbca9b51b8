/*
 * etcd.c - the etcd v3 client over the JSON gateway (see etcd.h for the
 * contract, docs/internals/etcd.md for the gateway's quirks).
 *
 * Workload: a handful of small requests per second per node (lease renewals,
 * owner checks, settings writes) and one long-lived watch stream per watched
 * prefix. Nothing here is on a hot path, so the code favours checking every
 * field of every reply over speed: a reply is untrusted input (a proxy, a
 * wrong port, a member dying mid-answer), and a bad one becomes ETCD_EPROTO.
 */
#include "etcd/etcd.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/log.h"

#include "common/banned.h"

/* A reply (or one watch line) larger than this is refused (ETCD_EPROTO): etcd's
 * own request limit is 1.5 MiB per value, so only a huge range comes near. */
#define REPLY_MAX     ((size_t)64 << 20)
#define ERRMSG_MAX    768
#define EP_ERR_MAX    160
#define DEF_ATTEMPT   2000
#define DEF_CALL      5000
#define DEF_IDLE      5000
#define ROUND_BACKOFF 100 /* ms between two failed rounds over every endpoint */

struct ep {
    char *url;
    char err[EP_ERR_MAX]; /* what the last attempt on it met, for etcd_errmsg() */
};

struct etcd {
    struct ep *eps;
    size_t n_eps;
    size_t cur; /* the endpoint that answered last */
    char *ca, *cert, *key;
    int attempt_ms, call_ms, idle_ms;
    CURL *curl;
    struct curl_slist *headers;
    char *body; /* reply being read */
    size_t body_len, body_cap;
    char errmsg[ERRMSG_MAX];
};

static const char *const err_text[] = {
    [0] = "success",
    [-ETCD_EUNAVAIL] = "etcd unavailable (no endpoint could serve the call)",
    [-ETCD_ETIMEOUT] = "etcd call timed out",
    [-ETCD_ECOMPACTED] = "revision compacted",
    [-ETCD_ELEASE] = "lease not found",
    [-ETCD_EPROTO] = "bad reply from etcd",
    [-ETCD_EINVAL] = "invalid argument",
    [-ETCD_ENOMEM] = "out of memory",
};
_Static_assert(sizeof err_text / sizeof err_text[0] == 1 - ETCD_ENOMEM, "one text per code");

const char *etcd_strerror(int code)
{
    if (code > 0 || code < ETCD_ENOMEM)
        return "unknown error";
    return err_text[-code];
}

static void set_err(struct etcd *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(struct etcd *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->errmsg, sizeof h->errmsg, fmt, ap);
    va_end(ap);
}

static void put_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void put_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    /* Refcounted by curl; other modules calling it too is fine. */
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- base64 (standard alphabet, padded: what Go's encoding/json writes) -- */

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Returns a NUL-terminated malloc'd encoding of len bytes, or NULL. */
static char *b64_encode(const unsigned char *in, size_t len)
{
    if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    size_t out_len = (len + 2) / 3 * 4;
    char *out = malloc(out_len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = b64_chars[(v >> 18) & 63];
        out[o++] = b64_chars[(v >> 12) & 63];
        out[o++] = i + 1 < len ? b64_chars[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? b64_chars[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

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
static int j_int64(const json_t *obj, const char *name, int64_t *out)
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

static int j_bool(const json_t *obj, const char *name, int *out)
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

static json_t *j_i64str(int64_t x)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, x);
    return json_string(buf);
}

/* Sets obj[name] = v (stealing v); a NULL v means allocation failed. */
static int j_set(json_t *obj, const char *name, json_t *v)
{
    if (!v || json_object_set_new(obj, name, v) != 0)
        return ETCD_ENOMEM;
    return 0;
}

static int j_set_bytes(json_t *obj, const char *name, const void *p, size_t len)
{
    char *enc = b64_encode(p, len);
    if (!enc)
        return ETCD_ENOMEM;
    int rc = j_set(obj, name, json_string(enc));
    free(enc);
    return rc;
}

static size_t arg_len(const void *p, size_t len)
{
    if (len == ETCD_NUL)
        return p ? strlen(p) : 0;
    return len;
}

/* ---- kv decoding ---------------------------------------------------------- */

static void kv_release(struct etcd_kv *kv)
{
    free(kv->key);
    free(kv->value);
    memset(kv, 0, sizeof *kv);
}

static int kv_decode(const json_t *j, struct etcd_kv *kv)
{
    memset(kv, 0, sizeof *kv);
    if (!json_is_object(j))
        return ETCD_EPROTO;
    int rc = j_bytes(j, "key", &kv->key, &kv->key_len);
    if (!rc)
        rc = j_bytes(j, "value", &kv->value, &kv->value_len);
    if (!rc)
        rc = j_int64(j, "create_revision", &kv->create_revision);
    if (!rc)
        rc = j_int64(j, "mod_revision", &kv->mod_revision);
    if (!rc)
        rc = j_int64(j, "version", &kv->version);
    if (!rc)
        rc = j_int64(j, "lease", &kv->lease);
    if (rc)
        kv_release(kv);
    return rc;
}

static int header_revision(const json_t *reply, int64_t *rev)
{
    json_t *hdr = json_object_get(reply, "header");
    if (!hdr) {
        *rev = 0;
        return 0;
    }
    if (!json_is_object(hdr))
        return ETCD_EPROTO;
    return j_int64(hdr, "revision", rev);
}

/* Every unary reply of etcd carries header.revision (>= 1: the store starts at
 * 1). A 200 without it is not etcd's answer (e.g. "{}" from something else). */
static int need_header(const json_t *reply)
{
    int64_t rev = 0;
    if (!json_is_object(json_object_get(reply, "header")) || header_revision(reply, &rev) ||
        rev < 1)
        return ETCD_EPROTO;
    return 0;
}

static void range_release(struct etcd_range_result *r)
{
    for (size_t i = 0; i < r->n_kvs; i++)
        kv_release(&r->kvs[i]);
    free(r->kvs);
    memset(r, 0, sizeof *r);
}

/* Fills r from a RangeResponse object. */
static int range_decode(const json_t *j, struct etcd_range_result *r)
{
    memset(r, 0, sizeof *r);
    if (!json_is_object(j))
        return ETCD_EPROTO;
    int rc = header_revision(j, &r->revision);
    if (!rc)
        rc = j_bool(j, "more", &r->more);
    if (!rc)
        rc = j_int64(j, "count", &r->count);
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
        rc = kv_decode(json_array_get(kvs, i), &r->kvs[i]);
        if (rc) {
            range_release(r);
            return rc;
        }
        r->n_kvs = i + 1;
    }
    return 0;
}

/* ---- handles --------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void handle_free_fields(struct etcd *h)
{
    for (size_t i = 0; i < h->n_eps; i++)
        free(h->eps[i].url);
    free(h->eps);
    free(h->ca);
    free(h->cert);
    free(h->key);
    free(h->body);
    if (h->headers)
        curl_slist_free_all(h->headers);
    if (h->curl)
        curl_easy_cleanup(h->curl);
}

/* Splits the comma-separated list into h->eps; URLs lose a trailing '/'. */
static int parse_endpoints(struct etcd *h, const char *list, char *err, size_t errlen)
{
    size_t n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    h->eps = calloc(n, sizeof *h->eps);
    if (!h->eps)
        return ETCD_ENOMEM;
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '/'))
            len--;
        if (len) {
            if (!((len > 7 && strncmp(p, "http://", 7) == 0) ||
                  (len > 8 && strncmp(p, "https://", 8) == 0))) {
                put_err(err, errlen, "etcd endpoint \"%.*s\" is not an http:// or https:// URL",
                        (int)(len > 200 ? 200 : len), p);
                return ETCD_EINVAL;
            }
            char *u = strndup(p, len);
            if (!u)
                return ETCD_ENOMEM;
            h->eps[h->n_eps++].url = u;
        }
        if (!end)
            break;
        p = end + 1;
    }
    if (h->n_eps == 0) {
        put_err(err, errlen, "etcd endpoints: empty list");
        return ETCD_EINVAL;
    }
    return 0;
}

int etcd_new(const struct etcd_settings *s, struct etcd **out, char *err, size_t errlen)
{
    if (!s || !out || !s->endpoints) {
        put_err(err, errlen, "etcd settings: endpoints missing");
        return ETCD_EINVAL;
    }
    pthread_once(&curl_once, curl_init_once);
    struct etcd *h = calloc(1, sizeof *h);
    if (!h) {
        put_err(err, errlen, "out of memory");
        return ETCD_ENOMEM;
    }
    int rc = parse_endpoints(h, s->endpoints, err, errlen);
    if (rc)
        goto fail;
    h->attempt_ms = s->attempt_timeout_ms > 0 ? s->attempt_timeout_ms : DEF_ATTEMPT;
    h->call_ms = s->call_timeout_ms > 0 ? s->call_timeout_ms : DEF_CALL;
    if (h->call_ms < h->attempt_ms)
        h->call_ms = h->attempt_ms;
    h->idle_ms = s->watch_idle_timeout_ms > 0 ? s->watch_idle_timeout_ms : DEF_IDLE;
    h->ca = dup_or_null(s->ca_file);
    h->cert = dup_or_null(s->cert_file);
    h->key = dup_or_null(s->key_file);
    h->headers = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *more = h->headers ? curl_slist_append(h->headers, "Expect:") : NULL;
    if ((s->ca_file && !h->ca) || (s->cert_file && !h->cert) || (s->key_file && !h->key) || !more) {
        rc = ETCD_ENOMEM;
        goto fail;
    }
    h->headers = more;
    h->errmsg[0] = '\0';
    *out = h;
    return 0;
fail:
    if (rc == ETCD_ENOMEM)
        put_err(err, errlen, "out of memory");
    handle_free_fields(h);
    free(h);
    return rc;
}

void etcd_free(struct etcd *h)
{
    if (!h)
        return;
    handle_free_fields(h);
    free(h);
}

const char *etcd_errmsg(const struct etcd *h)
{
    if (!h)
        return "no handle";
    return h->errmsg[0] ? h->errmsg : "no error";
}

const char *etcd_endpoint(const struct etcd *h)
{
    return h && h->n_eps ? h->eps[h->cur].url : "";
}

/* Options shared by unary calls and watch streams. */
static void curl_common(CURL *c, const struct etcd *h, struct curl_slist *headers)
{
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never an environment proxy for etcd */
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)REPLY_MAX);
    if (h->ca)
        curl_easy_setopt(c, CURLOPT_CAINFO, h->ca);
    if (h->cert)
        curl_easy_setopt(c, CURLOPT_SSLCERT, h->cert);
    if (h->key)
        curl_easy_setopt(c, CURLOPT_SSLKEY, h->key);
}

static size_t body_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct etcd *h = userdata;
    size_t n = size * nmemb;
    if (n > REPLY_MAX - h->body_len)
        return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
    if (h->body_len + n + 1 > h->body_cap) {
        size_t cap = h->body_cap ? h->body_cap : 4096;
        while (cap < h->body_len + n + 1)
            cap *= 2;
        char *nb = realloc(h->body, cap);
        if (!nb)
            return 0;
        h->body = nb;
        h->body_cap = cap;
    }
    memcpy(h->body + h->body_len, ptr, n);
    h->body_len += n;
    h->body[h->body_len] = '\0';
    return n;
}

/* How one attempt ended. */
enum attempt {
    A_OK,      /* reply parsed, *reply set */
    A_FINAL,   /* etcd answered a definite error: *final holds the code */
    A_UNAVAIL, /* endpoint down or cannot serve now: try the next */
    A_TIMEOUT, /* no answer in time: try the next */
    A_PROTO,   /* unparseable reply: try the next */
};

/* Maps a gateway error body {"error","message","code"} to an attempt result. */
static enum attempt classify_error(struct etcd *h, struct ep *ep, long status, json_t *j,
                                   int *final)
{
    /* Unary errors are {"error": text, "message": text, "code": n}; stream
     * errors (lease keepalive) nest {"grpc_code": n, "message": text}. */
    json_t *nested = json_object_get(j, "error");
    if (nested && json_is_object(nested))
        j = nested;
    json_t *jc = json_object_get(j, "code");
    if (!jc)
        jc = json_object_get(j, "grpc_code");
    json_t *jm = json_object_get(j, "message");
    if (!jm || !json_is_string(jm))
        jm = json_object_get(j, "error");
    const char *msg = jm && json_is_string(jm) ? json_string_value(jm) : "";
    long code = jc && json_is_integer(jc) ? (long)json_integer_value(jc) : -1;
    snprintf(ep->err, sizeof ep->err, "HTTP %ld: %s (grpc code %ld)", status, msg, code);
    if (strstr(msg, "lease not found")) {
        *final = ETCD_ELEASE;
        return A_FINAL;
    }
    if (strstr(msg, "has been compacted")) {
        *final = ETCD_ECOMPACTED;
        return A_FINAL;
    }
    /* UNAVAILABLE (no leader, request timed out), DEADLINE_EXCEEDED, UNKNOWN
     * ("context deadline exceeded" from the gateway), ABORTED, or any 5xx:
     * this member cannot serve now, another may. */
    if (code == 14 || code == 4 || code == 2 || code == 10 || status >= 500)
        return A_UNAVAIL;
    (void)h;
    *final = ETCD_EINVAL;
    return A_FINAL;
}

static enum attempt attempt_once(struct etcd *h, struct ep *ep, const char *path, const char *req,
                                 long timeout_ms, json_t **reply, int *final)
{
    if (!h->curl) {
        h->curl = curl_easy_init();
        if (!h->curl) {
            *final = ETCD_ENOMEM;
            snprintf(ep->err, sizeof ep->err, "curl_easy_init failed");
            return A_FINAL;
        }
    }
    CURL *c = h->curl;
    char url[1024];
    if ((size_t)snprintf(url, sizeof url, "%s%s", ep->url, path) >= sizeof url) {
        *final = ETCD_EINVAL;
        snprintf(ep->err, sizeof ep->err, "URL too long");
        return A_FINAL;
    }
    curl_easy_reset(c);
    curl_common(c, h, h->headers);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(req));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
    if (h->body_cap > ((size_t)1 << 20)) {
        /* Do not keep a huge range's buffer for the small calls that follow. */
        free(h->body);
        h->body = NULL;
        h->body_cap = 0;
    }
    h->body_len = 0;
    if (h->body)
        h->body[0] = '\0';

    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        snprintf(ep->err, sizeof ep->err, "%s", curl_easy_strerror(cc));
        switch (cc) {
        case CURLE_OPERATION_TIMEDOUT:
            snprintf(ep->err, sizeof ep->err, "no answer within %ld ms", timeout_ms);
            return A_TIMEOUT;
        case CURLE_WRITE_ERROR:
        case CURLE_FILESIZE_EXCEEDED:
            snprintf(ep->err, sizeof ep->err, "reply larger than %zu bytes (or out of memory)",
                     REPLY_MAX);
            return A_PROTO;
        case CURLE_WEIRD_SERVER_REPLY:
        case CURLE_UNSUPPORTED_PROTOCOL:
        case CURLE_BAD_CONTENT_ENCODING:
        case CURLE_HTTP2:
            return A_PROTO;
        default:
            return A_UNAVAIL;
        }
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    json_error_t jerr;
    /* The gateway may write more than one object (keepalive streams); the
     * first is the answer. */
    json_t *j =
        h->body_len ? json_loadb(h->body, h->body_len, JSON_DISABLE_EOF_CHECK, &jerr) : NULL;
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    if (status == 200) {
        if (!j) {
            snprintf(ep->err, sizeof ep->err, "HTTP 200 with a body that is not a JSON object");
            return A_PROTO;
        }
        *reply = j;
        return A_OK;
    }
    if (!j) {
        snprintf(ep->err, sizeof ep->err, "HTTP %ld without a JSON error", status);
        return status >= 500 ? A_UNAVAIL : A_PROTO;
    }
    enum attempt a = classify_error(h, ep, status, j, final);
    json_decref(j);
    return a;
}

/*
 * POSTs body (consumed) to path with failover (etcd.h): on success *reply
 * owns the parsed reply object. what names the call for messages.
 */
static int call(struct etcd *h, const char *what, const char *path, json_t *body, json_t **reply)
{
    char *req = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!req) {
        set_err(h, "etcd %s: out of memory", what);
        return ETCD_ENOMEM;
    }
    for (size_t i = 0; i < h->n_eps; i++)
        h->eps[i].err[0] = '\0';
    int64_t deadline = now_ms() + h->call_ms;
    int saw_proto = 0, saw_other = 0, rc = ETCD_EUNAVAIL;
    int attempts = 0;
    for (int round = 0;; round++) {
        for (size_t k = 0; k < h->n_eps; k++) {
            int64_t left = deadline - now_ms();
            if (left <= 0 && attempts > 0)
                goto exhausted;
            size_t e = (h->cur + k) % h->n_eps;
            long t = left < h->attempt_ms ? (long)(left > 0 ? left : 1) : h->attempt_ms;
            json_t *r = NULL;
            int final = 0;
            attempts++;
            enum attempt a = attempt_once(h, &h->eps[e], path, req, t, &r, &final);
            if (a == A_OK) {
                h->cur = e;
                free(req);
                *reply = r;
                return 0;
            }
            if (a == A_FINAL) {
                set_err(h, "etcd %s at %s: %s", what, h->eps[e].url, h->eps[e].err);
                free(req);
                return final;
            }
            if (a == A_PROTO)
                saw_proto = 1;
            else if (a == A_UNAVAIL)
                saw_other = 1;
        }
        int64_t left = deadline - now_ms();
        if (left <= 0)
            break;
        sleep_ms(left < ROUND_BACKOFF * (round + 1) ? left : ROUND_BACKOFF * (round + 1));
    }
exhausted:
    free(req);
    rc = saw_proto ? ETCD_EPROTO : saw_other ? ETCD_EUNAVAIL : ETCD_ETIMEOUT;
    {
        size_t off = (size_t)snprintf(h->errmsg, sizeof h->errmsg,
                                      "etcd %s failed (%s) after %d attempts in %d ms:", what,
                                      etcd_strerror(rc), attempts, h->call_ms);
        for (size_t i = 0; i < h->n_eps && off < sizeof h->errmsg; i++)
            off += (size_t)snprintf(h->errmsg + off, sizeof h->errmsg - off, " %s: %s;",
                                    h->eps[i].url, h->eps[i].err[0] ? h->eps[i].err : "not tried");
    }
    return rc;
}

/* Call wrapper for a reply whose decoding failed: names the endpoint. */
static int bad_reply(struct etcd *h, const char *what, int rc)
{
    if (rc == ETCD_ENOMEM)
        set_err(h, "etcd %s: out of memory", what);
    else
        set_err(h, "etcd %s at %s: reply has a missing or malformed field", what,
                h->eps[h->cur].url);
    return rc;
}

/* ---- requests ----------------------------------------------------------- */

static int check_key(struct etcd *h, const char *what, const void *key, size_t len, int prefix)
{
    if ((!key && len) || (len == 0 && !prefix)) {
        set_err(h, "etcd %s: empty key", what);
        return ETCD_EINVAL;
    }
    return 0;
}

/* Sets key (and range_end when prefix) on obj. */
static int set_key_range(json_t *obj, const void *key, size_t len, int prefix)
{
    static const char zero = '\0';
    if (!prefix)
        return j_set_bytes(obj, "key", key, len);
    /* range_end = the prefix with its last byte below 0xff incremented and
     * what follows dropped; no such byte (or empty prefix): "\0" = to the end. */
    const unsigned char *k = key;
    size_t n = len;
    while (n > 0 && k[n - 1] == 0xff)
        n--;
    int rc = len ? j_set_bytes(obj, "key", key, len) : j_set_bytes(obj, "key", &zero, 1);
    if (rc)
        return rc;
    if (n == 0)
        return j_set_bytes(obj, "range_end", &zero, 1);
    unsigned char *end = malloc(n);
    if (!end)
        return ETCD_ENOMEM;
    memcpy(end, k, n);
    end[n - 1]++;
    rc = j_set_bytes(obj, "range_end", end, n);
    free(end);
    return rc;
}

static const char *const sort_orders[] = {"NONE", "ASCEND", "DESCEND"};
static const char *const sort_targets[] = {"KEY", "VERSION", "CREATE", "MOD", "VALUE"};

static int range_request(const void *key, size_t len, const struct etcd_range_opts *o, json_t **out)
{
    json_t *r = json_object();
    if (!r)
        return ETCD_ENOMEM;
    int rc = set_key_range(r, key, len, o->prefix);
    if (!rc && o->limit)
        rc = j_set(r, "limit", j_i64str(o->limit));
    if (!rc && o->revision)
        rc = j_set(r, "revision", j_i64str(o->revision));
    if (!rc && o->keys_only)
        rc = j_set(r, "keys_only", json_true());
    if (!rc && o->count_only)
        rc = j_set(r, "count_only", json_true());
    if (!rc && o->serializable)
        rc = j_set(r, "serializable", json_true());
    if (!rc && o->min_create_revision)
        rc = j_set(r, "min_create_revision", j_i64str(o->min_create_revision));
    if (!rc && o->max_create_revision)
        rc = j_set(r, "max_create_revision", j_i64str(o->max_create_revision));
    if (!rc && o->min_mod_revision)
        rc = j_set(r, "min_mod_revision", j_i64str(o->min_mod_revision));
    if (!rc && o->max_mod_revision)
        rc = j_set(r, "max_mod_revision", j_i64str(o->max_mod_revision));
    if (!rc && o->sort_order != ETCD_SORT_NONE) {
        if ((unsigned)o->sort_order > ETCD_SORT_DESCEND ||
            (unsigned)o->sort_target > ETCD_SORT_VALUE)
            rc = ETCD_EINVAL;
        if (!rc)
            rc = j_set(r, "sort_order", json_string(sort_orders[o->sort_order]));
        if (!rc)
            rc = j_set(r, "sort_target", json_string(sort_targets[o->sort_target]));
    }
    if (rc) {
        json_decref(r);
        return rc;
    }
    *out = r;
    return 0;
}

int etcd_range(struct etcd *h, const void *key, size_t key_len, const struct etcd_range_opts *opts,
               struct etcd_range_result **out)
{
    static const struct etcd_range_opts defaults = ETCD_RANGE_OPTS_INIT;
    if (!h || !out)
        return ETCD_EINVAL;
    const struct etcd_range_opts *o = opts ? opts : &defaults;
    key_len = arg_len(key, key_len);
    int rc = check_key(h, "range", key, key_len, o->prefix);
    if (rc)
        return rc;
    json_t *req = NULL, *reply = NULL;
    rc = range_request(key, key_len, o, &req);
    if (rc) {
        set_err(h, "etcd range: %s", etcd_strerror(rc));
        return rc;
    }
    rc = call(h, "range", "/v3/kv/range", req, &reply);
    if (rc)
        return rc;
    struct etcd_range_result *r = calloc(1, sizeof *r);
    rc = r ? need_header(reply) : ETCD_ENOMEM;
    if (!rc)
        rc = range_decode(reply, r);
    json_decref(reply);
    if (rc) {
        free(r);
        return bad_reply(h, "range", rc);
    }
    *out = r;
    return 0;
}

void etcd_range_result_free(struct etcd_range_result *r)
{
    if (!r)
        return;
    range_release(r);
    free(r);
}

static int put_request(const void *key, size_t key_len, const void *value, size_t value_len,
                       int64_t lease, json_t **out)
{
    json_t *r = json_object();
    if (!r)
        return ETCD_ENOMEM;
    int rc = j_set_bytes(r, "key", key, key_len);
    if (!rc)
        rc = j_set_bytes(r, "value", value ? value : "", value_len);
    if (!rc && lease)
        rc = j_set(r, "lease", j_i64str(lease));
    if (rc) {
        json_decref(r);
        return rc;
    }
    *out = r;
    return 0;
}

int etcd_put(struct etcd *h, const void *key, size_t key_len, const void *value, size_t value_len,
             int64_t lease, int64_t *revision)
{
    if (!h)
        return ETCD_EINVAL;
    key_len = arg_len(key, key_len);
    value_len = arg_len(value, value_len);
    int rc = check_key(h, "put", key, key_len, 0);
    if (rc)
        return rc;
    if (!value && value_len) {
        set_err(h, "etcd put: NULL value");
        return ETCD_EINVAL;
    }
    json_t *req = NULL, *reply = NULL;
    rc = put_request(key, key_len, value, value_len, lease, &req);
    if (rc) {
        set_err(h, "etcd put: out of memory");
        return rc;
    }
    rc = call(h, "put", "/v3/kv/put", req, &reply);
    if (rc)
        return rc;
    int64_t rev = 0;
    rc = need_header(reply);
    if (!rc)
        rc = header_revision(reply, &rev);
    json_decref(reply);
    if (rc)
        return bad_reply(h, "put", rc);
    if (revision)
        *revision = rev;
    return 0;
}

static int delete_request(const void *key, size_t key_len, int prefix, json_t **out)
{
    json_t *r = json_object();
    if (!r)
        return ETCD_ENOMEM;
    int rc = set_key_range(r, key, key_len, prefix);
    if (rc) {
        json_decref(r);
        return rc;
    }
    *out = r;
    return 0;
}

int etcd_delete(struct etcd *h, const void *key, size_t key_len, int prefix, int64_t *deleted,
                int64_t *revision)
{
    if (!h)
        return ETCD_EINVAL;
    key_len = arg_len(key, key_len);
    int rc = check_key(h, "delete", key, key_len, prefix);
    if (rc)
        return rc;
    json_t *req = NULL, *reply = NULL;
    rc = delete_request(key, key_len, prefix, &req);
    if (rc) {
        set_err(h, "etcd delete: out of memory");
        return rc;
    }
    rc = call(h, "delete", "/v3/kv/deleterange", req, &reply);
    if (rc)
        return rc;
    int64_t rev = 0, n = 0;
    rc = need_header(reply);
    if (!rc)
        rc = header_revision(reply, &rev);
    if (!rc)
        rc = j_int64(reply, "deleted", &n);
    json_decref(reply);
    if (rc)
        return bad_reply(h, "delete", rc);
    if (deleted)
        *deleted = n;
    if (revision)
        *revision = rev;
    return 0;
}

int etcd_compact(struct etcd *h, int64_t revision)
{
    if (!h || revision < 1) {
        if (h)
            set_err(h, "etcd compact: revision must be >= 1");
        return ETCD_EINVAL;
    }
    json_t *req = json_object(), *reply = NULL;
    int rc = req ? j_set(req, "revision", j_i64str(revision)) : ETCD_ENOMEM;
    if (rc) {
        json_decref(req);
        set_err(h, "etcd compact: out of memory");
        return rc;
    }
    rc = call(h, "compact", "/v3/kv/compaction", req, &reply);
    json_decref(reply);
    return rc;
}

/* ---- txn ---------------------------------------------------------------- */

static const char *const cmp_targets[] = {"VALUE", "CREATE", "MOD", "VERSION", "LEASE"};
static const char *const cmp_target_fields[] = {"value", "create_revision", "mod_revision",
                                                "version", "lease"};
static const char *const cmp_results[] = {"EQUAL", "NOT_EQUAL", "GREATER", "LESS"};

static int cmp_json(const struct etcd_cmp *c, json_t **out)
{
    size_t klen = arg_len(c->key, c->key_len);
    if (!c->key || klen == 0 || (unsigned)c->target > ETCD_CMP_LEASE ||
        (unsigned)c->result > ETCD_CMP_LESS)
        return ETCD_EINVAL;
    json_t *j = json_object();
    if (!j)
        return ETCD_ENOMEM;
    int rc = j_set_bytes(j, "key", c->key, klen);
    if (!rc)
        rc = j_set(j, "target", json_string(cmp_targets[c->target]));
    if (!rc)
        rc = j_set(j, "result", json_string(cmp_results[c->result]));
    if (!rc && c->target == ETCD_CMP_VALUE) {
        size_t vlen = arg_len(c->value, c->value_len);
        rc = (!c->value && vlen) ? ETCD_EINVAL
                                 : j_set_bytes(j, "value", c->value ? c->value : "", vlen);
    } else if (!rc) {
        rc = j_set(j, cmp_target_fields[c->target], j_i64str(c->number));
    }
    if (rc) {
        json_decref(j);
        return rc;
    }
    *out = j;
    return 0;
}

static int op_json(const struct etcd_op *op, json_t **out)
{
    size_t klen = arg_len(op->key, op->key_len);
    json_t *inner = NULL;
    const char *name;
    int rc;
    switch (op->type) {
    case ETCD_OP_RANGE: {
        struct etcd_range_opts o = ETCD_RANGE_OPTS_INIT;
        if (op->range)
            o = *op->range;
        else
            o.prefix = op->prefix;
        if ((!op->key && klen) || (klen == 0 && !o.prefix))
            return ETCD_EINVAL;
        name = "request_range";
        rc = range_request(op->key, klen, &o, &inner);
        break;
    }
    case ETCD_OP_PUT: {
        size_t vlen = arg_len(op->value, op->value_len);
        if (!op->key || klen == 0 || (!op->value && vlen))
            return ETCD_EINVAL;
        name = "request_put";
        rc = put_request(op->key, klen, op->value, vlen, op->lease, &inner);
        break;
    }
    case ETCD_OP_DELETE:
        if ((!op->key && klen) || (klen == 0 && !op->prefix))
            return ETCD_EINVAL;
        name = "request_delete_range";
        rc = delete_request(op->key, klen, op->prefix, &inner);
        break;
    default:
        return ETCD_EINVAL;
    }
    if (rc)
        return rc;
    json_t *j = json_object();
    if (!j) {
        json_decref(inner);
        return ETCD_ENOMEM;
    }
    rc = j_set(j, name, inner);
    if (rc) {
        json_decref(j);
        return rc;
    }
    *out = j;
    return 0;
}

static int ops_array(json_t *req, const char *name, const struct etcd_op *ops, size_t n)
{
    if (n && !ops)
        return ETCD_EINVAL;
    json_t *a = json_array();
    if (!a)
        return ETCD_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *o = NULL;
        int rc = op_json(&ops[i], &o);
        if (!rc && json_array_append_new(a, o) != 0)
            rc = ETCD_ENOMEM;
        if (rc) {
            json_decref(a);
            return rc;
        }
    }
    return j_set(req, name, a);
}

static void op_result_release(struct etcd_op_result *r)
{
    range_release(&r->range);
}

void etcd_txn_result_free(struct etcd_txn_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_ops; i++)
        op_result_release(&r->ops[i]);
    free(r->ops);
    free(r);
}

/* Decodes reply into r; branch is the ops that ran (to check the reply's shape). */
static int txn_decode(const json_t *reply, const struct etcd_op *branch, size_t n_branch,
                      struct etcd_txn_result *r)
{
    int rc = header_revision(reply, &r->revision);
    if (!rc)
        rc = j_bool(reply, "succeeded", &r->succeeded);
    if (rc)
        return rc;
    (void)branch;
    json_t *resps = json_object_get(reply, "responses");
    size_t n = 0;
    if (resps && !json_is_null(resps)) {
        if (!json_is_array(resps))
            return ETCD_EPROTO;
        n = json_array_size(resps);
    }
    if (n != n_branch)
        return ETCD_EPROTO;
    if (n == 0)
        return 0;
    r->ops = calloc(n, sizeof *r->ops);
    if (!r->ops)
        return ETCD_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(resps, i);
        if (!json_is_object(o))
            return ETCD_EPROTO;
        struct etcd_op_result *res = &r->ops[i];
        json_t *v;
        if ((v = json_object_get(o, "response_range"))) {
            res->type = ETCD_OP_RANGE;
            rc = range_decode(v, &res->range);
            if (rc)
                return rc;
            res->revision = res->range.revision;
        } else if ((v = json_object_get(o, "response_put"))) {
            res->type = ETCD_OP_PUT;
            if (!json_is_object(v) || (rc = header_revision(v, &res->revision)))
                return ETCD_EPROTO;
        } else if ((v = json_object_get(o, "response_delete_range"))) {
            res->type = ETCD_OP_DELETE;
            if (!json_is_object(v) || (rc = header_revision(v, &res->revision)) ||
                (rc = j_int64(v, "deleted", &res->deleted)))
                return ETCD_EPROTO;
        } else {
            return ETCD_EPROTO;
        }
        r->n_ops = i + 1;
        if (res->type != branch[i].type)
            return ETCD_EPROTO;
    }
    return 0;
}

int etcd_txn(struct etcd *h, const struct etcd_cmp *cmps, size_t n_cmps,
             const struct etcd_op *success, size_t n_success, const struct etcd_op *failure,
             size_t n_failure, struct etcd_txn_result **out)
{
    if (!h || !out)
        return ETCD_EINVAL;
    json_t *req = json_object(), *ca = json_array();
    int rc = req && ca ? 0 : ETCD_ENOMEM;
    if (!rc && n_cmps && !cmps)
        rc = ETCD_EINVAL;
    for (size_t i = 0; !rc && i < n_cmps; i++) {
        json_t *c = NULL;
        rc = cmp_json(&cmps[i], &c);
        if (!rc && json_array_append_new(ca, c) != 0)
            rc = ETCD_ENOMEM;
    }
    if (!rc) {
        rc = j_set(req, "compare", ca);
        ca = NULL;
    }
    if (!rc)
        rc = ops_array(req, "success", success, n_success);
    if (!rc)
        rc = ops_array(req, "failure", failure, n_failure);
    json_decref(ca);
    if (rc) {
        json_decref(req);
        set_err(h, "etcd txn: %s",
                rc == ETCD_EINVAL ? "bad compare or op (NULL or empty key, bad enum)"
                                  : "out of memory");
        return rc;
    }
    json_t *reply = NULL;
    rc = call(h, "txn", "/v3/kv/txn", req, &reply);
    if (rc)
        return rc;
    struct etcd_txn_result *r = calloc(1, sizeof *r);
    if (!r) {
        json_decref(reply);
        return bad_reply(h, "txn", ETCD_ENOMEM);
    }
    int succeeded = 0;
    rc = need_header(reply);
    if (!rc)
        rc = j_bool(reply, "succeeded", &succeeded);
    if (!rc)
        rc = succeeded ? txn_decode(reply, success, n_success, r)
                       : txn_decode(reply, failure, n_failure, r);
    json_decref(reply);
    if (rc) {
        etcd_txn_result_free(r);
        return bad_reply(h, "txn", rc);
    }
    *out = r;
    return 0;
}

/* ---- leases ------------------------------------------------------------- */

static int lease_call(struct etcd *h, const char *what, const char *path, const char *idname,
                      int64_t id, json_t **reply)
{
    json_t *req = json_object();
    int rc = req ? j_set(req, idname, j_i64str(id)) : ETCD_ENOMEM;
    if (rc) {
        json_decref(req);
        set_err(h, "etcd %s: out of memory", what);
        return rc;
    }
    return call(h, what, path, req, reply);
}

/* A LeaseGrantResponse carries errors in its own "error" string. */
int etcd_lease_grant(struct etcd *h, int64_t ttl_s, int64_t *id, int64_t *granted_ttl)
{
    if (!h || !id || ttl_s < 1) {
        if (h)
            set_err(h, "etcd lease grant: TTL must be >= 1 s");
        return ETCD_EINVAL;
    }
    json_t *reply = NULL;
    int rc = lease_call(h, "lease grant", "/v3/lease/grant", "TTL", ttl_s, &reply);
    if (rc)
        return rc;
    int64_t lid = 0, ttl = 0;
    json_t *e = json_object_get(reply, "error");
    if (e && json_is_string(e) && json_string_length(e) > 0) {
        set_err(h, "etcd lease grant at %s: %s", etcd_endpoint(h), json_string_value(e));
        json_decref(reply);
        return ETCD_EINVAL;
    }
    rc = need_header(reply);
    if (!rc)
        rc = j_int64(reply, "ID", &lid);
    if (!rc)
        rc = j_int64(reply, "TTL", &ttl);
    json_decref(reply);
    if (!rc && (lid == 0 || ttl < 1))
        rc = ETCD_EPROTO;
    if (rc)
        return bad_reply(h, "lease grant", rc);
    *id = lid;
    if (granted_ttl)
        *granted_ttl = ttl;
    return 0;
}

int etcd_lease_keepalive(struct etcd *h, int64_t id, int64_t *ttl)
{
    if (!h)
        return ETCD_EINVAL;
    json_t *reply = NULL;
    int rc = lease_call(h, "lease keepalive", "/v3/lease/keepalive", "ID", id, &reply);
    if (rc)
        return rc;
    /* The gateway wraps stream messages: {"result": {...}} or {"error": {...}}. */
    json_t *res = json_object_get(reply, "result");
    int64_t t = 0;
    if (!res || !json_is_object(res)) {
        json_t *e = json_object_get(reply, "error");
        if (e && json_is_object(e)) {
            json_t *m = json_object_get(e, "message");
            int lease = m && json_is_string(m) && strstr(json_string_value(m), "lease not found");
            set_err(h, "etcd lease keepalive at %s: %s", etcd_endpoint(h),
                    m && json_is_string(m) ? json_string_value(m) : "error");
            json_decref(reply);
            return lease ? ETCD_ELEASE : ETCD_EUNAVAIL;
        }
        json_decref(reply);
        return bad_reply(h, "lease keepalive", ETCD_EPROTO);
    }
    rc = need_header(res);
    if (!rc)
        rc = j_int64(res, "TTL", &t);
    json_decref(reply);
    if (rc)
        return bad_reply(h, "lease keepalive", rc);
    if (t <= 0) {
        /* etcd answers an unknown or expired lease with TTL 0 (omitted). */
        set_err(h, "etcd lease keepalive at %s: lease %" PRId64 " expired or unknown",
                etcd_endpoint(h), id);
        return ETCD_ELEASE;
    }
    if (ttl)
        *ttl = t;
    return 0;
}

int etcd_lease_revoke(struct etcd *h, int64_t id)
{
    if (!h)
        return ETCD_EINVAL;
    json_t *reply = NULL;
    int rc = lease_call(h, "lease revoke", "/v3/lease/revoke", "ID", id, &reply);
    if (rc)
        return rc;
    json_decref(reply);
    return 0;
}

int etcd_lease_timetolive(struct etcd *h, int64_t id, int64_t *ttl, int64_t *granted_ttl)
{
    if (!h)
        return ETCD_EINVAL;
    json_t *reply = NULL;
    int rc = lease_call(h, "lease timetolive", "/v3/lease/timetolive", "ID", id, &reply);
    if (rc)
        return rc;
    int64_t t = 0, g = 0;
    rc = need_header(reply);
    if (!rc)
        rc = j_int64(reply, "TTL", &t);
    if (!rc)
        rc = j_int64(reply, "grantedTTL", &g);
    json_decref(reply);
    if (rc)
        return bad_reply(h, "lease timetolive", rc);
    if (t < 0) {
        /* etcd answers TTL -1 for an unknown or expired lease. */
        set_err(h, "etcd lease timetolive at %s: lease %" PRId64 " expired or unknown",
                etcd_endpoint(h), id);
        return ETCD_ELEASE;
    }
    if (ttl)
        *ttl = t;
    if (granted_ttl)
        *granted_ttl = g;
    return 0;
}

/* ---- watches ------------------------------------------------------------ */

/*
 * The watch thread opens POST /v3/watch with a create_request, reads the
 * streamed reply line by line (one JSON object per line), and delivers event
 * batches. next_rev is the first revision not yet delivered; a reopened
 * stream starts there. The stream is dropped on any error, on a canceled
 * watch, or when curl's low-speed limit sees it idle (progress notifications
 * keep a healthy one busy), and reopened on the next endpoint.
 */
struct etcd_watch {
    struct etcd *h; /* settings, endpoint list; its curl handle is not used */
    char *key;
    size_t key_len;
    int prefix;
    etcd_watch_cb cb;
    void *arg;
    pthread_t thread;
    atomic_int stop;
    atomic_int connected;
    _Atomic int64_t seen; /* etcd_watch_revision() */
    int64_t next_rev;     /* 0: from now */
    /* per stream */
    char *line;
    size_t line_len, line_cap;
    int abort_stream; /* set by the line parser: drop this stream */
    int got_data;     /* the stream was created */
    int64_t last_rx;  /* now_ms() of the stream's last byte (or its start) */
    char name[72];    /* the key, printable, for log lines */
    char why[EP_ERR_MAX];
};

static void set_seen(struct etcd_watch *w, int64_t rev)
{
    if (rev > atomic_load(&w->seen))
        atomic_store(&w->seen, rev);
}

static void events_release(struct etcd_event *ev, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kv_release(&ev[i].kv);
    free(ev);
}

/* Handles one "result" object of the stream. */
static int watch_result(struct etcd_watch *w, const json_t *res)
{
    int64_t hrev = 0, compact = 0;
    int created = 0, canceled = 0;
    if (!json_is_object(res) || header_revision(res, &hrev) ||
        j_int64(res, "compact_revision", &compact) || j_bool(res, "created", &created) ||
        j_bool(res, "canceled", &canceled))
        return ETCD_EPROTO;
    if (compact > 0) {
        /* The revision we need is gone. Resume at the compaction revision
         * (still available) after telling the caller to re-list. */
        struct etcd_event ev = {.type = ETCD_EV_RESET};
        static char empty[1];
        ev.kv.key = empty;
        ev.kv.value = empty;
        w->cb(w->arg, &ev, 1, compact);
        w->next_rev = compact;
        snprintf(w->why, sizeof w->why, "revision compacted at %" PRId64, compact);
        w->abort_stream = 1;
        return 0;
    }
    if (canceled) {
        json_t *reason = json_object_get(res, "cancel_reason");
        snprintf(w->why, sizeof w->why, "watch canceled by etcd: %s",
                 reason && json_is_string(reason) ? json_string_value(reason) : "no reason");
        w->abort_stream = 1;
        return 0;
    }
    if (created) {
        w->got_data = 1;
        atomic_store(&w->connected, 1);
        if (w->next_rev == 0 && hrev > 0) {
            /* "From now": everything after the revision the watch was created at. */
            w->next_rev = hrev + 1;
        }
        if (w->next_rev > 0)
            set_seen(w, w->next_rev - 1);
        return 0;
    }
    json_t *events = json_object_get(res, "events");
    size_t n = events && json_is_array(events) ? json_array_size(events) : 0;
    if (events && !json_is_null(events) && !json_is_array(events))
        return ETCD_EPROTO;
    if (n == 0) {
        /* A progress notification: every event up to hrev was delivered. */
        if (hrev >= w->next_rev && hrev > 0) {
            w->next_rev = hrev + 1;
            set_seen(w, hrev);
        }
        return 0;
    }
    struct etcd_event *ev = calloc(n, sizeof *ev);
    if (!ev)
        return ETCD_ENOMEM;
    int64_t maxrev = 0;
    size_t got = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        json_t *e = json_array_get(events, i);
        json_t *type = json_is_object(e) ? json_object_get(e, "type") : NULL;
        if (!json_is_object(e)) {
            rc = ETCD_EPROTO;
            break;
        }
        /* PUT is the enum's zero value, so the gateway omits it. */
        if (!type || json_is_null(type) ||
            (json_is_string(type) && strcmp(json_string_value(type), "PUT") == 0))
            ev[i].type = ETCD_EV_PUT;
        else if (json_is_string(type) && strcmp(json_string_value(type), "DELETE") == 0)
            ev[i].type = ETCD_EV_DELETE;
        else {
            rc = ETCD_EPROTO;
            break;
        }
        rc = kv_decode(json_object_get(e, "kv"), &ev[i].kv);
        if (rc)
            break;
        got = i + 1;
        json_t *prev = json_object_get(e, "prev_kv");
        if (prev && json_is_object(prev) && j_int64(prev, "mod_revision", &ev[i].prev_revision))
            rc = ETCD_EPROTO;
        if (ev[i].kv.mod_revision <= 0 || ev[i].kv.mod_revision < maxrev)
            rc = ETCD_EPROTO;
        else
            maxrev = ev[i].kv.mod_revision;
    }
    if (rc) {
        events_release(ev, got);
        return rc;
    }
    /* Events at revisions already delivered (a resumed stream never sends
     * them, but a confused member might) are dropped, keeping "no repeat". */
    size_t first = 0;
    while (first < n && ev[first].kv.mod_revision < w->next_rev)
        first++;
    if (first < n)
        w->cb(w->arg, ev + first, n - first, hrev > maxrev ? hrev : maxrev);
    events_release(ev, n);
    if (maxrev >= w->next_rev) {
        w->next_rev = maxrev + 1;
        set_seen(w, maxrev);
    }
    return 0;
}

static int watch_line(struct etcd_watch *w, const char *line, size_t len)
{
    json_error_t jerr;
    json_t *j = json_loadb(line, len, 0, &jerr);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        snprintf(w->why, sizeof w->why, "stream line is not a JSON object");
        return ETCD_EPROTO;
    }
    int rc = 0;
    json_t *res = json_object_get(j, "result");
    json_t *err = json_object_get(j, "error");
    if (res) {
        rc = watch_result(w, res);
        if (rc == ETCD_EPROTO)
            snprintf(w->why, sizeof w->why, "malformed watch response");
    } else if (err) {
        json_t *m = json_is_object(err) ? json_object_get(err, "message") : NULL;
        snprintf(w->why, sizeof w->why, "stream error: %s",
                 m && json_is_string(m) ? json_string_value(m) : "unknown");
        w->abort_stream = 1;
    } else {
        snprintf(w->why, sizeof w->why, "stream object without result");
        rc = ETCD_EPROTO;
    }
    json_decref(j);
    return rc;
}

static size_t watch_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct etcd_watch *w = userdata;
    size_t n = size * nmemb;
    if (atomic_load(&w->stop) || w->abort_stream)
        return 0;
    w->last_rx = now_ms();
    if (n > REPLY_MAX - w->line_len) {
        snprintf(w->why, sizeof w->why, "stream line longer than %zu bytes", REPLY_MAX);
        return 0;
    }
    if (w->line_len + n + 1 > w->line_cap) {
        size_t cap = w->line_cap ? w->line_cap : 4096;
        while (cap < w->line_len + n + 1)
            cap *= 2;
        char *nb = realloc(w->line, cap);
        if (!nb)
            return 0;
        w->line = nb;
        w->line_cap = cap;
    }
    memcpy(w->line + w->line_len, ptr, n);
    w->line_len += n;
    size_t start = 0;
    for (;;) {
        char *nl = memchr(w->line + start, '\n', w->line_len - start);
        if (!nl)
            break;
        size_t len = (size_t)(nl - (w->line + start));
        if (len > 0 && watch_line(w, w->line + start, len) != 0)
            return 0;
        start += len + 1;
        if (w->abort_stream)
            return 0;
    }
    memmove(w->line, w->line + start, w->line_len - start);
    w->line_len -= start;
    return n;
}

static int watch_progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                          curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    struct etcd_watch *w = clientp;
    if (atomic_load(&w->stop))
        return 1;
    /* Our own idle check: curl's low-speed limit averages over a window of
     * about 5 s on top of its own time, which made a stalled member take
     * idle + 5 s to notice. curl calls this at least once a second. */
    if (now_ms() - w->last_rx > w->h->idle_ms) {
        snprintf(w->why, sizeof w->why, "stream silent for %d ms", w->h->idle_ms);
        return 1;
    }
    return 0;
}

/* One stream on endpoint e; returns when it ends (never normally). */
static void watch_stream(struct etcd_watch *w, CURL *c, size_t e)
{
    struct etcd *h = w->h;
    json_t *req = json_object(), *cr = json_object();
    char *body = NULL;
    int rc = req && cr ? set_key_range(cr, w->key, w->key_len, w->prefix) : ETCD_ENOMEM;
    if (!rc && w->next_rev > 0)
        rc = j_set(cr, "start_revision", j_i64str(w->next_rev));
    if (!rc)
        rc = j_set(cr, "progress_notify", json_true());
    if (!rc)
        rc = j_set(cr, "prev_kv", json_true());
    if (!rc) {
        rc = j_set(req, "create_request", cr);
        cr = NULL;
    }
    if (!rc)
        body = json_dumps(req, JSON_COMPACT);
    json_decref(cr);
    json_decref(req);
    if (!body) {
        snprintf(w->why, sizeof w->why, "out of memory");
        return;
    }
    char url[1024];
    snprintf(url, sizeof url, "%s/v3/watch", h->eps[e].url);
    curl_easy_reset(c);
    curl_common(c, h, h->headers);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)0); /* a stream has no end */
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)h->attempt_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, watch_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, watch_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, w);
    w->line_len = 0;
    w->abort_stream = 0;
    w->got_data = 0;
    w->why[0] = '\0';
    w->last_rx = now_ms();
    CURLcode cc = curl_easy_perform(c);
    atomic_store(&w->connected, 0);
    if (!w->why[0]) {
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (cc != CURLE_OK)
            snprintf(w->why, sizeof w->why, "%s", curl_easy_strerror(cc));
        else
            snprintf(w->why, sizeof w->why, "stream ended (HTTP %ld)", status);
    }
    snprintf(h->eps[e].err, sizeof h->eps[e].err, "%s", w->why);
    free(body);
}

static void *watch_main(void *arg)
{
    struct etcd_watch *w = arg;
    CURL *c = curl_easy_init();
    size_t e = 0, failed_in_row = 0;
    while (c && !atomic_load(&w->stop)) {
        int64_t t0 = now_ms();
        watch_stream(w, c, e);
        if (atomic_load(&w->stop))
            break;
        /* A stream that was created, lived a while and then broke is normal
         * (member died, idle, compaction): try at once. A run of failures
         * (or of streams that break at once) over every endpoint waits a
         * little, growing to 1 s, so a broken member is not hammered. */
        /* Log transitions only: a stream that was up broke, or every
         * endpoint failed once in a row (not each retry after that). */
        if (w->got_data)
            log_warn("etcd watch \"%s\": stream on %s ended: %s; resuming at revision %" PRId64,
                     w->name, w->h->eps[e].url, w->why, w->next_rev);
        if (w->got_data && now_ms() - t0 >= 1000)
            failed_in_row = 0;
        else
            failed_in_row++;
        if (failed_in_row == w->h->n_eps)
            log_warn("etcd watch \"%s\": no endpoint serves it (last: %s: %s); retrying", w->name,
                     w->h->eps[e].url, w->why);
        e = (e + 1) % w->h->n_eps;
        if (failed_in_row >= w->h->n_eps) {
            int64_t wait = 100 * (int64_t)(failed_in_row / w->h->n_eps);
            if (wait > 1000)
                wait = 1000;
            for (int64_t t = 0; t < wait && !atomic_load(&w->stop); t += 20)
                sleep_ms(20);
        }
    }
    if (c)
        curl_easy_cleanup(c);
    return NULL;
}

int etcd_watch_start(const struct etcd_settings *s, const void *key, size_t key_len, int prefix,
                     int64_t start_revision, etcd_watch_cb cb, void *arg, struct etcd_watch **out,
                     char *err, size_t errlen)
{
    key_len = arg_len(key, key_len);
    if (!cb || !out || (!key && key_len) || (key_len == 0 && !prefix) || start_revision < 0) {
        put_err(err, errlen, "etcd watch: bad argument (callback, key or revision)");
        return ETCD_EINVAL;
    }
    struct etcd_watch *w = calloc(1, sizeof *w);
    if (!w) {
        put_err(err, errlen, "out of memory");
        return ETCD_ENOMEM;
    }
    int rc = etcd_new(s, &w->h, err, errlen);
    if (rc) {
        free(w);
        return rc;
    }
    w->key = malloc(key_len + 1);
    if (!w->key) {
        etcd_free(w->h);
        free(w);
        put_err(err, errlen, "out of memory");
        return ETCD_ENOMEM;
    }
    if (key_len)
        memcpy(w->key, key, key_len);
    w->key[key_len] = '\0';
    w->key_len = key_len;
    size_t nl = key_len < sizeof w->name - 4 ? key_len : sizeof w->name - 4;
    for (size_t i = 0; i < nl; i++)
        w->name[i] = (w->key[i] >= 0x20 && w->key[i] < 0x7f) ? w->key[i] : '?';
    memcpy(w->name + nl, prefix ? "*" : "", prefix ? 2 : 1);
    w->prefix = prefix;
    w->cb = cb;
    w->arg = arg;
    w->next_rev = start_revision;
    atomic_init(&w->stop, 0);
    atomic_init(&w->connected, 0);
    atomic_init(&w->seen, start_revision > 0 ? start_revision - 1 : 0);
    int prc = pthread_create(&w->thread, NULL, watch_main, w);
    if (prc != 0) {
        put_err(err, errlen, "etcd watch: cannot create thread: %s", strerror(prc));
        etcd_free(w->h);
        free(w->key);
        free(w);
        return ETCD_ENOMEM;
    }
    *out = w;
    return 0;
}

void etcd_watch_stop(struct etcd_watch *w)
{
    if (!w)
        return;
    atomic_store(&w->stop, 1);
    pthread_join(w->thread, NULL);
    etcd_free(w->h);
    free(w->key);
    free(w->line);
    free(w);
}

int64_t etcd_watch_revision(struct etcd_watch *w)
{
    return w ? atomic_load(&w->seen) : 0;
}

int etcd_watch_connected(struct etcd_watch *w)
{
    return w ? atomic_load(&w->connected) : 0;
}
