/*
 * schedule.h - scheduled actions: cron expressions with a time zone that set
 * a group's min, max and desired at given times.
 *
 *   [policy] schedule = 0 8 * * 1-5 Europe/Paris: min=4 max=10; 0 20 * * * Europe/Paris: min=2
 *
 * Entries are separated by ';'. Each is a cron expression (5 fields: minute
 * hour day-of-month month day-of-week, or 6 with seconds first; '*', 'a',
 * 'a-b', '*' or 'a-b' with '/step', lists with ','; day 0 or 7 is Sunday;
 * when both day fields are restricted either may match, as in cron), an
 * optional IANA time zone (UTC when absent), ':', and min=, max=, desired=
 * (any of them). When several entries fire in the same second the later
 * entry wins for the keys it sets.
 *
 * sched_parse() reads the zones' TZif files (/usr/share/zoneinfo, or
 * $TZDIR) once; everything after is pure: sched_due() answers what fired in
 * (after_ms, until_ms] without a clock. Times beyond a zone file's last
 * transition keep its last offset (Debian's files run to 2037).
 *
 * sched_tick() is the controller's hook: it keeps the parsed schedule of the
 * group's settings and, when an entry fired since the last tick, writes the
 * new sizes to the store (optimistic, like an API PATCH) and records a
 * "schedule" activity. Threads: a struct sched_state belongs to one
 * controller. Errors: sched_parse() returns NULL with the reason in err.
 */
#ifndef ASGD_SCHEDULE_H
#define ASGD_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "group/group.h"
#include "store/store.h"

struct sched;

struct sched_action {
    int min_size, max_size, desired; /* -1: not set */
    int64_t at_ms;                   /* the firing second (UTC ms) */
    char what[160];                  /* "0 8 * * 1-5 Europe/Paris: min=4 max=10" */
};

struct sched *sched_parse(const char *text, char *err, size_t errlen);
void sched_free(struct sched *s);
/* The syntax alone (a zone's name, not its file): pure, for the settings validator. */
int sched_check(const char *text, char *err, size_t errlen);
/* The entries that fired in (after_ms, until_ms] merged into *out; 1 if any, else 0. Scans at
   most one day back from until_ms. */
int sched_due(const struct sched *s, int64_t after_ms, int64_t until_ms, struct sched_action *out);

struct sched_state {
    struct sched *parsed;
    char text[POLICY_SCHEDULE_LEN];
    int have;        /* text was parsed (parsed is NULL if it failed) */
    int64_t last_ms; /* the last tick (0: none yet: nothing fires on the first) */
};

/* 1 when the store's settings were changed (the caller re-reads them), 0 else, -1 on error
   (logged). */
int sched_tick(struct sched_state *st, struct store *store, const struct group_settings *g,
               int64_t now_ms);
void sched_state_release(struct sched_state *st);

#endif
