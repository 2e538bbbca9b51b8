/*
 * sdnotify.h - systemd's service notification protocol (sd_notify(3)),
 * without libsystemd.
 *
 * A service of Type=notify tells systemd it is ready (READY=1), what it is
 * doing (STATUS=...), that it is stopping (STOPPING=1) and, under
 * WatchdogSec=, that it is alive (WATCHDOG=1), by sending datagrams of
 * "KEY=VALUE\n" lines to the AF_UNIX socket named in $NOTIFY_SOCKET (a path,
 * or an abstract socket when it starts with '@'). Outside systemd the
 * variable is absent and every call is a successful no-op, so the daemon
 * calls them unconditionally.
 *
 * Threads: every function is thread-safe (each call opens, sends and closes
 * its own socket: a few calls a second at most, so no shared descriptor).
 * Errors: 0 sent, 1 nothing to do (no $NOTIFY_SOCKET), or a negative errno.
 */
#ifndef ASGD_SDNOTIFY_H
#define ASGD_SDNOTIFY_H

#include <stdint.h>

/*
 * Takes $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID out of the
 * environment into this module (as sd_notify's unset_environment does), so
 * that the processes asgd starts (local instances) do not talk to systemd in
 * asgd's name. Call once from main() before any thread exists. Without it
 * the functions below read the environment on each call.
 */
void sdn_init(void);

/* Sends state ("READY=1", "STATUS=3 groups\nWATCHDOG=1", ...) to $NOTIFY_SOCKET. */
int sdn_notify(const char *state);

/* Like sdn_notify() with a printf format. */
int sdn_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The watchdog interval systemd expects pings within, in microseconds, from
 * $WATCHDOG_USEC (honoured only when $WATCHDOG_PID is absent or this
 * process's pid, as sd_watchdog_enabled(3) does). 0: no watchdog.
 */
uint64_t sdn_watchdog_usec(void);

#endif
