/*
 * victims.h - which instances a scale-in terminates: the termination
 * policies of [group] termination_policy, as a pure chooser.
 *
 * The caller hands in a plain array of candidates (what may be terminated:
 * instances not terminating, not being replaced, not protected) and how many
 * to pick; the chooser answers their indices in the order they go, each with
 * the rule that decided it (for the activity log). For every pick:
 *
 *   1. unhealthy instances first (AWS replaces them outside the policies;
 *      here they are simply the first victims of any policy);
 *   2. zones balanced: only candidates of the zone holding the most
 *      candidates stay (when any candidate carries a zone; an empty zone is
 *      a zone of its own);
 *   3. each policy of the list in order narrows what is left:
 *        default         booting (pending) instances, newest first; then
 *                        oldest_launch_config; then
 *                        closest_to_next_instance_hour
 *        oldest_instance / newest_instance  by launch time
 *        oldest_launch_config  instances whose launch configuration is not
 *                        the current one (or unknown); all current: no-op
 *        closest_to_next_instance_hour  least time left in the instance's
 *                        current hour since launch
 *   4. a tie left after the list is broken at random (a hash of the id and
 *      the caller's seed, so a test can pin it).
 *
 * Where this differs from AWS: unhealthy instances are victims rather than
 * bypassing the policies (asgd would replace them next anyway); "booting
 * newest first" leads the default policy (an instance still booting serves
 * nobody yet, and killing it wastes the least); a launch configuration is a
 * hash (victims can tell current from not current, but not which of two old
 * ones is older); zone counts are taken over the candidates (protected
 * instances are not counted).
 *
 * Threads: pure and reentrant. Memory: one scratch allocation per call.
 */
#ifndef ASGD_VICTIMS_H
#define ASGD_VICTIMS_H

#include <stddef.h>
#include <stdint.h>

enum victims_policy {
    VICTIMS_DEFAULT = 0,
    VICTIMS_OLDEST_INSTANCE,
    VICTIMS_NEWEST_INSTANCE,
    VICTIMS_OLDEST_LAUNCH_CONFIG,
    VICTIMS_CLOSEST_TO_NEXT_HOUR,
    VICTIMS_POLICY_COUNT,
};

/* The names of enum victims_policy, in its order, NULL-terminated (the key table's choices). */
extern const char *const victims_policy_names[VICTIMS_POLICY_COUNT + 1];

#define VICTIMS_MAX_POLICIES 8

/*
 * The policies of a canonical list text ("oldest_instance, default") into
 * out (at most max; unknown words skipped). An empty list is {default}.
 * Returns how many.
 */
size_t victims_parse(const char *list, int *out, size_t max);

struct victim_cand {
    const char *id;            /* required */
    const char *zone;          /* availability zone; NULL or "": none */
    const char *launch_config; /* the launch configuration it was made with; NULL or "": unknown */
    int64_t launched_at_ms;
    int unhealthy; /* failing its checks (or deregistered past its grace) */
    int booting;   /* launched, not in service yet */
};

struct victims_in {
    const int *policies; /* enum victims_policy, applied in order; NULL/0: {default} */
    size_t n_policies;
    const char *launch_config; /* the group's current one; NULL or "": unknown */
    int64_t now_ms;
    uint64_t seed; /* the random tie-break */
};

/*
 * Picks min(n, k) of the k candidates: out[i] is an index into cand, why[i]
 * (why may be NULL) a static text naming the rule that decided pick i
 * ("unhealthy", "oldest instance", ...). Returns the count, or -1 when out
 * of memory (nothing picked).
 */
int victims_choose(const struct victims_in *in, const struct victim_cand *cand, size_t k, size_t n,
                   size_t *out, const char **why);

#endif
