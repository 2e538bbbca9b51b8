/*
 * reload.h - re-reading the node file and the groups folder while asgd runs
 * (SIGHUP, `systemctl reload`, POST /api/v1/reload).
 *
 * A reload is all or nothing at the point where it can be: the whole node
 * file and every group file are read and checked first (the same reader as
 * at start, so the same "FILE:LINE: [section] key: why" messages), and every
 * change is planned and checked against the store (a file's new settings
 * merged with the store's must still validate) before anything is written.
 * A refused reload changes nothing and says why in the log and the report.
 *
 * What an accepted reload does, group by group (a group "of the files" is one
 * defined in the node file or the groups folder):
 *   - new in the files: seeded into the store as at start (settings only when
 *     the store does not have the group yet, the spec always) and, on one node,
 *     started here; in a cluster the owner the cluster picks starts it.
 *   - gone from the files: no longer managed. On one node its controller and
 *     polling stop, its instances are LEFT RUNNING, and the group is removed
 *     from the store (settings, spec, instance rows, history); an "unmanaged"
 *     activity naming the instances left running is recorded under the
 *     group's name after that (re-adding the group adopts them back, as a
 *     restart does). In a cluster the removal from etcd makes its owner stop it.
 *   - settings changed in the file (compared with the file as it was at the
 *     last start or reload, not with the store): exactly the keys the file
 *     changed are written over the store's current settings, as a PATCH
 *     through the API would (a "settings" activity with the diff; the
 *     controller is woken and hands new health settings to the monitor, so
 *     the poll rate changes at once). What the API or the policy changed
 *     meanwhile (desired capacity ...) stays unless the file changed it too.
 *   - provider part changed ([provider], [local], [ec2]): the spec is stored;
 *     a group running here is restarted (controller and polling stop, its
 *     instances keep running and are adopted back by the new runtime).
 * Groups created through the API (not in the files) are not touched.
 *
 * The two-process mode reloads in `asgd controller`, whose node runs every
 * group's controller: the steps above are the same there; `asgd monitor`
 * follows the store (daemon.h), so a group added or removed reaches its
 * polling within a second.
 *
 * Node-level keys ([monitor], [api], [store], [cluster]) cannot change in a
 * running asgd: a changed one is listed as "needs restart" (a warning names
 * it) and the running value stays; the rest of the reload proceeds.
 *
 * Threads: reload_run() runs on one thread at a time (the daemon's signal
 * thread). It swaps the running conf's groups under host->mu; every other
 * reader of conf->groups must hold that mutex while it reads them.
 *
 * Ownership: reports returned are new references the caller decrefs.
 */
#ifndef ASGD_RELOAD_H
#define ASGD_RELOAD_H

#include <jansson.h>
#include <pthread.h>

#include "asgd/conf.h"

struct node;
struct store;

struct reload_host {
    struct asgd_conf *conf; /* the running conf: its groups (and groups_dir) are replaced */
    pthread_mutex_t *mu;    /* guards conf->groups, conf->n_groups, conf->groups_dir */
    struct node *node;      /* the groups running here */
    int cluster;            /* store type etcd: ownership starts groups, not the reload */
    struct store *store;    /* reload_run(): a handle for this call alone; reload_ctl: NULL */
    /* reload_ctl: opens the handle of one reload (closed with store_close()) */
    int (*open_store)(void *arg, struct store **out, char *err, size_t errlen);
    /* daemon.c's seeding of a group of the files (settings when new, spec always) */
    int (*seed_group)(void *arg, struct store *st, const struct group_conf *gc, char *err,
                      size_t errlen);
    /* daemon.c's start of a group from conf (already swapped) and store; 0 or -1 (logged) */
    int (*start_group)(void *arg, struct store *st, const char *name);
    void *arg;
};

/*
 * Re-reads host->conf->path and applies it (see above). Returns the report,
 * NULL only when out of memory:
 *   {"ok": true|false, "at_ms": N, "file": "...", "error": "why refused" (when not ok),
 *    "added": [names], "removed": [names], "changed": ["web: health.interval 2s -> 500ms"],
 *    "restarted": [names], "needs_restart": ["[api] listen"], "failed": ["what failed"]}
 * "ok" false means nothing changed; "failed" lists steps that failed after the
 * reload was accepted (a store write, a group start), each also logged.
 */
json_t *reload_run(const struct reload_host *host);

/*
 * The reloads of a running node: the last report and the reloads asked
 * through the API. reload_ctl_run() runs on the signal thread (the one in
 * sigwait(): a reload may start groups, which takes time); the others are
 * called from any thread (the HTTP thread). Thread-safe (a mutex inside).
 */
struct reload_ctl;

/* Keeps a copy of *host (its pointers borrowed: they must outlive the ctl). 0, or -1 (no memory).
 */
int reload_ctl_new(const struct reload_host *host, struct reload_ctl **out)
    __attribute__((warn_unused_result));
void reload_ctl_free(struct reload_ctl *rc); /* NULL is a no-op */
/* One reload (open_store, reload_run(), store_close()); the report is kept. */
void reload_ctl_run(struct reload_ctl *rc);
/*
 * Asks for a reload: sends SIGHUP to this process (its signal thread calls
 * reload_ctl_run()). *generation: the report answering this request will
 * have "generation" >= it. 0, or a negative errno when the signal failed.
 */
int reload_ctl_request(struct reload_ctl *rc, int64_t *generation);
/*
 * A copy of the last report plus "in_progress" (a request is not answered
 * yet), a new reference; only {"generation": 0, "in_progress": true} while
 * the first requested one runs; NULL when there was none (or no memory).
 */
json_t *reload_ctl_status(struct reload_ctl *rc);

#endif
