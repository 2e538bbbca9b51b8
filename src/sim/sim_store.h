/*
 * sim_store.h - a group's own recorded history as a simulation trace
 * (`asgd simulate --from-store`).
 *
 * The controller records, every few seconds, the group's average load and
 * its instances in service (store_metrics_add()). The demand they imply is
 * avg_load / 100 x in_service instance-equivalents; at 100 % load it is only
 * a lower bound (the unserved part was never measured), so those samples
 * are counted as saturated for the caller to flag. A sample without load
 * data holds the previous demand (0 with nothing in service).
 *
 * Ownership: *out is the caller's (sim_trace_release()); the store handle is
 * opened and closed here. Threads: the caller's only. Errors: -1 with the
 * reason in err ("group \"web\": no recorded history since ...").
 */
#ifndef ASGD_SIM_STORE_H
#define ASGD_SIM_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "asgd/conf.h"
#include "group/group.h"
#include "sim/sim.h"
#include "store/store.h"

struct sim_history {
    struct sim_trace trace;         /* t from 0 at the first sample */
    struct group_settings settings; /* the group's settings as the store has them now */
    size_t samples, saturated;      /* samples read; of them at 100 % load */
    int64_t first_ms, last_ms;      /* wall-clock time of the first and last sample */
};

/*
 * Reads group's history since since_ms (wall clock, ms) from the store conf
 * names (SQLite dir or etcd). Returns 0, or -1 with err set; on failure *h
 * holds nothing to release.
 */
int sim_history_load(const struct asgd_conf *conf, const char *group, int64_t since_ms,
                     struct sim_history *h, char *err, size_t errlen);
/*
 * The same from rows already read (oldest first), for a caller holding its
 * own store handle (the API). Fills trace, samples, saturated, first_ms and
 * last_ms; settings untouched. -1 with err when n is 0 or out of memory.
 */
int sim_history_from_rows(const struct store_metric_group *rows, size_t n, struct sim_history *h,
                          char *err, size_t errlen);
/* Frees the trace; NULL is a no-op. */
void sim_history_release(struct sim_history *h);

#endif
