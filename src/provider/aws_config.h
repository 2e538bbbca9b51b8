/*
 * aws_config.h - where AWS credentials, region and endpoint come from, in the
 * order AWS users expect (the same order as botocore and the AWS CLI).
 *
 * Credentials (aws_chain_get):
 *   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
 *   2. shared credentials file: AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials,
 *      section [<profile>], keys aws_access_key_id / aws_secret_access_key /
 *      aws_session_token
 *   3. shared config file: AWS_CONFIG_FILE or ~/.aws/config, section
 *      [profile <profile>] ([default] for the default profile), same keys
 *   4. the instance role through IMDSv2 (AWS_EC2_METADATA_SERVICE_ENDPOINT
 *      overrides http://169.254.169.254, AWS_EC2_METADATA_DISABLED=true turns it
 *      off), cached and refreshed 15 minutes before its Expiration
 * The profile is the one passed in, else AWS_PROFILE, else "default".
 * Environment and files are re-read on every call (cheap, and a rotated key is
 * picked up at once); only the IMDS credentials are cached.
 *
 * Region: AWS_REGION, AWS_DEFAULT_REGION, the profile's `region` in the
 * config file, then the value from asgd's own configuration.
 * Endpoint: AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL, the profile's
 * `endpoint_url`, asgd's configuration, then https://ec2.<region>.amazonaws.com
 * (.com.cn for cn-* regions).
 *
 * Secrets (secret key, session token) never appear in an error message or a
 * log line from this module.
 */
#ifndef ASGD_AWS_CONFIG_H
#define ASGD_AWS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

struct aws_credentials {
    char *access_key_id;     /* owned */
    char *secret_access_key; /* owned; a secret */
    char *session_token;     /* owned or NULL; a secret */
    int64_t expires_ms;      /* wall-clock ms, 0 when it does not expire */
    const char *source;      /* static: "environment", "shared credentials file", ... */
};
#define AWS_CREDENTIALS_INIT                                                                       \
    {                                                                                              \
        0                                                                                          \
    }

/* Wipes and frees the contents; *c becomes empty. NULL is a no-op. */
void aws_credentials_release(struct aws_credentials *c);

/* The profile name: override if not NULL/"", else AWS_PROFILE, else "default". Static or override.
 */
const char *aws_profile_name(const char *override);

/*
 * Reads key from the named section of an AWS shared file (INI). For the config
 * file pass config=1: the section is then "profile <name>" (or "default").
 * Returns 1 and a malloc'd *out (caller frees) when found, 0 when the file,
 * section or key is absent, -1 on out of memory.
 */
int aws_shared_file_get(const char *path, int config, const char *profile, const char *key,
                        char **out);

/* Paths of the shared files (malloc'd, caller frees; NULL when HOME is unset and no override). */
char *aws_credentials_file_path(void);
char *aws_config_file_path(void);

struct aws_chain;

/*
 * Creates a credential chain for profile (NULL: AWS_PROFILE or "default";
 * copied). Returns NULL on out of memory. Free with aws_chain_free (NULL ok).
 */
struct aws_chain *aws_chain_new(const char *profile);
void aws_chain_free(struct aws_chain *ch);

/*
 * Resolves credentials into *out (which the caller releases with
 * aws_credentials_release). Thread-safe. Returns 0, or -1 with err saying
 * which sources were tried and why each failed (never a secret).
 */
int aws_chain_get(struct aws_chain *ch, struct aws_credentials *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* How many times the chain has fetched credentials from IMDS (tests and stats). */
unsigned aws_chain_imds_fetches(const struct aws_chain *ch);

/*
 * Resolves the region (see the top of this file); configured may be NULL.
 * Returns 0 with a malloc'd *out, or -1 with err when no source names one.
 */
int aws_resolve_region(const char *profile, const char *configured, char **out, char *err,
                       size_t errlen);
/*
 * Resolves the EC2 endpoint URL (see the top of this file); configured may be
 * NULL. Returns 0 with a malloc'd *out ("scheme://host[:port]", no trailing
 * slash), or -1 on out of memory or an URL that is not http(s)://.
 */
int aws_resolve_endpoint(const char *profile, const char *configured, const char *region,
                         char **out, char *err, size_t errlen);

/*
 * Splits an endpoint URL into the Host header value SigV4 signs: the host,
 * plus ":port" only when the port is not the scheme's default (as botocore).
 * Returns 0, or -1 when url is not http(s)://host[:port][/...] or host is too long.
 */
int aws_endpoint_host(const char *url, char *host, size_t hostlen);

#endif
