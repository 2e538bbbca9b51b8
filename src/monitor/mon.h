/*
 * mon.h - MonitorS: the registry (Register/Deregister) and the poller.
 *
 * MonitorS is the half of asgd that watches instances. It serves the MonitorS
 * gRPC service, where each instance's agent (monitorc) registers at start and
 * deregisters at stop, and it polls every instance in the fleet table over one
 * persistent HTTP/2 connection per instance speaking the gRPC wire (its own
 * client, src/h2/h2.h): every interval one GetMetrics call with a deadline
 * (or GetStatus + GetMemoryUsage for a seed agent that answers UNIMPLEMENTED
 * to GetMetrics), all calls in flight at once, driven by one thread.
 * Answers and silences become health with HAProxy-style hysteresis (rise
 * consecutive successes make an instance healthy, fall consecutive failures
 * make it unhealthy) and load samples, written into the instance's
 * fleet-table slot. The controller reads them.
 *
 * A check fails when the call fails (deadline, connection refused, ...), when
 * the agent answers as another instance id, when it says its application is
 * unhealthy (Metrics.app_healthy false, GetStatus "NOT OK") or that it is
 * draining. Load: Metrics.cpu_load (whatever the agent's load source
 * measures, 0..100) or the seed's GetMemoryUsage.usage; -1 (unknown) when the
 * agent reports a negative value; the last known value stays after a failed
 * call.
 *
 * Logging: health transitions only, one line each ("instance "i-1" at
 * 127.0.0.2:50051 is now unhealthy: deadline exceeded (3 consecutive
 * failures)"); expected ones are logged at debug level: an instance the
 * controller is terminating going unhealthy, and a PENDING instance that has
 * never been healthy (still booting) going from UNKNOWN to UNHEALTHY.
 * Registrations are logged once (not on every periodic re-registration),
 * refusals at most 5 a second.
 *
 * Who owns what: the controller owns slot life cycles (alloc on launch, free
 * on termination). MonitorS only writes health/load/registration fields of
 * existing slots, except that with accept_unknown a Register from an unknown
 * instance id allocates a slot (lifecycle PENDING, like a fresh launch, so the
 * controller's grace period and promotion rules apply to it).
 *
 * Registry rules:
 *  - the token is compared in constant time; a wrong or missing token is
 *    refused (accepted=false, message "bad token") and never changes the table.
 *    An empty configured token disables the check (mon_start() warns).
 *  - an unknown instance id is HELD while any watched fleet table says a
 *    launch is in flight (fleet_launching(); the agent may have booted before
 *    the controller recorded its instance): accepted=false, retry_after_ms > 0,
 *    message "held: ...", nothing written or remembered (registry.c says why).
 *    Otherwise it is refused unless accept_unknown.
 *  - the address must be host:port (IPv4, [IPv6] or a DNS name; port 1..65535).
 *    It fills the slot's address only when the slot has none: the provider's
 *    address wins over what an agent claims.
 *  - Deregister (a graceful agent restart) marks the slot registered=0 and
 *    health DEREGISTERED at once (consecutive_ok reset; an UNHEALTHY slot
 *    stays UNHEALTHY). Failed polls do not turn a DEREGISTERED slot
 *    UNHEALTHY: the controller leaves it out of the load and does not
 *    replace it for the group's [health] deregister_grace, then treats it as
 *    unhealthy. A Register within the window makes it UNKNOWN (the checks
 *    decide again from scratch); rise passing polls make it HEALTHY. It does
 *    not free the slot.
 *
 * Threads: mon_start() starts the gRPC server and the poller thread. The
 * registry handlers run on the server's thread; both only touch the fleet
 * table through fleet.h (which is thread- and process-safe) and stats
 * atomics. Nothing on the poll path waits on disk (log lines go to stderr).
 *
 * Errors: 0 or a negative MON_E* code; operator-facing detail in err/errmsg.
 */
#ifndef ASGD_MON_H
#define ASGD_MON_H

#include <stddef.h>
#include <stdint.h>

struct fleet;
struct fleet_slot;
struct mon;
struct tls_conf;

enum mon_error {
    MON_OK = 0,
    MON_EINVAL = -1, /* bad settings */
    MON_ENOMEM = -2,
    MON_ELISTEN = -3, /* could not bind the MonitorS address */
    MON_ESTATE = -4,  /* already started / not started */
    MON_ESYS = -5,    /* thread creation etc. */
};

/* Settings, filled by the caller (asgd from its [health] and [monitor] sections). */
struct mon_settings {
    const char *listen;    /* MonitorS address "host:port" (port 0 = ephemeral); NULL or "" =
                              run the poller only, no server (tests, benches) */
    const char *token;     /* shared secret agents present; NULL or "" = no check */
    int accept_unknown;    /* Register from an id without slot allocates one (PENDING) */
    int64_t interval_ms;   /* poll interval per instance (>= 10) */
    int64_t timeout_ms;    /* deadline of one poll call (>= 1; clamped to interval) */
    uint32_t rise;         /* consecutive successes to become healthy (>= 1) */
    uint32_t fall;         /* consecutive failures to become unhealthy (>= 1) */
    uint32_t max_inflight; /* cap on concurrent poll calls; 0 = no cap beyond capacity */
    /*
     * A cluster: a Register (token checked) from an instance no group of this
     * node holds is passed here, on the server thread; answer 1 when the
     * instance belongs to a group another node runs (the callee records the
     * registration for that group's owner) and the agent is told it is
     * registered; 0 refuses it as unknown. NULL: refused (one node).
     */
    int (*on_foreign)(void *arg, const char *id, const char *address);
    void *foreign_arg;
    /*
     * TLS ([monitor] tls_*), borrowed: must outlive the monitor; NULL = plain text.
     * With a certificate, the MonitorS server speaks TLS with it, and requires agents
     * to present a certificate signed by the CA file when there is one (mutual TLS).
     * The poller speaks TLS to every agent: agents are verified against the CA file,
     * and the certificate (if any) is presented to them. tls_conf_reload() applies to
     * the next handshake of the server and to channels created afterwards.
     */
    struct tls_conf *tls;
};

/* Fills s with the defaults of issue 3: 2 s / 1 s / rise 2 / fall 3, listen
 * 127.0.0.1:50052, no token, accept_unknown 0, max_inflight 0. */
void mon_settings_init(struct mon_settings *s);

/*
 * Creates a monitor; when f is not NULL it watches fleet table f (borrowed:
 * must outlive the monitor, or its mon_remove_group()) as a first group named
 * "" with the interval, timeout, rise and fall of s. f may be NULL: groups
 * come with mon_add_group(). Copies every string in s. Validates s; on
 * failure returns MON_EINVAL (or MON_ENOMEM) with a message in err and *out
 * untouched. Nothing runs yet. Free with mon_free().
 */
int mon_new(const struct mon_settings *s, struct fleet *f, struct mon **out, char *err,
            size_t errlen) __attribute__((warn_unused_result));

/*
 * Raises RLIMIT_NOFILE to its hard limit (warning if below what the table's
 * capacity needs), binds and starts the MonitorS server (unless listen is
 * empty) and starts the poller thread. MON_ELISTEN if the address cannot be
 * bound, MON_ESTATE if already started; details via mon_errmsg(). On failure
 * nothing is left running.
 */
int mon_start(struct mon *m) __attribute__((warn_unused_result));

/* --- many groups: one listener and one poller serve every group of the node --- */

/* A group's health-check settings (its [health] section). */
struct mon_group_settings {
    int64_t interval_ms; /* poll interval (>= 10) */
    int64_t timeout_ms;  /* deadline of one poll (>= 1; clamped to interval) */
    uint32_t rise, fall; /* 1..1000 */
    int registered_only; /* poll only agents that registered ([health] type = ec2: the
                            provider decides health; registered agents still give load) */
};

/*
 * Starts watching fleet table f (borrowed until mon_remove_group() returns)
 * as group name (unique). Thread-safe; the poller picks it up on its next
 * loop. MON_EINVAL for bad settings or a name already watched, MON_ENOMEM.
 * Register/Deregister find an instance in whichever group's table holds it;
 * with accept_unknown an unknown instance is added to the FIRST group.
 */
int mon_add_group(struct mon *m, const char *name, struct fleet *f,
                  const struct mon_group_settings *gs) __attribute__((warn_unused_result));
/*
 * Changes the health settings of group name; the next poll of each of its
 * instances uses them (the API changed [health]). MON_EINVAL if not watched.
 */
int mon_set_group(struct mon *m, const char *name, const struct mon_group_settings *gs)
    __attribute__((warn_unused_result));
/*
 * Stops watching group name: when it returns the monitor no longer touches
 * its fleet table (calls in flight complete without it). Thread-safe, never
 * from a poll callback. A name not watched is a no-op.
 */
void mon_remove_group(struct mon *m, const char *name);

/* Stops the server and the poller (cancelling calls in flight) and waits for
 * them. Idempotent; NULL or a monitor never started is a no-op. */
void mon_stop(struct mon *m);

/* Stops if running, closes every channel, frees. NULL is a no-op. The fleet
 * table is left as it is. */
void mon_free(struct mon *m);

/* The last error's detail text (never NULL; "" if none). Owned by m. */
const char *mon_errmsg(const struct mon *m);

/* The bound MonitorS port after mon_start(), 0 when no server runs. */
int mon_port(const struct mon *m);

/*
 * One synchronous poll round, for tests and benches, on the caller's thread:
 * rescans the table, polls every instance with an address once (calls in
 * flight together), waits for all answers or deadlines and applies them.
 * Must not be called while the poller thread runs (MON_ESTATE). Returns the
 * number of instances polled, or a negative MON_E* code.
 */
int mon_poll_once(struct mon *m);

/* --- the health state machine (pure; used by the poller and unit tests) --- */

/*
 * HAProxy-style hysteresis over (*health, *ok, *fail), the fleet_slot fields
 * health / consecutive_ok / consecutive_fail. A success resets fail and
 * increments ok; a failure the reverse. health becomes HEALTHY once ok >= rise
 * and UNHEALTHY once fail >= fall; in between it keeps its value, so UNKNOWN
 * stays UNKNOWN until either count is reached, and alternating results never
 * flip a decided state. Counters saturate instead of wrapping. rise/fall of 0
 * count as 1. Returns 1 when *health changed, else 0.
 */
int mon_health_observe(uint8_t *health, uint32_t *ok, uint32_t *fail, int success, uint32_t rise,
                       uint32_t fall);

/* --- registry pieces exposed for unit tests --- */

/* 1 when a and b are equal, comparing in time that depends only on the
 * length of b (the expected secret), not on where they differ. NULL = "". */
int mon_token_equal(const char *a, const char *b);

/* 1 when addr is a valid "host:port" (see above) shorter than FLEET_ADDR_MAX. */
int mon_address_valid(const char *addr);

#endif
