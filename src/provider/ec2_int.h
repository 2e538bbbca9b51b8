/*
 * ec2_int.h - what the files of the EC2 provider share (not a public API: see
 * ec2.h and provider.h).
 *
 *   ec2_settings.c  the [ec2] section: parsing, checks, copies
 *   ec2.c           the signed Query API client: form encoding, SigV4, HTTP
 *                   with retries, backoff and the call-rate ceiling; user data;
 *                   the constructor and destructor
 *   ec2_ops.c       the provider operations on top: DescribeInstances (paged),
 *                   RunInstances (spread over subnets, ClientToken), and
 *                   TerminateInstances, in calls of at most MAX_PER_CALL
 *
 * Threads: every operation holds the provider's mutex (one call at a time).
 */
#ifndef ASGD_EC2_INT_H
#define ASGD_EC2_INT_H

#include <curl/curl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "provider/ec2.h"
#include "provider/ec2_xml.h"
#include "provider/provider.h"

#ifndef ASGD_VERSION
#define ASGD_VERSION "dev"
#endif

#define EC2_API_VERSION "2016-11-15"
#define GROUP_TAG       "asg:group"
#define MAX_FORM        (1024 * 1024)
#define MAX_REPLY       (16 * 1024 * 1024)
#define MAX_USER_DATA   16384
#define MAX_PAGES       1000
#define TOKEN_MEMO      64
#define BACKOFF_CAP_MS  8000
#define MAX_PER_CALL    1000 /* RunInstances MaxCount and TerminateInstances ids per call */

/* ---- small buffers (ec2.c) ------------------------------------------------------- */

/* A growable byte buffer with a size ceiling; failed is sticky (out of memory or past max). */
struct buf {
    char *p;
    size_t n, cap, max;
    int failed;
};

void ec2__buf_free(struct buf *b);
/* Appends key=value (form-encoded) to f; "&" between pairs. */
void ec2__form_add(struct buf *f, const char *key, const char *value);
/* The same with a printf-formatted key. */
void ec2__form_addf(struct buf *f, const char *value, const char *keyfmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A form for action: Action and Version set. */
void ec2__form_start(struct buf *f, const char *action);

/* ---- the provider ----------------------------------------------------------------- */

struct token_memo {
    char token[PROV_ID_MAX];
    int subnet;
};

struct ec2_provider {
    struct provider base; /* first: provider.c casts */
    pthread_mutex_t mu;
    struct ec2_settings s;
    char *group;
    int agent_port;
    char *region;
    char *endpoint; /* "https://host[:port]" */
    char *url;      /* endpoint + "/" */
    char host[512]; /* the Host header we sign */
    char *user_data_b64;
    struct aws_chain *chain;
    CURL *curl;
    /* token bucket */
    double bucket;
    int64_t bucket_ms;
    /* subnet spreading */
    size_t *subnet_live;
    size_t rr;
    struct token_memo memo[TOKEN_MEMO];
    size_t memo_next;
    /* auth-failure backoff */
    int64_t auth_block_until;
    char auth_msg[512];
    unsigned int seed;
    struct ec2_stats stats;
};

extern const struct provider_ops ec2__ops;

/* One API call with retries (ec2.c): 0 with *resp filled, or a PROV_E* code with the
   provider's message set. The caller holds p->mu. */
int ec2__call(struct ec2_provider *p, const char *action, struct buf *form,
              struct ec2_response *resp);
/* Frees everything of p (ops->destroy). */
void ec2__destroy(struct provider *base);
/* A deep copy of s into d (ec2_settings.c); -1 out of memory (d then needs releasing). */
int ec2__settings_copy(struct ec2_settings *d, const struct ec2_settings *s);

#endif
