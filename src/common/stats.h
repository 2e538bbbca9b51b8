/*
 * stats.h - process-wide counters for /metrics (Prometheus).
 *
 * Hot paths (the poller, provider calls) bump relaxed atomics: no lock, no
 * allocation. The HTTP layer reads them when scraped. In the two-process mode
 * each process counts its own work (the monitor's poll histogram lives in
 * the monitor process).
 */
#ifndef ASGD_STATS_H
#define ASGD_STATS_H

#include <stdatomic.h>
#include <stdint.h>

/* Poll round-trip histogram upper bounds, in microseconds (+Inf is implicit). */
#define STATS_POLL_BUCKETS 10
extern const int64_t stats_poll_bounds_us[STATS_POLL_BUCKETS];

enum stats_prov_op { STATS_OP_LAUNCH = 0, STATS_OP_TERMINATE, STATS_OP_DESCRIBE, STATS_OP_COUNT };
enum stats_prov_result {
    STATS_RES_OK = 0,
    STATS_RES_RETRY,    /* transient error (throttled, 5xx, timeout) */
    STATS_RES_CAPACITY, /* no capacity */
    STATS_RES_FATAL,    /* credentials / permission / parameter */
    STATS_RES_OTHER,
    STATS_RES_COUNT
};

struct stats {
    /* poller */
    atomic_uint_fast64_t poll_bucket[STATS_POLL_BUCKETS + 1]; /* non-cumulative; last = +Inf */
    atomic_uint_fast64_t poll_count;
    atomic_uint_fast64_t poll_sum_us;
    atomic_uint_fast64_t poll_failures;
    atomic_uint_fast64_t polls_deferred; /* overload: inconclusive or missed polls (poll.c) */
    atomic_uint_fast64_t registrations_accepted;
    atomic_uint_fast64_t registrations_refused;
    atomic_uint_fast64_t registrations_held; /* unknown during a launch: "retry" (registry.c) */
    /* provider */
    atomic_uint_fast64_t provider_calls[STATS_OP_COUNT][STATS_RES_COUNT];
    /* controller */
    atomic_uint_fast64_t scale_out_actions;
    atomic_uint_fast64_t scale_in_actions;
    atomic_uint_fast64_t replacements;
    atomic_uint_fast64_t launched_instances;
    atomic_uint_fast64_t terminated_instances;
    /* webhooks (notify.h) */
    atomic_uint_fast64_t notify_delivered;   /* events a receiver took (2xx) */
    atomic_uint_fast64_t notify_failed;      /* attempts that failed (retried or not) */
    atomic_uint_fast64_t notify_dead_letter; /* events given up after max_retries */
    atomic_uint_fast64_t notify_dropped;     /* events refused: the queue was full */
};

extern struct stats stats;

void stats_observe_poll(int64_t rtt_us, int ok);
/* Counts n polls the poller could not run or conclude in time (neither ok nor failed). */
void stats_count_deferred_polls(uint64_t n);
void stats_count_provider(enum stats_prov_op op, enum stats_prov_result res);
/* Maps a provider error code (provider.h PROV_E*) to a result label. */
enum stats_prov_result stats_result_of(int prov_rc);
const char *stats_op_name(enum stats_prov_op op);
const char *stats_result_name(enum stats_prov_result res);

#endif
