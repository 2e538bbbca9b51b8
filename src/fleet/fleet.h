/*
 * fleet.h - the fleet table: the shared memory of the seed's design.
 *
 * One POSIX shared-memory segment per group ("/asgd-<group>"), holding a
 * header and a fixed array of slots, one per instance. MonitorS writes health
 * and load into slots; ControllerASG allocates and frees slots and sets their
 * life cycle. Both may be threads of one asgd or two processes (asgd monitor /
 * asgd controller) mapping the same segment; either can die and restart.
 *
 * Concurrency: every write (alloc, free, update) happens under one
 * process-shared ROBUST mutex in the header (a writer that dies holding it
 * does not wedge the other process: the next locker recovers it). Readers
 * take no lock: each slot has a sequence counter, odd while a write is in
 * progress; fleet_read() copies the slot and retries until it saw the same
 * even value before and after, so a reader never sees a torn slot.
 *
 * Each allocation bumps the slot's generation. A writer holding (index,
 * generation) from an earlier snapshot cannot touch a slot that was freed and
 * reused meanwhile: fleet_update() fails with FLEET_ESTALE.
 *
 * Size: a table is created with the capacity its group needs (its max_size)
 * and grows in place (fleet_grow) when max_size is raised: each mapping
 * reserves the address space of FLEET_MAX_SLOTS slots, so growth is one
 * ftruncate under the mutex and every process sees it at its next read of the
 * capacity; memory is spent only on the slots the table has.
 *
 * Errors: 0 or a negative FLEET_E* code (fleet_strerror()).
 */
#ifndef ASGD_FLEET_H
#define ASGD_FLEET_H

#include <stddef.h>
#include <stdint.h>

#define FLEET_ID_MAX      64
#define FLEET_ADDR_MAX    64
#define FLEET_DEFAULT_CAP 4096
/* The highest max_size a group may have (group_settings_validate() says so). */
#define FLEET_MAX_SIZE 100000
/* Slots a group of max_size instances needs: max_size, plus room for instances still
   terminating while their replacements launch (a failed terminate keeps its slot). */
#define FLEET_SLOTS_FOR(max_size) ((uint32_t)(max_size) + (uint32_t)(max_size) / 4u + 64u)
/* The most slots a table can grow to: every mapping reserves address space (not memory)
   for this many slots, ~256 bytes each (32 MB of address space per table and process). */
#define FLEET_MAX_SLOTS FLEET_SLOTS_FOR(FLEET_MAX_SIZE)

enum fleet_lifecycle {
    FLEET_FREE = 0,    /* slot unused */
    FLEET_PENDING,     /* launched, booting: not yet healthy, or within grace period */
    FLEET_IN_SERVICE,  /* counted in the load average, replaced if unhealthy */
    FLEET_TERMINATING, /* terminate requested, waiting for the provider to confirm */
    /* lifecycle hooks and standby (issue 12, docs/lifecycle.md) */
    FLEET_PENDING_WAIT,     /* launch hook: launched, held until the hook completes
                               (hook_deadline_ms); not in service, not replaced */
    FLEET_TERMINATING_WAIT, /* terminate hook: chosen for termination, draining until the hook
                               completes (hook_deadline_ms); not in the load, not replaced */
    FLEET_STANDBY,          /* kept running, out of the load and of health replacement */
    FLEET_LIFECYCLE_COUNT,
};

enum fleet_health {
    FLEET_HEALTH_UNKNOWN = 0, /* not yet decided (fewer than rise/fall results) */
    FLEET_HEALTH_HEALTHY,
    FLEET_HEALTH_UNHEALTHY,
    /* the agent said it is leaving (Deregister: a graceful restart); health_changed_ms is
       when. Not counted in the load and not replaced for the group's deregister_grace; a
       Register or rise passing checks end it, failed checks do not make it UNHEALTHY */
    FLEET_HEALTH_DEREGISTERED,
    FLEET_HEALTH_COUNT,
};

/* A consistent copy of one slot (what readers get). */
struct fleet_slot {
    uint32_t index;
    uint32_t generation;
    char id[FLEET_ID_MAX];
    char address[FLEET_ADDR_MAX];
    uint8_t lifecycle;     /* enum fleet_lifecycle */
    uint8_t health;        /* enum fleet_health */
    uint8_t registered;    /* the agent called Register */
    uint8_t seed_protocol; /* agent only answers GetStatus/GetMemoryUsage */
    uint8_t app_healthy;   /* last GetStatus/GetMetrics said the app is OK */
    uint8_t adopted;       /* found running at start, not launched by this asgd */
    uint8_t protect;       /* scale-in protection: never a scale-in victim */
    uint8_t spare0;
    int32_t pid;               /* local provider: the agent's pid, else 0 */
    int64_t launched_at_ms;    /* wall clock */
    int64_t in_service_at_ms;  /* wall clock when it became IN_SERVICE, 0 if never */
    int64_t last_seen_ms;      /* wall clock of the last successful poll, 0 if never */
    int64_t health_changed_ms; /* wall clock of the last health transition */
    double load;               /* 0..100 as the agent reports it; < 0 when unknown */
    double cpu_pct, mem_pct, load1;
    uint32_t consecutive_ok;   /* successes since the last failure */
    uint32_t consecutive_fail; /* failures since the last success */
    uint64_t polls_ok, polls_failed;
    int64_t last_rtt_us;      /* last poll's round trip */
    int64_t hook_deadline_ms; /* wall: a *_WAIT state ends with the hook's default result then */
    int64_t wait_ended_ms;    /* wall: when the last launch hook completed (grace counts from it) */
};

struct fleet;

/*
 * Opens (create != 0: creates if absent) the segment of group `name`
 * (letters, digits, '-', '_', '.'; <= 200 chars: "<node>.<group>" in a cluster). capacity is used
 * only when creating. An existing segment with another layout version fails with FLEET_EVERSION.
 * *out is set only on success; release with fleet_close().
 */
int fleet_open(const char *name, uint32_t capacity, int create, struct fleet **out)
    __attribute__((warn_unused_result));
/* Unmaps; the segment stays for other processes. NULL is a no-op. */
void fleet_close(struct fleet *f);
/* Removes the segment name (existing mappings stay valid). */
int fleet_unlink(const char *name);

/* Slots in the table now (only ever grows). */
uint32_t fleet_capacity(const struct fleet *f);
/*
 * Grows the table to at least capacity slots (no-op if it has them). Safe
 * while other threads and processes use the table. FLEET_ETOOBIG above
 * FLEET_MAX_SLOTS (or the size the segment was first mapped with, if larger),
 * FLEET_ESYS when the segment cannot grow (/dev/shm full: see errno).
 */
int fleet_grow(struct fleet *f, uint32_t capacity) __attribute__((warn_unused_result));
/* Bumped on every alloc/free: a reader whose cached value differs rescans. */
uint64_t fleet_membership_gen(const struct fleet *f);

/*
 * Allocates a slot for instance id with the given address and launch time,
 * lifecycle PENDING, health UNKNOWN, load -1. Fails with FLEET_EEXIST if id
 * already has a slot, FLEET_EFULL when no slot is free.
 */
int fleet_alloc(struct fleet *f, const char *id, const char *address, int64_t launched_at_ms,
                uint32_t *index_out) __attribute__((warn_unused_result));
/* Frees the slot at index (its generation must match, or FLEET_ESTALE). */
int fleet_free(struct fleet *f, uint32_t index, uint32_t generation);

/* Index of the slot holding id, or FLEET_ENOENT. */
int fleet_find(const struct fleet *f, const char *id, uint32_t *index_out);

/* Consistent copy of slot index, or FLEET_ENOENT if free. */
int fleet_read(const struct fleet *f, uint32_t index, struct fleet_slot *out);

/*
 * Consistent copies of every used slot, in index order, into out (up to max).
 * Returns the number of used slots (may exceed max: then call again with more).
 */
size_t fleet_snapshot(const struct fleet *f, struct fleet_slot *out, size_t max);

/*
 * Runs fn on the live slot under the table mutex and the slot's sequence
 * counter, so readers see all of fn's changes or none. fn must be short and
 * must not change index, generation, id or lifecycle FREE. Fails with
 * FLEET_ESTALE if the slot was freed or reused since generation was read.
 */
int fleet_update(struct fleet *f, uint32_t index, uint32_t generation,
                 void (*fn)(struct fleet_slot *slot, void *arg), void *arg);

/* Liveness of the two roles (wall ms), for asgd status and the other role. */
void fleet_heartbeat(struct fleet *f, int role /* 0 monitor, 1 controller */, int64_t now_ms);
int64_t fleet_last_heartbeat(const struct fleet *f, int role);

/*
 * The launch window: the controller calls fleet_set_launching(f, deadline) just before a
 * launch call to the provider and fleet_set_launching(f, 0) once the instances it made
 * have their slots, so that MonitorS can tell an agent that registers before its slot
 * exists (it booted while the call was in flight) from one that is not ours: it asks the
 * first to retry shortly instead of refusing it (mon.h). Times are clk_mono_ms() values
 * (CLOCK_MONOTONIC is the same in every process of the machine), kept in whole seconds
 * rounded up; a deadline bounds the window when the controller dies in the middle of a
 * launch. fleet_launching() is 1 while now_mono_ms is before the deadline. NULL: no-op / 0.
 */
void fleet_set_launching(struct fleet *f, int64_t until_mono_ms);
int fleet_launching(const struct fleet *f, int64_t now_mono_ms);

const char *fleet_lifecycle_name(int lifecycle);
/* The lifecycle named name (as fleet_lifecycle_name() writes it), or -1. */
int fleet_lifecycle_parse(const char *name);
const char *fleet_health_name(int health);

enum fleet_error {
    FLEET_OK = 0,
    FLEET_ENOENT = -1,
    FLEET_EEXIST = -2,
    FLEET_EFULL = -3,
    FLEET_ESTALE = -4,
    FLEET_EINVAL = -5,
    FLEET_ESYS = -6, /* shm_open/mmap/ftruncate failed: see errno */
    FLEET_EVERSION = -7,
    FLEET_ETOOBIG = -8,
};
const char *fleet_strerror(int code);

#endif
