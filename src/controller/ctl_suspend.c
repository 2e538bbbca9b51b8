/*
 * ctl_suspend.c - suspended processes (ctl.h): the check every duty makes
 * before it acts, and the one "skipped" activity that tells the operator why
 * nothing happened.
 *
 * A duty held back asks again every tick; recording each time would flood
 * the activity log (and every webhook), so an activity is recorded when the
 * duty's want changes (desired 3 then 4: two records), and the memory is
 * cleared when the process runs again.
 */
#include "controller/ctl_int.h"

#include <stdarg.h>
#include <stdio.h>

#include "common/log.h"
#include "group/group.h"

#include "common/banned.h"

static const char *const proc_names[CTL_PROC_COUNT] = {
    [CTL_PROC_LAUNCH] = GROUP_PROC_LAUNCH,
    [CTL_PROC_TERMINATE] = GROUP_PROC_TERMINATE,
    [CTL_PROC_HEALTH_CHECK] = GROUP_PROC_HEALTH_CHECK,
    [CTL_PROC_REPLACE_UNHEALTHY] = GROUP_PROC_REPLACE_UNHEALTHY,
    [CTL_PROC_ALARM_NOTIFICATION] = GROUP_PROC_ALARM_NOTIFICATION,
    [CTL_PROC_TERMINATE_REPLACE] = GROUP_PROC_TERMINATE,
};

int ctl__suspended(struct ctl *c, int proc, int64_t want, const char *kind, const char *fmt, ...)
{
    if (!group_process_suspended(&c->settings, proc_names[proc])) {
        c->skipped_want[proc] = CTL_SKIP_NONE;
        return 0;
    }
    if (c->skipped_want[proc] == want)
        return 1;
    c->skipped_want[proc] = want;
    char what[STORE_CAUSE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    log_info("group \"%s\": %s skipped: process %s is suspended", c->group, what, proc_names[proc]);
    ctl__activity(c, kind, "skipped", c->settings.desired_capacity, c->settings.desired_capacity,
                  "", "%.180s skipped: process %s is suspended", what, proc_names[proc]);
    return 1;
}
