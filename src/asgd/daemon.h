/*
 * daemon.h - `asgd run`: one node, its groups, its store, and in a cluster
 * its share of the estate.
 *
 * The daemon wires the pieces: the node file (conf.h), the MonitorS listener
 * and poller shared by every group (mon.h), the groups it runs (node.h), the
 * store (SQLite on one node, etcd in a cluster: store.h), group ownership
 * (cluster.h, etcd only) and the HTTP API (http.h, whose node operations it
 * implements). On one node it runs every group of its files and of its
 * store; in a cluster it runs the groups it owns and answers for all.
 *
 * Threads: daemon_run() blocks in sigwait() until SIGTERM/SIGINT (SIGHUP
 * re-reads the files there: reload.h); the stop
 * signals must be blocked in every thread before it is called (it does so
 * itself before starting any). Instances are never touched by a shutdown.
 */
#ifndef ASGD_DAEMON_H
#define ASGD_DAEMON_H

#include <stddef.h>

/* What one asgd process plays for every group of its node. */
enum daemon_roles {
    DAEMON_ROLE_MONITOR = 1,    /* `asgd monitor`: MonitorS (registrations, polls) alone */
    DAEMON_ROLE_CONTROLLER = 2, /* `asgd controller`: controllers, providers, HTTP API alone */
    DAEMON_ROLE_BOTH = 3,       /* `asgd run` */
};

/* Runs the node of config file path until a stop signal. Returns the exit code (0 or 1). */
int daemon_run(const char *path);

/*
 * daemon_run() playing only some roles: the two-process mode, `asgd monitor`
 * and `asgd controller` on the same files, the same store (SQLite only:
 * ownership in a cluster is `asgd run`'s) and the same shared-memory fleet
 * tables, one per group. Both processes run every group of the store (the
 * files seed it, as in `asgd run`):
 *   - the monitor process polls and accepts registrations for all of them,
 *     and follows the store once a second: a group that appears (created
 *     through the controller's API, added to the files by its reload) is
 *     polled, one that goes is no longer, and new health settings apply; its
 *     SIGHUP re-reads the [monitor] TLS files only;
 *   - the controller process runs a controller per group and the HTTP API for
 *     all of them, and reloads the files (SIGHUP, POST /api/v1/reload) as
 *     `asgd run` does.
 * Either can stop or crash and restart without the other. Returns the exit
 * code (0 or 1).
 */
int daemon_run_roles(const char *path, int roles);

/*
 * What `asgd run` shares with the two-process mode (`asgd monitor` and
 * `asgd controller`, main.c), so that both run a group the same way.
 */
struct group_conf;
struct http_server;
struct reload_ctl;
struct store;
struct tls_conf;

/*
 * Seeds st with a group of the files: settings only when the group is new
 * (the store is the source of truth for them afterwards), the spec (its
 * provider part) always, so that an edited file reaches the store. 0, or -1
 * with the reason in err.
 */
int daemon_seed_group(struct store *st, const struct group_conf *gc, char *err, size_t errlen);
/* The launch configuration (node.h's node_launch_config()) of a group of the files: what
   ctl_deps.launch_config gets. buf: at least 17 bytes. */
void daemon_launch_config(const struct group_conf *gc, char *buf, size_t len);
/*
 * SIGHUP (on the thread in sigwait()): RELOADING=1 to systemd, the TLS files
 * of [monitor] (mon_tls, may be NULL) and [api] (http, may be NULL) re-read,
 * the configuration reloaded through rc (reload.h; NULL: TLS files only),
 * READY=1. A bad file or a refused reload is logged; what ran stays.
 */
void daemon_sighup(struct reload_ctl *rc, struct tls_conf *mon_tls, struct http_server *http);

#endif
