/*
 * local.h - the local provider: every instance is a detached monitorc process.
 *
 * An instance is a monitorc process in its own session (it survives asgd, as
 * a machine survives its autoscaler) listening on its own loopback address:
 * address_base, address_base+1, ... (127.0.0.2, 127.0.0.3, ...) at agent_port.
 * Membership is a pid file per instance in <state_dir>/local/<id>.pid holding
 * the pid, the process start time (so a recycled pid is never mistaken for
 * ours), the address, the launch time and the launch token. Terminate =
 * SIGTERM, then SIGKILL after kill_timeout.
 *
 * Crash safety (a kill -9 of asgd at any instant of a launch): the launch
 * writes the instance's pid file BEFORE it forks, with pid 0 (a
 * "reservation": id, address, launch token and time decided up front), and the
 * intermediate process of the double fork rewrites it with the agent's pid and
 * start time right after forking the agent, before the agent execs and before
 * it reports to asgd. So from the moment an agent process exists, a pid file
 * names it, whether or not asgd survived; and before that, the reservation
 * holds its place. A restart's describe() adopts every pid file with a live
 * process; a reservation counts as a PENDING instance (pid 0, its address in
 * use, its token matching: a re-sent launch with that token returns it and
 * spawns nothing) for LOCAL_RESERVE_TTL (10 s), after which it is a spawn that
 * never happened and is dropped. Chosen over scanning /proc for a marker in
 * the agent's command line because a booting agent (boot_delay) has not
 * exec'd yet and still shows asgd's command line.
 *
 * Startup check: unless boot_delay is over 2 s, a launch waits (boot_delay +
 * 5 s at most) for the agent's one line on --ready-fd: "ok", or why it cannot
 * serve (e.g. its address is taken: monitorc exits 3), which fails the launch
 * with that reason. An address another process already listens on is skipped
 * when choosing the next instance's address (logged once).
 *
 * Files are private (directory 0700, pid files and logs 0600): pid files hold
 * launch tokens. An instance's log, <id>.log, outlives it for diagnosis; only
 * the keep_logs newest logs of instances that no longer have a pid file are
 * kept, older ones are removed whenever an instance goes away.
 */
#ifndef ASGD_PROVIDER_LOCAL_H
#define ASGD_PROVIDER_LOCAL_H

#include <stddef.h>
#include <stdint.h>

#include "provider/provider.h"

struct local_settings {
    const char *group;           /* group name (ids are "<group>-<hex>") */
    const char *state_dir;       /* pid files and agent logs go to <state_dir>/local/ */
    const char *agent_path;      /* monitorc binary */
    const char *agent_args;      /* appended to every command line, split on whitespace, 'single' or
                                    "double" quotes keep one argument; may be NULL */
    const char *address_base;    /* first loopback address, e.g. "127.0.0.2" */
    int agent_port;              /* every instance listens on <its address>:agent_port */
    const char *monitor_address; /* MonitorS "host:port" passed as --monitor; may be NULL */
    const char *token_file;      /* passed as --token-file; may be NULL */
    int64_t boot_delay_ms;       /* simulated boot: the agent starts this long after launch */
    int64_t kill_timeout_ms;     /* SIGTERM -> SIGKILL; 0 means 3 s */
    int keep_logs; /* log files of terminated instances kept, newest first; 0 means 20 */
};

/* Creates the provider (copies the settings). Creates <state_dir>/local. */
int provider_local_new(const struct local_settings *s, struct provider **out, char *err,
                       size_t errlen);

#endif
