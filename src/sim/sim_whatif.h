/*
 * sim_whatif.h - "what would this other policy have done with my history?":
 * the group's current settings and a proposal, run over the same recorded
 * history, as one JSON answer (POST /api/v1/groups/{name}/simulate, the
 * dashboard's "What if" button).
 *
 * Ownership: the returned JSON is the caller's (json_decref()). Threads:
 * any; nothing shared. Errors: NULL with the reason in err.
 */
#ifndef ASGD_SIM_WHATIF_H
#define ASGD_SIM_WHATIF_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "group/group.h"
#include "sim/sim_store.h"

#define SIM_WHATIF_POINTS 400 /* columns of the series */

/*
 * {"samples", "saturated", "first_ms", "last_ms", "boot_s", "poll_s",
 *  "current": {"settings": {min_size, max_size, policy}, "result": {simulation.md's keys}},
 *  "proposed": {...},
 *  "series": {"t": [s], "demand": [...], "current": [capacity], "proposed": [capacity]},
 *  "svg": "<svg ...>" (both panels, sim_plot_svg())}
 */
json_t *sim_whatif_json(const struct group_settings *current, const struct group_settings *proposed,
                        const struct sim_history *h, int64_t boot_s, int64_t poll_s, char *err,
                        size_t errlen);

#endif
