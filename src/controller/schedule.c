/*
 * schedule.c - cron expressions in a time zone (the controller's hook that applies them is
 * schedule_tick.c).
 *
 * A zone is its list of (transition time, UTC offset) read from the TZif
 * file's 64-bit section; local time is UTC + the offset in force, broken
 * down with gmtime_r(). So no TZ environment variable is touched (setenv()
 * in a threaded daemon is unsafe) and a schedule in Europe/Paris fires at
 * 08:00 Paris time on both sides of a DST change. A second is checked
 * against the cron fields as bit masks; sched_due() walks the seconds of
 * (after, until], which the controller's 1 s tick keeps short.
 */
#include "controller/schedule.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/util.h"

#include "common/banned.h"

#define MAX_ENTRIES 16
#define MAX_ZONE    (1024 * 1024)

struct zone {
    size_t n;
    int64_t *at;     /* transition times (UTC s), ascending */
    int32_t *offset; /* offset in force from at[i] */
    int32_t before;  /* offset before the first transition */
};

struct entry {
    uint64_t sec, min; /* bit i: second/minute i */
    uint32_t hour;     /* bits 0..23 */
    uint32_t dom;      /* bits 1..31 */
    uint16_t mon;      /* bits 1..12 */
    uint8_t dow;       /* bits 0..6 */
    int dom_any, dow_any;
    struct zone zone;
    int min_size, max_size, desired;
    char text[160];
};

struct sched {
    size_t n;
    struct entry e[MAX_ENTRIES];
};

static void zone_release(struct zone *z)
{
    free(z->at);
    free(z->offset);
    memset(z, 0, sizeof(*z));
}

void sched_free(struct sched *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        zone_release(&s->e[i].zone);
    free(s);
}

static int64_t be(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = (v << 8) | p[i];
    if (bytes == 4)
        return (int32_t)(uint32_t)v;
    return (int64_t)v;
}

/* Reads the TZif file of name: its 64-bit (v2+) section, else the 32-bit one. */
static int zone_load(const char *name, struct zone *z, char *err, size_t errlen)
{
    memset(z, 0, sizeof(*z));
    if (strcmp(name, "UTC") == 0)
        return 0;
    if (name[0] == '/' || strstr(name, "..") != NULL) {
        util_set_err(err, errlen, "time zone \"%s\": not a zone name like Europe/Paris", name);
        return -1;
    }
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
    char *buf = NULL;
    size_t len = 0;
    char why[300];
    if (util_read_file(path, MAX_ZONE, &buf, &len, why, sizeof(why)) != 0) {
        util_set_err(err, errlen, "time zone \"%s\": unknown (%s)", name, why);
        return -1;
    }
    const unsigned char *p = (const unsigned char *)buf, *end = p + len;
    int rc = -1;
    for (int pass = 0; pass < 2; pass++) {
        if (end - p < 44 || memcmp(p, "TZif", 4) != 0)
            goto bad;
        int version = p[4];
        int64_t isut = be(p + 20, 4), isstd = be(p + 24, 4), leap = be(p + 28, 4),
                timecnt = be(p + 32, 4), typecnt = be(p + 36, 4), charcnt = be(p + 40, 4);
        if (isut < 0 || isstd < 0 || leap < 0 || timecnt < 0 || typecnt < 1 || charcnt < 0 ||
            timecnt > 100000 || typecnt > 256)
            goto bad;
        int tb = pass == 0 ? 4 : 8;
        int64_t body =
            timecnt * tb + timecnt + typecnt * 6 + charcnt + leap * (tb + 4) + isstd + isut;
        if (end - (p + 44) < body)
            goto bad;
        if (pass == 0 && version >= '2') {
            p += 44 + body; /* the 64-bit section follows */
            continue;
        }
        const unsigned char *times = p + 44, *idx = times + timecnt * tb, *types = idx + timecnt;
        z->at = malloc(((size_t)timecnt + 1) * sizeof(*z->at));
        z->offset = malloc(((size_t)timecnt + 1) * sizeof(*z->offset));
        if (z->at == NULL || z->offset == NULL)
            goto bad;
        for (int64_t i = 0; i < timecnt; i++) {
            if (idx[i] >= typecnt)
                goto bad;
            z->at[i] = be(times + i * tb, tb);
            z->offset[i] = (int32_t)be(types + idx[i] * 6, 4);
        }
        z->n = (size_t)timecnt;
        z->before = (int32_t)be(types, 4);
        rc = 0;
        break;
    }
bad:
    if (rc != 0) {
        zone_release(z);
        util_set_err(err, errlen, "time zone \"%s\": %s is not a TZif file", name, path);
    }
    free(buf);
    return rc;
}

static int32_t zone_offset(const struct zone *z, int64_t t)
{
    if (z->n == 0 || t < z->at[0])
        return z->n ? z->before : 0;
    size_t lo = 0, hi = z->n; /* last at[i] <= t */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (z->at[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return z->offset[lo];
}

/* One cron field into a bit mask over [lo, hi]. */
static int field(const char *f, int lo, int hi, uint64_t *mask, int *any)
{
    *mask = 0;
    *any = strcmp(f, "*") == 0;
    char buf[64];
    if (strlen(f) >= sizeof(buf))
        return -1;
    snprintf(buf, sizeof(buf), "%s", f);
    char *save = NULL;
    for (char *part = strtok_r(buf, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
        long a = lo, b = hi, step = 1;
        char *slash = strchr(part, '/'), *end;
        if (slash) {
            *slash = '\0';
            errno = 0;
            step = strtol(slash + 1, &end, 10);
            if (*end || end == slash + 1 || step < 1 || errno)
                return -1;
        }
        if (strcmp(part, "*") != 0) {
            a = strtol(part, &end, 10);
            if (end == part)
                return -1;
            b = a;
            if (*end == '-') {
                char *s2 = end + 1;
                b = strtol(s2, &end, 10);
                if (end == s2)
                    return -1;
            } else if (slash) {
                b = hi; /* "5/15": from 5 on */
            }
            if (*end)
                return -1;
        }
        if (a < lo || b > hi || a > b)
            return -1;
        for (long v = a; v <= b; v += step)
            *mask |= 1ULL << v;
    }
    return *mask ? 0 : -1;
}

static int parse_entry(char *text, struct entry *e, int load_zone, char *err, size_t errlen)
{
    char *colon = strchr(text, ':');
    snprintf(e->text, sizeof(e->text), "%s", text);
    if (colon == NULL) {
        util_set_err(err, errlen, "\"%s\": expected \"CRON [ZONE]: min=N max=N desired=N\"", text);
        return -1;
    }
    *colon = '\0';
    char *tok[8];
    int nt = 0;
    char *save = NULL;
    for (char *t = strtok_r(text, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        if (nt == 8)
            goto badcron;
        tok[nt++] = t;
    }
    const char *zone = "UTC";
    if (nt > 0 && isalpha((unsigned char)tok[nt - 1][0]))
        zone = tok[--nt];
    if (nt != 5 && nt != 6)
        goto badcron;
    int k = 0;
    uint64_t m;
    int any;
    if (nt == 6) {
        if (field(tok[k++], 0, 59, &e->sec, &any) != 0)
            goto badcron;
    } else {
        e->sec = 1; /* second 0 */
    }
    if (field(tok[k++], 0, 59, &e->min, &any) != 0)
        goto badcron;
    if (field(tok[k++], 0, 23, &m, &any) != 0)
        goto badcron;
    e->hour = (uint32_t)m;
    if (field(tok[k++], 1, 31, &m, &e->dom_any) != 0)
        goto badcron;
    e->dom = (uint32_t)m;
    if (field(tok[k++], 1, 12, &m, &any) != 0)
        goto badcron;
    e->mon = (uint16_t)m;
    if (field(tok[k++], 0, 7, &m, &e->dow_any) != 0)
        goto badcron;
    if (m & (1ULL << 7))
        m |= 1; /* 7 is Sunday too */
    e->dow = (uint8_t)(m & 0x7f);
    e->min_size = e->max_size = e->desired = -1;
    int sets = 0;
    save = NULL;
    for (char *t = strtok_r(colon + 1, " \t,", &save); t; t = strtok_r(NULL, " \t,", &save)) {
        char *eq = strchr(t, '='), *end;
        if (eq == NULL)
            goto badset;
        *eq = '\0';
        errno = 0;
        long v = strtol(eq + 1, &end, 10);
        if (end == eq + 1 || *end || errno || v < 0 || v > POLICY_MAX_SIZE)
            goto badset;
        if (strcmp(t, "min") == 0 || strcmp(t, "min_size") == 0)
            e->min_size = (int)v;
        else if (strcmp(t, "max") == 0 || strcmp(t, "max_size") == 0)
            e->max_size = (int)v;
        else if (strcmp(t, "desired") == 0 || strcmp(t, "desired_capacity") == 0)
            e->desired = (int)v;
        else
            goto badset;
        sets++;
    }
    if (sets == 0)
        goto badset;
    if (e->min_size >= 0 && e->max_size >= 0 && e->min_size > e->max_size) {
        util_set_err(err, errlen, "\"%s\": min %d > max %d", e->text, e->min_size, e->max_size);
        return -1;
    }
    if (!load_zone) {
        /* the validator is pure: the name's form only; the controller loads the file */
        for (const char *c = zone; *c; c++)
            if (!(isalnum((unsigned char)*c) || *c == '/' || *c == '_' || *c == '-' || *c == '+'))
                goto badcron;
        return 0;
    }
    return zone_load(zone, &e->zone, err, errlen);
badcron:
    util_set_err(err, errlen,
                 "\"%s\": the cron part must be 5 fields (minute hour day month weekday) or 6 "
                 "(seconds first), then an optional zone like Europe/Paris",
                 e->text);
    return -1;
badset:
    util_set_err(err, errlen,
                 "\"%s\": after ':' expected min=N, max=N and/or desired=N (0..%d), e.g. "
                 "\"min=4 max=10\"",
                 e->text, POLICY_MAX_SIZE);
    return -1;
}

static struct sched *parse(const char *text, int load_zones, char *err, size_t errlen)
{
    struct sched *s = calloc(1, sizeof(*s));
    char *copy = strdup(text ? text : "");
    if (s == NULL || copy == NULL) {
        free(s);
        free(copy);
        util_set_err(err, errlen, "out of memory");
        return NULL;
    }
    char *save = NULL;
    for (char *part = strtok_r(copy, ";", &save); part; part = strtok_r(NULL, ";", &save)) {
        while (*part == ' ' || *part == '\t')
            part++;
        if (*part == '\0')
            continue;
        if (s->n == MAX_ENTRIES) {
            util_set_err(err, errlen, "more than %d scheduled actions", MAX_ENTRIES);
            goto fail;
        }
        if (parse_entry(part, &s->e[s->n], load_zones, err, errlen) != 0) {
            zone_release(&s->e[s->n].zone);
            goto fail;
        }
        s->n++;
    }
    free(copy);
    return s;
fail:
    free(copy);
    sched_free(s);
    return NULL;
}

struct sched *sched_parse(const char *text, char *err, size_t errlen)
{
    return parse(text, 1, err, errlen);
}

int sched_check(const char *text, char *err, size_t errlen)
{
    struct sched *s = parse(text, 0, err, errlen);
    sched_free(s);
    return s ? 0 : -1;
}

static int matches(const struct entry *e, int64_t t)
{
    time_t local = (time_t)(t + zone_offset(&e->zone, t));
    struct tm tm;
    if (gmtime_r(&local, &tm) == NULL)
        return 0;
    if (!(e->sec >> tm.tm_sec & 1) || !(e->min >> tm.tm_min & 1) || !(e->hour >> tm.tm_hour & 1) ||
        !(e->mon >> (tm.tm_mon + 1) & 1))
        return 0;
    int dom = (int)(e->dom >> tm.tm_mday & 1), dow = (int)(e->dow >> tm.tm_wday & 1);
    if (!e->dom_any && !e->dow_any)
        return dom || dow;
    return dom && dow;
}

int sched_due(const struct sched *s, int64_t after_ms, int64_t until_ms, struct sched_action *out)
{
    memset(out, 0, sizeof(*out));
    out->min_size = out->max_size = out->desired = -1;
    if (s == NULL || s->n == 0 || until_ms <= after_ms)
        return 0;
    int64_t from = after_ms / 1000 + 1, to = until_ms / 1000;
    if (after_ms < 0 && after_ms % 1000 != 0)
        from--;
    if (to - from > 86400)
        from = to - 86400;
    int fired = 0;
    for (int64_t t = from; t <= to; t++)
        for (size_t i = 0; i < s->n; i++) {
            const struct entry *e = &s->e[i];
            if (!matches(e, t))
                continue;
            fired = 1;
            out->at_ms = t * 1000;
            if (e->min_size >= 0)
                out->min_size = e->min_size;
            if (e->max_size >= 0)
                out->max_size = e->max_size;
            if (e->desired >= 0)
                out->desired = e->desired;
            snprintf(out->what, sizeof(out->what), "%s", e->text);
        }
    return fired;
}

void sched_state_release(struct sched_state *st)
{
    sched_free(st->parsed);
    memset(st, 0, sizeof(*st));
}
