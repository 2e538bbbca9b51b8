/*
 * local_spawn.c - starting an agent detached (see local_int.h).
 *
 * Spawning: asgd is multi-threaded (gRPC starts threads), so between fork()
 * and exec() the child may only call async-signal-safe functions. Everything
 * the child needs (argv, log path) is prepared before fork(). The child
 * double-forks so that the agent is re-parented to init: it outlives asgd and
 * asgd never has to reap it. The intermediate process reports the agent's
 * pid through a pipe.
 *
 * The intermediate process also writes the agent's pid file (the
 * pidfile_plan prepared before fork()) before the agent execs, so a pid file
 * names every agent that exists even if asgd dies meanwhile (local.h, crash
 * safety). After fork() only async-signal-safe calls: the as_* helpers
 * below format numbers and read /proc by hand.
 */
#include "provider/local_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"

#include "common/banned.h"

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

/* local__proc_stat()'s starttime, async-signal-safe. */
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

/* Closes the descriptors that are open (>= 0) on an error path, keeping the errno that
 * made it fail. */
static void close_fds(const int *fds, size_t n)
{
    int e = errno;
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    errno = e;
}

/*
 * Starts the agent detached. Returns its pid, or -1 with errno set. Only
 * async-signal-safe calls after fork(). With ready_rd, the agent gets the
 * write end of a pipe as fd 3 (its argv carries --ready-fd 3) and *ready_rd
 * is the read end (the caller closes it).
 */
int local__spawn_agent(struct local_provider *lp, char *const argv[], const char *log_path,
                       const struct pidfile_plan *plan, int *ready_rd, int *pidfile_written)
{
    *pidfile_written = 0;
    int pfd[2], rfd[2] = {-1, -1};
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return -1;
    if (ready_rd && pipe2(rfd, O_CLOEXEC) != 0) {
        close_fds(pfd, 2);
        return -1;
    }
    int logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int fds[] = {logfd, nullfd, pfd[0], pfd[1], rfd[0], rfd[1]};
    if (logfd < 0 || nullfd < 0) {
        close_fds(fds, sizeof fds / sizeof fds[0]);
        return -1;
    }
    struct timespec delay = {(time_t)(lp->boot_delay_ms / 1000),
                             (long)(lp->boot_delay_ms % 1000) * 1000000L};

    pid_t mid = fork();
    if (mid < 0) {
        close_fds(fds, sizeof fds / sizeof fds[0]);
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
int local__wait_ready(int fd, int64_t timeout_ms, char *msg, size_t msglen)
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
