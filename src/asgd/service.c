/*
 * service.c - READY/STATUS/WATCHDOG/STOPPING for systemd (see service.h).
 *
 * Why a thread of its own and not a ping from the controller loop: the
 * controllers are one thread per group and the node may run none (a cluster
 * node owning nothing yet), while systemd wants one process-wide heartbeat.
 * Pinging from here only when every controller's last tick is fresh gives the
 * same guarantee (a wedged controller stops the pings) without touching the
 * controller loop, and without a ping while any one group is stuck.
 */
#include "asgd/service.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/sdnotify.h"
#include "controller/ctl.h"
#include "group/group.h"
#include "node/node.h"

#include "common/banned.h"

/* Without a watchdog the STATUS line is refreshed this often. */
#define STATUS_EVERY_MS 5000

struct svc {
    struct node *node;
    int64_t period_ms;  /* between two checks */
    int64_t max_age_ms; /* a tick older than this is a wedged controller; 0: no watchdog */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    int stop;
    int wedged; /* last check: pings withheld (logged once per episode) */
    /* groups seen running without a first tick yet, and since when: a group just started
       (or acquired) is not stuck, but one whose first tick never ends is */
    struct unticked *unticked;
    size_t n_unticked;
};

struct unticked {
    char name[GROUP_NAME_MAX];
    int64_t since_ms;
};

/* Appends to buf (NUL-terminated, len bytes) without ever overflowing; 0, or -1 when full. */
static int append(char *buf, size_t len, size_t *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int append(char *buf, size_t len, size_t *at, const char *fmt, ...)
{
    if (*at >= len)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *at, len - *at, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len - *at) {
        *at = len;
        return -1;
    }
    *at += (size_t)n;
    return 0;
}

/* When group name was first seen without a tick (now if it is new to the table). */
static int64_t unticked_since(struct svc *s, struct unticked *next, size_t *n_next,
                              const char *name, int64_t now)
{
    int64_t since = now;
    for (size_t i = 0; i < s->n_unticked; i++)
        if (strcmp(s->unticked[i].name, name) == 0)
            since = s->unticked[i].since_ms;
    if (next) {
        snprintf(next[*n_next].name, sizeof(next[*n_next].name), "%s", name);
        next[(*n_next)++].since_ms = since;
    }
    return since;
}

/*
 * One pass over the running groups: the STATUS text into buf and, with s, whether every
 * controller ticked within s->max_age_ms (1) or which did not (0, reason in why).
 */
static int scan(struct svc *s, struct node *node, char *buf, size_t len, char *why, size_t wlen)
{
    int ok = 1;
    buf[0] = '\0';
    char **names = NULL;
    size_t n = 0;
    if (node_group_names(node, &names, &n) != 0) {
        snprintf(buf, len, "running (group list unavailable: out of memory)");
        return 1; /* no evidence of a stuck controller */
    }
    struct unticked *next = s && n ? calloc(n, sizeof(*next)) : NULL;
    size_t n_next = 0;
    int64_t now = clk_wall_ms();
    size_t at = 0;
    int full = append(buf, len, &at, "%zu group%s%s", n, n == 1 ? "" : "s", n ? ":" : "") != 0;
    for (size_t i = 0; i < n; i++) {
        struct fleet *fleet;
        struct ctl *ctl;
        void *h;
        if (node_group_ref(node, names[i], &fleet, &ctl, &h) != 0)
            continue; /* stopped meanwhile */
        struct ctl_status st;
        ctl_get_status(ctl, &st);
        node_group_unref(node, h);
        if (s && s->max_age_ms > 0 && ok) {
            int64_t last = st.last_tick_ms;
            int64_t age = last ? now - last : now - unticked_since(s, next, &n_next, names[i], now);
            if (age > s->max_age_ms) {
                ok = 0;
                snprintf(why, wlen, "group \"%s\": %s for %" PRId64 " ms", names[i],
                         last ? "no controller tick" : "first controller tick not done", age);
            }
        }
        if (full)
            continue;
        /* a group name is at most 48 bytes: " ..." marks the entries that did not fit */
        size_t mark = at;
        full = append(buf, len, &at, "%s %s %d/%d in service", i ? "," : "", names[i],
                      st.in_service, st.desired) != 0;
        if (!full && (st.pending || st.unhealthy || st.terminating))
            full = append(buf, len, &at, " (%d pending, %d unhealthy, %d terminating)", st.pending,
                          st.unhealthy, st.terminating) != 0;
        if (!full && st.panic)
            full = append(buf, len, &at, " PANIC") != 0;
        if (full) {
            at = mark < len ? mark : len - 1;
            buf[at] = '\0';
            if (len - at > 4)
                snprintf(buf + at, len - at, " ...");
        }
    }
    if (s) {
        free(s->unticked);
        s->unticked = next;
        s->n_unticked = n_next;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return ok;
}

void svc_status_line(struct node *node, char *buf, size_t len)
{
    if (len > 0)
        scan(NULL, node, buf, len, NULL, 0);
}

/* One check: STATUS always, WATCHDOG=1 only while every controller ticks. */
static void check(struct svc *s)
{
    char status[1024], why[256] = "";
    int ok = scan(s, s->node, status, sizeof(status), why, sizeof(why));
    if (!ok) {
        if (!s->wedged)
            log_error("watchdog: %s: no more pings to systemd (it restarts asgd after "
                      "WatchdogSec; the instances keep running)",
                      why);
        s->wedged = 1;
        sdn_notifyf("STATUS=controller stuck: %s; %s", why, status);
        return;
    }
    if (s->wedged)
        log_info("watchdog: every controller ticks again: pinging systemd");
    s->wedged = 0;
    sdn_notifyf("STATUS=%s%s", status, s->max_age_ms ? "\nWATCHDOG=1" : "");
}

static void *svc_main(void *arg)
{
    struct svc *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        pthread_mutex_unlock(&s->mu);
        check(s);
        pthread_mutex_lock(&s->mu);
        struct timespec ts = clk_mono_after(s->period_ms);
        while (!s->stop && pthread_cond_timedwait(&s->cv, &s->mu, &ts) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int svc_start(struct node *node, struct svc **out)
{
    *out = NULL;
    char status[1024];
    svc_status_line(node, status, sizeof(status));
    int rc = sdn_notifyf("READY=1\nSTATUS=%s", status);
    if (rc == 1)
        return 0; /* not under systemd */
    if (rc < 0)
        log_warn("cannot notify systemd (NOTIFY_SOCKET): %s", strerror(-rc));
    struct svc *s = calloc(1, sizeof(*s));
    if (!s)
        return -1;
    s->node = node;
    uint64_t wd = sdn_watchdog_usec();
    if (wd > 0) {
        int64_t wd_ms = (int64_t)(wd / 1000);
        s->period_ms = wd_ms / 2 > 0 ? wd_ms / 2 : 1;
        s->max_age_ms = wd_ms > SVC_MIN_TICK_AGE_MS ? wd_ms : SVC_MIN_TICK_AGE_MS;
        log_info("systemd watchdog: pinging every %" PRId64 " ms while every controller ticked "
                 "within %" PRId64 " ms",
                 s->period_ms, s->max_age_ms);
    } else {
        s->period_ms = STATUS_EVERY_MS;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&s->thread, NULL, svc_main, s) != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        free(s);
        return -1;
    }
    *out = s;
    return 0;
}

void svc_stop(struct svc *s)
{
    sdn_notify("STOPPING=1\nSTATUS=stopping (instances keep running)");
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->unticked);
    free(s);
}
