/*
 * mon-int.h - internals shared by the files of the monitor module
 * (mon.c: life cycle and server; registry.c: Register/Deregister; poll.c: the
 * poller). Not for use outside src/monitor/.
 */
#ifndef ASGD_MON_INT_H
#define ASGD_MON_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "monitor.pb-c.h"
#include "monitor/mon.h"

struct mon_poller;
struct mon_target;
struct fleet_slot;

/*
 * One watched group: its fleet table and health settings, plus the poller's
 * state for it. The list of groups (struct mon.groups) and the settings are
 * changed under mon.mu; the poller thread holds mon.mu while it walks the list
 * (rescans, starting due polls) but not while it waits for completions, and
 * it alone unlinks and frees a group (mon_remove_group() marks it and waits),
 * so a completion callback may use its target's group without the lock.
 */
struct mon_group {
    char name[64];
    struct fleet *fleet; /* borrowed */
    int64_t interval_ms, timeout_ms;
    uint32_t rise, fall;
    int registered_only;  /* poll only agents that called Register ([health] type = ec2) */
    int removing;         /* mon_remove_group() waits for the poller to drop it */
    int cleartext_warned; /* poller side: the clear-text warning was logged (tls_warn.c) */

    /* poller state (poller thread, or the caller of mon_poll_once()) */
    uint32_t cap;
    struct mon_target **targets; /* by slot index */
    uint32_t hi;                 /* targets[] is NULL at every index >= hi (poller side) */
    struct fleet_slot *snap;     /* rescan buffer, cap entries */
    uint64_t gen_seen;
    int have_gen;
    int64_t last_rescan_ms;
    int64_t next_heartbeat_ms;
    atomic_int rescan; /* a slot got its address (registry) or went stale (poller) */

    struct mon_group *next;
};

struct mon {
    /* settings (strings owned) */
    char *listen;
    char *token;
    int accept_unknown;
    int (*on_foreign)(void *arg, const char *id, const char *address);
    void *foreign_arg;
    struct tls_conf *tls;            /* borrowed; NULL: plain text */
    int64_t interval_ms, timeout_ms; /* defaults of the first group (mon_new's fleet) */
    uint32_t rise, fall, max_inflight;

    pthread_mutex_t mu;
    pthread_cond_t cv;        /* signalled when the poller dropped a removed group */
    struct mon_group *groups; /* under mu; first added first */
    char errmsg[256];

    /* server (mon.c) */
    void *server; /* struct mon_server * (server.c) */
    int port;

    /* poller (poll.c) */
    struct mon_poller *poller;
    pthread_t thread;
    int thread_running;
    atomic_int stop;

    /* refusal log limiter (registry.c), only touched by the server thread */
    int64_t refuse_window_ms;
    unsigned refuse_logged, refuse_suppressed;
};

/* Copies a peer-supplied string for a log line: at most outlen-1 bytes, any
 * byte outside printable ASCII or a quote/backslash replaced by '?'. */
void mon__printable(const char *in, char *out, size_t outlen);

/* Register/Deregister on the fleet table (registry.c). They fill the reply
 * (strings in the reply point into msgbuf, or are static) and never fail. */
void mon__register(struct mon *m, const RegisterRequest *rq, RegisterReply *rp, char *msgbuf,
                   size_t msglen);
void mon__deregister(struct mon *m, const DeregisterRequest *rq, DeregisterReply *rp);

/* Groups (mon.c). mon__group_find_instance(): the group whose table holds id
 * (and its slot index), or NULL; call with mu held. */
struct mon_group *mon__group_find_instance(struct mon *m, const char *id, uint32_t *index);
/* Grows g's arrays to its fleet table's capacity (the table grows with max_size). 0, or -1
   out of memory (g unchanged, still usable). mu held, poller thread. */
int mon__group_fit(struct mon_group *g);
/* Unlinks and frees g (its targets already dropped); mu held. */
void mon__group_unlink(struct mon *m, struct mon_group *g);

/* Poller (poll.c). mon__poller_drop_group() drops every target of g (calls in
 * flight finish without touching g); poller thread or mon_poll_once() side. */
void mon__poller_drop_group(struct mon_poller *p, struct mon_group *g);
int mon__poller_new(struct mon *m, struct mon_poller **out);
void mon__poller_free(struct mon_poller *p);
void *mon__poller_thread(void *arg);
int mon__poller_round(struct mon_poller *p);

/* Once per group, a warning when the poller is about to reach an agent at a
 * non-loopback address in clear text (tls_warn.c); poller side. */
void mon__warn_cleartext(const struct mon *m, struct mon_group *g, const char *address);

/* Server (server.c). */
int mon__server_start(struct mon *m);
void mon__server_stop(struct mon *m);

#endif
