/*
 * daemon_int.h - the daemon's state and what its files share (not a public
 * API: see daemon.h).
 *
 *   daemon.c         start-up and shutdown: daemon_run_roles() wires the
 *                    pieces in order and daemon_release() unwires them;
 *                    tokens, the stores, MonitorS
 *   daemon_groups.c  the groups' life: the node and its store hooks, seeding,
 *                    starting a group, the cluster's ownership callbacks, the
 *                    worker thread (changes and requests from other nodes),
 *                    `asgd monitor`'s following of the store
 *
 * Roles (d->roles): `asgd run` plays both; `asgd monitor` has no HTTP API,
 * reload, notifier or systemd watchdog (d->http, d->reload, d->notify,
 * d->svc stay NULL) and its node runs no controller; `asgd controller` has
 * no MonitorS (d->mon NULL) and its node polls nothing.
 *   daemon_ops.c     the HTTP API's node operations (http.h)
 *   daemon_reload.c  the main thread's signal loop and SIGHUP / API reload
 *                    (reload.h's hooks)
 *
 * Threads: the main thread (start-up, sigwait, shutdown), the worker
 * (daemon_groups.c), the cluster's worker (the ownership callbacks), the
 * HTTP thread (daemon_ops.c). d->mu guards the queues below and the files'
 * groups in d->conf (a reload replaces them).
 *
 * Errors: functions returning int give 0 or -1, with text for the operator
 * in err when they take one (logged otherwise).
 */
#ifndef ASGD_DAEMON_INT_H
#define ASGD_DAEMON_INT_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "asgd/conf.h"
#include "asgd/daemon.h"
#include "cluster/cluster.h"
#include "group/group.h"
#include "group/group_conf.h"
#include "http/http.h"
#include "store/store.h"

#define MAX_QUEUE 4096

struct daemon {
    struct asgd_conf conf;
    int roles; /* enum daemon_roles */
    int cluster;
    char *agent_token, *api_token, *agent_token_file;
    char *endpoints; /* etcd endpoints joined with ',' */
    struct mon *mon;
    struct node *node;
    struct clu *clu;
    struct store *ctl_store;  /* etcd: the controllers' shared handle (fenced per group) */
    struct store *http_store; /* the HTTP thread's (and the node ops', which run there) */
    struct store *work_store; /* the worker's and the ownership callbacks' */
    struct http_server *http;
    struct tls_conf *mon_tls; /* [monitor] tls_*: MonitorS and the poller; NULL: plain text */
    struct svc *svc;          /* systemd: READY, STATUS, watchdog (service.h) */
    struct notify *notify;    /* webhooks of every group (after the node, which feeds it) */

    /* groups whose store state changed (watch), for the worker */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char **queue;
    size_t n_queue;
    /* groups acquired and not started yet: the cluster's callback only queues them, so that
       ownership of a dead node's groups is taken in a few transactions, not one start each */
    struct pending_start *starts;
    size_t n_starts, cap_starts;
    int stop, worker_running;
    pthread_t worker;
    struct reload_ctl *reload; /* SIGHUP, POST /api/v1/reload (reload.h) */
    /* `asgd monitor`: groups of the store it could not start, at which settings revision and
       when (retried when the revision changes or after DAEMON_RETRY_MS, not every second) */
    struct failed_start *failed;
    size_t n_failed;
};

struct failed_start {
    char group[GROUP_NAME_MAX];
    int64_t revision;
    int64_t at_ms; /* monotonic */
};

#define DAEMON_RETRY_MS 30000

struct pending_start {
    char group[GROUP_NAME_MAX];
    char key[CLU_KEY_MAX];
    int64_t rev;
};

/* ---- daemon.c ----------------------------------------------------------------------------------
 */

/* A store handle of the node's type (sqlite file, or etcd with the node's settings). */
int daemon__open_store(struct daemon *d, struct store **out, char *err, size_t errlen);

/* ---- daemon_groups.c ------------------------------------------------------------------------ */

/* Starts group name on this node from its definition and st's settings (logged on failure). */
int daemon__start_group(struct daemon *d, struct store *st, const char *name, const char *owner_key,
                        int64_t owner_rev);
/* The node (node.h) of the groups, with the daemon's store and ownership hooks; after MonitorS. */
int daemon__start_node(struct daemon *d, char *err, size_t errlen);
/* One node: every group of the store runs here (the files seeded it). */
int daemon__run_all_groups(struct daemon *d, char *err, size_t errlen);
/*
 * `asgd monitor` (no controller in the process), once a second on the main
 * thread: the groups of the store are the ones polled (new ones started,
 * gone ones stopped) with the store's health settings.
 */
void daemon__follow_store(struct daemon *d);
/* cluster.h's callbacks (the cluster's worker thread); arg is the struct daemon. */
void daemon__on_acquire(void *arg, const char *group, const char *owner_key, int64_t rev);
void daemon__on_lose(void *arg, const char *group);
/* store.h's watch callback: queues the group for the worker. */
void daemon__on_store_change(void *arg, const char *group, int what);
/* mon.h's on_foreign: a Register for a group another node runs, recorded for its owner. */
int daemon__on_foreign_register(void *arg, const char *id, const char *address);
/* The worker thread (pthread_create's start routine; arg is the struct daemon). */
void *daemon__worker_main(void *arg);

/* ---- daemon_ops.c --------------------------------------------------------------------------- */

/* The node operations given to http_start() (ops_arg: the struct daemon). */
extern const struct http_node_ops daemon__node_ops;

/* ---- daemon_reload.c ------------------------------------------------------------------------ */

/* Creates d->reload over the daemon's hooks (reload.h). 0, or -1 when out of memory. */
int daemon__reload_new(struct daemon *d);
/*
 * Waits in sigwait() for a signal of stop (blocked in every thread), handling
 * SIGHUP meanwhile (TLS files and configuration re-read); returns the stop
 * signal that came. Without the controller role it wakes once a second for
 * daemon__follow_store().
 */
int daemon__wait_stop(struct daemon *d, const sigset_t *stop);

#endif
