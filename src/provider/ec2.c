/*
 * ec2.c - the EC2 provider: [ec2] settings, the signed Query API client with
 * retries and a call-rate ceiling, and launch/terminate/describe on top.
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
#include "provider/ec2.h"

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

#include "common/banned.h"

#ifndef ASGD_VERSION
#define ASGD_VERSION "dev"
#endif

#define EC2_API_VERSION "2016-11-15"
#define GROUP_TAG       "asg:group"
#define MAX_FORM        (1024 * 1024)
#define MAX_REPLY       (16 * 1024 * 1024)
#define MAX_USER_DATA   16384
#define MAX_PAGES       1000
#define TOKEN_MEMO      64
#define BACKOFF_CAP_MS  8000
#define MAX_PER_CALL    1000 /* RunInstances MaxCount and TerminateInstances ids per call */

/* ---- settings ------------------------------------------------------------------ */

void ec2_settings_init(struct ec2_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->require_imdsv2 = 1;
    s->api_calls_per_second = 5.0;
    s->call_timeout_ms = 10000;
    s->max_attempts = 4;
    s->retry_base_delay_ms = 200;
    s->describe_page_size = 500;
    s->auth_failure_backoff_ms = 60000;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void ec2_settings_release(struct ec2_settings *s)
{
    if (s == NULL)
        return;
    free(s->profile);
    free(s->region);
    free(s->endpoint);
    free(s->image_id);
    free(s->launch_template);
    free(s->launch_template_version);
    free(s->instance_type);
    free(s->key_name);
    free_strv(s->security_group_ids, s->n_security_group_ids);
    free_strv(s->subnet_ids, s->n_subnet_ids);
    free(s->iam_instance_profile);
    free(s->user_data_file);
    for (size_t i = 0; i < s->n_tags; i++) {
        free(s->tags[i].key);
        free(s->tags[i].value);
    }
    free(s->tags);
    ec2_settings_init(s);
}

static char *trim_dup(const char *b, const char *e)
{
    while (b < e && isspace((unsigned char)*b))
        b++;
    while (e > b && isspace((unsigned char)e[-1]))
        e--;
    return strndup(b, (size_t)(e - b));
}

/* Splits "a, b,c" into a string vector. Empty items are an error (-2); -1 = out of memory. */
static int split_list(const char *text, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (text == NULL)
        return 0;
    const char *p = text;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        char *item = trim_dup(p, end);
        if (item == NULL)
            goto oom;
        if (item[0] == '\0') {
            free(item);
            if (comma == NULL && *n == 0 && end == p + strlen(p)) {
                /* whole value blank: an empty list */
                const char *q = text;
                while (isspace((unsigned char)*q))
                    q++;
                if (*q == '\0')
                    return 0;
            }
            free_strv(*out, *n);
            *out = NULL;
            *n = 0;
            return -2;
        }
        char **v = realloc(*out, (*n + 1) * sizeof(*v));
        if (v == NULL) {
            free(item);
            goto oom;
        }
        *out = v;
        (*out)[(*n)++] = item;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return 0;
oom:
    free_strv(*out, *n);
    *out = NULL;
    *n = 0;
    return -1;
}

static int has_space(const char *s)
{
    for (; *s; s++)
        if (isspace((unsigned char)*s) || (unsigned char)*s < 0x20)
            return 1;
    return 0;
}

static int load_list(struct cfg *c, const char *key, char ***out, size_t *n, char *err,
                     size_t errlen)
{
    char *text = NULL;
    if (cfg_get_str(c, "ec2", key, NULL, &text, err, errlen) != 0)
        return -1;
    int rc = split_list(text, out, n);
    free(text);
    if (rc == -1) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (rc == -2) {
        cfg_error_at(c, "ec2", key, err, errlen, "empty item in the comma-separated list");
        return -1;
    }
    for (size_t i = 0; i < *n; i++) {
        if (has_space((*out)[i]) || strlen((*out)[i]) > 255) {
            cfg_error_at(c, "ec2", key, err, errlen, "\"%.64s\" is not a valid id", (*out)[i]);
            return -1;
        }
    }
    return 0;
}

static int load_tags(struct cfg *c, struct ec2_settings *s, char *err, size_t errlen)
{
    char **items = NULL;
    size_t n = 0;
    char *text = NULL;
    int rc = -1;
    if (cfg_get_str(c, "ec2", "tags", NULL, &text, err, errlen) != 0)
        return -1;
    int r = split_list(text, &items, &n);
    free(text);
    if (r == -1) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (r == -2) {
        cfg_error_at(c, "ec2", "tags", err, errlen, "empty item in the comma-separated list");
        return -1;
    }
    if (n > 49) {
        cfg_error_at(c, "ec2", "tags", err, errlen, "at most 49 tags (EC2 allows 50, one is %s)",
                     GROUP_TAG);
        goto out;
    }
    if (n > 0) {
        s->tags = calloc(n, sizeof(*s->tags));
        if (s->tags == NULL) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        char *eq = strchr(items[i], '=');
        if (eq == NULL) {
            cfg_error_at(c, "ec2", "tags", err, errlen, "\"%.64s\" is not key=value", items[i]);
            goto out;
        }
        char *k = trim_dup(items[i], eq);
        char *v = trim_dup(eq + 1, eq + 1 + strlen(eq + 1));
        if (k == NULL || v == NULL) {
            free(k);
            free(v);
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        s->tags[s->n_tags].key = k;
        s->tags[s->n_tags].value = v;
        s->n_tags++;
        if (k[0] == '\0' || strlen(k) > 128 || strlen(v) > 256) {
            cfg_error_at(c, "ec2", "tags", err, errlen,
                         "tag \"%.64s\": keys are 1-128 characters, values up to 256", k);
            goto out;
        }
        if (strncmp(k, "aws:", 4) == 0 || strcmp(k, GROUP_TAG) == 0) {
            cfg_error_at(c, "ec2", "tags", err, errlen, "tag key \"%.64s\" is reserved", k);
            goto out;
        }
    }
    rc = 0;
out:
    free_strv(items, n);
    return rc;
}

int ec2_settings_load(struct cfg *c, struct ec2_settings *out, char *err, size_t errlen)
{
    struct ec2_settings s;
    ec2_settings_init(&s);
    long l;
    double d;
    int b;
    if (cfg_get_str(c, "ec2", "profile", NULL, &s.profile, err, errlen) ||
        cfg_get_str(c, "ec2", "region", NULL, &s.region, err, errlen) ||
        cfg_get_str(c, "ec2", "endpoint", NULL, &s.endpoint, err, errlen) ||
        cfg_get_str(c, "ec2", "image_id", NULL, &s.image_id, err, errlen) ||
        cfg_get_str(c, "ec2", "launch_template", NULL, &s.launch_template, err, errlen) ||
        cfg_get_str(c, "ec2", "launch_template_version", NULL, &s.launch_template_version, err,
                    errlen) ||
        cfg_get_str(c, "ec2", "instance_type", NULL, &s.instance_type, err, errlen) ||
        cfg_get_str(c, "ec2", "key_name", NULL, &s.key_name, err, errlen) ||
        cfg_get_str(c, "ec2", "iam_instance_profile", NULL, &s.iam_instance_profile, err, errlen) ||
        cfg_get_str(c, "ec2", "user_data_file", NULL, &s.user_data_file, err, errlen))
        goto fail;
    if (load_list(c, "security_group_ids", &s.security_group_ids, &s.n_security_group_ids, err,
                  errlen) ||
        load_list(c, "subnet_ids", &s.subnet_ids, &s.n_subnet_ids, err, errlen) ||
        load_tags(c, &s, err, errlen))
        goto fail;
    if (cfg_get_bool(c, "ec2", "use_public_ip", 0, &s.use_public_ip, err, errlen) ||
        cfg_get_bool(c, "ec2", "require_imdsv2", 1, &b, err, errlen))
        goto fail;
    s.require_imdsv2 = b;
    if (cfg_get_double(c, "ec2", "api_calls_per_second", 5.0, 0.1, 1000.0, &d, err, errlen))
        goto fail;
    s.api_calls_per_second = d;
    if (cfg_get_duration(c, "ec2", "call_timeout", 10000, 100, 120000, &s.call_timeout_ms, err,
                         errlen) ||
        cfg_get_duration(c, "ec2", "retry_base_delay", 200, 1, 10000, &s.retry_base_delay_ms, err,
                         errlen) ||
        cfg_get_duration(c, "ec2", "auth_failure_backoff", 60000, 0, 3600000,
                         &s.auth_failure_backoff_ms, err, errlen))
        goto fail;
    if (cfg_get_int(c, "ec2", "max_attempts", 4, 1, 10, &l, err, errlen))
        goto fail;
    s.max_attempts = (int)l;
    if (cfg_get_int(c, "ec2", "describe_page_size", 500, 5, 1000, &l, err, errlen))
        goto fail;
    s.describe_page_size = (int)l;

    /* cross-key checks */
    static const struct {
        const char *key;
        size_t off;
    } strs[] = {
        {"profile", offsetof(struct ec2_settings, profile)},
        {"region", offsetof(struct ec2_settings, region)},
        {"image_id", offsetof(struct ec2_settings, image_id)},
        {"launch_template", offsetof(struct ec2_settings, launch_template)},
        {"launch_template_version", offsetof(struct ec2_settings, launch_template_version)},
        {"instance_type", offsetof(struct ec2_settings, instance_type)},
        {"key_name", offsetof(struct ec2_settings, key_name)},
        {"iam_instance_profile", offsetof(struct ec2_settings, iam_instance_profile)},
    };
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        const char *v = *(char **)((char *)&s + strs[i].off);
        if (v != NULL && (v[0] == '\0' || has_space(v) || strlen(v) > 255)) {
            cfg_error_at(c, "ec2", strs[i].key, err, errlen, "\"%.64s\" is not a valid value", v);
            goto fail;
        }
    }
    if (s.image_id == NULL && s.launch_template == NULL) {
        cfg_error_at(c, "ec2", "image_id", err, errlen,
                     "missing: set image_id (an AMI) or launch_template");
        goto fail;
    }
    if (s.instance_type == NULL && s.launch_template == NULL) {
        cfg_error_at(c, "ec2", "instance_type", err, errlen,
                     "missing: set instance_type (e.g. t3.micro) or use a launch_template");
        goto fail;
    }
    if (s.launch_template_version != NULL && s.launch_template == NULL) {
        cfg_error_at(c, "ec2", "launch_template_version", err, errlen,
                     "set without launch_template");
        goto fail;
    }
    if (s.endpoint != NULL) {
        char host[512];
        if (aws_endpoint_host(s.endpoint, host, sizeof(host)) != 0) {
            cfg_error_at(c, "ec2", "endpoint", err, errlen,
                         "\"%.128s\" is not an http:// or https:// URL", s.endpoint);
            goto fail;
        }
    }
    if (s.user_data_file != NULL && access(s.user_data_file, R_OK) != 0) {
        cfg_error_at(c, "ec2", "user_data_file", err, errlen, "cannot read \"%.200s\": %s",
                     s.user_data_file, strerror(errno));
        goto fail;
    }
    *out = s;
    return 0;
fail:
    ec2_settings_release(&s);
    *out = s;
    return -1;
}

static int strdup_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (src == NULL)
        return 0;
    *dst = strdup(src);
    return *dst == NULL ? -1 : 0;
}

static int strv_copy(char ***dst, size_t *dn, char *const *src, size_t n)
{
    *dst = NULL;
    *dn = 0;
    if (n == 0)
        return 0;
    *dst = calloc(n, sizeof(char *));
    if (*dst == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        (*dst)[i] = strdup(src[i]);
        if ((*dst)[i] == NULL)
            return -1;
        *dn = i + 1;
    }
    return 0;
}

static int settings_copy(struct ec2_settings *d, const struct ec2_settings *s)
{
    *d = *s;
    d->profile = d->region = d->endpoint = d->image_id = d->launch_template = NULL;
    d->launch_template_version = d->instance_type = d->key_name = NULL;
    d->iam_instance_profile = d->user_data_file = NULL;
    d->security_group_ids = d->subnet_ids = NULL;
    d->n_security_group_ids = d->n_subnet_ids = 0;
    d->tags = NULL;
    d->n_tags = 0;
    if (strdup_opt(&d->profile, s->profile) || strdup_opt(&d->region, s->region) ||
        strdup_opt(&d->endpoint, s->endpoint) || strdup_opt(&d->image_id, s->image_id) ||
        strdup_opt(&d->launch_template, s->launch_template) ||
        strdup_opt(&d->launch_template_version, s->launch_template_version) ||
        strdup_opt(&d->instance_type, s->instance_type) || strdup_opt(&d->key_name, s->key_name) ||
        strdup_opt(&d->iam_instance_profile, s->iam_instance_profile) ||
        strdup_opt(&d->user_data_file, s->user_data_file) ||
        strv_copy(&d->security_group_ids, &d->n_security_group_ids, s->security_group_ids,
                  s->n_security_group_ids) ||
        strv_copy(&d->subnet_ids, &d->n_subnet_ids, s->subnet_ids, s->n_subnet_ids))
        return -1;
    if (s->n_tags > 0) {
        d->tags = calloc(s->n_tags, sizeof(*d->tags));
        if (d->tags == NULL)
            return -1;
        for (size_t i = 0; i < s->n_tags; i++) {
            d->tags[i].key = strdup(s->tags[i].key);
            d->tags[i].value = strdup(s->tags[i].value);
            d->n_tags = i + 1;
            if (d->tags[i].key == NULL || d->tags[i].value == NULL)
                return -1;
        }
    }
    return 0;
}

/* ---- small buffers ------------------------------------------------------------- */

struct buf {
    char *p;
    size_t n, cap, max;
    int failed;
};

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

static void buf_free(struct buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* Appends "&key=value" (the first pair without '&'), both percent-encoded. */
static void form_add(struct buf *f, const char *key, const char *value)
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

static void form_addf(struct buf *f, const char *value, const char *keyfmt, ...)
    __attribute__((format(printf, 3, 4)));
static void form_addf(struct buf *f, const char *value, const char *keyfmt, ...)
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
    form_add(f, key, value);
}

static size_t buf_write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
    struct buf *b = ud;
    size_t len = size * nmemb;
    buf_put(b, data, len);
    return b->failed ? 0 : len;
}

static char *base64(const unsigned char *in, size_t len)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t olen = 4 * ((len + 2) / 3) + 1;
    char *out = malloc(olen);
    if (out == NULL)
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

/* ---- the provider --------------------------------------------------------------- */

struct token_memo {
    char token[PROV_ID_MAX];
    int subnet;
};

struct ec2_provider {
    struct provider base; /* first: provider.c casts */
    pthread_mutex_t mu;
    struct ec2_settings s;
    char *group;
    int agent_port;
    char *region;
    char *endpoint; /* "https://host[:port]" */
    char *url;      /* endpoint + "/" */
    char host[512]; /* the Host header we sign */
    char *user_data_b64;
    struct aws_chain *chain;
    CURL *curl;
    /* token bucket */
    double bucket;
    int64_t bucket_ms;
    /* subnet spreading */
    size_t *subnet_live;
    size_t rr;
    struct token_memo memo[TOKEN_MEMO];
    size_t memo_next;
    /* auth-failure backoff */
    int64_t auth_block_until;
    char auth_msg[512];
    unsigned int seed;
    struct ec2_stats stats;
};

static const struct provider_ops ec2_ops;

void ec2_provider_stats(const struct provider *p, struct ec2_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (p == NULL || p->ops != &ec2_ops)
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
static int ec2_call(struct ec2_provider *p, const char *action, struct buf *form,
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
    buf_free(&reply);
    return rc;
}

static void form_start(struct buf *f, const char *action)
{
    memset(f, 0, sizeof(*f));
    f->max = MAX_FORM;
    form_add(f, "Action", action);
    form_add(f, "Version", EC2_API_VERSION);
}

static void to_prov(const struct ec2_provider *p, const struct ec2_instance *e,
                    struct prov_instance *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->id, sizeof(o->id), "%s", e->id);
    const char *ip = p->s.use_public_ip ? e->public_ip : e->private_ip;
    if (ip[0] != '\0') {
        if (strchr(ip, ':') != NULL)
            snprintf(o->address, sizeof(o->address), "[%.40s]:%d", ip, p->agent_port);
        else
            snprintf(o->address, sizeof(o->address), "%.40s:%d", ip, p->agent_port);
    }
    o->state = ec2_state_to_prov(e->state_code);
    o->launched_at_ms = e->launch_time_ms;
    snprintf(o->zone, sizeof(o->zone), "%.31s", e->zone);
    size_t tl = strlen(e->client_token);
    if (tl < sizeof(o->launch_token))
        memcpy(o->launch_token, e->client_token, tl + 1);
}

static int subnet_index(const struct ec2_provider *p, const char *subnet)
{
    for (size_t i = 0; i < p->s.n_subnet_ids; i++)
        if (strcmp(p->s.subnet_ids[i], subnet) == 0)
            return (int)i;
    return -1;
}

/*
 * DescribeInstances of the group, following nextToken. With token != NULL
 * only that launch's instances (any state but terminated-and-gone is kept);
 * otherwise the live ones, and the per-subnet counts are refreshed.
 */
static int describe_locked(struct ec2_provider *p, const char *token, struct prov_list *out)
{
    int rc = 0;
    char *next = NULL;
    struct ec2_response r = EC2_RESPONSE_INIT;
    size_t *counts = NULL;
    if (token == NULL && p->s.n_subnet_ids > 0) {
        counts = calloc(p->s.n_subnet_ids, sizeof(*counts));
        if (counts == NULL)
            return provider__fail(&p->base, PROV_ENOMEM, "out of memory");
    }
    char pagesize[16];
    snprintf(pagesize, sizeof(pagesize), "%d", p->s.describe_page_size);
    for (int page = 0;; page++) {
        if (page == MAX_PAGES) {
            rc = provider__fail(&p->base, PROV_ERETRY,
                                "ec2 DescribeInstances: more than %d pages, giving up", MAX_PAGES);
            goto out;
        }
        struct buf f;
        form_start(&f, "DescribeInstances");
        form_add(&f, "Filter.1.Name", "tag:" GROUP_TAG);
        form_add(&f, "Filter.1.Value.1", p->group);
        if (token != NULL) {
            form_add(&f, "Filter.2.Name", "client-token");
            form_add(&f, "Filter.2.Value.1", token);
        } else {
            static const char *const live[] = {"pending", "running", "shutting-down", "stopping",
                                               "stopped"};
            form_add(&f, "Filter.2.Name", "instance-state-name");
            for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
                form_addf(&f, live[i], "Filter.2.Value.%zu", i + 1);
        }
        form_add(&f, "MaxResults", pagesize);
        if (next != NULL)
            form_add(&f, "NextToken", next);
        rc = ec2_call(p, "DescribeInstances", &f, &r);
        buf_free(&f);
        if (rc != 0)
            goto out;
        for (size_t i = 0; i < r.n_instances; i++) {
            const struct ec2_instance *e = &r.instances[i];
            if (e->id[0] == '\0' || (e->group[0] != '\0' && strcmp(e->group, p->group) != 0))
                continue;
            if (token == NULL && e->state_code == EC2_TERMINATED)
                continue;
            struct prov_instance pi;
            to_prov(p, e, &pi);
            if (prov_list_push(out, &pi) != 0) {
                rc = provider__fail(&p->base, PROV_ENOMEM, "out of memory");
                goto out;
            }
            int si = counts ? subnet_index(p, e->subnet_id) : -1;
            if (si >= 0 && pi.state != PROV_GONE)
                counts[si]++;
        }
        if (r.next_token == NULL)
            break;
        if (next != NULL && strcmp(next, r.next_token) == 0) {
            rc = provider__fail(&p->base, PROV_ERETRY,
                                "ec2 DescribeInstances: the same nextToken twice, giving up");
            goto out;
        }
        free(next);
        next = r.next_token;
        r.next_token = NULL;
    }
    if (counts != NULL) {
        free(p->subnet_live);
        p->subnet_live = counts;
        counts = NULL;
    }
out:
    free(counts);
    free(next);
    ec2_response_release(&r);
    if (rc != 0)
        prov_list_release(out);
    return rc;
}

static int ec2_describe(struct provider *base, struct prov_list *out)
{
    struct ec2_provider *p = (struct ec2_provider *)base;
    pthread_mutex_lock(&p->mu);
    int rc = describe_locked(p, NULL, out);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* The subnet for a launch token: remembered if seen, else the one with the fewest instances. */
static int pick_subnet(struct ec2_provider *p, const char *token)
{
    if (p->s.n_subnet_ids == 0)
        return -1;
    for (size_t i = 0; i < TOKEN_MEMO; i++)
        if (strcmp(p->memo[i].token, token) == 0)
            return p->memo[i].subnet;
    size_t n = p->s.n_subnet_ids;
    size_t best = p->rr % n;
    for (size_t k = 0; k < n; k++) {
        size_t i = (p->rr + k) % n;
        size_t ci = p->subnet_live ? p->subnet_live[i] : 0;
        size_t cb = p->subnet_live ? p->subnet_live[best] : 0;
        if (ci < cb)
            best = i;
    }
    p->rr++;
    struct token_memo *m = &p->memo[p->memo_next++ % TOKEN_MEMO];
    snprintf(m->token, sizeof(m->token), "%s", token);
    m->subnet = (int)best;
    return (int)best;
}

/* One RunInstances of count instances with ClientToken token; appends them to out. */
static int run_part(struct ec2_provider *p, int count, const char *token, struct prov_list *out)
{
    struct provider *base = &p->base;
    struct ec2_response r = EC2_RESPONSE_INIT;
    struct buf f;
    char num[16];
    int rc;
    form_start(&f, "RunInstances");
    form_add(&f, "ClientToken", token);
    snprintf(num, sizeof(num), "%d", count);
    form_add(&f, "MinCount", num);
    form_add(&f, "MaxCount", num);
    const struct ec2_settings *s = &p->s;
    if (s->image_id != NULL)
        form_add(&f, "ImageId", s->image_id);
    if (s->launch_template != NULL) {
        form_add(&f,
                 strncmp(s->launch_template, "lt-", 3) == 0 ? "LaunchTemplate.LaunchTemplateId"
                                                            : "LaunchTemplate.LaunchTemplateName",
                 s->launch_template);
        if (s->launch_template_version != NULL)
            form_add(&f, "LaunchTemplate.Version", s->launch_template_version);
    }
    if (s->instance_type != NULL)
        form_add(&f, "InstanceType", s->instance_type);
    if (s->key_name != NULL)
        form_add(&f, "KeyName", s->key_name);
    int si = pick_subnet(p, token);
    if (si >= 0)
        form_add(&f, "SubnetId", s->subnet_ids[si]);
    for (size_t i = 0; i < s->n_security_group_ids; i++)
        form_addf(&f, s->security_group_ids[i], "SecurityGroupId.%zu", i + 1);
    if (p->user_data_b64 != NULL)
        form_add(&f, "UserData", p->user_data_b64);
    if (s->iam_instance_profile != NULL)
        form_add(&f,
                 strncmp(s->iam_instance_profile, "arn:", 4) == 0 ? "IamInstanceProfile.Arn"
                                                                  : "IamInstanceProfile.Name",
                 s->iam_instance_profile);
    if (s->require_imdsv2) {
        form_add(&f, "MetadataOptions.HttpTokens", "required");
        form_add(&f, "MetadataOptions.HttpEndpoint", "enabled");
    }
    form_add(&f, "TagSpecification.1.ResourceType", "instance");
    form_add(&f, "TagSpecification.1.Tag.1.Key", GROUP_TAG);
    form_add(&f, "TagSpecification.1.Tag.1.Value", p->group);
    for (size_t i = 0; i < s->n_tags; i++) {
        form_addf(&f, s->tags[i].key, "TagSpecification.1.Tag.%zu.Key", i + 2);
        form_addf(&f, s->tags[i].value, "TagSpecification.1.Tag.%zu.Value", i + 2);
    }
    rc = ec2_call(p, "RunInstances", &f, &r);
    if (rc == PROV_EFATAL && strcmp(r.code, "IdempotentParameterMismatch") == 0) {
        /* the token was used before with other parameters (e.g. another subnet
           after a restart): that earlier launch is the answer */
        char saved[sizeof(p->base.errmsg)];
        snprintf(saved, sizeof(saved), "%s", p->base.errmsg);
        struct prov_list found = PROV_LIST_INIT;
        int drc = describe_locked(p, token, &found);
        if (drc == 0 && found.n > 0) {
            log_info("ec2 launch token \"%s\" was used before: adopting its %zu instance(s)", token,
                     found.n);
            rc = 0;
            for (size_t i = 0; i < found.n && rc == 0; i++)
                if (prov_list_push(out, &found.items[i]) != 0)
                    rc = provider__fail(base, PROV_ENOMEM, "out of memory");
            prov_list_release(&found);
            goto out;
        }
        prov_list_release(&found);
        rc = drc != 0 ? drc
                      : provider__fail(base, PROV_EFATAL, "%s (and no instance carries the token)",
                                       saved);
        goto out;
    }
    if (rc != 0)
        goto out;
    for (size_t i = 0; i < r.n_instances; i++) {
        struct prov_instance pi;
        to_prov(p, &r.instances[i], &pi);
        if (prov_list_push(out, &pi) != 0) {
            rc = provider__fail(base, PROV_ENOMEM, "out of memory");
            goto out;
        }
        int k = subnet_index(p, r.instances[i].subnet_id);
        if (k >= 0 && p->subnet_live != NULL)
            p->subnet_live[k]++;
    }
    if (r.n_instances == 0)
        rc = provider__fail(base, PROV_ERETRY, "ec2 RunInstances returned no instances");
out:
    buf_free(&f);
    ec2_response_release(&r);
    return rc;
}

/*
 * The ClientToken of part k of a launch split over subnets: "<token>.<k>", or
 * when that would pass EC2's 64 characters, a prefix of the token and a hash
 * of all of it. Deterministic, so a re-sent launch sends the same tokens.
 */
static void part_token(const char *token, int k, char *out, size_t outlen)
{
    if (strlen(token) + 5 <= 64) {
        snprintf(out, outlen, "%s.%d", token, k);
        return;
    }
    uint8_t d[SIGV4_SHA256_LEN];
    char hex[2 * SIGV4_SHA256_LEN + 1];
    sigv4_sha256(token, strlen(token), d);
    sigv4_hex(d, sizeof(d), hex);
    snprintf(out, outlen, "%.40s-%.16s.%d", token, hex, k);
}

/*
 * With several subnets a launch of count > 1 is split into one RunInstances
 * per subnet (count spread evenly), so a group spreads even when the
 * controller asks for several at once. If some parts fail, the instances of
 * the others are returned (success with fewer instances): the controller
 * launches the rest later; the failed parts' tokens may be re-sent safely.
 */
static int ec2_launch(struct provider *base, int count, const char *token, struct prov_list *out)
{
    struct ec2_provider *p = (struct ec2_provider *)base;
    if (count > MAX_PER_CALL)
        return provider__fail(base, PROV_EINVAL, "ec2 launch: at most %d instances per call",
                              MAX_PER_CALL);
    pthread_mutex_lock(&p->mu);
    int parts = 1;
    if (count > 1 && p->s.n_subnet_ids > 1)
        parts = count < (int)p->s.n_subnet_ids ? count : (int)p->s.n_subnet_ids;
    int rc = 0;
    if (parts == 1) {
        rc = run_part(p, count, token, out);
    } else {
        int first_err = 0;
        char first_msg[sizeof(p->base.errmsg)] = "";
        for (int k = 0; k < parts; k++) {
            char tok[72];
            part_token(token, k, tok, sizeof(tok));
            int n = count / parts + (k < count % parts ? 1 : 0);
            size_t before = out->n;
            int prc = run_part(p, n, tok, out);
            if (prc != 0 && first_err == 0) {
                first_err = prc;
                snprintf(first_msg, sizeof(first_msg), "%s", p->base.errmsg);
            }
            /* the caller knows the launch by its own token */
            for (size_t i = before; i < out->n; i++)
                snprintf(out->items[i].launch_token, sizeof(out->items[i].launch_token), "%s",
                         token);
        }
        if (first_err != 0 && (out->n == 0 || first_err == PROV_ENOMEM)) {
            rc = provider__fail(base, first_err, "%s", first_msg);
        } else if (first_err != 0) {
            log_warn("ec2 launch \"%s\": %zu of %d instances launched; the rest failed: %s", token,
                     out->n, count, first_msg);
        }
    }
    if (rc != 0)
        prov_list_release(out);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static int terminate_batch(struct ec2_provider *p, const char *const *ids, size_t n)
{
    struct buf f;
    struct ec2_response r = EC2_RESPONSE_INIT;
    form_start(&f, "TerminateInstances");
    for (size_t i = 0; i < n; i++)
        form_addf(&f, ids[i], "InstanceId.%zu", i + 1);
    int rc = ec2_call(p, "TerminateInstances", &f, &r);
    if (rc == PROV_EFATAL && strcmp(r.code, "InvalidInstanceID.NotFound") == 0) {
        if (n == 1) {
            rc = 0; /* already gone */
        } else {
            /* one unknown id fails the whole call: go one by one */
            rc = 0;
            for (size_t i = 0; i < n && rc == 0; i++)
                rc = terminate_batch(p, &ids[i], 1);
        }
    }
    buf_free(&f);
    ec2_response_release(&r);
    return rc;
}

static int ec2_terminate(struct provider *base, const char *const *ids, size_t n)
{
    struct ec2_provider *p = (struct ec2_provider *)base;
    for (size_t i = 0; i < n; i++)
        if (ids[i] == NULL || ids[i][0] == '\0')
            return provider__fail(base, PROV_EINVAL, "ec2 terminate: empty instance id");
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    for (size_t off = 0; off < n && rc == 0; off += MAX_PER_CALL)
        rc = terminate_batch(p, ids + off, n - off > MAX_PER_CALL ? MAX_PER_CALL : n - off);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static void ec2_destroy(struct provider *base)
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

static const struct provider_ops ec2_ops = {
    .name = "ec2",
    .launch = ec2_launch,
    .terminate = ec2_terminate,
    .describe = ec2_describe,
    .destroy = ec2_destroy,
    .max_launch = MAX_PER_CALL,
    .max_terminate = MAX_PER_CALL,
};

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
        buf_free(&in);
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
    buf_free(&in);
    if (out.failed || out.n > MAX_USER_DATA) {
        snprintf(err, errlen, "user_data_file \"%.200s\": larger than 16 KB after substitution",
                 path);
        buf_free(&out);
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
    p->base.ops = &ec2_ops;
    pthread_mutex_init(&p->mu, NULL);
    ec2_settings_init(&p->s);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (settings_copy(&p->s, s) != 0 || (p->group = strdup(group_name)) == NULL) {
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
        p->user_data_b64 = base64((const unsigned char *)text, len);
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
    ec2_destroy(&p->base);
    return rc;
}
