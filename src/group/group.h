/*
 * group.h - what a group is: the one home of a group's settings.
 *
 * A group's settings (sizes, scaling policy, health checking) are read from
 * a config file, edited through the HTTP API and kept by the store. This
 * header owns the type all three share, so that none of them keeps a copy.
 */
#ifndef ASGD_GROUP_H
#define ASGD_GROUP_H

#include <stdint.h>

#include "controller/policy.h"

#define GROUP_NAME_MAX  64 /* group name, NUL included */
#define GROUP_SHORT_MAX 32 /* short words: health type */

struct group_health {
    char type[GROUP_SHORT_MAX]; /* "agent" | "ec2" */
    int64_t interval_ms;
    int64_t timeout_ms;
    int healthy_threshold;
    int unhealthy_threshold;
    int64_t grace_period_ms;
};

struct group_settings {
    char name[GROUP_NAME_MAX];
    int min_size, max_size, desired_capacity;
    struct policy_settings policy;
    struct group_health health;
    int64_t revision;      /* bumped by every store write; 1 after the first put */
    int64_t updated_at_ms; /* wall clock of the last write */
};

#endif
