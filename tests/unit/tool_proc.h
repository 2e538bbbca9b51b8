/*
 * tool_proc.h - start and stop the Python stand-ins of tests/tools/ from a C
 * test (fake_imds.py, ec2_standin.py). Header-only, for tests.
 *
 * tool_start() runs `/usr/bin/python3 $ASGD_SOURCE_DIR/tests/tools/<script>
 * --port-file <tmp> <args...>` and waits (up to 15 s) until the tool has
 * written its port. tool_stop() sends SIGTERM and reaps it.
 */
#ifndef ASGD_TEST_TOOL_PROC_H
#define ASGD_TEST_TOOL_PROC_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct tool_proc {
    pid_t pid;
    int port;
    char dir[256];
};

static inline const char *tool_source_dir(void)
{
    const char *s = getenv("ASGD_SOURCE_DIR");
    return s ? s : "..";
}

/* argv: extra arguments, NULL-terminated. Returns 0, or -1 if the tool did not come up. */
static inline int tool_start(struct tool_proc *t, const char *script, const char *const *args)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->dir, sizeof(t->dir), "/tmp/asgd-tool-XXXXXX");
    if (mkdtemp(t->dir) == NULL)
        return -1;
    char portfile[512], path[1024];
    snprintf(portfile, sizeof(portfile), "%s/port", t->dir);
    snprintf(path, sizeof(path), "%s/tests/tools/%s", tool_source_dir(), script);
    const char *argv[64];
    size_t n = 0;
    argv[n++] = "/usr/bin/python3";
    argv[n++] = path;
    argv[n++] = "--port-file";
    argv[n++] = portfile;
    for (size_t i = 0; args != NULL && args[i] != NULL && n < 62; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* keep the tool's stdout out of the test's output */
        FILE *devnull = freopen("/dev/null", "w", stdout);
        (void)devnull;
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    t->pid = pid;
    for (int i = 0; i < 1500; i++) {
        FILE *f = fopen(portfile, "r");
        if (f != NULL) {
            int port = 0;
            int ok = fscanf(f, "%d", &port);
            fclose(f);
            if (ok == 1 && port > 0) {
                t->port = port;
                return 0;
            }
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            t->pid = 0;
            return -1;
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static inline void tool_stop(struct tool_proc *t)
{
    if (t->pid > 0) {
        kill(t->pid, SIGTERM);
        int status;
        waitpid(t->pid, &status, 0);
        t->pid = 0;
    }
    char p[512];
    snprintf(p, sizeof(p), "%s/port", t->dir);
    unlink(p);
    rmdir(t->dir);
}

#endif
