/*
 * group_table.c - a group's fleet table sized from its max_size (see
 * group_table.h).
 */
#include "group/group_table.h"

#include <errno.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

#include "common/banned.h"

/* The reason a table could not be sized, in the operator's words. */
static void size_error(const char *group, int max_size, int frc, int err_no, char *err,
                       size_t errlen)
{
    if (frc == FLEET_ETOOBIG)
        util_set_err(err, errlen,
                     "max_size: %d needs a fleet table of %u slots for group \"%s\", more than "
                     "it can grow to (%u)",
                     max_size, FLEET_SLOTS_FOR(max_size), group, FLEET_MAX_SLOTS);
    else
        util_set_err(err, errlen,
                     "max_size: cannot size the fleet table of group \"%s\" for %d instances "
                     "(%u slots): %s%s%s",
                     group, max_size, FLEET_SLOTS_FOR(max_size), fleet_strerror(frc),
                     frc == FLEET_ESYS ? ": " : "", frc == FLEET_ESYS ? strerror(err_no) : "");
}

int group_table_fit(struct fleet *f, const char *group, int max_size, char *err, size_t errlen)
{
    if (max_size < 0)
        max_size = 0;
    uint32_t want = FLEET_SLOTS_FOR(max_size);
    if (fleet_capacity(f) >= want)
        return 0;
    uint32_t had = fleet_capacity(f);
    int frc = fleet_grow(f, want);
    if (frc != 0) {
        size_error(group, max_size, frc, errno, err, errlen);
        return -1;
    }
    log_info("fleet table of group \"%s\" grown from %u to %u slots (max_size %d)", group, had,
             want, max_size);
    return 0;
}

int group_table_open(const char *shm_name, const char *group, int max_size, struct fleet **out,
                     char *err, size_t errlen)
{
    if (max_size < 0)
        max_size = 0;
    struct fleet *f = NULL;
    int frc = fleet_open(shm_name, FLEET_SLOTS_FOR(max_size), 1, &f);
    if (frc == FLEET_EVERSION) {
        /* a table left by an older asgd: the controller rebuilds it from the provider */
        log_warn("fleet table of group \"%s\" has an old layout; recreating it", group);
        fleet_unlink(shm_name);
        frc = fleet_open(shm_name, FLEET_SLOTS_FOR(max_size), 1, &f);
    }
    if (frc != 0) {
        int e = errno;
        if (frc == FLEET_ESYS && (e == ENOSPC || e == ENOMEM)) {
            size_error(group, max_size, frc, e, err, errlen);
        } else {
            util_set_err(err, errlen, "cannot open the fleet table of group \"%s\": %s%s%s", group,
                         fleet_strerror(frc), frc == FLEET_ESYS ? ": " : "",
                         frc == FLEET_ESYS ? strerror(e) : "");
        }
        return -1;
    }
    if (group_table_fit(f, group, max_size, err, errlen) != 0) {
        fleet_close(f);
        return -1;
    }
    *out = f;
    return 0;
}
