/*
 * refresh.h - an instance refresh's state (issue 12 item 5,
 * docs/instance-refresh.md): its text form, kept in the group's settings
 * (key instance_refresh, so the store persists it and a restarted asgd
 * continues), and its JSON view for the API.
 *
 * The HTTP API starts, cancels, resumes and rolls back a refresh by editing
 * this text; the group's controller (ctl_refresh.c) drives it and writes its
 * progress back. Both write with the settings' revision, so neither loses the
 * other's change. Pure functions, no allocation but the JSON view's; any
 * thread.
 */
#ifndef ASGD_REFRESH_H
#define ASGD_REFRESH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define REFRESH_MAX_CHECKPOINTS 8
#define REFRESH_LC_MAX          17 /* a launch configuration hash, NUL included */

enum refresh_status {
    REFRESH_NONE = 0,
    REFRESH_PENDING,     /* asked for; the controller has not counted the instances yet */
    REFRESH_IN_PROGRESS, /* replacing */
    REFRESH_PAUSED,      /* paused_at_checkpoint: until resumed */
    REFRESH_SUCCESSFUL,
    REFRESH_CANCELLED,
    REFRESH_FAILED,
    /* rollback: replacing the instances of the new launch config by ones of the previous config,
       once the previous launch settings are the group's again (docs/instance-refresh.md) */
    REFRESH_ROLLBACK_IN_PROGRESS,
    REFRESH_ROLLED_BACK,
};

struct refresh {
    int status;        /* enum refresh_status */
    int min_healthy;   /* percent of desired kept healthy in service */
    int64_t warmup_ms; /* a new instance counts this long after it is in service */
    int checkpoints[REFRESH_MAX_CHECKPOINTS]; /* percentages, ascending */
    int n_checkpoints;
    int next_checkpoint; /* index of the next checkpoint to pause at */
    int total;           /* instances to replace when it started */
    int left;            /* instances still to replace (the controller's last count) */
    int64_t started_ms, updated_ms;
    char target[REFRESH_LC_MAX]; /* launch config being rolled out ("" until counted) */
    char from[REFRESH_LC_MAX];   /* the launch config most old instances had */
    int rb_counted;              /* rollback: the instances to replace back were counted */
    char reason[128];            /* why it failed or ended, "" otherwise */
};

/* "pending", "in_progress", "paused_at_checkpoint", ... ("" for REFRESH_NONE). */
const char *refresh_status_name(int status);
/* 1 when status is one the controller still works on (pending, in progress, paused, rollback). */
int refresh_active(int status);
/* Reads text (refresh_format()'s) into *r; "" gives status REFRESH_NONE. -1 when malformed. */
int refresh_parse(const char *text, struct refresh *r);
/* Writes *r as text into buf; -1 when it does not fit. */
int refresh_format(const struct refresh *r, char *buf, size_t len);
/* The percentage of instances replaced (100 when there was nothing to replace). */
int refresh_percent(const struct refresh *r);
/*
 * Reads the start request {"min_healthy_percentage": 90, "instance_warmup": "60s",
 * "checkpoints": [50]} (every key optional: 90, 0s, none) into a fresh *r with status
 * REFRESH_PENDING and started_ms now. -1 with a message in err when invalid.
 */
int refresh_from_request(const json_t *body, int64_t now, struct refresh *r, char *err,
                         size_t errlen);
/* The API's view of *r (a new object). */
json_t *refresh_to_json(const struct refresh *r);

#endif
