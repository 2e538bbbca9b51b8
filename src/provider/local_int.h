/*
 * local_int.h - what the files of the local provider share (not a public
 * API: see local.h, which says how the provider works).
 *
 *   local.c        the provider: constructor, destructor, terminate,
 *                  describe, detach, attach, pruning old agent logs
 *   local_launch.c launch: choosing a free loopback address, the
 *                  reservation, the spawn, waiting for the agent's "ok"
 *   local_spawn.c  starting an agent detached (double fork, pid file
 *                  written by the intermediate process with
 *                  async-signal-safe calls only), the --ready-fd line
 *   local_rec.c    pid files ("records"): read, write, list, remove;
 *                  whether a record's process is alive (/proc)
 *
 * Threads: the provider's calls come from one thread at a time (the
 * controller's); nothing here locks.
 */
#ifndef ASGD_PROVIDER_LOCAL_INT_H
#define ASGD_PROVIDER_LOCAL_INT_H

#include <stddef.h>
#include <stdint.h>

#include "provider/local.h"
#include "provider/provider.h"

#define LOCAL_MAX_ADDRS 60000
/* how long a launch waits for the agent's "ok" (or its startup error) after its boot delay */
#define LOCAL_READY_TIMEOUT_MS 5000
/* with a longer simulated boot the launch does not wait (it would block the controller) */
#define LOCAL_READY_MAX_BOOT_MS 2000
/* a reservation (pid file without a pid) older than this is a spawn that never happened */
#define LOCAL_RESERVE_TTL_MS 10000

struct local_provider {
    struct provider base;
    char *group, *dir, *agent_path, *monitor_address, *token_file;
    char **extra_args; /* NULL-terminated, split agent_args */
    size_t n_extra;
    uint32_t base_addr; /* host order */
    int agent_port;
    int64_t boot_delay_ms, kill_timeout_ms;
    int keep_logs;
    uint32_t *taken; /* address offsets found taken by another process (logged once each) */
    size_t n_taken, cap_taken;
};

/* One pid file. */
struct local_rec {
    char id[PROV_ID_MAX];
    int pid;
    unsigned long long starttime;
    char address[PROV_ADDR_MAX];
    int64_t launched_at_ms;
    char token[PROV_ID_MAX];
};

/*
 * What the intermediate process needs to write the agent's pid file, prepared
 * before fork(): after fork() only async-signal-safe calls are allowed, so no
 * stdio, no malloc; numbers are formatted by hand below.
 */
struct pidfile_plan {
    char path[4096], tmp[4096];
    char head[PROV_ID_MAX + 8];                  /* "id=ID\n" */
    char tail[PROV_ADDR_MAX + PROV_ID_MAX + 64]; /* "address=..\nlaunched_at_ms=..\ntoken=..\n" */
};

/* --- local_rec.c ---------------------------------------------------------------------------- */

/* Reads field 3 (state) and 22 (starttime) of /proc/pid/stat. -1 if no such process. */
int local__proc_stat(int pid, char *state, unsigned long long *starttime);
/* Alive = the process exists, is not a zombie, and started when we recorded. */
int local__rec_alive(const struct local_rec *r);
/* A reservation young enough that its spawn may still be under way. */
int local__rec_reserved_fresh(const struct local_rec *r, int64_t now);
/* Counts as an instance of the group: a live agent, or a spawn that may be under way. */
int local__rec_counts(const struct local_rec *r, int64_t now);
/* 1 when id is a valid instance id (letters, digits, '-', '_', '.'; shorter than PROV_ID_MAX). */
int local__valid_id(const char *id);
/* Writes r's pid file (temp + fsync + rename, 0600). 0, or -1 with errno. */
int local__rec_write(const struct local_provider *lp, const struct local_rec *r);
/* Removes id's pid file (best effort). */
void local__rec_remove(const struct local_provider *lp, const char *id);
/* Every pid file in the directory (alive or not). */
int local__rec_list(struct local_provider *lp, struct local_rec **out, size_t *n_out);
/* The provider's view of a record (PENDING while reserved or booting). */
void local__fill_instance(const struct local_provider *lp, const struct local_rec *r, int64_t now,
                          struct prov_instance *inst);
/*
 * rec_read(), but a fresh reservation is waited for (its spawn is under way,
 * normally a few ms) until it holds a pid or goes stale: removing its pid file
 * now would let the spawn put it back afterwards, an instance nobody asked for.
 */
int local__rec_read_settled(const char *path, struct local_rec *r);

/* --- local_spawn.c -------------------------------------------------------------------------- */

/*
 * Starts the agent detached. Returns its pid, or -1 with errno set. Only
 * async-signal-safe calls after fork(). With ready_rd, the agent gets the
 * write end of a pipe as fd 3 (its argv carries --ready-fd 3) and *ready_rd
 * is the read end (the caller closes it).
 */
int local__spawn_agent(struct local_provider *lp, char *const argv[], const char *log_path,
                       const struct pidfile_plan *plan, int *ready_rd, int *pidfile_written);
/*
 * Waits up to timeout_ms for the agent's one line on fd (closed here).
 * Returns 1 for "ok", 0 when it reported a failure or exited without a word
 * (msg says which), -1 when it said nothing in time (still booting: the
 * launch stands).
 */
int local__wait_ready(int fd, int64_t timeout_ms, char *msg, size_t msglen);

/* --- local_launch.c ------------------------------------------------------------------------- */

/* The provider's launch (provider_ops.launch). */
int local__launch(struct provider *p, int count, const char *token, struct prov_list *out);

#endif
