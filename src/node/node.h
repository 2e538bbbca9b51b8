/*
 * node.h - one asgd node: the groups it runs, started and stopped at runtime.
 *
 * A node owns one MonitorS (listener + poller, shared by every group) and,
 * for each group it runs, a runtime: the group's fleet table, its provider,
 * its own store handle and its controller thread. Groups come and go while
 * the node runs: at start (the config file and the groups folder), through
 * the API (create, delete) and, in a cluster, when this node gains or loses
 * a group's ownership (cluster.h's callbacks). Starting a group runs the
 * same reconciliation as a restarted asgd (adopt what runs, forget what
 * vanished, resume open launch intents with their tokens), so a restart, a
 * failover and a rebalance are one code path.
 *
 * Runtimes are reference counted: the node holds one reference while the
 * group runs, the HTTP thread one per request that looks at it. Stopping a
 * group stops its controller and its polling AT ONCE (so a node that lost a
 * lease acts no more), while the memory goes with the last reference.
 *
 * Roles: a node plays MonitorS, ControllerASG or both (node_settings.roles).
 * `asgd run` plays both in one process. The two-process mode (`asgd monitor`
 * and `asgd controller`, daemon.h) runs one node per process on the same
 * groups and the same fleet tables: the monitor's runtimes hold only the
 * fleet table, added to its MonitorS (no store handle, provider nor
 * controller: node_group_ref() gives a NULL ctl there); the controller's hold
 * everything else and touch no MonitorS. A group's fleet table is opened (or
 * created) by whichever process starts it first; the other attaches to it.
 *
 * Threads: every function is thread-safe (one mutex inside the node guards
 * the table of runtimes; starting a runtime, which may call the provider,
 * happens outside it). node_group_stop() must not be called from the
 * group's own controller thread.
 *
 * Errors: 0, or -1 with a message in err (NUL-terminated).
 */
#ifndef ASGD_NODE_H
#define ASGD_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "group/group.h"

struct notify;
struct tls_conf;

struct mon;
struct store;
struct ec2_settings;
struct fleet;
struct ctl;

enum node_provider { NODE_PROVIDER_LOCAL = 0, NODE_PROVIDER_EC2 = 1 };

/* What a node plays for its groups (node_settings.roles); 0 means both. */
#define NODE_ROLE_MONITOR    1 /* the groups' fleet tables polled by MonitorS */
#define NODE_ROLE_CONTROLLER 2 /* a store handle, a provider and a controller per group */
#define NODE_ROLE_BOTH       (NODE_ROLE_MONITOR | NODE_ROLE_CONTROLLER)

/* What a node needs to run one group (everything borrowed during node_group_start()). */
struct node_group_def {
    struct group_settings settings; /* name, sizes, policy, health */
    int provider;                   /* enum node_provider */
    const char *agent_path;         /* local: monitorc; NULL: next to the asgd binary */
    const char *agent_args;         /* local: extra monitorc arguments; NULL: none */
    int64_t boot_delay_ms;          /* local: simulated boot */
    const char *address_base;       /* local: first loopback address */
    const char *local_dir;          /* local: pid files and logs; NULL: the node decides */
    int keep_logs;                  /* local: logs of terminated agents kept; 0: 20 */
    const struct ec2_settings *ec2; /* ec2: required */
};

struct node_settings {
    const char *name;            /* node name (cluster), or "" */
    int cluster;                 /* fleet tables are "<node>.<group>"; fencing through may_act */
    int roles;                   /* NODE_ROLE_*; 0: both */
    struct mon *mon;             /* borrowed; groups are added to it. Required with the monitor
                                    role, ignored without it */
    const char *state_dir;       /* local state; groups' default local_dir is under it */
    int legacy_single;           /* one group from the old single-file config: its local
                                    provider files live in state_dir itself, as before */
    const char *monitor_address; /* MonitorS address given to instances */
    int agent_port;
    const char *agent_token;      /* ec2 user data */
    const char *agent_token_file; /* local agents read it */
    /* Opens the store handle a group's controller uses (sqlite: a handle on the
     * node's database; etcd: a handle fenced on the owner key). Required with the
     * controller role, never called without it. */
    int (*open_store)(void *arg, const char *group, const char *owner_key, int64_t owner_rev,
                      struct store **out, char *err, size_t errlen);
    /* Gives back a handle open_store returned (NULL: store_close()). */
    void (*close_store)(void *arg, const char *group, struct store *st);
    /* Fencing (cluster): 1 while this node may act for group. NULL: always. */
    int (*may_act)(void *arg, const char *group);
    void *arg;                  /* for open_store and may_act */
    struct notify *notify;      /* borrowed, may be NULL: webhooks of every group's activities */
    struct tls_conf *agent_tls; /* borrowed, may be NULL: TLS of the controllers' agent calls */
};

struct node;

/* Creates an empty node (copies the settings' strings). -1 + err on failure. */
int node_new(const struct node_settings *s, struct node **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Stops every group (instances keep running) and frees. NULL is a no-op. */
void node_free(struct node *n);

/*
 * Starts running group def->settings.name: opens its fleet table, provider
 * and store handle (owner_key/owner_rev given to open_store: NULL/0 on one
 * node), reconciles with the provider, starts its controller and adds it to
 * the monitor (each part as the node's roles say). -1 with err if the group
 * already runs here or a part fails (then nothing of it is left running).
 */
int node_group_start(struct node *n, const struct node_group_def *def, const char *owner_key,
                     int64_t owner_rev, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Stops running group name (controller and polling at once). Unknown: no-op. */
void node_group_stop(struct node *n, const char *name);
/*
 * Deletes group name's instances and stops running it (DELETE ?force=true,
 * as AWS's ForceDelete): the controller stops first, then every instance the
 * provider lists is terminated. Without force, -1 with err when the fleet
 * table still holds instances. The store is the caller's business. -1 with
 * err when the group does not run here, the node has no controller role, or
 * the provider refused (then the group keeps running).
 */
int node_group_delete(struct node *n, const char *name, int force, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Number of instances in the fleet table of group name, -1 if it does not run here. */
int node_group_count(struct node *n, const char *name);
/* 1 when group name runs here. */
int node_group_running(struct node *n, const char *name);
/* Wakes the controller of group name (settings changed in the store). */
void node_group_wake(struct node *n, const char *name);
/*
 * The monitor role without a controller in the process: the health settings
 * of group name as the store has them now (the other process's API or reload
 * changed them); MonitorS polls with them from its next poll when they
 * differ from the ones it has. Unknown group, or no monitor role: no-op.
 */
void node_group_set_health(struct node *n, const char *name, const struct group_health *h);

/*
 * Borrows the live parts of a running group: *fleet and *ctl stay valid until
 * node_group_unref(*handle), even if the group stops meanwhile (*ctl is NULL
 * on a node without the controller role). Returns 0, or -1 when it does not
 * run here.
 */
int node_group_ref(struct node *n, const char *name, struct fleet **fleet, struct ctl **ctl,
                   void **handle);
void node_group_unref(struct node *n, void *handle);

/* Names of the groups running here (malloc'd array of malloc'd strings, *count). */
int node_group_names(struct node *n, char ***names, size_t *count);
/* 1 when every running group had a controller tick within max_age_ms (or none runs, or the
   node has no controller role). */
int node_ticking(struct node *n, int64_t now_ms, int64_t max_age_ms, char *why, size_t len);
/* 1 when a running group's controller is in panic (ctl_status.panic: a likely partition),
   with "group \"NAME\": panic: F of T instances (P%) ..." in why; else 0. Thread-safe. */
int node_panicking(struct node *n, char *why, size_t len);

/*
 * The launch configuration of a group definition: a 16-hex-digit FNV-1a hash
 * of what shapes a new instance (provider; local: agent path and arguments;
 * ec2: image, launch template and version, instance type, key, security
 * groups, subnets, instance profile, user data file, tags). Equal settings,
 * equal text; ctl_deps.launch_config. buf: at least 17 bytes.
 */
void node_launch_config(const struct node_group_def *def, char *buf, size_t len);

#endif
