/*
 * ec2.c - the EC2 provider's signed Query API client with retries and a
 * call-rate ceiling, its user data and its life cycle; the [ec2] settings are
 * in ec2_settings.c, launch/terminate/describe in ec2_ops.c (ec2_int.h).
 *
 * One provider makes one API call at a time (a mutex around each operation),
 * which is also what makes the token bucket a true ceiling: a controller tick
 * cannot fan out into a burst. Every HTTP call has a timeout, every operation
 * a bounded number of tries, so the caller's thread is never held for long:
 * at most max_attempts * (call_timeout + backoff).
 *
 * Idempotency: RunInstances carries the caller's token as ClientToken, and the
 * subnet chosen for a token is remembered, so a retry sends identical
 * parameters. After a restart the choice may differ; EC2 then answers
 * IdempotentParameterMismatch, and the provider looks the original launch up
 * by its client-token instead of failing (or launching twice).
 *
 * Authentication failures stop all calls for auth_failure_backoff: an asgd
 * with a wrong key makes a few calls a minute, not one per tick, and keeps
 * reporting the same clear error.
 */
#include "provider/ec2_int.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "provider/aws_config.h"
#include "provider/ec2_xml.h"
#include "provider/sigv4.h"

#include "common/util.h"

#include "common/banned.h"

/* ---- small buffers ------------------------------------------------------------- */

static int buf_reserve(struct buf *b, size_t extra)
{
    if (b->failed)
        return -1;
    if (b->n + extra + 1 > b->max) {
        b->failed = 1;
        return -1;
    }
    if (b->n + extra + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->n + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) {
        b->failed = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static void buf_put(struct buf *b, const char *s, size_t len)
{
    if (buf_reserve(b, len) != 0)
        return;
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

void ec2__buf_free(struct buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* Appends "&key=value" (the first pair without '&'), both percent-encoded. */
void ec2__form_add(struct buf *f, const char *key, const char *value)
{
    size_t need = 3 * (strlen(key) + strlen(value)) + 3;
    if (buf_reserve(f, need) != 0)
        return;
    if (f->n > 0)
        f->p[f->n++] = '&';
    size_t pos = f->n;
    if (sigv4_uri_encode(key, f->p, f->cap, &pos) != 0) {
        f->failed = 1;
        return;
    }
    f->p[pos++] = '=';
    if (sigv4_uri_encode(value, f->p, f->cap, &pos) != 0) {
        f->failed = 1;
        return;
    }
    f->n = pos;
}

void ec2__form_addf(struct buf *f, const char *value, const char *keyfmt, ...)
{
    char key[256];
    va_list ap;
    va_start(ap, keyfmt);
    int n = vsnprintf(key, sizeof(key), keyfmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(key)) {
        f->failed = 1;
        return;
    }
    ec2__form_add(f, key, value);
}

static size_t buf_write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
    struct buf *b = ud;
    size_t len = size * nmemb;
    buf_put(b, data, len);
    return b->failed ? 0 : len;
}

/* ---- the provider --------------------------------------------------------------- */

void ec2_provider_stats(const struct provider *p, struct ec2_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (p == NULL || p->ops != &ec2__ops)
        return;
    struct ec2_provider *e = (struct ec2_provider *)p;
    pthread_mutex_lock(&e->mu);
    *out = e->stats;
    pthread_mutex_unlock(&e->mu);
}

static void sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Waits until the token bucket allows one more call, then takes it. */
static void rate_wait(struct ec2_provider *p)
{
    double rate = p->s.api_calls_per_second;
    double burst = rate < 1.0 ? 1.0 : rate;
    for (;;) {
        int64_t now = clk_mono_ms();
        p->bucket += (double)(now - p->bucket_ms) * rate / 1000.0;
        if (p->bucket > burst)
            p->bucket = burst;
        p->bucket_ms = now;
        if (p->bucket >= 1.0) {
            p->bucket -= 1.0;
            return;
        }
        int64_t wait = (int64_t)((1.0 - p->bucket) * 1000.0 / rate) + 1;
        sleep_ms(wait);
    }
}

/* Exponential backoff with "equal jitter": half fixed, half random. */
static int64_t backoff_ms(struct ec2_provider *p, int attempt)
{
    int64_t d = p->s.retry_base_delay_ms;
    for (int i = 1; i < attempt && d < BACKOFF_CAP_MS; i++)
        d *= 2;
    if (d > BACKOFF_CAP_MS)
        d = BACKOFF_CAP_MS;
    int64_t half = d / 2;
    return half + (half > 0 ? (int64_t)(rand_r(&p->seed) % (half + 1)) : 0);
}

enum err_class { EC_RETRY, EC_THROTTLE, EC_CAPACITY, EC_FATAL, EC_AUTH };

static int code_in(const char *code, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(code, *list) == 0)
            return 1;
    return 0;
}

static enum err_class classify(long http, const char *code)
{
    static const char *const throttle[] = {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "EC2ThrottledException",
        "SlowDown",
        NULL,
    };
    static const char *const transient[] = {
        "Unavailable",    "ServiceUnavailable",      "InternalError",           "InternalFailure",
        "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete", NULL,
    };
    static const char *const capacity[] = {
        "InsufficientInstanceCapacity",         "InsufficientHostCapacity",
        "InsufficientReservedInstanceCapacity", "InsufficientCapacity",
        "InsufficientCapacityOnOutpost",        NULL,
    };
    static const char *const auth[] = {
        "AuthFailure",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "RequestExpired",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "UnrecognizedClientException",
        "OptInRequired",
        "Blocked",
        "PendingVerification",
        "InvalidSecurity",
        "AccessDeniedException",
        NULL,
    };
    if (code != NULL && code[0] != '\0') {
        if (code_in(code, throttle))
            return EC_THROTTLE;
        if (code_in(code, transient))
            return EC_RETRY;
        if (code_in(code, capacity))
            return EC_CAPACITY;
        if (code_in(code, auth))
            return EC_AUTH;
        if (http >= 500)
            return EC_RETRY;
        return EC_FATAL;
    }
    if (http == 429)
        return EC_THROTTLE;
    if (http >= 500 || http <= 0)
        return EC_RETRY;
    if (http == 401 || http == 403)
        return EC_AUTH;
    return EC_FATAL;
}

/* Replaces every occurrence of secret in s (in place) by "[redacted]" where it fits. */
static void redact(char *s, size_t cap, const char *secret)
{
    if (secret == NULL || strlen(secret) < 4)
        return;
    static const char mark[] = "[redacted]";
    size_t sl = strlen(secret);
    char *hit;
    while ((hit = strstr(s, secret)) != NULL) {
        size_t tail = strlen(hit + sl);
        size_t ml = sizeof(mark) - 1;
        if ((size_t)(hit - s) + ml + tail + 1 > cap)
            tail = cap - 1 - (size_t)(hit - s) - ml;
        memmove(hit + ml, hit + sl, tail);
        memcpy(hit, mark, ml);
        hit[ml + tail] = '\0';
    }
}

/* The access key id shortened for messages: "AKIA…WXYZ". */
static void key_hint(const char *ak, char *out, size_t outlen)
{
    size_t n = ak ? strlen(ak) : 0;
    if (n >= 12)
        snprintf(out, outlen, "%.4s...%s", ak, ak + n - 4);
    else
        snprintf(out, outlen, "%s", n ? "(short key id)" : "(none)");
}

/*
 * One signed HTTP POST. Returns 0 with *status (and the body in *reply), or
 * -1 with a transport error in why.
 */
static int http_post(struct ec2_provider *p, const struct buf *form,
                     const struct aws_credentials *cr, long *status, struct buf *reply, char *why,
                     size_t whylen)
{
    char date[SIGV4_DATE_LEN];
    char auth[1024];
    sigv4_amz_date(clk_wall_ms(), date);
    if (sigv4_sign_form_post(p->host, p->region, "ec2", SIGV4_FORM_CONTENT_TYPE, form->p, form->n,
                             cr->access_key_id, cr->secret_access_key, cr->session_token, date,
                             auth, sizeof(auth)) != 0) {
        snprintf(why, whylen, "cannot sign the request");
        return -1;
    }
    struct curl_slist *hl = NULL, *t;
    char line[1200];
    int ok = 1;
#define ADDH(...)                                                                                  \
    do {                                                                                           \
        snprintf(line, sizeof(line), __VA_ARGS__);                                                 \
        t = curl_slist_append(hl, line);                                                           \
        if (t == NULL)                                                                             \
            ok = 0;                                                                                \
        else                                                                                       \
            hl = t;                                                                                \
    } while (0)
    ADDH("Content-Type: %s", SIGV4_FORM_CONTENT_TYPE);
    ADDH("Host: %s", p->host);
    ADDH("X-Amz-Date: %s", date);
    ADDH("Authorization: %s", auth);
    ADDH("Expect:");
    ADDH("User-Agent: asgd/%s", ASGD_VERSION);
    if (cr->session_token != NULL && cr->session_token[0] != '\0') {
        size_t n = strlen(cr->session_token) + 32;
        char *h = malloc(n);
        if (h == NULL) {
            ok = 0;
        } else {
            snprintf(h, n, "X-Amz-Security-Token: %s", cr->session_token);
            t = curl_slist_append(hl, h);
            memset(h, 0, n);
            free(h);
            if (t == NULL)
                ok = 0;
            else
                hl = t;
        }
    }
#undef ADDH
    memset(auth, 0, sizeof(auth));
    if (!ok) {
        curl_slist_free_all(hl);
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    CURL *h = p->curl;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, p->url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, form->p);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)form->n);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)p->s.call_timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(p->s.call_timeout_ms < 5000 ? p->s.call_timeout_ms : 5000));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, buf_write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, reply);
    CURLcode cc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hl);
    if (cc != CURLE_OK) {
        snprintf(why, whylen, "%s", reply->failed ? "reply too large" : curl_easy_strerror(cc));
        return -1;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    return 0;
}

static int code_for(enum err_class c)
{
    switch (c) {
    case EC_CAPACITY:
        return PROV_ECAPACITY;
    case EC_FATAL:
    case EC_AUTH:
        return PROV_EFATAL;
    default:
        return PROV_ERETRY;
    }
}

/*
 * Sends form (Action=...&...) with retries; on success *resp holds the parsed
 * reply. On failure returns a PROV_E* code with p->base.errmsg set, and
 * resp->code holds the EC2 error code if there was one.
 */
int ec2__call(struct ec2_provider *p, const char *action, struct buf *form,
              struct ec2_response *resp)
{
    int rc = PROV_ERETRY;
    struct aws_credentials cr = AWS_CREDENTIALS_INIT;
    struct buf reply = {.max = MAX_REPLY};
    char why[512] = "", hint[32];
    int64_t now = clk_mono_ms();
    if (form->failed) {
        rc = provider__fail(&p->base, PROV_EINVAL, "ec2 %s: request too large", action);
        goto out;
    }
    if (p->auth_block_until > now) {
        p->stats.suppressed++;
        rc = provider__fail(&p->base, PROV_EFATAL, "%s", p->auth_msg);
        goto out;
    }
    if (aws_chain_get(p->chain, &cr, why, sizeof(why)) != 0) {
        rc = provider__fail(&p->base, PROV_EFATAL, "ec2 %s: %s", action, why);
        p->auth_block_until = now + p->s.auth_failure_backoff_ms;
        snprintf(p->auth_msg, sizeof(p->auth_msg), "%s", p->base.errmsg);
        p->stats.failures++;
        goto out;
    }
    key_hint(cr.access_key_id, hint, sizeof(hint));
    enum err_class cls = EC_RETRY;
    int attempt;
    for (attempt = 1; attempt <= p->s.max_attempts; attempt++) {
        if (attempt > 1) {
            p->stats.retries++;
            int64_t d = backoff_ms(p, attempt - 1);
            log_debug("ec2 %s: retry %d in %lld ms after: %s", action, attempt, (long long)d, why);
            sleep_ms(d);
        }
        rate_wait(p);
        p->stats.calls++;
        long status = 0;
        reply.n = 0;
        reply.failed = 0;
        ec2_response_release(resp);
        if (http_post(p, form, &cr, &status, &reply, why, sizeof(why)) != 0) {
            cls = EC_RETRY;
            continue;
        }
        char perr[256];
        int parsed = ec2_xml_parse(reply.p ? reply.p : "", reply.n, resp, perr, sizeof(perr));
        /* a 200 must be the action's own document: an HTML page from a proxy read as
           "no instances" would make the controller forget the whole group */
        if (status == 200 && parsed == 0 && !resp->is_error &&
            strncmp(resp->root, action, strlen(action)) == 0 &&
            strcmp(resp->root + strlen(action), "Response") == 0) {
            rc = 0;
            goto out;
        }
        if (parsed == 0 && resp->is_error) {
            char msg[300];
            snprintf(msg, sizeof(msg), "%.299s", resp->message);
            if (strcmp(resp->code, "SignatureDoesNotMatch") == 0)
                snprintf(msg, sizeof(msg),
                         "the request signature does not match: check the secret key");
            redact(msg, sizeof(msg), cr.secret_access_key);
            redact(msg, sizeof(msg), cr.session_token);
            /* no request id in the message: it would make every failure look new to
               the controller, which logs a fatal error once per distinct message */
            snprintf(why, sizeof(why), "%s: %s (HTTP %ld)", resp->code, msg, status);
            log_debug("ec2 %s: %s (request id %s)", action, resp->code,
                      resp->request_id[0] ? resp->request_id : "?");
        } else {
            resp->code[0] = '\0';
            snprintf(why, sizeof(why), "HTTP %ld with an unreadable reply (%s)", status,
                     parsed == 0 ? "not an EC2 response" : perr);
        }
        cls = classify(status == 200 ? 500 : status, resp->code);
        if (cls == EC_THROTTLE)
            p->stats.throttled++;
        if (cls != EC_RETRY && cls != EC_THROTTLE)
            break;
    }
    p->stats.failures++;
    rc = code_for(cls);
    if (cls == EC_AUTH) {
        provider__fail(&p->base, rc, "ec2 %s failed: %s; credentials from %s (key %s)", action, why,
                       cr.source, hint);
        p->auth_block_until = clk_mono_ms() + p->s.auth_failure_backoff_ms;
        snprintf(p->auth_msg, sizeof(p->auth_msg), "%s", p->base.errmsg);
    } else if (cls == EC_RETRY || cls == EC_THROTTLE) {
        provider__fail(&p->base, rc, "ec2 %s failed after %d attempts: %s", action,
                       p->s.max_attempts, why);
    } else {
        provider__fail(&p->base, rc, "ec2 %s failed: %s", action, why);
    }
out:
    if (rc == 0 && p->auth_block_until != 0) {
        p->auth_block_until = 0;
        p->auth_msg[0] = '\0';
    }
    aws_credentials_release(&cr);
    ec2__buf_free(&reply);
    return rc;
}

void ec2__form_start(struct buf *f, const char *action)
{
    memset(f, 0, sizeof(*f));
    f->max = MAX_FORM;
    ec2__form_add(f, "Action", action);
    ec2__form_add(f, "Version", EC2_API_VERSION);
}

void ec2__destroy(struct provider *base)
{
    struct ec2_provider *p = (struct ec2_provider *)base;
    if (p->curl != NULL)
        curl_easy_cleanup(p->curl);
    aws_chain_free(p->chain);
    ec2_settings_release(&p->s);
    free(p->group);
    free(p->region);
    free(p->endpoint);
    free(p->url);
    free(p->user_data_b64);
    free(p->subnet_live);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* Reads the template and substitutes the {{...}} names; returns malloc'd text or NULL + err. */
static char *render_user_data(const char *path, const char *const names[][2], size_t *len,
                              char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "user_data_file \"%.200s\": %s", path, strerror(errno));
        return NULL;
    }
    struct buf in = {.max = 4 * MAX_USER_DATA}, out = {.max = MAX_USER_DATA + 1};
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_put(&in, chunk, got);
    int rerr = ferror(f);
    fclose(f);
    if (rerr || in.failed) {
        snprintf(err, errlen, "user_data_file \"%.200s\": %s", path,
                 rerr ? "read error" : "larger than 64 KB");
        ec2__buf_free(&in);
        return NULL;
    }
    for (size_t i = 0; i < in.n;) {
        int matched = 0;
        for (size_t k = 0; names[k][0] != NULL; k++) {
            size_t nl = strlen(names[k][0]);
            if (in.n - i >= nl && memcmp(in.p + i, names[k][0], nl) == 0) {
                buf_put(&out, names[k][1], strlen(names[k][1]));
                i += nl;
                matched = 1;
                break;
            }
        }
        if (!matched)
            buf_put(&out, in.p + i++, 1);
    }
    ec2__buf_free(&in);
    if (out.failed || out.n > MAX_USER_DATA) {
        snprintf(err, errlen, "user_data_file \"%.200s\": larger than 16 KB after substitution",
                 path);
        ec2__buf_free(&out);
        return NULL;
    }
    *len = out.n;
    if (out.p == NULL)
        out.p = strdup("");
    return out.p;
}

int provider_ec2_new(const struct ec2_settings *s, const char *group_name, int agent_port,
                     const char *monitor_address, const char *token, struct provider **out,
                     char *err, size_t errlen)
{
    *out = NULL;
    if (s == NULL || group_name == NULL || group_name[0] == '\0' || agent_port <= 0 ||
        agent_port > 65535 || strlen(group_name) > 255) {
        snprintf(err, errlen, "ec2 provider: bad group name or agent port");
        return PROV_EINVAL;
    }
    int rc = PROV_ENOMEM;
    struct ec2_provider *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return PROV_ENOMEM;
    }
    p->base.ops = &ec2__ops;
    pthread_mutex_init(&p->mu, NULL);
    ec2_settings_init(&p->s);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (ec2__settings_copy(&p->s, s) != 0 || (p->group = strdup(group_name)) == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    p->agent_port = agent_port;
    rc = PROV_EINVAL;
    if (aws_resolve_region(s->profile, s->region, &p->region, err, errlen) != 0)
        goto fail;
    if (aws_resolve_endpoint(s->profile, s->endpoint, p->region, &p->endpoint, err, errlen) != 0)
        goto fail;
    if (aws_endpoint_host(p->endpoint, p->host, sizeof(p->host)) != 0) {
        snprintf(err, errlen, "ec2 endpoint \"%.200s\" is not usable", p->endpoint);
        goto fail;
    }
    size_t ul = strlen(p->endpoint) + 2;
    p->url = malloc(ul);
    if (p->url == NULL) {
        rc = PROV_ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    snprintf(p->url, ul, "%s/", p->endpoint);
    if (s->user_data_file != NULL) {
        char port[16];
        snprintf(port, sizeof(port), "%d", agent_port);
        const char *const names[][2] = {
            {"{{monitor_address}}", monitor_address ? monitor_address : ""},
            {"{{token}}", token ? token : ""},
            {"{{group}}", group_name},
            {"{{agent_port}}", port},
            {NULL, NULL},
        };
        size_t len = 0;
        char *text = render_user_data(s->user_data_file, names, &len, err, errlen);
        if (text == NULL)
            goto fail;
        p->user_data_b64 = util_base64((const unsigned char *)text, len);
        memset(text, 0, len); /* it holds the registration token */
        free(text);
        if (p->user_data_b64 == NULL) {
            rc = PROV_ENOMEM;
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    p->chain = aws_chain_new(s->profile);
    p->curl = curl_easy_init();
    if (p->chain == NULL || p->curl == NULL) {
        rc = PROV_ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (p->s.n_subnet_ids > 0) {
        p->subnet_live = calloc(p->s.n_subnet_ids, sizeof(*p->subnet_live));
        if (p->subnet_live == NULL) {
            rc = PROV_ENOMEM;
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    p->bucket = p->s.api_calls_per_second < 1.0 ? 1.0 : p->s.api_calls_per_second;
    p->bucket_ms = clk_mono_ms();
    p->seed = (unsigned int)(clk_wall_ms() ^ (int64_t)getpid());
    log_info("ec2 provider for group \"%s\": region %s, endpoint %s", group_name, p->region,
             p->endpoint);
    *out = &p->base;
    return 0;
fail:
    ec2__destroy(&p->base);
    return rc;
}
