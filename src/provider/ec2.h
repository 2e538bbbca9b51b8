/*
 * ec2.h - the EC2 provider: asgd's instances as EC2 instances, through the
 * EC2 Query API (SigV4-signed HTTPS POSTs with libcurl, XML replies).
 *
 * Configuration, section [ec2] (docs/ec2.md has the full guide):
 *   region                  AWS region; the environment / profile win (aws_config.h)
 *   endpoint                URL override (e.g. a test stand-in); env/profile win
 *   profile                 AWS profile for credentials/region (default AWS_PROFILE)
 *   image_id                AMI to launch                  } one of the two is
 *   launch_template         launch template id (lt-...) or name } required
 *   launch_template_version version of the template ("$Default" if unset)
 *   instance_type           e.g. t3.micro (required without a launch template)
 *   key_name                EC2 key pair
 *   security_group_ids      comma-separated sg-... ids
 *   subnet_ids              comma-separated subnet-... ids; launches are spread
 *                           across them (fewest live instances first)
 *   iam_instance_profile    instance profile name (or ARN)
 *   user_data_file          a template; {{monitor_address}}, {{token}}, {{group}}
 *                           and {{agent_port}} are substituted, then it is sent
 *                           base64-encoded (<= 16 KB after substitution)
 *   tags                    comma-separated key=value pairs added at launch, next
 *                           to asg:group=<group>
 *   use_public_ip           poll agents on the public IP (default false: private)
 *   require_imdsv2          launch with MetadataOptions.HttpTokens=required (true)
 *   api_calls_per_second    token-bucket ceiling on EC2 API calls (default 5)
 *   call_timeout            timeout of one HTTP call (default 10s)
 *   max_attempts            tries per API call on retryable errors (default 4)
 *   retry_base_delay        first backoff delay, doubled per try, jittered (200ms)
 *   describe_page_size      MaxResults for DescribeInstances (5..1000, default 500)
 *   auth_failure_backoff    after an authentication failure no call is made for
 *                           this long; calls fail at once with the same error (60s)
 *
 * Error mapping (provider.h codes): throttling, 5xx, Unavailable, timeouts are
 * retried inside one call with exponential backoff + jitter (same ClientToken)
 * and come out as PROV_ERETRY if they persist; InsufficientInstanceCapacity is
 * PROV_ECAPACITY; credentials, permission and parameter errors are PROV_EFATAL
 * (never retried). Messages never contain a secret.
 */
#ifndef ASGD_EC2_H
#define ASGD_EC2_H

#include <stddef.h>
#include <stdint.h>

#include "common/cfg.h"
#include "provider/provider.h"

struct ec2_tag {
    char *key;   /* owned */
    char *value; /* owned */
};

struct ec2_settings {
    char *profile;                 /* NULL: AWS_PROFILE or "default" */
    char *region;                  /* NULL: from the environment or profile */
    char *endpoint;                /* NULL: from the environment, profile, or the default */
    char *image_id;                /* NULL with a launch template */
    char *launch_template;         /* "lt-..." id or a name; NULL if unused */
    char *launch_template_version; /* NULL: $Default */
    char *instance_type;           /* NULL only with a launch template */
    char *key_name;                /* NULL: none */
    char **security_group_ids;     /* owned array of owned strings */
    size_t n_security_group_ids;
    char **subnet_ids; /* owned array of owned strings */
    size_t n_subnet_ids;
    char *iam_instance_profile; /* NULL: none; "arn:..." is sent as an ARN */
    char *user_data_file;       /* NULL: no user data */
    struct ec2_tag *tags;       /* owned array */
    size_t n_tags;
    int use_public_ip;
    int require_imdsv2;
    double api_calls_per_second;
    int64_t call_timeout_ms;
    int max_attempts;
    int64_t retry_base_delay_ms;
    int describe_page_size;
    int64_t auth_failure_backoff_ms;
};

/* Fills *s with the defaults (no strings). */
void ec2_settings_init(struct ec2_settings *s);

/*
 * Reads [ec2] from c into *out (initialized here; any previous content is NOT
 * freed). Every [ec2] key is marked used, so the caller's cfg_check_unused()
 * then reports only typos. Returns 0, or -1 with "FILE:LINE: [ec2] key: why"
 * in err; on failure *out holds nothing (already released).
 * A config without an [ec2] section fails (image_id/launch_template missing).
 */
int ec2_settings_load(struct cfg *c, struct ec2_settings *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Frees what *s owns and re-initializes it. NULL is a no-op. */
void ec2_settings_release(struct ec2_settings *s);

/*
 * Creates the EC2 provider for group group_name. s is copied (the caller
 * keeps ownership of *s). agent_port is appended to each instance's IP to
 * form its address. monitor_address and token are substituted into the
 * user data template (either may be NULL: substituted as ""). Region and
 * endpoint are resolved here (aws_config.h order) and the user data file is
 * read now; credentials are resolved lazily on the first call, so a missing
 * credential shows up as PROV_EFATAL from the first launch/describe.
 * Returns 0 with *out (free with provider_free), or PROV_EINVAL /
 * PROV_ENOMEM with a message in err.
 */
int provider_ec2_new(const struct ec2_settings *s, const char *group_name, int agent_port,
                     const char *monitor_address, const char *token, struct provider **out,
                     char *err, size_t errlen) __attribute__((warn_unused_result));

/* Counters of an ec2 provider (zeros for another provider). */
struct ec2_stats {
    uint64_t calls;      /* HTTP requests sent */
    uint64_t retries;    /* of which were retries */
    uint64_t throttled;  /* replies that were throttling errors */
    uint64_t failures;   /* API calls that returned an error to the caller */
    uint64_t suppressed; /* calls refused during an auth-failure backoff */
};
void ec2_provider_stats(const struct provider *p, struct ec2_stats *out);

#endif
