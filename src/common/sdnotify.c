/*
 * sdnotify.c - sd_notify(3)'s datagram protocol (see sdnotify.h).
 *
 * The socket is looked up on every call rather than cached: tests (and
 * systemd-run) set $NOTIFY_SOCKET before exec, and a few datagrams a second
 * cost nothing. The address length is computed exactly because an abstract
 * name ('@' in the variable, a NUL first byte on the wire) is not
 * NUL-terminated: trailing zeros would be part of the name.
 */
#include "common/sdnotify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/banned.h"

static int inited;
static char *env_socket, *env_wd_usec, *env_wd_pid; /* copies taken by sdn_init() */

static char *take(const char *name)
{
    const char *v = getenv(name);
    char *copy = v ? strdup(v) : NULL;
    unsetenv(name);
    return copy;
}

void sdn_init(void)
{
    if (inited)
        return;
    env_socket = take("NOTIFY_SOCKET");
    env_wd_usec = take("WATCHDOG_USEC");
    env_wd_pid = take("WATCHDOG_PID");
    inited = 1;
}

static const char *env(const char *name, const char *taken)
{
    return inited ? taken : getenv(name);
}

int sdn_notify(const char *state)
{
    const char *path = env("NOTIFY_SOCKET", env_socket);
    if (path == NULL || path[0] == '\0')
        return 1;
    if (path[0] != '/' && path[0] != '@')
        return -EAFNOSUPPORT; /* vsock and other families are not ours to speak */
    struct sockaddr_un sa;
    size_t n = strlen(path);
    if (n >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, n);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    ssize_t w = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
    int rc = w < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int sdn_notifyf(const char *fmt, ...)
{
    if (env("NOTIFY_SOCKET", env_socket) == NULL)
        return 1;
    va_list ap;
    va_start(ap, fmt);
    char *msg = NULL;
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -ENOMEM;
    int rc = sdn_notify(msg);
    free(msg);
    return rc;
}

uint64_t sdn_watchdog_usec(void)
{
    const char *us = env("WATCHDOG_USEC", env_wd_usec);
    const char *pid = env("WATCHDOG_PID", env_wd_pid);
    if (us == NULL)
        return 0;
    char *end;
    if (pid != NULL) {
        errno = 0;
        long long p = strtoll(pid, &end, 10);
        if (errno != 0 || end == pid || *end != '\0' || p != (long long)getpid())
            return 0;
    }
    errno = 0;
    unsigned long long v = strtoull(us, &end, 10);
    if (errno != 0 || end == us || *end != '\0' || us[0] == '-')
        return 0;
    return (uint64_t)v;
}
