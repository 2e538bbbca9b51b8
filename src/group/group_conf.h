/*
 * group_conf.h - a group's whole definition: its settings, its provider and
 * the provider's settings, and the spec they were read from.
 *
 * A group is defined by a group file (the sections below), by a section set
 * inside asgd's node file (today's single-file layout), or by a spec: the
 * same keys as JSON, which the store keeps and POST /api/v1/groups takes:
 *
 *   {"group": {"name": "web", "min_size": "2"}, "policy": {...}, "health": {...},
 *    "provider": {"type": "local"}, "local": {...}, "ec2": {...}}
 *
 * Every value is the INI file's text (a JSON number or boolean is accepted and
 * read as its text); sections and keys absent take their defaults; an unknown
 * section or key is an error. Specs and files go through ONE reader (a spec
 * becomes an in-memory cfg first), so both accept and refuse the same things.
 *
 *   [group] [policy] [health]  the settings: group.h's key table
 *   [provider] type            local (default) | ec2
 *   [local]    agent (monitorc next to the asgd binary), agent_args (none),
 *              boot_delay (0s, 0..1h), keep_logs (20, 1..100000),
 *              address_base (see below),
 *              dir (where the local provider keeps pid files and agent logs;
 *              default: chosen by asgd, see conf.h)
 *   [ec2]      provider/ec2.h (ec2_settings_load); read when provider = ec2 or
 *              when the section is present
 *
 * address_base: the first loopback address of the group's instances (they get
 * consecutive ones). Default 127.0.0.2 for the single-file layout; for a group
 * from a groups folder, a spec or the API (GROUP_CONF_DERIVE_ADDRESS), a range
 * derived from the name, 127.<1 + h % 250>.<h / 250 % 250>.2 with h the FNV-1a
 * hash of the name, so that groups on one host do not collide.
 *
 * The canonical spec text (struct group_conf.spec) is compact JSON with sorted
 * keys, holding every key the source set (strings as in the INI), plus
 * group.name always: equal definitions give equal texts.
 *
 * Errors: 0 or -1 with the reason in err. From a file: "FILE:LINE: [section]
 * key: why"; from a spec: "NAME: section.key: why" (NAME is the caller's label
 * for the spec, e.g. "spec" or "etcd /asgd/groups/web").
 *
 * Ownership: every pointer in struct group_conf is owned by it;
 * group_conf_release() frees them (also after a failed load). Threads: no
 * globals; each call works on its own arguments.
 */
#ifndef ASGD_GROUP_CONF_H
#define ASGD_GROUP_CONF_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/cfg.h"
#include "group/group.h"
#include "provider/ec2.h"

enum group_provider { GROUP_PROVIDER_LOCAL = 0, GROUP_PROVIDER_EC2 = 1 };

/* Longest string value in a spec or file (paths: PATH_MAX is 4096 on Linux too). */
#define GROUP_VALUE_MAX 4096

struct group_local {
    char *agent;           /* monitorc path; NULL: next to the asgd binary (caller resolves) */
    char *agent_args;      /* appended to every monitorc command line; NULL: none */
    int64_t boot_delay_ms; /* simulated boot time */
    int keep_logs;         /* logs of terminated agents kept (20) */
    char *address_base;    /* first loopback address; never NULL after a load */
    char *dir;             /* pid files and agent logs; NULL: the caller decides */
};

struct group_conf {
    char *path;                     /* the file read; NULL for a spec */
    struct group_settings settings; /* revision/updated_at 0: the store's business */
    int provider;                   /* enum group_provider */
    struct group_local local;
    int has_ec2;             /* ec2 below was read (provider ec2 or an [ec2] section) */
    struct ec2_settings ec2; /* ec2_settings_release()d by group_conf_release() */
    char *spec;              /* canonical JSON text of the definition (see above) */
};

/* Flags of the readers. */
#define GROUP_CONF_DERIVE_ADDRESS 1 /* address_base absent: derive it from the name */

/*
 * Reads the group sections of cfg ([group] [policy] [health] [provider]
 * [local] [ec2]) into *out (first zeroed: pass an empty or released struct).
 * default_name is the name when [group] name is absent (NULL: "default").
 * Validates everything (group_settings_validate(), ec2 health only with the
 * ec2 provider, address_base loopback with room for max_size addresses) and
 * builds out->spec. Does NOT call cfg_check_unused() (the node file has other
 * sections too). out->path is NOT set. On failure *out must still be released.
 */
int group_conf_read_cfg(struct cfg *cfg, const char *default_name, int flags,
                        struct group_conf *out, char *err, size_t errlen);

/*
 * A group file: cfg_load(path), group_conf_read_cfg() with the name defaulting
 * to the file's base name without ".ini", then cfg_check_unused() (any other
 * section is unknown). flags as above.
 */
int group_conf_load_file(const char *path, int flags, struct group_conf *out, char *err,
                         size_t errlen);

/*
 * A spec (text, or an object already parsed: pass one of text/j, the other
 * NULL). group.name is required; address_base is derived when absent. Wrong
 * types, unknown sections or keys, values over GROUP_VALUE_MAX bytes are
 * refused naming the key path. name labels the spec in messages (NULL:
 * "spec").
 */
int group_conf_from_spec(const char *text, const json_t *j, const char *name,
                         struct group_conf *out, char *err, size_t errlen);

/* Frees what *g owns and zeroes it. NULL is a no-op; calling twice is safe. */
void group_conf_release(struct group_conf *g);

/*
 * The spec of a group file (what asgctl create-group sends): the file is read
 * and validated as group_conf_load_file() does; *json_text is the canonical
 * spec, malloc'd (caller frees). 0 or -1 + message.
 */
int group_spec_from_file(const char *path, char **json_text, char *err, size_t errlen);

/* The derived address_base of name ("127.x.y.2") into buf (>= 16 bytes). */
void group_derive_address(const char *name, char *buf, size_t len);

#endif
