/*
 * victims.c - the termination policies (see victims.h).
 *
 * Each pick narrows a pool (every candidate not yet picked) rule by rule:
 * a rule scores the pool's members and keeps those with the lowest score.
 * Zones are numbered once per call and counted as picks remove instances, so
 * a scale-in of n among k costs O(n * k * rules): a few million steps for the
 * largest group (4,096 instances), none of them a system call.
 */
#include "controller/victims.h"

#include <stdlib.h>
#include <string.h>

#include "common/banned.h"

const char *const victims_policy_names[VICTIMS_POLICY_COUNT + 1] = {
    [VICTIMS_DEFAULT] = "default",
    [VICTIMS_OLDEST_INSTANCE] = "oldest_instance",
    [VICTIMS_NEWEST_INSTANCE] = "newest_instance",
    [VICTIMS_OLDEST_LAUNCH_CONFIG] = "oldest_launch_config",
    [VICTIMS_CLOSEST_TO_NEXT_HOUR] = "closest_to_next_instance_hour",
    [VICTIMS_POLICY_COUNT] = NULL,
};

#define HOUR_MS (3600LL * 1000)

size_t victims_parse(const char *list, int *out, size_t max)
{
    size_t n = 0;
    for (const char *p = list ? list : ""; *p && n < max;) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t len = strcspn(p, ", ");
        for (int i = 0; i < VICTIMS_POLICY_COUNT && len; i++)
            if (strlen(victims_policy_names[i]) == len &&
                strncmp(p, victims_policy_names[i], len) == 0)
                out[n++] = i;
        p += len;
    }
    if (n == 0 && max > 0)
        out[n++] = VICTIMS_DEFAULT;
    return n;
}

enum { OUT = 0, TAKEN = 1, POOL = 2 };

struct pick {
    const struct victims_in *in;
    const struct victim_cand *cand;
    size_t k;
    unsigned char *st; /* OUT, TAKEN or POOL per candidate */
    size_t *zone;      /* zone number per candidate */
    size_t *zcount;    /* candidates not taken per zone number */
    int zoned;         /* some candidate carries a zone */
    size_t pool;       /* members in the pool */
    const char *why;   /* the rule that brought the pool to one */
};

typedef int64_t (*score_fn)(const struct pick *p, size_t i);

/* Keeps the pool members of lowest score; notes rule when it leaves one of several. */
static void narrow(struct pick *p, score_fn score, const char *rule)
{
    if (p->pool <= 1)
        return;
    int64_t best = INT64_MAX;
    int any = 0;
    for (size_t i = 0; i < p->k; i++)
        if (p->st[i] == POOL) {
            int64_t s = score(p, i);
            if (!any || s < best)
                best = s;
            any = 1;
        }
    size_t kept = 0;
    for (size_t i = 0; i < p->k; i++)
        if (p->st[i] == POOL) {
            if (score(p, i) != best)
                p->st[i] = OUT;
            else
                kept++;
        }
    if (kept == 1 && p->pool > 1)
        p->why = rule;
    p->pool = kept;
}

static int empty(const char *s)
{
    return s == NULL || s[0] == '\0';
}

static int64_t s_unhealthy(const struct pick *p, size_t i)
{
    return p->cand[i].unhealthy ? 0 : 1;
}

static int64_t s_zone(const struct pick *p, size_t i)
{
    return -(int64_t)p->zcount[p->zone[i]];
}

static int64_t s_booting_newest(const struct pick *p, size_t i)
{
    return p->cand[i].booting ? -p->cand[i].launched_at_ms : INT64_MAX;
}

static int64_t s_oldest(const struct pick *p, size_t i)
{
    return p->cand[i].launched_at_ms;
}

static int64_t s_newest(const struct pick *p, size_t i)
{
    return -p->cand[i].launched_at_ms;
}

static int64_t s_old_config(const struct pick *p, size_t i)
{
    const char *cur = p->in->launch_config, *lc = p->cand[i].launch_config;
    if (empty(cur))
        return 0; /* the current one unknown: nothing to tell apart */
    return empty(lc) || strcmp(lc, cur) != 0 ? 0 : 1;
}

/* Time left in the instance's current hour since launch. */
static int64_t s_next_hour(const struct pick *p, size_t i)
{
    int64_t up = p->in->now_ms - p->cand[i].launched_at_ms;
    if (up < 0)
        up = 0;
    return HOUR_MS - up % HOUR_MS;
}

static int64_t s_random(const struct pick *p, size_t i)
{
    uint64_t h = 1469598103934665603ULL ^ p->in->seed;
    for (const unsigned char *c = (const unsigned char *)p->cand[i].id; *c; c++) {
        h ^= *c;
        h *= 1099511628211ULL;
    }
    h ^= h >> 29; /* FNV's low bits mix poorly for short ids */
    return (int64_t)(h >> 1);
}

static void apply_policy(struct pick *p, int policy)
{
    switch (policy) {
    case VICTIMS_OLDEST_INSTANCE:
        narrow(p, s_oldest, "oldest instance");
        break;
    case VICTIMS_NEWEST_INSTANCE:
        narrow(p, s_newest, "newest instance");
        break;
    case VICTIMS_OLDEST_LAUNCH_CONFIG:
        narrow(p, s_old_config, "launch configuration not current");
        break;
    case VICTIMS_CLOSEST_TO_NEXT_HOUR:
        narrow(p, s_next_hour, "closest to its next instance hour");
        break;
    default:
        narrow(p, s_booting_newest, "newest still booting");
        narrow(p, s_old_config, "launch configuration not current");
        narrow(p, s_next_hour, "closest to its next instance hour");
        break;
    }
}

int victims_choose(const struct victims_in *in, const struct victim_cand *cand, size_t k, size_t n,
                   size_t *out, const char **why)
{
    if (n > k)
        n = k;
    if (n == 0)
        return 0;
    static const int def[] = {VICTIMS_DEFAULT};
    const int *pol = in->policies && in->n_policies ? in->policies : def;
    size_t npol = in->policies && in->n_policies ? in->n_policies : 1;

    struct pick p = {.in = in, .cand = cand, .k = k};
    p.st = calloc(k, 1);
    p.zone = calloc(k, sizeof(*p.zone));
    p.zcount = calloc(k, sizeof(*p.zcount));
    if (!p.st || !p.zone || !p.zcount) {
        free(p.st);
        free(p.zone);
        free(p.zcount);
        return -1;
    }
    /* number the zones (first appearance), count their members */
    size_t nz = 0;
    for (size_t i = 0; i < k; i++) {
        const char *z = cand[i].zone ? cand[i].zone : "";
        size_t j = 0;
        for (; j < i; j++)
            if (strcmp(cand[j].zone ? cand[j].zone : "", z) == 0)
                break;
        p.zone[i] = j < i ? p.zone[j] : nz++;
        p.zcount[p.zone[i]]++;
        if (z[0])
            p.zoned = 1;
    }

    for (size_t pick = 0; pick < n; pick++) {
        p.pool = 0;
        for (size_t i = 0; i < k; i++)
            if (p.st[i] != TAKEN) {
                p.st[i] = POOL;
                p.pool++;
            }
        p.why = p.pool == 1 ? "last candidate" : NULL;
        narrow(&p, s_unhealthy, "unhealthy");
        if (p.zoned)
            narrow(&p, s_zone, "its zone has the most instances");
        for (size_t j = 0; j < npol; j++)
            apply_policy(&p, pol[j]);
        narrow(&p, s_random, "random among equals");
        size_t chosen = 0;
        for (size_t i = 0; i < k; i++)
            if (p.st[i] == POOL) {
                chosen = i;
                break;
            }
        p.st[chosen] = TAKEN;
        p.zcount[p.zone[chosen]]--;
        out[pick] = chosen;
        if (why)
            why[pick] = p.why ? p.why : "random among equals";
    }
    free(p.st);
    free(p.zone);
    free(p.zcount);
    return (int)n;
}
