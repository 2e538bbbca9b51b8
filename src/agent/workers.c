/*
 * workers.c - the agent's background threads (load sampler, application
 * health probe) and its HTTP uses of libcurl (health check, IMDSv2).
 *
 * Everything that can be slow happens here, off the gRPC serving thread: a
 * dead application URL costs the health thread one timeout per probe and
 * leaves GetStatus answering instantly from the last result. Only state
 * transitions are logged (HAProxy's habit), never every probe.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "agent/agent-int.h"
#include "agent/agent.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/banned.h"

#define AGENT_TRIM_INTERVAL_MS 5000

/* ------------------------------------------------------------------------ */
/* sleeper                                                                  */
/* ------------------------------------------------------------------------ */

void agent__sleeper_init(struct agent__sleeper *s)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->mu, NULL);
    s->stop = 0;
}

void agent__sleeper_release(struct agent__sleeper *s)
{
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
}

int agent__sleeper_wait(struct agent__sleeper *s, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (ms < 0)
        ms = 0;
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
            break;
    }
    int stop = s->stop;
    pthread_mutex_unlock(&s->mu);
    return stop;
}

void agent__sleeper_stop(struct agent__sleeper *s)
{
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ------------------------------------------------------------------------ */
/* sampler                                                                  */
/* ------------------------------------------------------------------------ */

struct agent_sampler {
    struct agent__sleeper sl;
    pthread_t thread;
    struct agent_load *load;
    struct agent_state *st;
};

static void sample_once(struct agent_sampler *s, int *was_valid)
{
    struct agent_sample smp;
    agent_load_sample(s->load, clk_mono_ms(), &smp);
    if (smp.valid != *was_valid) {
        if (smp.valid)
            log_info("load measurable again: %.1f", smp.load);
        else
            log_warn("load unavailable: %s", smp.error);
        *was_valid = smp.valid;
    }
    agent_state_set_sample(s->st, &smp);
}

static void *sampler_main(void *arg)
{
    struct agent_sampler *s = arg;
    int was_valid = 1;
    int interval = agent_load_interval_ms(s->load);
    int64_t last_trim = clk_mono_ms();
    do {
        sample_once(s, &was_valid);
        /* A hostile client can make gRPC buffer a huge request before it is
         * refused (RESOURCE_EXHAUSTED); glibc keeps the freed pages in its
         * arenas. Give them back every few seconds so the agent's RSS returns
         * to idle after abuse (cheap when there is nothing to trim). */
        int64_t now = clk_mono_ms();
        if (now - last_trim >= AGENT_TRIM_INTERVAL_MS) {
            malloc_trim(0);
            last_trim = now;
        }
    } while (!agent__sleeper_wait(&s->sl, interval));
    return NULL;
}

struct agent_sampler *agent_sampler_start(struct agent_load *load, struct agent_state *st)
{
    struct agent_sampler *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    agent__sleeper_init(&s->sl);
    s->load = load;
    s->st = st;
    /* the first sample is taken before the server answers anything */
    int was_valid = 1;
    sample_once(s, &was_valid);
    if (pthread_create(&s->thread, NULL, sampler_main, s) != 0) {
        agent__sleeper_release(&s->sl);
        free(s);
        return NULL;
    }
    return s;
}

void agent_sampler_stop(struct agent_sampler *s)
{
    if (!s)
        return;
    agent__sleeper_stop(&s->sl);
    pthread_join(s->thread, NULL);
    agent__sleeper_release(&s->sl);
    free(s);
}

/* ------------------------------------------------------------------------ */
/* HTTP                                                                     */
/* ------------------------------------------------------------------------ */

struct body {
    char buf[512];
    size_t len;
    int overflow;
};

static size_t keep_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct body *b = userdata;
    size_t n = size * nmemb;
    if (!b)
        return n; /* discard */
    if (n > sizeof(b->buf) - 1 - b->len) {
        b->overflow = 1;
        return 0; /* abort: no legitimate answer is that long */
    }
    memcpy(b->buf + b->len, ptr, n);
    b->len += n;
    b->buf[b->len] = '\0';
    return n;
}

static CURL *easy_new(const char *url, long timeout_ms, struct body *b)
{
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    return c;
}

int agent_http_check(const char *url, int timeout_ms, char *err, size_t errlen)
{
    CURL *c = easy_new(url, timeout_ms, NULL);
    if (!c) {
        snprintf(err, errlen, "cannot create a curl handle");
        return 0;
    }
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "%s", curl_easy_strerror(rc));
        return 0;
    }
    if (code < 200 || code > 299) {
        snprintf(err, errlen, "HTTP %ld", code);
        return 0;
    }
    err[0] = '\0';
    return 1;
}

struct agent_health {
    struct agent__sleeper sl;
    pthread_t thread;
    char *url;
    int timeout_ms, interval_ms;
    struct agent_state *st;
};

static void *health_main(void *arg)
{
    struct agent_health *h = arg;
    int last = -1;
    do {
        char why[256];
        int ok = agent_http_check(h->url, h->timeout_ms, why, sizeof(why));
        if (ok != last) {
            if (ok)
                log_info("application at \"%s\" is healthy", h->url);
            else
                log_warn("application at \"%s\" is not healthy: %s", h->url, why);
            last = ok;
        }
        agent_state_set_app_healthy(h->st, ok);
    } while (!agent__sleeper_wait(&h->sl, h->interval_ms));
    return NULL;
}

struct agent_health *agent_health_start(const char *url, int timeout_ms, int interval_ms,
                                        struct agent_state *st)
{
    struct agent_health *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->url = strdup(url);
    if (!h->url) {
        free(h);
        return NULL;
    }
    h->timeout_ms = timeout_ms;
    h->interval_ms = interval_ms;
    h->st = st;
    agent__sleeper_init(&h->sl);
    if (pthread_create(&h->thread, NULL, health_main, h) != 0) {
        agent__sleeper_release(&h->sl);
        free(h->url);
        free(h);
        return NULL;
    }
    return h;
}

void agent_health_stop(struct agent_health *h)
{
    if (!h)
        return;
    agent__sleeper_stop(&h->sl);
    pthread_join(h->thread, NULL);
    agent__sleeper_release(&h->sl);
    free(h->url);
    free(h);
}

/* ------------------------------------------------------------------------ */
/* IMDSv2                                                                   */
/* ------------------------------------------------------------------------ */

static int imds_request(const char *url, const char *header, int put, long timeout_ms,
                        struct body *b)
{
    CURL *c = easy_new(url, timeout_ms, b);
    if (!c)
        return -1;
    struct curl_slist *h = curl_slist_append(NULL, header);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (put) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    }
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    return (rc == CURLE_OK && code == 200 && !b->overflow) ? 0 : -1;
}

int agent_imds_instance_id(char *out, size_t size, int timeout_ms)
{
    const char *dis = getenv("AWS_EC2_METADATA_DISABLED");
    if (dis && strcasecmp(dis, "true") == 0)
        return -1;
    const char *ep = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (!ep || !ep[0])
        ep = "http://169.254.169.254";
    size_t eplen = strlen(ep);
    while (eplen > 0 && ep[eplen - 1] == '/')
        eplen--;
    int64_t deadline = clk_mono_ms() + timeout_ms;
    char url[1024], hdr[600];
    struct body tok = {.len = 0}, id = {.len = 0};

    snprintf(url, sizeof(url), "%.*s/latest/api/token", (int)eplen, ep);
    if (imds_request(url, "X-aws-ec2-metadata-token-ttl-seconds: 21600", 1, timeout_ms, &tok))
        return -1;
    while (tok.len > 0 && (tok.buf[tok.len - 1] == '\n' || tok.buf[tok.len - 1] == '\r'))
        tok.buf[--tok.len] = '\0';
    if (tok.len == 0 || strpbrk(tok.buf, "\r\n"))
        return -1;
    int64_t left = deadline - clk_mono_ms();
    if (left <= 0)
        return -1;
    snprintf(url, sizeof(url), "%.*s/latest/meta-data/instance-id", (int)eplen, ep);
    snprintf(hdr, sizeof(hdr), "X-aws-ec2-metadata-token: %s", tok.buf);
    if (imds_request(url, hdr, 0, (long)left, &id))
        return -1;
    if (id.len == 0 || id.len > 64 || id.len >= size)
        return -1;
    for (size_t i = 0; i < id.len; i++) {
        char ch = id.buf[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-'))
            return -1;
    }
    memcpy(out, id.buf, id.len + 1);
    return 0;
}
