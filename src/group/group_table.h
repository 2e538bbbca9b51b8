/*
 * group_table.h - a group's fleet table sized from its max_size.
 *
 * The table is created with FLEET_SLOTS_FOR(max_size) slots and grows in
 * place when max_size is raised (fleet_grow), so the only limit on max_size
 * is group_settings_validate()'s FLEET_MAX_SIZE, the same for the file and the
 * API. These two calls are where a table that cannot be sized (a full
 * /dev/shm) becomes an operator message, said the same way at start (node,
 * asgd) and on a PATCH (HTTP API).
 *
 * Threads: any; the table's own locking applies. Errors: 0, or -1 with a
 * message in err naming the group, the size and the cause.
 */
#ifndef ASGD_GROUP_TABLE_H
#define ASGD_GROUP_TABLE_H

#include <stddef.h>

#include "fleet/fleet.h"

/*
 * Opens (creating if absent) the table shm_name of group `group` with room for
 * max_size instances; a table left with an old layout is recreated, a smaller
 * one grows. *out is set only on success; release with fleet_close().
 */
int group_table_open(const char *shm_name, const char *group, int max_size, struct fleet **out,
                     char *err, size_t errlen);

/* Grows f (if needed) to hold max_size instances of group `group`. */
int group_table_fit(struct fleet *f, const char *group, int max_size, char *err, size_t errlen);

#endif
