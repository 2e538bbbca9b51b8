/*
 * local.c - the local provider (see local.h): the provider object and its
 * calls other than launch (terminate, describe, detach, attach), and the
 * pruning of old agent logs. local_int.h lists the other files: launch in
 * local_launch.c, spawning in local_spawn.c, pid files in local_rec.c.
 */
#include "provider/local_int.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "common/clock.h"
#include "common/log.h"

#include "common/banned.h"

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void local_destroy(struct provider *p)
{
    struct local_provider *lp = (struct local_provider *)p;
    free(lp->group);
    free(lp->dir);
    free(lp->agent_path);
    free(lp->monitor_address);
    free(lp->token_file);
    for (size_t i = 0; i < lp->n_extra; i++)
        free(lp->extra_args[i]);
    free(lp->extra_args);
    free(lp->taken);
    free(lp);
}

struct old_log {
    char name[PROV_ID_MAX + 8];
    struct timespec mtime;
};

static int old_log_newer_first(const void *a, const void *b)
{
    const struct old_log *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec)
        return x->mtime.tv_sec < y->mtime.tv_sec ? 1 : -1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec)
        return x->mtime.tv_nsec < y->mtime.tv_nsec ? 1 : -1;
    return strcmp(x->name, y->name);
}

/*
 * Removes the logs of gone instances (no pid file) beyond the keep_logs
 * newest. Best effort: a failure only leaves files behind.
 */
static void prune_logs(struct local_provider *lp)
{
    DIR *d = opendir(lp->dir);
    if (d == NULL)
        return;
    struct old_log *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len < 5 || len >= PROV_ID_MAX + 4 ||
            strcmp(de->d_name + len - 4, ".log") != 0)
            continue;
        char id[PROV_ID_MAX], path[4096];
        snprintf(id, sizeof(id), "%.*s", (int)(len - 4), de->d_name);
        snprintf(path, sizeof(path), "%s/%s.pid", lp->dir, id);
        if (access(path, F_OK) == 0)
            continue; /* its instance is still ours */
        struct stat sb;
        snprintf(path, sizeof(path), "%s/%s", lp->dir, de->d_name);
        if (stat(path, &sb) != 0)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 32;
            struct old_log *nv = realloc(v, ncap * sizeof(*nv));
            if (nv == NULL)
                break;
            v = nv;
            cap = ncap;
        }
        memcpy(v[n].name, de->d_name, len + 1); /* len < PROV_ID_MAX + 4 checked above */
        v[n].mtime = sb.st_mtim;
        n++;
    }
    closedir(d);
    if (v != NULL && n > (size_t)lp->keep_logs) { /* n > 0 implies v != NULL */
        qsort(v, n, sizeof(*v), old_log_newer_first);
        for (size_t i = (size_t)lp->keep_logs; i < n; i++) {
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", lp->dir, v[i].name);
            if (unlink(path) == 0)
                log_debug("local: removed old agent log \"%s\"", path);
        }
    }
    free(v);
}

static int local_terminate(struct provider *p, const char *const *ids, size_t n)
{
    struct local_provider *lp = (struct local_provider *)p;
    struct local_rec *recs = calloc(n, sizeof(*recs));
    int *live = calloc(n, sizeof(*live));
    int rc = 0;
    if (recs == NULL || live == NULL) {
        rc = provider__fail(p, PROV_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        if (!local__valid_id(ids[i]))
            continue;
        snprintf(path, sizeof(path), "%s/%s.pid", lp->dir, ids[i]);
        if (local__rec_read_settled(path, &recs[i]) == 0 && local__rec_alive(&recs[i])) {
            live[i] = 1;
            kill(recs[i].pid, SIGTERM);
        }
    }
    int64_t deadline = clk_mono_ms() + (lp->kill_timeout_ms > 0 ? lp->kill_timeout_ms : 3000);
    for (;;) {
        int remaining = 0;
        for (size_t i = 0; i < n; i++)
            if (live[i] && (live[i] = local__rec_alive(&recs[i])))
                remaining++;
        if (remaining == 0)
            break;
        if (clk_mono_ms() >= deadline) {
            for (size_t i = 0; i < n; i++)
                if (live[i]) {
                    log_warn("local: instance \"%s\" ignored SIGTERM, killing pid %d", recs[i].id,
                             recs[i].pid);
                    kill(recs[i].pid, SIGKILL);
                }
            break;
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    for (size_t i = 0; i < n; i++)
        if (local__valid_id(ids[i]))
            local__rec_remove(lp, ids[i]);
    prune_logs(lp);
out:
    free(recs);
    free(live);
    return rc;
}

static int local_describe(struct provider *p, struct prov_list *out)
{
    struct local_provider *lp = (struct local_provider *)p;
    struct local_rec *recs = NULL;
    size_t n = 0;
    int64_t now = clk_wall_ms();
    int rc = local__rec_list(lp, &recs, &n);
    if (rc != 0)
        return rc;
    int removed = 0;
    for (size_t i = 0; i < n; i++) {
        if (local__rec_reserved_fresh(&recs[i], now)) {
            /* a spawn under way (or cut short by a crash: it goes stale) */
        } else if (!local__rec_alive(&recs[i])) {
            /* the machine is gone (or its spawn never happened): nothing left to
             * terminate, forget it */
            local__rec_remove(lp, recs[i].id);
            removed = 1;
            continue;
        }
        struct prov_instance inst;
        local__fill_instance(lp, &recs[i], now, &inst);
        if ((rc = prov_list_push(out, &inst)) != 0) {
            prov_list_release(out);
            break;
        }
    }
    free(recs);
    if (removed)
        prune_logs(lp);
    return rc;
}

/* Detach: the pid file goes, the agent keeps running (and is no longer the group's). */
static int local_detach(struct provider *p, const char *id)
{
    struct local_provider *lp = (struct local_provider *)p;
    if (!local__valid_id(id))
        return provider__fail(p, PROV_EINVAL, "\"%.64s\" is not an instance id", id);
    local__rec_remove(lp, id);
    return 0;
}

/* Attach: a pid file for a running agent of this host (its pid from its Lifecycle answer). */
static int local_attach(struct provider *p, const struct prov_instance *in,
                        struct prov_instance *out)
{
    struct local_provider *lp = (struct local_provider *)p;
    struct local_rec r;
    char path[4096], state;
    memset(&r, 0, sizeof(r));
    if (!local__valid_id(in->id) || in->pid <= 1 || in->address[0] == '\0')
        return provider__fail(
            p, PROV_EINVAL,
            "attach needs the agent's instance id, pid and address (got \"%.64s\", "
            "pid %d)",
            in->id, in->pid);
    snprintf(path, sizeof(path), "%s/%s.pid", lp->dir, in->id);
    if (access(path, F_OK) == 0)
        return provider__fail(p, PROV_EINVAL, "instance \"%s\" already belongs to the group",
                              in->id);
    if (local__proc_stat(in->pid, &state, &r.starttime) != 0 || state == 'Z')
        return provider__fail(p, PROV_EINVAL,
                              "pid %d of instance \"%s\" is not a live process of this host",
                              in->pid, in->id);
    snprintf(r.id, sizeof(r.id), "%s", in->id);
    snprintf(r.address, sizeof(r.address), "%s", in->address);
    r.pid = in->pid;
    r.launched_at_ms = clk_wall_ms();
    if (local__rec_write(lp, &r) != 0)
        return provider__fail(p, PROV_EFATAL, "cannot write \"%s\": %s", path, strerror(errno));
    local__fill_instance(lp, &r, r.launched_at_ms, out);
    out->state = PROV_RUNNING;
    return 0;
}

static const struct provider_ops local_ops = {
    .name = "local",
    .launch = local__launch,
    .terminate = local_terminate,
    .describe = local_describe,
    .destroy = local_destroy,
    .detach = local_detach,
    .attach = local_attach,
    /* each instance is a fork+exec and a pid file: a call of 100 keeps one tick short */
    .max_launch = 100,
    .max_terminate = 1000,
};

static int split_args(struct local_provider *lp, const char *args)
{
    if (args == NULL)
        return 0;
    const char *p = args;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            return 0;
        /* 'single' or "double" quotes keep spaces in one argument (--on-terminate 'a; b') */
        char quote = *p == '\'' || *p == '"' ? *p : '\0';
        if (quote)
            p++;
        size_t len = quote ? strcspn(p, quote == '\'' ? "'" : "\"") : strcspn(p, " \t");
        char **nv = realloc(lp->extra_args, (lp->n_extra + 2) * sizeof(*nv));
        if (nv == NULL)
            return -1;
        lp->extra_args = nv;
        if ((lp->extra_args[lp->n_extra] = strndup(p, len)) == NULL)
            return -1;
        lp->n_extra++;
        lp->extra_args[lp->n_extra] = NULL;
        p += len;
        if (quote && *p == quote)
            p++;
    }
}

int provider_local_new(const struct local_settings *s, struct provider **out, char *err,
                       size_t errlen)
{
    struct in_addr ia;
    if (s->group == NULL || s->state_dir == NULL || s->agent_path == NULL) {
        snprintf(err, errlen, "local provider: group, state_dir and agent are required");
        return PROV_EINVAL;
    }
    /* loopback, or a private range: agents may run in a network namespace of this host (a
       wrapper as [local] agent), reached over a veth link */
    uint32_t base = 0;
    if (inet_pton(AF_INET, s->address_base ? s->address_base : "127.0.0.2", &ia) == 1)
        base = ntohl(ia.s_addr);
    if ((base >> 24) != 127 && (base >> 24) != 10 && (base >> 20) != 0xac1 &&
        (base >> 16) != 0xc0a8) {
        snprintf(err, errlen,
                 "local provider: address_base \"%s\" is not a loopback (127.x.y.z) or private "
                 "(10/8, 172.16/12, 192.168/16) address",
                 s->address_base ? s->address_base : "");
        return PROV_EINVAL;
    }
    if (access(s->agent_path, X_OK) != 0) {
        snprintf(err, errlen, "local provider: agent \"%s\" is not executable: %s", s->agent_path,
                 strerror(errno));
        return PROV_EINVAL;
    }
    struct local_provider *lp = calloc(1, sizeof(*lp));
    if (lp == NULL)
        goto oom;
    lp->base.ops = &local_ops;
    lp->base_addr = ntohl(ia.s_addr);
    lp->agent_port = s->agent_port;
    lp->boot_delay_ms = s->boot_delay_ms;
    lp->kill_timeout_ms = s->kill_timeout_ms;
    lp->keep_logs = s->keep_logs > 0 ? s->keep_logs : 20;
    size_t dlen = strlen(s->state_dir) + sizeof("/local");
    lp->dir = malloc(dlen);
    lp->group = xstrdup(s->group);
    lp->agent_path = xstrdup(s->agent_path);
    lp->monitor_address = xstrdup(s->monitor_address);
    lp->token_file = xstrdup(s->token_file);
    if (lp->dir == NULL || lp->group == NULL || lp->agent_path == NULL ||
        (s->monitor_address && !lp->monitor_address) || (s->token_file && !lp->token_file) ||
        split_args(lp, s->agent_args) != 0)
        goto oom;
    snprintf(lp->dir, dlen, "%s/local", s->state_dir);
    if (mkdir(s->state_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "local provider: cannot create \"%s\": %s", s->state_dir,
                 strerror(errno));
        local_destroy(&lp->base);
        return PROV_EFATAL;
    }
    if (mkdir(lp->dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "local provider: cannot create \"%s\": %s", lp->dir, strerror(errno));
        local_destroy(&lp->base);
        return PROV_EFATAL;
    }
    *out = &lp->base;
    return 0;
oom:
    if (lp)
        local_destroy(&lp->base);
    snprintf(err, errlen, "local provider: out of memory");
    return PROV_ENOMEM;
}
