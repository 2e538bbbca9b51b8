/*
 * ctl.h - ControllerASG: keeps the group between min and max and on target.
 *
 * Every tick (1 s) the controller reads the group settings from the store
 * (the source of truth; the HTTP API writes them there), takes a snapshot of
 * the fleet table, promotes healthy booted instances to IN_SERVICE, replaces
 * unhealthy ones past their grace period, runs the policy (policy.h) on the
 * load window, and launches or terminates through the provider to reach the
 * desired count. Every action is recorded in the store with its cause.
 *
 * Replacements are held back in two cases ([health] settings): a panic, when
 * more than panic_threshold % of the group fails its checks at once (a
 * partition of asgd's own network, not a fleet death: logged once, recorded
 * as activity kind "panic", shown in ctl_status; ends by itself when they
 * answer again), and a rate limit of max_replacements_per_minute. An instance
 * whose agent deregistered (fleet health DEREGISTERED) is neither counted in
 * the load nor replaced for deregister_grace.
 *
 * Suspended processes ([group] suspended_processes, AWS's names): Launch
 * (no launch, not even a replacement's), Terminate (no scale-in, no
 * replacement), HealthCheck and ReplaceUnhealthy (unhealthy instances stay,
 * counted), AlarmNotification (the policy runs but its decision is not
 * applied). A duty held back records one activity with status "skipped" and
 * the reason (again only when what it wanted changes). Scale-in victims:
 * victims.h ([group] termination_policy).
 *
 * Threads: ctl_start() runs the loop on its own thread. The functions marked
 * "thread-safe" may be called from any thread (the HTTP server's).
 */
#ifndef ASGD_CTL_H
#define ASGD_CTL_H

#include <stddef.h>
#include <stdint.h>

struct fleet;
struct store;
struct group_health;
struct group_settings;
struct store_activity;
struct provider;
struct tls_conf;
struct ctl;

struct ctl_deps {
    const char *group;         /* group name (settings are read from the store under it) */
    int health_from_provider;  /* [health] type = ec2: instance state alone decides health */
    int64_t tick_ms;           /* loop period; 0 means 1 s */
    int64_t describe_every_ms; /* how often to ask the provider what exists; 0 means 5 s */
    int64_t history_every_ms;  /* metric history downsampling; 0 means 5 s */
    struct fleet *fleet;       /* borrowed */
    struct store *store;       /* borrowed; used only by the controller thread */
    struct provider *provider; /* borrowed */
    /*
     * Fencing (a cluster's group owner): when not NULL, called (on the
     * controller thread) before every tick and every provider call; 0 means
     * this node may no longer act for the group (its ownership lease may be
     * lost), and the controller then calls no provider and writes nothing
     * until it answers 1 again. NULL: always allowed (one node).
     */
    int (*may_act)(void *arg, const char *group);
    void *may_act_arg;
    /*
     * Optional: called on the controller thread when the group's health
     * settings differ from the last ones seen (first load included), so that
     * a change made through the API reaches the monitor on its next cycle.
     * Gets may_act_arg.
     */
    void (*on_health)(void *arg, const char *group, const struct group_health *h);
    /*
     * Optional: the launch configuration new instances are made with (a short
     * hash of the provider's launch settings, [A-Za-z0-9] only, <= 16 chars;
     * copied). It travels in each launch's token ("asgd-<lc>-<random>"), so
     * every instance, adopted ones too, tells which one it was made with:
     * termination_policy = oldest_launch_config picks the others first.
     */
    const char *launch_config;
    /* Optional, borrowed (must outlive the controller): the TLS material of the controller's
       own calls to agents (MonitorC/Lifecycle: drain, attach), the poller's ([monitor] tls_*);
       NULL: plain text. */
    struct tls_conf *agent_tls;
    /*
     * Optional: called on the controller thread after every activity it
     * records (a webhook notifier subscribes here), with the settings of the
     * tick. Must not block (queue and return). Gets on_activity_arg.
     */
    void (*on_activity)(void *arg, const struct group_settings *g, const struct store_activity *a);
    void *on_activity_arg;
    /*
     * Per-instance load series in the metric history only while the group has at most this
     * many instances (0 means the group's history_instances_max setting, whose own 0 is
     * GROUP_HISTORY_INSTANCES_MAX, 500; < 0 never); the group's own series is always kept.
     * 10,000 instances every 5 s would be 170 million rows a day.
     */
    int history_instances_max;
};

enum ctl_error { CTL_OK = 0, CTL_ENOENT = -1, CTL_EINVAL = -2, CTL_ESTATE = -3, CTL_ENOMEM = -4 };

/* Creates a controller; nothing runs until ctl_reconcile()/ctl_start(). */
int ctl_new(const struct ctl_deps *deps, struct ctl **out, char *err, size_t errlen);
/* Stops the thread if running, frees; NULL is a no-op. Instances keep running. */
void ctl_free(struct ctl *c);

/*
 * Start-up reconciliation of store, provider and fleet table: adopts live
 * instances of the group, forgets vanished ones, resumes unfinished launch
 * intents with their original token. Never launches because it restarted.
 */
int ctl_reconcile(struct ctl *c, int64_t now_ms);
/* One iteration at wall time now_ms (tests call it directly). */
int ctl_tick(struct ctl *c, int64_t now_ms);

int ctl_start(struct ctl *c);
/* Stops the loop thread and waits for it. NULL or a stopped controller: no-op. */
void ctl_stop(struct ctl *c);

/* Thread-safe: asks for instance id to be terminated on the next tick; with
 * decrement_desired the group's desired count drops by one (not below min),
 * otherwise it is replaced. CTL_ENOENT if the group has no such instance. */
int ctl_request_terminate(struct ctl *c, const char *id, int decrement_desired, char *err,
                          size_t errlen);
/*
 * Instance lifecycle (issue 12, docs/lifecycle.md). Thread-safe: each checks the instance's
 * state at once (CTL_ENOENT: no such instance; CTL_ESTATE: not in a state that allows it,
 * err says which) and queues the change for the next tick (woken at once), where it is
 * applied, stored and recorded as an activity.
 *
 * ctl_complete_hook: action "continue" | "abandon" | "heartbeat" for an instance in
 *   pending:wait or terminating:wait (AWS CompleteLifecycleAction / heartbeat). A launch hook
 *   abandoned terminates the instance; a terminate hook ends in termination either way.
 *   CTL_EINVAL for another action.
 * ctl_set_protected: scale-in protection on or off; the fleet slot changes at once.
 * ctl_standby: enter (an in-service instance: out of the load and of health replacement;
 *   decrement lowers desired by one, else a replacement is launched) or leave (back to
 *   pending, then in service; desired grows by one, CTL_ESTATE above max_size).
 * ctl_detach: the group forgets the instance, which keeps running (decrement as terminate).
 * ctl_attach: ref is an instance id (EC2) or a local agent's "host:port"; the instance joins
 *   the group and desired grows by one (CTL_ESTATE above max_size).
 */
int ctl_complete_hook(struct ctl *c, const char *id, const char *action, char *err, size_t errlen);
int ctl_set_protected(struct ctl *c, const char *id, int protect, char *err, size_t errlen);
int ctl_standby(struct ctl *c, const char *id, int enter, int decrement, char *err, size_t errlen);
int ctl_detach(struct ctl *c, const char *id, int decrement, char *err, size_t errlen);
int ctl_attach(struct ctl *c, const char *ref, char *err, size_t errlen);
/*
 * One of the calls above from its JSON form, as the API forwards it through the store to the
 * group's owner (request kind "lifecycle"): {"op": "hook", "instance_id", "action"} |
 * {"op": "protect", "instance_id", "protected"} | {"op": "standby" | "exit-standby" |
 * "detach", "instance_id", "decrement"} | {"op": "attach", "attach"}. Same returns;
 * CTL_EINVAL for malformed text.
 */
int ctl_lifecycle_json(struct ctl *c, const char *text, char *err, size_t errlen);

/* Thread-safe: settings changed in the store; apply them now, not in up to a tick. */
void ctl_wake(struct ctl *c);

struct ctl_status {
    int desired;
    int in_service, pending, unhealthy, terminating;
    int deregistered; /* Deregister'ed, within their reconnect window */
    int pending_wait, terminating_wait, standby, protected_n; /* lifecycle (issue 12) */
    /* panic (a likely partition): more than panic_threshold % of the panic_total instances
       (not terminating) fail their checks at once; nothing is replaced meanwhile */
    int panic, panic_failing, panic_total, panic_threshold;
    double avg_load;         /* last average of in-service instances; < 0 none */
    int64_t last_tick_ms;    /* wall */
    char last_decision[256]; /* the policy's last cause text */
    int provider_ok;         /* 0 after a fatal provider error until a call succeeds */
    char suspended[160];     /* the suspended processes, "Launch, Terminate" or "" */
};
/* Thread-safe copy of the controller's latest view. */
void ctl_get_status(struct ctl *c, struct ctl_status *out);

#endif
