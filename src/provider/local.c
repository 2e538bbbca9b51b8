/*
 * local.c - the local provider (see local.h).
 *
 * Spawning: asgd is multi-threaded (gRPC starts threads), so between fork()
 * and exec() the child may only call async-signal-safe functions. Everything
 * the child needs (argv, log path) is prepared before fork(). The child
 * double-forks so that the agent is re-parented to init: it outlives asgd and
 * asgd never has to reap it. The intermediate process reports the agent's
 * pid through a pipe.
 *
 * A pid file is written with write-to-temp + rename, so a crash mid-write
 * leaves either the old file or the new one, never half of one.
 */
#include "provider/local.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "common/clock.h"
#include "common/log.h"

#include "common/banned.h"

#define LOCAL_MAX_ADDRS 60000
/* how long a launch waits for the agent's "ok" (or its startup error) after its boot delay */
#define LOCAL_READY_TIMEOUT_MS 5000
/* with a longer simulated boot the launch does not wait (it would block the controller) */
#define LOCAL_READY_MAX_BOOT_MS 2000
/* a reservation (pid file without a pid) older than this is a spawn that never happened */
#define LOCAL_RESERVE_TTL_MS 10000

struct local_provider {
    struct provider base;
    char *group, *dir, *agent_path, *monitor_address, *token_file;
    char **extra_args; /* NULL-terminated, split agent_args */
    size_t n_extra;
    uint32_t base_addr; /* host order */
    int agent_port;
    int64_t boot_delay_ms, kill_timeout_ms;
    int keep_logs;
    uint32_t *taken; /* address offsets found taken by another process (logged once each) */
    size_t n_taken, cap_taken;
};

/* One pid file. */
struct local_rec {
    char id[PROV_ID_MAX];
    int pid;
    unsigned long long starttime;
    char address[PROV_ADDR_MAX];
    int64_t launched_at_ms;
    char token[PROV_ID_MAX];
};

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

/* Reads field 3 (state) and 22 (starttime) of /proc/pid/stat. -1 if no such process. */
static int proc_stat(int pid, char *state, unsigned long long *starttime)
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
static int rec_alive(const struct local_rec *r)
{
    char state;
    unsigned long long st;
    if (r->pid <= 1 || proc_stat(r->pid, &state, &st) != 0)
        return 0;
    return st == r->starttime && state != 'Z' && state != 'X';
}

/* A reservation: the pid file was written before the spawn, the pid not yet. */
static int rec_reserved(const struct local_rec *r)
{
    return r->pid == 0;
}

/* A reservation young enough that its spawn may still be under way. */
static int rec_reserved_fresh(const struct local_rec *r, int64_t now)
{
    return rec_reserved(r) && now - r->launched_at_ms < LOCAL_RESERVE_TTL_MS &&
           r->launched_at_ms - now < LOCAL_RESERVE_TTL_MS;
}

/* Counts as an instance of the group: a live agent, or a spawn that may be under way. */
static int rec_counts(const struct local_rec *r, int64_t now)
{
    return rec_reserved(r) ? rec_reserved_fresh(r, now) : rec_alive(r);
}

static int valid_id(const char *id)
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
    return got == 7 && valid_id(r->id) ? 0 : -1;
}

static int rec_write(const struct local_provider *lp, const struct local_rec *r)
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

static void rec_remove(const struct local_provider *lp, const char *id)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.pid", lp->dir, id);
    unlink(path);
}

/* Every pid file in the directory (alive or not). */
static int rec_list(struct local_provider *lp, struct local_rec **out, size_t *n_out)
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

static void fill_instance(const struct local_provider *lp, const struct local_rec *r, int64_t now,
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

static int random_hex(char *buf, size_t nbytes)
{
    unsigned char raw[16];
    if (nbytes > sizeof(raw))
        nbytes = sizeof(raw);
    if (getrandom(raw, nbytes, 0) != (ssize_t)nbytes)
        return -1;
    for (size_t i = 0; i < nbytes; i++)
        snprintf(buf + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

/*
 * What the intermediate process needs to write the agent's pid file, prepared
 * before fork(): after fork() only async-signal-safe calls are allowed, so no
 * stdio, no malloc; numbers are formatted by hand below.
 */
struct pidfile_plan {
    char path[4096], tmp[4096];
    char head[PROV_ID_MAX + 8];                  /* "id=ID\n" */
    char tail[PROV_ADDR_MAX + PROV_ID_MAX + 64]; /* "address=..\nlaunched_at_ms=..\ntoken=..\n" */
};

static size_t as_strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

/* Appends s at buf+*len if it fits in cap (NUL not needed). Returns -1 if not. */
static int as_put(char *buf, size_t cap, size_t *len, const char *s, size_t n)
{
    if (*len + n > cap)
        return -1;
    for (size_t i = 0; i < n; i++)
        buf[*len + i] = s[i];
    *len += n;
    return 0;
}

static int as_put_u64(char *buf, size_t cap, size_t *len, unsigned long long v)
{
    char t[24];
    size_t n = 0;
    do {
        t[sizeof(t) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0 && n < sizeof(t));
    return as_put(buf, cap, len, t + sizeof(t) - n, n);
}

/* proc_stat()'s starttime, async-signal-safe. */
static int as_starttime(int pid, unsigned long long *out)
{
    char path[48], buf[1024];
    size_t len = 0;
    if (as_put(path, sizeof(path) - 1, &len, "/proc/", 6) != 0 ||
        as_put_u64(path, sizeof(path) - 1, &len, (unsigned long long)pid) != 0 ||
        as_put(path, sizeof(path) - 1, &len, "/stat", 5) != 0)
        return -1;
    path[len] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    /* fields resume after the LAST ')' (comm may hold anything) */
    ssize_t i = n - 1;
    while (i >= 0 && buf[i] != ')')
        i--;
    if (i < 0)
        return -1;
    /* ") S f4 f5 ...": field 3 starts at i+2; field 22 is 19 separators later */
    int field = 3;
    for (i += 2; i < n && field < 22; i++)
        if (buf[i] == ' ')
            field++;
    if (field != 22 || i >= n || buf[i] < '0' || buf[i] > '9')
        return -1;
    unsigned long long v = 0;
    for (; i < n && buf[i] >= '0' && buf[i] <= '9'; i++)
        v = v * 10 + (unsigned long long)(buf[i] - '0');
    *out = v;
    return 0;
}

/* Writes the full pid file for pid (temp + fsync + rename), async-signal-safe. */
static int as_write_pidfile(const struct pidfile_plan *pl, int pid)
{
    unsigned long long st;
    if (as_starttime(pid, &st) != 0)
        return -1;
    char buf[512];
    size_t len = 0;
    if (as_put(buf, sizeof(buf), &len, pl->head, as_strlen(pl->head)) != 0 ||
        as_put(buf, sizeof(buf), &len, "pid=", 4) != 0 ||
        as_put_u64(buf, sizeof(buf), &len, (unsigned long long)pid) != 0 ||
        as_put(buf, sizeof(buf), &len, "\nstarttime=", 11) != 0 ||
        as_put_u64(buf, sizeof(buf), &len, st) != 0 || as_put(buf, sizeof(buf), &len, "\n", 1) ||
        as_put(buf, sizeof(buf), &len, pl->tail, as_strlen(pl->tail)) != 0)
        return -1;
    int fd = open(pl->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    int ok = write(fd, buf, len) == (ssize_t)len && fsync(fd) == 0;
    if (close(fd) != 0)
        ok = 0;
    if (!ok || rename(pl->tmp, pl->path) != 0) {
        unlink(pl->tmp);
        return -1;
    }
    return 0;
}

/*
 * Starts the agent detached. Returns its pid, or -1 with errno set. Only
 * async-signal-safe calls after fork(). With ready_rd, the agent gets the
 * write end of a pipe as fd 3 (its argv carries --ready-fd 3) and *ready_rd
 * is the read end (the caller closes it).
 */
static int spawn_agent(struct local_provider *lp, char *const argv[], const char *log_path,
                       const struct pidfile_plan *plan, int *ready_rd, int *pidfile_written)
{
    *pidfile_written = 0;
    int pfd[2], rfd[2] = {-1, -1};
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return -1;
    if (ready_rd && pipe2(rfd, O_CLOEXEC) != 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    int logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (logfd < 0 || nullfd < 0) {
        int e = errno;
        if (logfd >= 0)
            close(logfd);
        if (nullfd >= 0)
            close(nullfd);
        close(pfd[0]);
        close(pfd[1]);
        if (rfd[0] >= 0) {
            close(rfd[0]);
            close(rfd[1]);
        }
        errno = e;
        return -1;
    }
    struct timespec delay = {(time_t)(lp->boot_delay_ms / 1000),
                             (long)(lp->boot_delay_ms % 1000) * 1000000L};

    pid_t mid = fork();
    if (mid < 0) {
        int e = errno;
        close(logfd);
        close(nullfd);
        close(pfd[0]);
        close(pfd[1]);
        if (rfd[0] >= 0) {
            close(rfd[0]);
            close(rfd[1]);
        }
        errno = e;
        return -1;
    }
    if (mid == 0) {
        /* intermediate: new session, fork the agent, report its pid, leave */
        setsid();
        pid_t agent = fork();
        if (agent == 0) {
            sigset_t all;
            sigemptyset(&all);
            sigprocmask(SIG_SETMASK, &all, NULL);
            signal(SIGPIPE, SIG_DFL);
            dup2(nullfd, 0);
            dup2(logfd, 1);
            dup2(logfd, 2);
            if (rfd[1] >= 0) {
                if (rfd[1] == 3)
                    fcntl(3, F_SETFD, 0); /* dup2 onto itself would keep O_CLOEXEC */
                else
                    dup2(rfd[1], 3);
                close_range(4, ~0U, 0);
            } else {
                close_range(3, ~0U, 0);
            }
            while (delay.tv_sec > 0 || delay.tv_nsec > 0) {
                if (nanosleep(&delay, &delay) == 0)
                    break;
            }
            execv(argv[0], argv);
            _exit(127);
        }
        /* The pid file, before anything else: from here on the agent lives on its
         * own, and if asgd was killed meanwhile its restart must find it. */
        int written = agent > 0 && as_write_pidfile(plan, (int)agent) == 0;
        int v = (int)agent;
        ssize_t w = write(pfd[1], &v, sizeof(v));
        (void)w;
        _exit(agent <= 0 ? 1 : written ? 0 : 2);
    }
    close(pfd[1]);
    close(logfd);
    close(nullfd);
    if (rfd[1] >= 0)
        close(rfd[1]);
    int agent_pid = -1;
    ssize_t r;
    do {
        r = read(pfd[0], &agent_pid, sizeof(agent_pid));
    } while (r < 0 && errno == EINTR);
    close(pfd[0]);
    int status = -1;
    while (waitpid(mid, &status, 0) < 0 && errno == EINTR) {
    }
    *pidfile_written = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (r != (ssize_t)sizeof(agent_pid) || agent_pid <= 0) {
        if (rfd[0] >= 0)
            close(rfd[0]);
        errno = ECHILD;
        return -1;
    }
    if (ready_rd)
        *ready_rd = rfd[0];
    return agent_pid;
}

/*
 * Waits up to timeout_ms for the agent's one line on fd (closed here).
 * Returns 1 for "ok", 0 when it reported a failure or exited without a word
 * (msg says which), -1 when it said nothing in time (still booting: the
 * launch stands).
 */
static int wait_ready(int fd, int64_t timeout_ms, char *msg, size_t msglen)
{
    char line[600];
    size_t len = 0;
    int64_t deadline = clk_mono_ms() + timeout_ms;
    int rc = -1;
    for (;;) {
        int64_t left = deadline - clk_mono_ms();
        if (left <= 0)
            break;
        struct pollfd pf = {fd, POLLIN, 0};
        int n = poll(&pf, 1, (int)(left > 1000 ? 1000 : left));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            continue;
        ssize_t r = read(fd, line + len, sizeof(line) - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r > 0)
            len += (size_t)r;
        line[len] = '\0';
        char *nl = strchr(line, '\n');
        if (nl != NULL || r <= 0 || len == sizeof(line) - 1) {
            if (nl)
                *nl = '\0';
            if (strcmp(line, "ok") == 0) {
                rc = 1;
            } else {
                snprintf(msg, msglen, "%s",
                         line[0] ? line : "the agent exited before serving (see its log)");
                rc = 0;
            }
            break;
        }
    }
    close(fd);
    return rc;
}

/*
 * 0 when host:port is already taken by some other process (what the agent
 * will do fails: SO_REUSEADDR, bind, listen gives EADDRINUSE), else 1. Other
 * errors say 1: the agent tries, and its failure is reported.
 */
static int port_free(uint32_t host, int port)
{
    if (port <= 0)
        return 1; /* each agent picks its own port */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(host);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 1) == 0 ? 0 : errno;
    close(fd);
    return rc != EADDRINUSE;
}

/* Remembers (1) or forgets (0) that offset is taken; returns 1 when that changed. */
static int mark_taken(struct local_provider *lp, uint32_t off, int taken)
{
    for (size_t i = 0; i < lp->n_taken; i++) {
        if (lp->taken[i] != off)
            continue;
        if (!taken)
            lp->taken[i] = lp->taken[--lp->n_taken];
        return !taken;
    }
    if (!taken)
        return 0;
    if (lp->n_taken == lp->cap_taken) {
        size_t ncap = lp->cap_taken ? lp->cap_taken * 2 : 8;
        uint32_t *nv = realloc(lp->taken, ncap * sizeof(*nv));
        if (nv == NULL)
            return 1; /* cannot remember: log again next time */
        lp->taken = nv;
        lp->cap_taken = ncap;
    }
    lp->taken[lp->n_taken++] = off;
    return 1;
}

static int addr_in_use(const struct local_rec *recs, size_t n, const char *addr, int64_t now)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(recs[i].address, addr) == 0 && rec_counts(&recs[i], now))
            return 1;
    return 0;
}

static int launch_one(struct local_provider *lp, const char *token, struct local_rec *recs,
                      size_t n_recs, struct local_rec *out)
{
    char host[INET_ADDRSTRLEN], addr[PROV_ADDR_MAX];
    uint32_t off;
    for (off = 0; off < LOCAL_MAX_ADDRS; off++) {
        struct in_addr ia = {htonl(lp->base_addr + off)};
        inet_ntop(AF_INET, &ia, host, sizeof(host));
        snprintf(addr, sizeof(addr), "%s:%d", host, lp->agent_port);
        if (addr_in_use(recs, n_recs, addr, clk_wall_ms()))
            continue;
        /* another process squatting there would make every agent fail: skip it */
        if (!port_free(lp->base_addr + off, lp->agent_port)) {
            if (mark_taken(lp, off, 1))
                log_warn("local: %s is already taken by another process: skipping it for the "
                         "instances of group \"%s\"",
                         addr, lp->group);
            continue;
        }
        if (mark_taken(lp, off, 0))
            log_info("local: %s is free again", addr);
        break;
    }
    if (off == LOCAL_MAX_ADDRS)
        return provider__fail(&lp->base, PROV_ECAPACITY, "no free loopback address");

    struct local_rec r;
    memset(&r, 0, sizeof(r));
    char hex[17] = {0};
    if (random_hex(hex, 4) != 0)
        return provider__fail(&lp->base, PROV_ERETRY, "getrandom failed: %s", strerror(errno));
    snprintf(r.id, sizeof(r.id), "%.40s-%s", lp->group, hex);
    snprintf(r.address, sizeof(r.address), "%s", addr);
    snprintf(r.token, sizeof(r.token), "%s", token);

    /* argv: agent --listen A --advertise A --instance-id ID [--monitor M] [--token-file F] extra */
    size_t argc = 0, cap = 14 + lp->n_extra;
    char **argv = calloc(cap, sizeof(*argv));
    if (argv == NULL)
        return provider__fail(&lp->base, PROV_ENOMEM, "out of memory");
    argv[argc++] = lp->agent_path;
    argv[argc++] = "--listen";
    argv[argc++] = addr;
    argv[argc++] = "--advertise";
    argv[argc++] = addr;
    argv[argc++] = "--instance-id";
    argv[argc++] = r.id;
    if (lp->monitor_address) {
        argv[argc++] = "--monitor";
        argv[argc++] = lp->monitor_address;
    }
    if (lp->token_file) {
        argv[argc++] = "--token-file";
        argv[argc++] = lp->token_file;
    }
    for (size_t i = 0; i < lp->n_extra; i++)
        argv[argc++] = lp->extra_args[i];
    int wait = lp->boot_delay_ms <= LOCAL_READY_MAX_BOOT_MS;
    if (wait) {
        /* after agent_args: a --ready-fd there must not take the pipe's place */
        argv[argc++] = "--ready-fd";
        argv[argc++] = "3";
    }
    argv[argc] = NULL;

    char log_path[4096];
    snprintf(log_path, sizeof(log_path), "%s/%s.log", lp->dir, r.id);
    r.launched_at_ms = clk_wall_ms();

    /* The reservation: durable before the spawn, so a restart after a crash
     * anywhere from here on counts this instance (and its address, and its
     * token) instead of launching another; see local.h. */
    r.pid = 0;
    r.starttime = 0;
    if (rec_write(lp, &r) != 0) {
        int e = errno;
        free(argv);
        return provider__fail(&lp->base, PROV_ERETRY, "cannot write pid file for \"%s\": %s", r.id,
                              strerror(e));
    }
    struct pidfile_plan plan;
    snprintf(plan.path, sizeof(plan.path), "%s/%s.pid", lp->dir, r.id);
    snprintf(plan.tmp, sizeof(plan.tmp), "%s/.%s.pid.spawn", lp->dir, r.id);
    snprintf(plan.head, sizeof(plan.head), "id=%s\n", r.id);
    snprintf(plan.tail, sizeof(plan.tail), "address=%s\nlaunched_at_ms=%" PRId64 "\ntoken=%s\n",
             r.address, r.launched_at_ms, r.token);

    int ready_fd = -1, written = 0;
    int pid = spawn_agent(lp, argv, log_path, &plan, wait ? &ready_fd : NULL, &written);
    int spawn_errno = errno;
    free(argv);
    if (pid < 0) {
        rec_remove(lp, r.id);
        return provider__fail(&lp->base, PROV_ERETRY, "cannot start \"%s\": %s", lp->agent_path,
                              strerror(spawn_errno));
    }
    r.pid = pid;
    char state;
    if (proc_stat(pid, &state, &r.starttime) != 0) {
        /* gone already: say why if it told us */
        char why[600] = "the agent exited at once (see its log)";
        if (ready_fd >= 0)
            wait_ready(ready_fd, 1000, why, sizeof(why));
        rec_remove(lp, r.id);
        return provider__fail(&lp->base, PROV_ERETRY, "instance \"%s\" at %s did not start: %s",
                              r.id, r.address, why);
    }
    /* the intermediate process normally wrote it; if it could not, we do */
    if (!written && rec_write(lp, &r) != 0) {
        int e = errno;
        if (ready_fd >= 0)
            close(ready_fd);
        kill(pid, SIGKILL);
        rec_remove(lp, r.id);
        return provider__fail(&lp->base, PROV_ERETRY, "cannot write pid file for \"%s\": %s", r.id,
                              strerror(e));
    }
    if (ready_fd >= 0) {
        char why[600];
        int ready =
            wait_ready(ready_fd, lp->boot_delay_ms + LOCAL_READY_TIMEOUT_MS, why, sizeof(why));
        if (ready == 0) {
            /* it will not serve: make sure it is gone, forget it, say why */
            if (rec_alive(&r))
                kill(pid, SIGKILL);
            rec_remove(lp, r.id);
            return provider__fail(&lp->base, PROV_ERETRY, "instance \"%s\" at %s did not start: %s",
                                  r.id, r.address, why);
        }
        if (ready < 0)
            log_warn("local: instance \"%s\" has not reported ready within %" PRId64
                     " ms; keeping it",
                     r.id, lp->boot_delay_ms + LOCAL_READY_TIMEOUT_MS);
    }
    *out = r;
    return 0;
}

static int local_launch(struct provider *p, int count, const char *token, struct prov_list *out)
{
    struct local_provider *lp = (struct local_provider *)p;
    struct local_rec *recs = NULL;
    size_t n = 0;
    int64_t now = clk_wall_ms();
    int rc = rec_list(lp, &recs, &n);
    if (rc != 0)
        return rc;

    /* Idempotency: instances already made by this token count toward count. */
    int have = 0;
    for (size_t i = 0; i < n && have < count; i++) {
        if (strcmp(recs[i].token, token) == 0 && rec_counts(&recs[i], now)) {
            struct prov_instance inst;
            fill_instance(lp, &recs[i], now, &inst);
            if ((rc = prov_list_push(out, &inst)) != 0)
                goto out;
            have++;
        }
    }
    while (have < count) {
        struct local_rec r;
        rc = launch_one(lp, token, recs, n, &r);
        if (rc != 0)
            goto out;
        /* remember it so the next one picks another address */
        struct local_rec *nv = realloc(recs, (n + 1) * sizeof(*nv));
        if (nv == NULL) {
            rc = provider__fail(p, PROV_ENOMEM, "out of memory");
            goto out;
        }
        recs = nv;
        recs[n++] = r;
        struct prov_instance inst;
        fill_instance(lp, &r, now, &inst);
        if ((rc = prov_list_push(out, &inst)) != 0)
            goto out;
        have++;
    }
out:
    free(recs);
    if (rc != 0)
        prov_list_release(out);
    return rc;
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
    if (n > (size_t)lp->keep_logs) {
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

/*
 * rec_read(), but a fresh reservation is waited for (its spawn is under way,
 * normally a few ms) until it holds a pid or goes stale: removing its pid file
 * now would let the spawn put it back afterwards, an instance nobody asked for.
 */
static int rec_read_settled(const char *path, struct local_rec *r)
{
    for (;;) {
        if (rec_read(path, r) != 0)
            return -1;
        if (!rec_reserved_fresh(r, clk_wall_ms()))
            return 0;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
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
        if (!valid_id(ids[i]))
            continue;
        snprintf(path, sizeof(path), "%s/%s.pid", lp->dir, ids[i]);
        if (rec_read_settled(path, &recs[i]) == 0 && rec_alive(&recs[i])) {
            live[i] = 1;
            kill(recs[i].pid, SIGTERM);
        }
    }
    int64_t deadline = clk_mono_ms() + (lp->kill_timeout_ms > 0 ? lp->kill_timeout_ms : 3000);
    for (;;) {
        int remaining = 0;
        for (size_t i = 0; i < n; i++)
            if (live[i] && (live[i] = rec_alive(&recs[i])))
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
        if (valid_id(ids[i]))
            rec_remove(lp, ids[i]);
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
    int rc = rec_list(lp, &recs, &n);
    if (rc != 0)
        return rc;
    int removed = 0;
    for (size_t i = 0; i < n; i++) {
        if (rec_reserved_fresh(&recs[i], now)) {
            /* a spawn under way (or cut short by a crash: it goes stale) */
        } else if (!rec_alive(&recs[i])) {
            /* the machine is gone (or its spawn never happened): nothing left to
             * terminate, forget it */
            rec_remove(lp, recs[i].id);
            removed = 1;
            continue;
        }
        struct prov_instance inst;
        fill_instance(lp, &recs[i], now, &inst);
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
    if (!valid_id(id))
        return provider__fail(p, PROV_EINVAL, "\"%.64s\" is not an instance id", id);
    rec_remove(lp, id);
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
    if (!valid_id(in->id) || in->pid <= 1 || in->address[0] == '\0')
        return provider__fail(
            p, PROV_EINVAL,
            "attach needs the agent's instance id, pid and address (got \"%.64s\", "
            "pid %d)",
            in->id, in->pid);
    snprintf(path, sizeof(path), "%s/%s.pid", lp->dir, in->id);
    if (access(path, F_OK) == 0)
        return provider__fail(p, PROV_EINVAL, "instance \"%s\" already belongs to the group",
                              in->id);
    if (proc_stat(in->pid, &state, &r.starttime) != 0 || state == 'Z')
        return provider__fail(p, PROV_EINVAL,
                              "pid %d of instance \"%s\" is not a live process of this host",
                              in->pid, in->id);
    snprintf(r.id, sizeof(r.id), "%s", in->id);
    snprintf(r.address, sizeof(r.address), "%s", in->address);
    r.pid = in->pid;
    r.launched_at_ms = clk_wall_ms();
    if (rec_write(lp, &r) != 0)
        return provider__fail(p, PROV_EFATAL, "cannot write \"%s\": %s", path, strerror(errno));
    fill_instance(lp, &r, r.launched_at_ms, out);
    out->state = PROV_RUNNING;
    return 0;
}

static const struct provider_ops local_ops = {
    .name = "local",
    .launch = local_launch,
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
