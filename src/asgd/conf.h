/*
 * conf.h - asgd's settings: the config file (asgd -c FILE) as one struct.
 *
 * Sections and keys (defaults in parentheses; durations as "500ms", "5s", "2m"):
 *
 *   [group]    name ("default"), min_size (1), max_size (min_size, at least 1),
 *              desired_capacity (min_size)
 *   [policy]   type (threshold | target)
 *              threshold: scale_up_threshold (70), scale_down_threshold (20),
 *                scale_up_factor (2), scale_down_factor (0.5),
 *                evaluation_period (60s), cooldown (0 = evaluation_period)
 *              target: target (60), tolerance (0.1), evaluation_period (15s),
 *                scale_down_window (300s)
 *              Keys of both types are accepted whatever the type (the store
 *              keeps all of them, so switching type later keeps the others).
 *   [health]   type (agent | ec2), interval (2s), timeout (1s),
 *              healthy_threshold (2), unhealthy_threshold (3), grace_period (30s)
 *   [monitor]  listen (127.0.0.1:50052), agent_port (50051), token_file (none),
 *              accept_unknown (false), advertise (listen: the address instances
 *              are told to register with, e.g. the host's private IP for EC2)
 *   [provider] type (local | ec2)
 *   [local]    agent (monitorc next to the asgd binary), agent_args (none),
 *              boot_delay (0), address_base (127.0.0.2), keep_logs (20)
 *   [store]    dir (see conf_default_store_dir())
 *   [api]      listen (127.0.0.1:8080), token_file (none)
 *   [ec2]      not read here: see conf_load().
 *
 * Two ways in:
 *   conf_load(path, ...)         the whole file, including the unknown-key check;
 *   conf_load_cfg(cfg, ...)      everything but [ec2] from a cfg the caller
 *                                loaded; the caller then reads [ec2] (the ec2
 *                                provider's ec2_settings_load(cfg, ...)) and
 *                                calls cfg_check_unused(cfg, ...) itself.
 *
 * Errors name the file, the line and the key: "asgd.ini:7: [group] min_size:
 * 5 is greater than max_size (3)". Every function returns 0 or -1 with the
 * message in err (NUL-terminated, truncated to errlen).
 *
 * Ownership: every char * in struct asgd_conf is malloc'd and owned by the
 * struct; conf_release() frees them (also after a failed load).
 */
#ifndef ASGD_CONF_H
#define ASGD_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "common/cfg.h"
#include "group/group.h"

enum conf_provider { CONF_PROVIDER_LOCAL = 0, CONF_PROVIDER_EC2 = 1 };

/* Longest group name (the fleet table's limit); letters, digits, '-', '_', '.'. */
#define CONF_NAME_MAX 48

struct conf_monitor {
    char *listen;       /* MonitorS gRPC "host:port" */
    int agent_port;     /* port every instance's monitorc listens on */
    char *token_file;   /* shared secret for Register/Deregister; NULL: none */
    char *advertise;    /* MonitorS address given to instances (EC2 user data); NULL: listen */
    int accept_unknown; /* Register from an unknown instance id is accepted */
};

struct conf_local {
    char *agent;      /* monitorc path; NULL means "next to the asgd binary" (caller resolves) */
    char *agent_args; /* appended to every monitorc command line; NULL: none */
    int64_t boot_delay_ms; /* simulated boot time */
    char *address_base;    /* first loopback address; instances get consecutive ones */
    int keep_logs;         /* log files of terminated instances kept (newest first) */
};

struct conf_api {
    char *listen;     /* HTTP API "host:port" */
    char *token_file; /* bearer token for writes; NULL: none */
};

struct asgd_conf {
    char *path;                  /* the file read; NULL when only defaults */
    struct group_settings group; /* [group] + [policy] + [health]; revision/updated_at unused (0) */
    int provider;                /* enum conf_provider */
    struct conf_monitor monitor;
    struct conf_local local;
    char *store_dir; /* [store] dir */
    struct conf_api api;
};

/*
 * Fills *c with every default (group "default", threshold policy, agent
 * health, local provider, ...). Any previous content is NOT freed. Returns 0,
 * or -1 when out of memory (then *c is safe to conf_release()).
 */
int conf_defaults(struct asgd_conf *c);

/* Frees the strings of *c and zeroes it. NULL is a no-op; calling twice is safe. */
void conf_release(struct asgd_conf *c);

/*
 * Reads every section except [ec2] from cfg (loaded by the caller) into
 * *out, which it first fills with conf_defaults() (overwritten, not
 * released: pass an empty or released struct); validates ranges and the
 * consistency of the settings (min <= desired <= max, down threshold below
 * up, timeout below interval, health type ec2 only with provider ec2, ...).
 * Does NOT call cfg_check_unused(). out->path is set from cfg->path. On
 * failure returns -1 with "FILE:LINE: [section] key: why" in err; *out then
 * holds partial settings and must still be conf_release()d.
 */
int conf_load_cfg(struct cfg *cfg, struct asgd_conf *out, char *err, size_t errlen);

/*
 * The convenience path: cfg_load(path) ("FILE: cannot open: ..." if it
 * cannot), conf_load_cfg(), then, when keep is NULL, cfg_check_unused() (so
 * [ec2] keys are reported as unknown on this path), and
 * the cfg is released. When keep is not NULL the loaded cfg is moved to *keep
 * (the caller's to cfg_release(), also on failure) WITHOUT the unused check:
 * the caller reads [ec2] from it (ec2_settings_load()) and then calls
 * cfg_check_unused(), as asgd's load_config() in src/asgd/main.c does.
 */
int conf_load(const char *path, struct asgd_conf *out, struct cfg *keep, char *err, size_t errlen);

/*
 * Validates the group subset (name, sizes, policy, health) exactly as the
 * config file is validated, for the HTTP API's PATCH. On failure returns -1,
 * sets *sec and *key (each may be NULL) to the config file's section and key
 * names of the offending setting (e.g. "policy", "scale_down_threshold"; static
 * strings) and writes the reason alone to err ("80 must be below
 * scale_up_threshold (70)").
 */
int conf_validate_group(const struct group_settings *g, const char **sec, const char **key,
                        char *err, size_t errlen);

/* Whether name is a valid group name (1..CONF_NAME_MAX of letters, digits, '-', '_', '.'). */
int conf_name_valid(const char *name);

/*
 * The default state directory of group name, malloc'd (caller frees; NULL
 * when out of memory): $STATE_DIRECTORY/<name> when set (systemd's
 * StateDirectory=), else /var/lib/asgd/<name> for root, else
 * $XDG_STATE_HOME/asgd/<name>, else $HOME/.local/state/asgd/<name>, else
 * /tmp/asgd-<uid>/<name>. Never relative to the working directory.
 */
char *conf_default_store_dir(const char *name);

#endif
