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

struct mon {
    /* settings (strings owned) */
    char *listen;
    char *token;
    int accept_unknown;
    int64_t interval_ms, timeout_ms;
    uint32_t rise, fall, max_inflight;

    struct fleet *fleet; /* borrowed */
    char errmsg[256];

    /* server (mon.c) */
    void *server; /* struct mon_server * (server.c) */
    int port;

    /* poller (poll.c) */
    struct mon_poller *poller;
    pthread_t thread;
    int thread_running;
    atomic_int stop;
    atomic_int rescan; /* set when a slot got its address (registry) or went stale (poller) */

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

/* Poller (poll.c). */
int mon__poller_new(struct mon *m, struct mon_poller **out);
void mon__poller_free(struct mon_poller *p);
void *mon__poller_thread(void *arg);
int mon__poller_round(struct mon_poller *p);

/* Server (server.c). */
int mon__server_start(struct mon *m);
void mon__server_stop(struct mon *m);

#endif
