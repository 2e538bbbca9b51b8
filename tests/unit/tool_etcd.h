/*
 * tool_etcd.h - a test's own etcd cluster (scripts/etcd-cluster) from a C
 * test. Header-only, for tests.
 *
 * tool_etcd_run() runs the script with printf-style arguments ("start DIR
 * PORT", "kill DIR 2", ...) and returns its exit status. tool_etcd_watchdog()
 * leaves a process that stops the clusters under dir (and the TLS one at
 * dir/tls) and removes dir once this process is gone, even after a crash: it
 * waits for EOF on a pipe whose write end only this process holds. It is
 * detached (a grandchild whose parent exits at once, so init adopts it):
 * ctest's timeout SIGKILLs the test and every process whose parent chain
 * leads to it, and a child watchdog went with the test, leaving the cluster
 * running (paused members included) with its ports taken.
 */
#ifndef ASGD_TEST_TOOL_ETCD_H
#define ASGD_TEST_TOOL_ETCD_H

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int tool_etcd_run(const char *script, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), unused)); /* not every test runs verbs */
static int tool_etcd_run(const char *script, const char *fmt, ...)
{
    char args[512], cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "%s %s", script, args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void tool_etcd_watchdog(const char *script, const char *dir)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[1]);
        if (fork() !=
            0) /* the middle process exits (or failed to fork): the watchdog is orphaned */
            _exit(0);
        /* not the test's stdout / stderr: a runner reading them would wait for the watchdog */
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
            if (null > 2)
                close(null);
        }
        char c;
        while (read(fds[0], &c, 1) != 0 && errno == EINTR)
            ;
        char cmd[4096];
        snprintf(cmd, sizeof(cmd),
                 "%s stop %s/tls >/dev/null 2>&1; %s stop %s >/dev/null 2>&1; rm -rf %s", script,
                 dir, script, dir, dir);
        _exit(system(cmd) == 0 ? 0 : 1);
    }
    close(fds[0]);
    if (pid > 0)
        waitpid(pid, NULL, 0); /* the middle process */
    /* fds[1] stays open (close-on-exec) until this process ends */
}

#endif
