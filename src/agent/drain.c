/*
 * drain.c - monitorc's drain command (--on-terminate CMD): run once when
 * asgd says the instance entered terminating:wait (MonitorC/Lifecycle), so
 * the service can finish its requests before the instance is terminated.
 *
 * The command runs as `/bin/sh -c CMD` in its own process group, spawned with
 * posix_spawn (monitorc is multi-threaded: no fork-without-exec), and a
 * waiter thread reaps it, killing the whole group when --drain-timeout
 * passes. The state (none, running, done, failed + why) is what
 * MonitorC/Lifecycle answers; asgd completes the terminate hook with
 * "continue" on done and applies the hook's default result on failed.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/banned.h"

extern char **environ;

struct agent_drain {
    char *cmd;
    int64_t timeout_ms; /* 0: none */
    struct agent_state *st;
    pthread_mutex_t mu;
    int state; /* enum agent_drain_state, under mu */
    char detail[160];
    pid_t pid;
    int have_thread;
    pthread_t thread;
};

struct agent_drain *agent_drain_new(const char *cmd, int64_t timeout_ms, struct agent_state *st)
{
    struct agent_drain *d = calloc(1, sizeof(*d));
    if (d == NULL || (d->cmd = strdup(cmd)) == NULL) {
        free(d);
        return NULL;
    }
    d->timeout_ms = timeout_ms;
    d->st = st;
    pthread_mutex_init(&d->mu, NULL);
    return d;
}

static void finish(struct agent_drain *d, int state, const char *detail)
{
    pthread_mutex_lock(&d->mu);
    d->state = state;
    snprintf(d->detail, sizeof(d->detail), "%s", detail);
    pthread_mutex_unlock(&d->mu);
    if (state == AGENT_DRAIN_DONE)
        log_info("drain command done (exit 0)");
    else
        log_warn("drain command failed: %s", detail);
}

/* Reaps the command; kills its process group at the timeout. */
static void *waiter(void *arg)
{
    struct agent_drain *d = arg;
    int64_t deadline = d->timeout_ms > 0 ? clk_mono_ms() + d->timeout_ms : 0;
    int status = 0, killed = 0;
    for (;;) {
        pid_t r = waitpid(d->pid, &status, WNOHANG);
        if (r == d->pid)
            break;
        if (r < 0 && errno != EINTR) {
            finish(d, AGENT_DRAIN_FAILED, "lost track of the command");
            return NULL;
        }
        if (deadline && !killed && clk_mono_ms() >= deadline) {
            kill(-d->pid, SIGKILL);
            killed = 1;
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    char why[160];
    if (killed) {
        snprintf(why, sizeof(why), "timed out after %lld ms (--drain-timeout): killed",
                 (long long)d->timeout_ms);
        finish(d, AGENT_DRAIN_FAILED, why);
    } else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        finish(d, AGENT_DRAIN_DONE, "");
    } else if (WIFEXITED(status)) {
        snprintf(why, sizeof(why), "exit status %d", WEXITSTATUS(status));
        finish(d, AGENT_DRAIN_FAILED, why);
    } else {
        snprintf(why, sizeof(why), "killed by signal %d",
                 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        finish(d, AGENT_DRAIN_FAILED, why);
    }
    return NULL;
}

void agent_drain_start(struct agent_drain *d)
{
    pthread_mutex_lock(&d->mu);
    if (d->state != AGENT_DRAIN_NONE) {
        pthread_mutex_unlock(&d->mu);
        return;
    }
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setpgroup(&at, 0);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&at, &none); /* monitorc blocks SIGTERM; the command must not */
    char *argv[] = {(char *)"/bin/sh", (char *)"-c", d->cmd, NULL};
    int rc = posix_spawn(&d->pid, "/bin/sh", NULL, &at, argv, environ);
    posix_spawnattr_destroy(&at);
    if (rc != 0) {
        d->state = AGENT_DRAIN_FAILED;
        snprintf(d->detail, sizeof(d->detail), "cannot start /bin/sh: %s", strerror(rc));
        pthread_mutex_unlock(&d->mu);
        log_error("drain command: %s", d->detail);
        return;
    }
    d->state = AGENT_DRAIN_RUNNING;
    d->have_thread = pthread_create(&d->thread, NULL, waiter, d) == 0;
    if (!d->have_thread) {
        kill(-d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        d->state = AGENT_DRAIN_FAILED;
        snprintf(d->detail, sizeof(d->detail), "cannot start a thread to wait for it");
    }
    pthread_mutex_unlock(&d->mu);
    log_info("terminating:wait: draining with --on-terminate (pid %d)", (int)d->pid);
}

int agent_drain_state(struct agent_drain *d, char *detail, size_t len)
{
    pthread_mutex_lock(&d->mu);
    int s = d->state;
    snprintf(detail, len, "%s", d->detail);
    pthread_mutex_unlock(&d->mu);
    return s;
}

void agent_drain_free(struct agent_drain *d)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    int running = d->state == AGENT_DRAIN_RUNNING;
    pid_t pid = d->pid;
    pthread_mutex_unlock(&d->mu);
    if (running && pid > 0)
        kill(-pid, SIGKILL); /* the agent stops: so does its drain */
    if (d->have_thread)
        pthread_join(d->thread, NULL);
    pthread_mutex_destroy(&d->mu);
    free(d->cmd);
    free(d);
}
