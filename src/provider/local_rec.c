/*
 * local_rec.c - the local provider's pid files (see local.h for what they
 * hold and why, local_int.h for the files): read, write (temp + fsync +
 * rename, so a crash leaves the old file or the new one, never half of one),
 * list, remove; and whether the process a record names is still the one we
 * started (/proc/pid/stat: state and start time, so a recycled pid is never
 * mistaken for ours).
 */
#include "provider/local_int.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

#include "common/banned.h"

/* Reads field 3 (state) and 22 (starttime) of /proc/pid/stat. -1 if no such process. */
int local__proc_stat(int pid, char *state, unsigned long long *starttime)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* comm may contain spaces and ')': the fields resume after the LAST ')' */
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] != ' ')
        return -1;
    p += 2;
    *state = *p;
    /* after state (field 3), skip to field 22: 19 more separators */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (p == NULL)
            return -1;
        p++;
    }
    char *end;
    errno = 0;
    *starttime = strtoull(p, &end, 10);
    if (errno != 0 || end == p)
        return -1;
    return 0;
}

/* Alive = the process exists, is not a zombie, and started when we recorded. */
int local__rec_alive(const struct local_rec *r)
{
    char state;
    unsigned long long st;
    if (r->pid <= 1 || local__proc_stat(r->pid, &state, &st) != 0)
        return 0;
    return st == r->starttime && state != 'Z' && state != 'X';
}

/* A reservation: the pid file was written before the spawn, the pid not yet. */
static int rec_reserved(const struct local_rec *r)
{
    return r->pid == 0;
}

/* A reservation young enough that its spawn may still be under way. */
int local__rec_reserved_fresh(const struct local_rec *r, int64_t now)
{
    return rec_reserved(r) && now - r->launched_at_ms < LOCAL_RESERVE_TTL_MS &&
           r->launched_at_ms - now < LOCAL_RESERVE_TTL_MS;
}

/* Counts as an instance of the group: a live agent, or a spawn that may be under way. */
int local__rec_counts(const struct local_rec *r, int64_t now)
{
    return rec_reserved(r) ? local__rec_reserved_fresh(r, now) : local__rec_alive(r);
}

int local__valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= PROV_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]) && id[i] != '-' && id[i] != '_' && id[i] != '.')
            return 0;
    return 1;
}

static int rec_read(const char *path, struct local_rec *r)
{
    FILE *fp = fopen(path, "re");
    if (fp == NULL)
        return -1;
    char line[256];
    int got = 0;
    memset(r, 0, sizeof(*r));
    while (fgets(line, sizeof(line), fp)) {
        char *eq = strchr(line, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        char *v = eq + 1;
        v[strcspn(v, "\n")] = '\0';
        char *end;
        errno = 0;
        if (strcmp(line, "id") == 0 && strlen(v) < sizeof(r->id)) {
            snprintf(r->id, sizeof(r->id), "%s", v);
            got |= 1;
        } else if (strcmp(line, "pid") == 0) {
            long pid = strtol(v, &end, 10);
            /* 0: a reservation, written before the spawn (see local.h) */
            if (errno == 0 && *end == '\0' && (pid == 0 || pid > 1) && pid < 1L << 30) {
                r->pid = (int)pid;
                got |= 2;
            }
        } else if (strcmp(line, "starttime") == 0) {
            r->starttime = strtoull(v, &end, 10);
            if (errno == 0 && *end == '\0')
                got |= 4;
        } else if (strcmp(line, "address") == 0 && strlen(v) < sizeof(r->address)) {
            snprintf(r->address, sizeof(r->address), "%s", v);
        } else if (strcmp(line, "launched_at_ms") == 0) {
            r->launched_at_ms = strtoll(v, &end, 10);
        } else if (strcmp(line, "token") == 0 && strlen(v) < sizeof(r->token)) {
            snprintf(r->token, sizeof(r->token), "%s", v);
        }
    }
    fclose(fp);
    return got == 7 && local__valid_id(r->id) ? 0 : -1;
}

int local__rec_write(const struct local_provider *lp, const struct local_rec *r)
{
    char path[4096], tmp[4096];
    snprintf(path, sizeof(path), "%s/%s.pid", lp->dir, r->id);
    snprintf(tmp, sizeof(tmp), "%s/.%s.pid.tmp", lp->dir, r->id);
    /* 0600: the launch token is an idempotency key, not for other users */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    FILE *fp = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (fp == NULL) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    fprintf(fp, "id=%s\npid=%d\nstarttime=%llu\naddress=%s\nlaunched_at_ms=%" PRId64 "\ntoken=%s\n",
            r->id, r->pid, r->starttime, r->address, r->launched_at_ms, r->token);
    int rc = fflush(fp) == 0 && fsync(fileno(fp)) == 0 ? 0 : -1;
    if (fclose(fp) != 0)
        rc = -1;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -1;
    if (rc != 0)
        unlink(tmp);
    return rc;
}

void local__rec_remove(const struct local_provider *lp, const char *id)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.pid", lp->dir, id);
    unlink(path);
}

/* Every pid file in the directory (alive or not). */
int local__rec_list(struct local_provider *lp, struct local_rec **out, size_t *n_out)
{
    DIR *d = opendir(lp->dir);
    struct local_rec *v = NULL;
    size_t n = 0, cap = 0;
    if (d == NULL)
        return provider__fail(&lp->base, PROV_EFATAL, "cannot read \"%s\": %s", lp->dir,
                              strerror(errno));
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len < 5 || strcmp(de->d_name + len - 4, ".pid") != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", lp->dir, de->d_name);
        struct local_rec r;
        if (rec_read(path, &r) != 0) {
            log_warn("local: ignoring unreadable pid file \"%s\"", path);
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct local_rec *nv = realloc(v, ncap * sizeof(*nv));
            if (nv == NULL) {
                free(v);
                closedir(d);
                return provider__fail(&lp->base, PROV_ENOMEM, "out of memory");
            }
            v = nv;
            cap = ncap;
        }
        v[n++] = r;
    }
    closedir(d);
    *out = v;
    *n_out = n;
    return 0;
}

void local__fill_instance(const struct local_provider *lp, const struct local_rec *r, int64_t now,
                          struct prov_instance *inst)
{
    memset(inst, 0, sizeof(*inst));
    snprintf(inst->id, sizeof(inst->id), "%s", r->id);
    snprintf(inst->address, sizeof(inst->address), "%s", r->address);
    snprintf(inst->launch_token, sizeof(inst->launch_token), "%s", r->token);
    inst->pid = r->pid;
    inst->launched_at_ms = r->launched_at_ms;
    inst->state = rec_reserved(r) || now < r->launched_at_ms + lp->boot_delay_ms ? PROV_PENDING
                                                                                 : PROV_RUNNING;
}

/*
 * rec_read(), but a fresh reservation is waited for (its spawn is under way,
 * normally a few ms) until it holds a pid or goes stale: removing its pid file
 * now would let the spawn put it back afterwards, an instance nobody asked for.
 */
int local__rec_read_settled(const char *path, struct local_rec *r)
{
    for (;;) {
        if (rec_read(path, r) != 0)
            return -1;
        if (!local__rec_reserved_fresh(r, clk_wall_ms()))
            return 0;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
}
