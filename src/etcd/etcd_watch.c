/*
 * etcd_watch.c - watches (see etcd.h): one thread per watch with its own
 * curl handle, reading the gateway's streamed reply line by line.
 *
 * Separate from the unary transport (etcd.c) because it lives differently:
 * one long response per stream instead of one short one per call, its own
 * idle check, reconnection to the next endpoint and resumption at the last
 * delivered revision + 1, and a callback run from its thread.
 */
#include "etcd/etcd_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#include "common/banned.h"

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
    int64_t last_rx;  /* etcd__now_ms() of the stream's last byte (or its start) */
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
        etcd__kv_release(&ev[i].kv);
    free(ev);
}

/* Handles one "result" object of the stream. */
static int watch_result(struct etcd_watch *w, const json_t *res)
{
    int64_t hrev = 0, compact = 0;
    int created = 0, canceled = 0;
    if (!json_is_object(res) || etcd__header_revision(res, &hrev) ||
        etcd__j_int64(res, "compact_revision", &compact) ||
        etcd__j_bool(res, "created", &created) || etcd__j_bool(res, "canceled", &canceled))
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
        rc = etcd__kv_decode(json_object_get(e, "kv"), &ev[i].kv);
        if (rc)
            break;
        got = i + 1;
        json_t *prev = json_object_get(e, "prev_kv");
        if (prev && json_is_object(prev) &&
            etcd__j_int64(prev, "mod_revision", &ev[i].prev_revision))
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
    w->last_rx = etcd__now_ms();
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
    if (etcd__now_ms() - w->last_rx > w->h->idle_ms) {
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
    int rc = req && cr ? etcd__set_key_range(cr, w->key, w->key_len, w->prefix) : ETCD_ENOMEM;
    if (!rc && w->next_rev > 0)
        rc = etcd__j_set(cr, "start_revision", etcd__j_i64str(w->next_rev));
    if (!rc)
        rc = etcd__j_set(cr, "progress_notify", json_true());
    if (!rc)
        rc = etcd__j_set(cr, "prev_kv", json_true());
    if (!rc) {
        rc = etcd__j_set(req, "create_request", cr);
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
    etcd__curl_common(c, h, h->headers);
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
    w->last_rx = etcd__now_ms();
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
        int64_t t0 = etcd__now_ms();
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
        if (w->got_data && etcd__now_ms() - t0 >= 1000)
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
                etcd__sleep_ms(20);
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
    key_len = etcd__arg_len(key, key_len);
    if (!cb || !out || (!key && key_len) || (key_len == 0 && !prefix) || start_revision < 0) {
        etcd__put_err(err, errlen, "etcd watch: bad argument (callback, key or revision)");
        return ETCD_EINVAL;
    }
    struct etcd_watch *w = calloc(1, sizeof *w);
    if (!w) {
        etcd__put_err(err, errlen, "out of memory");
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
        etcd__put_err(err, errlen, "out of memory");
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
        etcd__put_err(err, errlen, "etcd watch: cannot create thread: %s", strerror(prc));
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
