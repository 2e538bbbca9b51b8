/*
 * stats.c - the counters behind /metrics. Relaxed atomics only: these are
 * statistics, and no decision depends on their ordering.
 */
#include "common/stats.h"

#include "provider/provider.h"

#include "common/banned.h"

struct stats stats;

const int64_t stats_poll_bounds_us[STATS_POLL_BUCKETS] = {
    250, 500, 1000, 2500, 5000, 10000, 25000, 100000, 500000, 1000000,
};

void stats_observe_poll(int64_t rtt_us, int ok)
{
    int i = 0;
    while (i < STATS_POLL_BUCKETS && rtt_us > stats_poll_bounds_us[i])
        i++;
    atomic_fetch_add_explicit(&stats.poll_bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&stats.poll_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&stats.poll_sum_us, (uint_fast64_t)(rtt_us > 0 ? rtt_us : 0),
                              memory_order_relaxed);
    if (!ok)
        atomic_fetch_add_explicit(&stats.poll_failures, 1, memory_order_relaxed);
}

void stats_count_deferred_polls(uint64_t n)
{
    atomic_fetch_add_explicit(&stats.polls_deferred, (uint_fast64_t)n, memory_order_relaxed);
}

void stats_count_provider(enum stats_prov_op op, enum stats_prov_result res)
{
    if ((unsigned)op < STATS_OP_COUNT && (unsigned)res < STATS_RES_COUNT)
        atomic_fetch_add_explicit(&stats.provider_calls[op][res], 1, memory_order_relaxed);
}

enum stats_prov_result stats_result_of(int prov_rc)
{
    switch (prov_rc) {
    case PROV_OK:
        return STATS_RES_OK;
    case PROV_ERETRY:
        return STATS_RES_RETRY;
    case PROV_ECAPACITY:
        return STATS_RES_CAPACITY;
    case PROV_EFATAL:
        return STATS_RES_FATAL;
    default:
        return STATS_RES_OTHER;
    }
}

const char *stats_op_name(enum stats_prov_op op)
{
    static const char *const names[STATS_OP_COUNT] = {"launch", "terminate", "describe"};
    return (unsigned)op < STATS_OP_COUNT ? names[op] : "unknown";
}

const char *stats_result_name(enum stats_prov_result res)
{
    static const char *const names[STATS_RES_COUNT] = {"ok", "retry", "capacity", "fatal", "other"};
    return (unsigned)res < STATS_RES_COUNT ? names[res] : "unknown";
}
