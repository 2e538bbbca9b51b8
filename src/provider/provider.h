/*
 * provider.h - where instances come from: one interface, several clouds.
 *
 * A provider launches, terminates and describes the instances of one group.
 * Implementations: local (detached monitorc processes on 127.0.0.N, local.c)
 * and ec2 (the EC2 Query API, ec2.c). The controller only ever calls the
 * functions below; it never knows which provider it drives.
 *
 * Membership is by tag (EC2: asg:group=<name>; local: pid files in the state
 * directory), so describe() after a crash finds every instance the group owns.
 *
 * Idempotency: launch() takes a token that the caller decided and stored
 * BEFORE the call. Calling launch() again with the same token and count
 * launches nothing new and returns the instances of the first call (EC2
 * ClientToken semantics). This is what makes a crash between "asked the
 * cloud" and "wrote it down" harmless.
 *
 * Errors: 0 on success, a negative PROV_E* code on failure, with a message
 * for the operator in provider_errmsg() (never a secret). An error return
 * leaves *out empty.
 */
#ifndef ASGD_PROVIDER_H
#define ASGD_PROVIDER_H

#include <stddef.h>
#include <stdint.h>

#define PROV_ID_MAX   64 /* instance id, NUL included */
#define PROV_ADDR_MAX 64 /* "host:port", NUL included */

enum prov_state {
    PROV_PENDING = 0, /* launched, not yet running (EC2 pending) */
    PROV_RUNNING,     /* running (may still be booting its agent) */
    PROV_STOPPING,    /* shutting-down / stopping: on its way out */
    PROV_GONE,        /* terminated / stopped / process dead */
};

struct prov_instance {
    char id[PROV_ID_MAX];
    char address[PROV_ADDR_MAX]; /* where MonitorS polls its agent; "" if not known yet */
    enum prov_state state;
    int64_t launched_at_ms;         /* wall clock, 0 if unknown */
    int pid;                        /* local provider: the monitorc pid; 0 elsewhere */
    char zone[32];                  /* EC2 availability zone or "" */
    char launch_token[PROV_ID_MAX]; /* the token of the launch that made it, "" if unknown */
};

/* A growable list of instances; the list owns items. */
struct prov_list {
    struct prov_instance *items;
    size_t n, cap;
};
#define PROV_LIST_INIT                                                                             \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }
/* Appends a copy of *inst. Returns 0 or PROV_ENOMEM. */
int prov_list_push(struct prov_list *l, const struct prov_instance *inst);
/* Frees the items; the list becomes empty. */
void prov_list_release(struct prov_list *l);

enum prov_error {
    PROV_OK = 0,
    PROV_ERETRY = -1,    /* transient (throttled, 5xx, timeout): retry with backoff */
    PROV_ECAPACITY = -2, /* no capacity right now: back off for long */
    PROV_EFATAL = -3,    /* credentials, permissions, bad parameters: stop, tell the operator */
    PROV_ENOMEM = -4,
    PROV_EINVAL = -5, /* bad arguments from the caller */
};
const char *prov_strerror(int code);

struct provider;

/* The vtable every implementation fills; `struct provider` starts with a pointer to it. */
struct provider_ops {
    const char *name;
    int (*launch)(struct provider *p, int count, const char *token, struct prov_list *out);
    int (*terminate)(struct provider *p, const char *const *ids, size_t n);
    int (*describe)(struct provider *p, struct prov_list *out);
    void (*destroy)(struct provider *p);
    /* optional (NULL: the provider cannot; issue 12): stop owning an instance without
       terminating it, and take a running one into the group */
    int (*detach)(struct provider *p, const char *id);
    int (*attach)(struct provider *p, const struct prov_instance *in, struct prov_instance *out);
    /* The most instances one launch() / terminate() call accepts (0: no limit). The
       controller splits larger requests into calls of at most this size, each launch call
       with its own token and intent, so a provider never sees a request it must refuse. */
    int max_launch;
    size_t max_terminate;
};

struct provider {
    const struct provider_ops *ops;
    char errmsg[512];
};

/* Launches count instances of the group with idempotency token (<= 63 ASCII chars). */
int provider_launch(struct provider *p, int count, const char *token, struct prov_list *out)
    __attribute__((warn_unused_result));
/* Terminates the given instances. Terminating one already gone is success. */
int provider_terminate(struct provider *p, const char *const *ids, size_t n)
    __attribute__((warn_unused_result));
/* Every live instance of the group (PROV_GONE ones may be omitted). */
int provider_describe(struct provider *p, struct prov_list *out)
    __attribute__((warn_unused_result));
/*
 * Detach (AWS DetachInstances): the group stops owning instance id (local: its pid file goes,
 * EC2: its group tag), which keeps running; describe() no longer lists it. PROV_EINVAL when
 * the provider cannot detach.
 */
int provider_detach(struct provider *p, const char *id) __attribute__((warn_unused_result));
/*
 * Attach (AWS AttachInstances): the running instance in (local: id, address and pid of a
 * monitorc on this host; EC2: id) becomes the group's; *out is what describe() will list.
 * PROV_EINVAL when the provider cannot attach or in is not acceptable (errmsg says why).
 */
int provider_attach(struct provider *p, const struct prov_instance *in, struct prov_instance *out)
    __attribute__((warn_unused_result));
/* The most instances one launch() call accepts: ops->max_launch, or INT_MAX when unlimited. */
int provider_max_launch(const struct provider *p);
/* The most ids one terminate() call accepts: ops->max_terminate, or SIZE_MAX when unlimited. */
size_t provider_max_terminate(const struct provider *p);
/* "local" or "ec2". */
const char *provider_name(const struct provider *p);
/* The last error's message, or "". */
const char *provider_errmsg(const struct provider *p);
/* Frees p; NULL is a no-op. */
void provider_free(struct provider *p);

/* For implementations: sets p->errmsg and returns code. */
int provider__fail(struct provider *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
