/*
 * launch_config.c - the launch configuration of a group definition (see
 * node_launch_config() in node.h): the identity scale-in compares
 * (termination_policy = oldest_launch_config) and every launch token carries.
 *
 * Only what shapes a NEW instance enters the hash: sizes, policies and the
 * provider's pacing (api_calls_per_second, timeouts) do not, so changing them
 * does not make the fleet look outdated.
 */
#include "node/node.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "provider/ec2.h"

#include "common/banned.h"

/* FNV-1a over s and a separator (so "ab"+"c" differs from "a"+"bc"); NULL hashes as "". */
static uint64_t mix(uint64_t h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    h ^= 0x1f;
    h *= 1099511628211ULL;
    return h;
}

void node_launch_config(const struct node_group_def *def, char *buf, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    h = mix(h, def->provider == NODE_PROVIDER_EC2 ? "ec2" : "local");
    if (def->provider != NODE_PROVIDER_EC2 || def->ec2 == NULL) {
        h = mix(h, def->agent_path);
        h = mix(h, def->agent_args);
    } else {
        const struct ec2_settings *e = def->ec2;
        h = mix(h, e->image_id);
        h = mix(h, e->launch_template);
        h = mix(h, e->launch_template_version);
        h = mix(h, e->instance_type);
        h = mix(h, e->key_name);
        for (size_t i = 0; i < e->n_security_group_ids; i++)
            h = mix(h, e->security_group_ids[i]);
        for (size_t i = 0; i < e->n_subnet_ids; i++)
            h = mix(h, e->subnet_ids[i]);
        h = mix(h, e->iam_instance_profile);
        h = mix(h, e->user_data_file);
        for (size_t i = 0; i < e->n_tags; i++) {
            h = mix(h, e->tags[i].key);
            h = mix(h, e->tags[i].value);
        }
        h = mix(h, e->use_public_ip ? "public" : "private");
        h = mix(h, e->require_imdsv2 ? "imdsv2" : "imds");
    }
    snprintf(buf, len, "%016llx", (unsigned long long)h);
}
