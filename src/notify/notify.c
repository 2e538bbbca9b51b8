/*
 * notify.c - the webhook notifier (see notify.h).
 *
 * Workload: a handful of events a minute per group (activities are rare:
 * launches, scale-ins, failures), so one thread delivering serially is
 * plenty; the queue is bounded so that a receiver down for hours costs a
 * fixed amount of memory (events beyond it are counted as dropped, never
 * waited for). The controller's side is one mutex and one memcpy.
 */
#include "notify/notify.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/stats.h"
#include "common/util.h"
#include "group/group.h"
#include "provider/sigv4.h"
#include "store/store.h"

#include "common/banned.h"

#define KEY_MAX (64 * 1024) /* a secret file larger than this is refused */

struct event {
    char url[GROUP_URL_MAX];
    char secret_file[GROUP_PATH_MAX];
    char name[24]; /* event name */
    char id[STORE_NAME_MAX + 48];
    char group[STORE_NAME_MAX];
    char *body;   /* owned */
    int attempts; /* made so far */
    int max_retries;
    int64_t retry_base_ms, retry_max_ms, timeout_ms;
    int64_t next_ms; /* monotonic: due at */
    int busy;        /* being delivered (stays in its slot) */
};

struct notify {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int stopping;
    struct event **q; /* cap slots, NULL = free */
    size_t cap, n;
};

/* ---- events ------------------------------------------------------------------------------- */

const char *notify_event_name(const char *kind, const char *status)
{
    if (strcmp(status, "skipped") == 0)
        return "skipped";
    if (strcmp(status, "failed") == 0 || strcmp(kind, "error") == 0)
        return "failure";
    static const char *const kinds[] = {"launch", "terminate", "replace", "scale", "hook", "panic"};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(kind, kinds[i]) == 0)
            return strcmp(status, "retrying") == 0 ? NULL : kinds[i];
    return NULL;
}

void notify_sign(const void *key, size_t keylen, const void *body, size_t len, char *out,
                 size_t outlen)
{
    uint8_t mac[SIGV4_SHA256_LEN];
    char hex[2 * SIGV4_SHA256_LEN + 1];
    sigv4_hmac_sha256(key, keylen, body, len, mac);
    sigv4_hex(mac, sizeof(mac), hex);
    snprintf(out, outlen, "sha256=%s", hex);
}

static struct event *event_new(const struct group_settings *g, const struct store_activity *a,
                               const char *name)
{
    struct event *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    snprintf(e->url, sizeof(e->url), "%s", g->notify.url);
    snprintf(e->secret_file, sizeof(e->secret_file), "%s", g->notify.secret_file);
    snprintf(e->name, sizeof(e->name), "%s", name);
    snprintf(e->group, sizeof(e->group), "%s", a->group);
    unsigned char raw[8] = {0};
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        memset(raw, 0, sizeof(raw));
    char hex[2 * sizeof(raw) + 1];
    sigv4_hex(raw, sizeof(raw), hex);
    snprintf(e->id, sizeof(e->id), "%s-%" PRId64 "-%s", a->group, a->id, hex);
    /* 0: the defaults (group.h), so that settings zeroed by hand still deliver sanely */
    e->max_retries = g->notify.max_retries;
    e->retry_base_ms = g->notify.retry_base_ms > 0 ? g->notify.retry_base_ms : 1000;
    e->retry_max_ms = g->notify.retry_max_ms > 0 ? g->notify.retry_max_ms : 300 * 1000;
    e->timeout_ms = g->notify.timeout_ms > 0 ? g->notify.timeout_ms : 5000;
    if (e->retry_max_ms < e->retry_base_ms)
        e->retry_max_ms = e->retry_base_ms;
    char at[40];
    clk_iso8601(a->at_ms, at, sizeof(at));
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:s}", "event", name, "group",
                  a->group, "id", e->id, "at", at, "kind", a->kind, "status", a->status, "cause",
                  a->cause, "from", a->from_count, "to", a->to_count, "detail", a->detail);
    e->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (e->body == NULL) {
        free(e);
        return NULL;
    }
    return e;
}

static void event_free(struct event *e)
{
    if (e) {
        free(e->body);
        free(e);
    }
}

int notify_activity(struct notify *n, const struct group_settings *g,
                    const struct store_activity *a)
{
    if (n == NULL || g->notify.url[0] == '\0')
        return 1;
    const char *name = notify_event_name(a->kind, a->status);
    if (name == NULL || !group_list_has(g->notify.events, name))
        return 1;
    struct event *e = event_new(g, a, name);
    if (e == NULL)
        return NOTIFY_ENOMEM;
    e->next_ms = clk_mono_ms();
    pthread_mutex_lock(&n->mu);
    size_t slot = n->cap;
    for (size_t i = 0; i < n->cap && slot == n->cap; i++)
        if (n->q[i] == NULL)
            slot = i;
    if (slot == n->cap || n->stopping) {
        pthread_mutex_unlock(&n->mu);
        stats.notify_dropped++;
        log_warn("notify: queue full (%zu events): %s event of group \"%s\" dropped", n->cap, name,
                 a->group);
        event_free(e);
        return NOTIFY_EFULL;
    }
    n->q[slot] = e;
    n->n++;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
    return 0;
}

void notify_on_activity(void *arg, const struct group_settings *g, const struct store_activity *a)
{
    notify_activity(arg, g, a);
}

size_t notify_pending(struct notify *n)
{
    pthread_mutex_lock(&n->mu);
    size_t k = n->n;
    pthread_mutex_unlock(&n->mu);
    return k;
}

/* ---- delivery ----------------------------------------------------------------------------- */

static size_t discard(char *p, size_t size, size_t nmemb, void *arg)
{
    (void)p;
    (void)arg;
    return size * nmemb;
}

/* One attempt: 0 when the receiver answered 2xx, else -1 with the reason in why. */
static int deliver(const struct event *e, char *why, size_t whylen)
{
    char sig[96] = "", hdr[160];
    if (e->secret_file[0]) {
        char *key = NULL, err[256];
        size_t len = 0;
        if (util_read_file(e->secret_file, KEY_MAX, &key, &len, err, sizeof(err)) != 0) {
            snprintf(why, whylen, "cannot read secret_file: %s", err);
            return -1;
        }
        while (len > 0 && (key[len - 1] == '\n' || key[len - 1] == '\r'))
            len--;
        notify_sign(key, len, e->body, strlen(e->body), sig, sizeof(sig));
        memset(key, 0, len);
        free(key);
    }
    CURL *h = curl_easy_init();
    if (h == NULL) {
        snprintf(why, whylen, "curl_easy_init failed");
        return -1;
    }
    struct curl_slist *hs = NULL, *t;
    int ok = 1;
#define ADD(...)                                                                                   \
    do {                                                                                           \
        snprintf(hdr, sizeof(hdr), __VA_ARGS__);                                                   \
        if (ok && (t = curl_slist_append(hs, hdr)) != NULL)                                        \
            hs = t;                                                                                \
        else                                                                                       \
            ok = 0;                                                                                \
    } while (0)
    ADD("Content-Type: application/json");
    ADD("X-Asgd-Event: %s", e->name);
    ADD("X-Asgd-Delivery: %s", e->id);
    ADD("X-Asgd-Attempt: %d", e->attempts + 1);
    if (sig[0])
        ADD("X-Asgd-Signature: %s", sig);
#undef ADD
    long code = 0;
    CURLcode rc = CURLE_OUT_OF_MEMORY;
    if (ok) {
        curl_easy_setopt(h, CURLOPT_URL, e->url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hs);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, e->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(e->body));
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)e->timeout_ms);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
#if LIBCURL_VERSION_NUM >= 0x075500
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
        rc = curl_easy_perform(h);
        if (rc == CURLE_OK)
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    }
    curl_slist_free_all(hs);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK) {
        snprintf(why, whylen, "%s", curl_easy_strerror(rc));
        return -1;
    }
    if (code < 200 || code > 299) {
        snprintf(why, whylen, "HTTP %ld", code);
        return -1;
    }
    return 0;
}

/* The due event that waited longest (not busy), or NULL with *wait_ms until the next one. */
static struct event *next_due(struct notify *n, int64_t now, int64_t *wait_ms)
{
    struct event *best = NULL;
    *wait_ms = -1;
    for (size_t i = 0; i < n->cap; i++) {
        struct event *e = n->q[i];
        if (e == NULL || e->busy)
            continue;
        if (e->next_ms <= now) {
            if (best == NULL || e->next_ms < best->next_ms)
                best = e;
        } else if (*wait_ms < 0 || e->next_ms - now < *wait_ms) {
            *wait_ms = e->next_ms - now;
        }
    }
    return best;
}

static void remove_event(struct notify *n, struct event *e)
{
    for (size_t i = 0; i < n->cap; i++)
        if (n->q[i] == e) {
            n->q[i] = NULL;
            n->n--;
            return;
        }
}

static void *notify_main(void *arg)
{
    struct notify *n = arg;
    pthread_mutex_lock(&n->mu);
    while (!n->stopping) {
        int64_t wait_ms;
        struct event *e = next_due(n, clk_mono_ms(), &wait_ms);
        if (e == NULL) {
            if (wait_ms < 0) {
                pthread_cond_wait(&n->cv, &n->mu);
            } else {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_sec += (time_t)(wait_ms / 1000);
                ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&n->cv, &n->mu, &ts);
            }
            continue;
        }
        e->busy = 1;
        pthread_mutex_unlock(&n->mu);
        char why[320];
        int rc = deliver(e, why, sizeof(why));
        pthread_mutex_lock(&n->mu);
        e->busy = 0;
        e->attempts++;
        if (rc == 0) {
            stats.notify_delivered++;
            log_debug("notify: %s event of group \"%s\" delivered (attempt %d)", e->name, e->group,
                      e->attempts);
            remove_event(n, e);
            event_free(e);
            continue;
        }
        stats.notify_failed++;
        if (e->attempts > e->max_retries) {
            stats.notify_dead_letter++;
            log_warn("notify: %s event %s of group \"%s\" dead-lettered after %d attempts: %s",
                     e->name, e->id, e->group, e->attempts, why);
            remove_event(n, e);
            event_free(e);
            continue;
        }
        int shift = e->attempts - 1 < 30 ? e->attempts - 1 : 30;
        int64_t delay = e->retry_base_ms << shift;
        if (delay > e->retry_max_ms || delay <= 0)
            delay = e->retry_max_ms;
        e->next_ms = clk_mono_ms() + delay;
        log_info("notify: %s event of group \"%s\" not delivered (attempt %d: %s); retry in "
                 "%" PRId64 " ms",
                 e->name, e->group, e->attempts, why, delay);
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

int notify_new(size_t queue_cap, struct notify **out)
{
    struct notify *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return NOTIFY_ENOMEM;
    n->cap = queue_cap ? queue_cap : NOTIFY_QUEUE_DEFAULT;
    n->q = calloc(n->cap, sizeof(*n->q));
    if (n->q == NULL) {
        free(n);
        return NOTIFY_ENOMEM;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_mutex_init(&n->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&n->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&n->thread, NULL, notify_main, n) != 0) {
        pthread_mutex_destroy(&n->mu);
        pthread_cond_destroy(&n->cv);
        free(n->q);
        free(n);
        return NOTIFY_ESTATE;
    }
    *out = n;
    return 0;
}

void notify_free(struct notify *n)
{
    if (n == NULL)
        return;
    pthread_mutex_lock(&n->mu);
    n->stopping = 1;
    pthread_cond_broadcast(&n->cv);
    pthread_mutex_unlock(&n->mu);
    pthread_join(n->thread, NULL);
    if (n->n)
        log_warn("notify: %zu undelivered event%s dropped at shutdown", n->n, n->n == 1 ? "" : "s");
    for (size_t i = 0; i < n->cap; i++)
        event_free(n->q[i]);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    free(n->q);
    free(n);
}
