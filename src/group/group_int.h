/*
 * group_int.h - what the files of a group's settings share (not a public API:
 * see group.h).
 *
 *   settings.c           the key table, defaults, lists, names, lookups
 *   settings_validate.c  THE validator (and its JSON-placed form)
 *   settings_json.c      the JSON form: to, from, PATCH, piecewise apply
 *   settings_diff.c      comparing two settings: the activity log's diff and
 *                        a reload's changes
 *
 * (group_conf.c, group_table.c and keys_doc.c use group.h only.)
 */
#ifndef ASGD_GROUP_INT_H
#define ASGD_GROUP_INT_H

#include "group/group.h"

#define SEC_MS  1000LL
#define HOUR_MS (3600LL * 1000)
#define DAY_MS  (24 * HOUR_MS)

/* The field of key k in g (k->off into the struct). */
static inline void *group__field(struct group_settings *g, const struct group_key *k)
{
    return (char *)g + k->off;
}

static inline const void *group__cfield(const struct group_settings *g, const struct group_key *k)
{
    return (const char *)g + k->off;
}

#endif
