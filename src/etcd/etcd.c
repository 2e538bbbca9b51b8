/*
 * etcd.c - the etcd v3 client over the JSON gateway (see etcd.h for the
 * contract, docs/internals/etcd.md for the gateway's quirks): handles, error
 * texts, and the transport every unary call goes through (etcd__call(): one
 * POST per attempt, failover over the endpoints until the call's deadline).
 *
 * The client is cut by duty (etcd_int.h lists the files); this one holds what
 * owns a connection: the handle's curl easy handle, its reply buffer and its
 * endpoint list. The requests (etcd_kv.c, etcd_lease.c) only build JSON and
 * decode answers, and the watch (etcd_watch.c) runs its own stream.
 *
 * Workload: a handful of small requests per second per node (lease renewals,
 * owner checks, settings writes) and one long-lived watch stream per watched
 * prefix. Nothing here is on a hot path, so the code favours checking every
 * field of every reply over speed: a reply is untrusted input (a proxy, a
 * wrong port, a member dying mid-answer), and a bad one becomes ETCD_EPROTO.
 */
#include "etcd/etcd_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/banned.h"

#define DEF_ATTEMPT   2000
#define DEF_CALL      5000
#define DEF_IDLE      5000
#define ROUND_BACKOFF 100 /* ms between two failed rounds over every endpoint */

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

void etcd__set_err(struct etcd *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->errmsg, sizeof h->errmsg, fmt, ap);
    va_end(ap);
}

void etcd__put_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int64_t etcd__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void etcd__sleep_ms(int64_t ms)
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
                etcd__put_err(err, errlen,
                              "etcd endpoint \"%.*s\" is not an http:// or https:// URL",
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
        etcd__put_err(err, errlen, "etcd endpoints: empty list");
        return ETCD_EINVAL;
    }
    return 0;
}

int etcd_new(const struct etcd_settings *s, struct etcd **out, char *err, size_t errlen)
{
    if (!s || !out || !s->endpoints) {
        etcd__put_err(err, errlen, "etcd settings: endpoints missing");
        return ETCD_EINVAL;
    }
    pthread_once(&curl_once, curl_init_once);
    struct etcd *h = calloc(1, sizeof *h);
    if (!h) {
        etcd__put_err(err, errlen, "out of memory");
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
        etcd__put_err(err, errlen, "out of memory");
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
void etcd__curl_common(CURL *c, const struct etcd *h, struct curl_slist *headers)
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
    etcd__curl_common(c, h, h->headers);
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
int etcd__call(struct etcd *h, const char *what, const char *path, json_t *body, json_t **reply)
{
    char *req = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!req) {
        etcd__set_err(h, "etcd %s: out of memory", what);
        return ETCD_ENOMEM;
    }
    for (size_t i = 0; i < h->n_eps; i++)
        h->eps[i].err[0] = '\0';
    int64_t deadline = etcd__now_ms() + h->call_ms;
    int saw_proto = 0, saw_other = 0, rc = ETCD_EUNAVAIL;
    int attempts = 0;
    for (int round = 0;; round++) {
        for (size_t k = 0; k < h->n_eps; k++) {
            int64_t left = deadline - etcd__now_ms();
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
                etcd__set_err(h, "etcd %s at %s: %s", what, h->eps[e].url, h->eps[e].err);
                free(req);
                return final;
            }
            if (a == A_PROTO)
                saw_proto = 1;
            else if (a == A_UNAVAIL)
                saw_other = 1;
        }
        int64_t left = deadline - etcd__now_ms();
        if (left <= 0)
            break;
        etcd__sleep_ms(left < ROUND_BACKOFF * (round + 1) ? left : ROUND_BACKOFF * (round + 1));
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
int etcd__bad_reply(struct etcd *h, const char *what, int rc)
{
    if (rc == ETCD_ENOMEM)
        etcd__set_err(h, "etcd %s: out of memory", what);
    else
        etcd__set_err(h, "etcd %s at %s: reply has a missing or malformed field", what,
                      h->eps[h->cur].url);
    return rc;
}
