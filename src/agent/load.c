/*
 * load.c - where monitorc's load comes from: /proc (real CPU, memory and
 * load average), a simulation that drifts without jumps, or a file that tests
 * and demos write. The parsers take text so the tests can feed them fixture
 * files and hostile input; the sources read files under an injectable root.
 *
 * Every read is bounded (a few KiB per file; /proc/stat's "cpu " line comes
 * first), and nothing here keeps a pointer into the text it parsed.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "common/clock.h"
#include "common/banned.h"

/* ------------------------------------------------------------------------ */
/* parsers                                                                  */
/* ------------------------------------------------------------------------ */

static int parse_u64(const char **p, uint64_t *out)
{
    const char *s = *p;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    *out = v;
    *p = end;
    return 0;
}

int agent_proc_parse_stat(const char *text, struct agent_cpu_times *out)
{
    if (!text || !out)
        return -1;
    const char *p = text;
    /* the aggregate line is "cpu " (per-CPU lines are "cpu0 ") */
    while (strncmp(p, "cpu ", 4) != 0) {
        p = strchr(p, '\n');
        if (!p)
            return -1;
        p++;
    }
    p += 4;
    uint64_t f[8] = {0};
    int n = 0;
    for (; n < 8; n++)
        if (parse_u64(&p, &f[n]) != 0)
            break;
    if (n < 4) /* user nice system idle are always there; older kernels stop early */
        return -1;
    /* user nice system idle iowait irq softirq steal; guest is inside user */
    uint64_t idle = f[3] + f[4];
    uint64_t busy = f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
    if (busy < f[0] || idle < f[3]) /* overflow: hostile numbers */
        return -1;
    out->busy = busy;
    out->total = busy + idle;
    if (out->total < busy)
        return -1;
    return 0;
}

double agent_cpu_percent(const struct agent_cpu_times *prev, const struct agent_cpu_times *cur)
{
    if (!prev || !cur || cur->total <= prev->total || cur->busy < prev->busy)
        return -1;
    double dt = (double)(cur->total - prev->total);
    double db = (double)(cur->busy - prev->busy);
    double pct = 100.0 * db / dt;
    if (pct > 100)
        pct = 100;
    return pct;
}

/* Finds "Key:   1234 kB" at a line start. */
static int meminfo_field(const char *text, const char *key, uint64_t *out)
{
    size_t klen = strlen(key);
    const char *p = text;
    while (p && *p) {
        if (strncmp(p, key, klen) == 0 && p[klen] == ':') {
            const char *q = p + klen + 1;
            return parse_u64(&q, out);
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

int agent_proc_parse_meminfo(const char *text, double *used_pct)
{
    if (!text || !used_pct)
        return -1;
    uint64_t total, avail;
    if (meminfo_field(text, "MemTotal", &total) || meminfo_field(text, "MemAvailable", &avail))
        return -1;
    if (total == 0 || avail > total)
        return -1;
    /* the ratio first: x <= y stays <= 1 after rounding, while 100 * x / y can
     * land just above 100 for huge totals (found by fuzz_proc) */
    double pct = 100.0 * ((double)(total - avail) / (double)total);
    *used_pct = pct > 100.0 ? 100.0 : pct;
    return 0;
}

int agent_proc_parse_loadavg(const char *text, double *load1)
{
    if (!text || !load1)
        return -1;
    while (*text == ' ')
        text++;
    if (*text < '0' || *text > '9')
        return -1;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || !(*end == ' ' || *end == '\n' || *end == '\0') || !isfinite(v) ||
        v < 0)
        return -1;
    *load1 = v;
    return 0;
}

int agent_parse_load_value(const char *text, double *out)
{
    if (!text || !out)
        return -1;
    const char *s = text;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    /* digits and one dot only: no "nan", "inf", hex or exponents */
    const char *q = s;
    int digits = 0, dots = 0;
    for (; (*q >= '0' && *q <= '9') || *q == '.'; q++) {
        if (*q == '.')
            dots++;
        else
            digits++;
    }
    if (digits == 0 || dots > 1 || q - s > 32)
        return -1;
    for (const char *t = q; *t; t++)
        if (!(*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r'))
            return -1;
    char *end;
    double v = strtod(s, &end);
    if (end != q || !isfinite(v) || v < 0 || v > 100)
        return -1;
    *out = v;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* simulation                                                               */
/* ------------------------------------------------------------------------ */

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *x) /* [-1, 1) */
{
    return (double)(splitmix(x) >> 11) / (double)(1ULL << 52) - 1.0;
}

int agent_sim_parse(const char *params, struct agent_sim_params *out, char *err, size_t errlen)
{
    struct agent_sim_params p = {10, 90, 600000, 2.0, 0};
    p.seed = (uint64_t)clk_wall_ms() ^ ((uint64_t)getpid() << 32);
    int rc = -1;
    char *copy = strdup(params ? params : "");
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char *save = NULL;
    for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq || eq == kv || !eq[1]) {
            snprintf(err, errlen, "simulate: \"%s\" is not key=value", kv);
            goto out;
        }
        *eq = '\0';
        const char *k = kv, *v = eq + 1;
        char *end;
        errno = 0;
        if (strcmp(k, "period") == 0) {
            int64_t ms;
            if (clk_parse_duration(v, &ms) || ms < 1000) {
                snprintf(err, errlen, "simulate: period \"%s\" must be a duration >= 1s", v);
                goto out;
            }
            p.period_ms = ms;
            continue;
        }
        if (strcmp(k, "seed") == 0) {
            unsigned long long s = strtoull(v, &end, 10);
            if (errno || *end || v[0] == '-') {
                snprintf(err, errlen, "simulate: seed \"%s\" is not a number", v);
                goto out;
            }
            p.seed = s;
            continue;
        }
        double d = strtod(v, &end);
        if (errno || *end || !isfinite(d)) {
            snprintf(err, errlen, "simulate: %s \"%s\" is not a number", k, v);
            goto out;
        }
        if (strcmp(k, "min") == 0) {
            p.min = d;
        } else if (strcmp(k, "max") == 0) {
            p.max = d;
        } else if (strcmp(k, "rate") == 0) {
            if (d <= 0 || d > 100) {
                snprintf(err, errlen, "simulate: rate %s must be in (0, 100] points/s", v);
                goto out;
            }
            p.max_rate = d;
        } else {
            snprintf(err, errlen,
                     "simulate: unknown parameter \"%s\" (min, max, period, rate, seed)", k);
            goto out;
        }
    }
    if (p.min < 0 || p.max > 100 || p.min >= p.max) {
        snprintf(err, errlen, "simulate: want 0 <= min < max <= 100 (got min=%g max=%g)", p.min,
                 p.max);
        goto out;
    }
    *out = p;
    rc = 0;
out:
    free(copy);
    return rc;
}

void agent_sim_init(struct agent_sim *s, const struct agent_sim_params *p)
{
    memset(s, 0, sizeof(*s));
    s->p = *p;
    s->rng = p->seed;
}

double agent_sim_step(struct agent_sim *s, int64_t now_ms)
{
    const struct agent_sim_params *p = &s->p;
    double mid = (p->min + p->max) / 2, amp = (p->max - p->min) / 2;
    if (!s->started) {
        s->started = 1;
        s->last_ms = now_ms;
        s->value = mid + 0.75 * amp * sin(2 * M_PI * uniform(&s->rng));
        return s->value;
    }
    if (now_ms <= s->last_ms)
        return s->value;
    double dt = (double)(now_ms - s->last_ms) / 1000.0;
    s->last_ms = now_ms;
    /* the random walk moves at half the allowed rate and stays within a quarter of the range */
    s->walk += uniform(&s->rng) * 0.5 * p->max_rate * (dt < 1 ? dt : 1);
    if (s->walk > amp * 0.25)
        s->walk = amp * 0.25;
    if (s->walk < -amp * 0.25)
        s->walk = -amp * 0.25;
    double phase = 2 * M_PI * (double)(now_ms % p->period_ms) / (double)p->period_ms;
    double target = mid + 0.75 * amp * sin(phase) + s->walk;
    double step = target - s->value, bound = p->max_rate * dt;
    if (step > bound)
        step = bound;
    if (step < -bound)
        step = -bound;
    s->value += step;
    if (s->value < p->min)
        s->value = p->min;
    if (s->value > p->max)
        s->value = p->max;
    return s->value;
}

/* ------------------------------------------------------------------------ */
/* sources                                                                  */
/* ------------------------------------------------------------------------ */

enum load_kind { LOAD_PROC, LOAD_SIMULATE, LOAD_FILE };

struct agent_load {
    enum load_kind kind;
    char *proc_root;
    char *path; /* file: */
    struct agent_sim sim;
    struct agent_cpu_times prev_cpu;
    int have_prev;
};

struct agent_load *agent_load_new(const char *spec, const char *proc_root, char *err, size_t errlen)
{
    if (!spec || !spec[0])
        spec = "proc";
    struct agent_load *l = calloc(1, sizeof(*l));
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->proc_root = strdup(proc_root && proc_root[0] ? proc_root : "/proc");
    if (!l->proc_root)
        goto nomem;
    if (strcmp(spec, "proc") == 0) {
        l->kind = LOAD_PROC;
    } else if (strcmp(spec, "simulate") == 0 || strncmp(spec, "simulate:", 9) == 0) {
        struct agent_sim_params p;
        if (agent_sim_parse(spec[8] ? spec + 9 : "", &p, err, errlen))
            goto fail;
        l->kind = LOAD_SIMULATE;
        agent_sim_init(&l->sim, &p);
    } else if (strncmp(spec, "file:", 5) == 0 && spec[5]) {
        l->kind = LOAD_FILE;
        l->path = strdup(spec + 5);
        if (!l->path)
            goto nomem;
    } else {
        snprintf(err, errlen,
                 "unknown load source \"%s\" (want proc, simulate[:PARAMS], file:PATH)", spec);
        goto fail;
    }
    return l;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    agent_load_free(l);
    return NULL;
}

void agent_load_free(struct agent_load *l)
{
    if (!l)
        return;
    free(l->proc_root);
    free(l->path);
    free(l);
}

int agent_load_interval_ms(const struct agent_load *l)
{
    return l && l->kind == LOAD_PROC ? 1000 : 500;
}

/* Reads at most size-1 bytes of path into buf, a string on every return (empty on failure).
   Returns 0, or errno. */
static int read_small(const char *path, char *buf, size_t size)
{
    buf[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return errno;
    size_t got = 0;
    while (got < size - 1) {
        ssize_t n = read(fd, buf + got, size - 1 - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            return e;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    return 0;
}

static int read_proc(const struct agent_load *l, const char *name, char *buf, size_t size)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%s", l->proc_root, name);
    if (n < 0 || (size_t)n >= sizeof(path))
        return ENAMETOOLONG;
    return read_small(path, buf, size);
}

int agent_load_sample(struct agent_load *l, int64_t now_ms, struct agent_sample *out)
{
    memset(out, 0, sizeof(*out));
    out->cpu_load = out->mem_used_pct = out->load1 = -1;
    out->sampled_at_ms = clk_wall_ms();
    char buf[8192];
    double v;
    if (read_proc(l, "meminfo", buf, sizeof(buf)) == 0 && agent_proc_parse_meminfo(buf, &v) == 0)
        out->mem_used_pct = v;
    if (read_proc(l, "loadavg", buf, sizeof(buf)) == 0 && agent_proc_parse_loadavg(buf, &v) == 0)
        out->load1 = v;

    switch (l->kind) {
    case LOAD_PROC: {
        struct agent_cpu_times cur;
        int e = read_proc(l, "stat", buf, sizeof(buf));
        if (e) {
            snprintf(out->error, sizeof(out->error), "cannot read \"%s/stat\": %s", l->proc_root,
                     strerror(e));
            return -1;
        }
        if (agent_proc_parse_stat(buf, &cur)) {
            snprintf(out->error, sizeof(out->error), "\"%s/stat\" has no valid cpu line",
                     l->proc_root);
            return -1;
        }
        struct agent_cpu_times zero = {0, 0};
        double pct = agent_cpu_percent(l->have_prev ? &l->prev_cpu : &zero, &cur);
        if (pct < 0 && l->have_prev) /* no time passed: keep the since-boot figure */
            pct = agent_cpu_percent(&zero, &cur);
        l->prev_cpu = cur;
        l->have_prev = 1;
        if (pct < 0) {
            snprintf(out->error, sizeof(out->error), "\"%s/stat\" counters are unusable",
                     l->proc_root);
            return -1;
        }
        out->cpu_load = out->load = pct;
        break;
    }
    case LOAD_SIMULATE:
        out->cpu_load = out->load = agent_sim_step(&l->sim, now_ms);
        break;
    case LOAD_FILE: {
        int e = read_small(l->path, buf, 64);
        if (e) {
            snprintf(out->error, sizeof(out->error), "cannot read load file \"%s\": %s", l->path,
                     strerror(e));
            return -1;
        }
        if (agent_parse_load_value(buf, &v)) {
            snprintf(out->error, sizeof(out->error),
                     "load file \"%s\" does not hold a number 0..100", l->path);
            return -1;
        }
        out->cpu_load = out->load = v;
        break;
    }
    }
    out->valid = 1;
    return 0;
}
