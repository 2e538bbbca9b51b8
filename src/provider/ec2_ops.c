/*
 * ec2_ops.c - the EC2 provider's operations (see ec2_int.h): describe
 * (paged), launch (RunInstances spread over subnets, with ClientToken) and
 * terminate (TerminateInstances), each under the provider's mutex, on top of
 * ec2__call().
 *
 * Sizes: RunInstances takes at most MAX_PER_CALL instances and
 * TerminateInstances MAX_PER_CALL ids; the provider declares both in its ops
 * (max_launch, max_terminate) and the controller splits larger requests into
 * calls of that size, each launch call with its own token.
 */
#include "provider/ec2_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "provider/sigv4.h"

#include "common/banned.h"

static void to_prov(const struct ec2_provider *p, const struct ec2_instance *e,
                    struct prov_instance *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->id, sizeof(o->id), "%s", e->id);
    const char *ip = p->s.use_public_ip ? e->public_ip : e->private_ip;
    if (ip[0] != '\0') {
        if (strchr(ip, ':') != NULL)
            snprintf(o->address, sizeof(o->address), "[%.40s]:%d", ip, p->agent_port);
        else
            snprintf(o->address, sizeof(o->address), "%.40s:%d", ip, p->agent_port);
    }
    o->state = ec2_state_to_prov(e->state_code);
    o->launched_at_ms = e->launch_time_ms;
    snprintf(o->zone, sizeof(o->zone), "%.31s", e->zone);
    size_t tl = strlen(e->client_token);
    if (tl < sizeof(o->launch_token))
        memcpy(o->launch_token, e->client_token, tl + 1);
}

static int subnet_index(const struct ec2_provider *p, const char *subnet)
{
    for (size_t i = 0; i < p->s.n_subnet_ids; i++)
        if (strcmp(p->s.subnet_ids[i], subnet) == 0)
            return (int)i;
    return -1;
}

/*
 * DescribeInstances of the group, following nextToken. With token != NULL
 * only that launch's instances (any state but terminated-and-gone is kept);
 * otherwise the live ones, and the per-subnet counts are refreshed.
 */
static int describe_locked(struct ec2_provider *p, const char *token, struct prov_list *out)
{
    int rc = 0;
    char *next = NULL;
    struct ec2_response r = EC2_RESPONSE_INIT;
    size_t *counts = NULL;
    if (token == NULL && p->s.n_subnet_ids > 0) {
        counts = calloc(p->s.n_subnet_ids, sizeof(*counts));
        if (counts == NULL)
            return provider__fail(&p->base, PROV_ENOMEM, "out of memory");
    }
    char pagesize[16];
    snprintf(pagesize, sizeof(pagesize), "%d", p->s.describe_page_size);
    for (int page = 0;; page++) {
        if (page == MAX_PAGES) {
            rc = provider__fail(&p->base, PROV_ERETRY,
                                "ec2 DescribeInstances: more than %d pages, giving up", MAX_PAGES);
            goto out;
        }
        struct buf f;
        ec2__form_start(&f, "DescribeInstances");
        ec2__form_add(&f, "Filter.1.Name", "tag:" GROUP_TAG);
        ec2__form_add(&f, "Filter.1.Value.1", p->group);
        if (token != NULL) {
            ec2__form_add(&f, "Filter.2.Name", "client-token");
            ec2__form_add(&f, "Filter.2.Value.1", token);
        } else {
            static const char *const live[] = {"pending", "running", "shutting-down", "stopping",
                                               "stopped"};
            ec2__form_add(&f, "Filter.2.Name", "instance-state-name");
            for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
                ec2__form_addf(&f, live[i], "Filter.2.Value.%zu", i + 1);
        }
        ec2__form_add(&f, "MaxResults", pagesize);
        if (next != NULL)
            ec2__form_add(&f, "NextToken", next);
        rc = ec2__call(p, "DescribeInstances", &f, &r);
        ec2__buf_free(&f);
        if (rc != 0)
            goto out;
        for (size_t i = 0; i < r.n_instances; i++) {
            const struct ec2_instance *e = &r.instances[i];
            if (e->id[0] == '\0' || (e->group[0] != '\0' && strcmp(e->group, p->group) != 0))
                continue;
            if (token == NULL && e->state_code == EC2_TERMINATED)
                continue;
            struct prov_instance pi;
            to_prov(p, e, &pi);
            if (prov_list_push(out, &pi) != 0) {
                rc = provider__fail(&p->base, PROV_ENOMEM, "out of memory");
                goto out;
            }
            int si = counts ? subnet_index(p, e->subnet_id) : -1;
            if (si >= 0 && pi.state != PROV_GONE)
                counts[si]++;
        }
        if (r.next_token == NULL)
            break;
        if (next != NULL && strcmp(next, r.next_token) == 0) {
            rc = provider__fail(&p->base, PROV_ERETRY,
                                "ec2 DescribeInstances: the same nextToken twice, giving up");
            goto out;
        }
        free(next);
        next = r.next_token;
        r.next_token = NULL;
    }
    if (counts != NULL) {
        free(p->subnet_live);
        p->subnet_live = counts;
        counts = NULL;
    }
out:
    free(counts);
    free(next);
    ec2_response_release(&r);
    if (rc != 0)
        prov_list_release(out);
    return rc;
}

static int ec2_describe(struct provider *base, struct prov_list *out)
{
    struct ec2_provider *p = (struct ec2_provider *)base;
    pthread_mutex_lock(&p->mu);
    int rc = describe_locked(p, NULL, out);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* The subnet for a launch token: remembered if seen, else the one with the fewest instances. */
static int pick_subnet(struct ec2_provider *p, const char *token)
{
    if (p->s.n_subnet_ids == 0)
        return -1;
    for (size_t i = 0; i < TOKEN_MEMO; i++)
        if (strcmp(p->memo[i].token, token) == 0)
            return p->memo[i].subnet;
    size_t n = p->s.n_subnet_ids;
    size_t best = p->rr % n;
    for (size_t k = 0; k < n; k++) {
        size_t i = (p->rr + k) % n;
        size_t ci = p->subnet_live ? p->subnet_live[i] : 0;
        size_t cb = p->subnet_live ? p->subnet_live[best] : 0;
        if (ci < cb)
            best = i;
    }
    p->rr++;
    struct token_memo *m = &p->memo[p->memo_next++ % TOKEN_MEMO];
    snprintf(m->token, sizeof(m->token), "%s", token);
    m->subnet = (int)best;
    return (int)best;
}

/* One RunInstances of count instances with ClientToken token; appends them to out. */
static int run_part(struct ec2_provider *p, int count, const char *token, struct prov_list *out)
{
    struct provider *base = &p->base;
    struct ec2_response r = EC2_RESPONSE_INIT;
    struct buf f;
    char num[16];
    int rc;
    ec2__form_start(&f, "RunInstances");
    ec2__form_add(&f, "ClientToken", token);
    snprintf(num, sizeof(num), "%d", count);
    ec2__form_add(&f, "MinCount", num);
    ec2__form_add(&f, "MaxCount", num);
    const struct ec2_settings *s = &p->s;
    if (s->image_id != NULL)
        ec2__form_add(&f, "ImageId", s->image_id);
    if (s->launch_template != NULL) {
        ec2__form_add(&f,
                      strncmp(s->launch_template, "lt-", 3) == 0
                          ? "LaunchTemplate.LaunchTemplateId"
                          : "LaunchTemplate.LaunchTemplateName",
                      s->launch_template);
        if (s->launch_template_version != NULL)
            ec2__form_add(&f, "LaunchTemplate.Version", s->launch_template_version);
    }
    if (s->instance_type != NULL)
        ec2__form_add(&f, "InstanceType", s->instance_type);
    if (s->key_name != NULL)
        ec2__form_add(&f, "KeyName", s->key_name);
    int si = pick_subnet(p, token);
    if (si >= 0)
        ec2__form_add(&f, "SubnetId", s->subnet_ids[si]);
    for (size_t i = 0; i < s->n_security_group_ids; i++)
        ec2__form_addf(&f, s->security_group_ids[i], "SecurityGroupId.%zu", i + 1);
    if (p->user_data_b64 != NULL)
        ec2__form_add(&f, "UserData", p->user_data_b64);
    if (s->iam_instance_profile != NULL)
        ec2__form_add(&f,
                      strncmp(s->iam_instance_profile, "arn:", 4) == 0 ? "IamInstanceProfile.Arn"
                                                                       : "IamInstanceProfile.Name",
                      s->iam_instance_profile);
    if (s->require_imdsv2) {
        ec2__form_add(&f, "MetadataOptions.HttpTokens", "required");
        ec2__form_add(&f, "MetadataOptions.HttpEndpoint", "enabled");
    }
    ec2__form_add(&f, "TagSpecification.1.ResourceType", "instance");
    ec2__form_add(&f, "TagSpecification.1.Tag.1.Key", GROUP_TAG);
    ec2__form_add(&f, "TagSpecification.1.Tag.1.Value", p->group);
    for (size_t i = 0; i < s->n_tags; i++) {
        ec2__form_addf(&f, s->tags[i].key, "TagSpecification.1.Tag.%zu.Key", i + 2);
        ec2__form_addf(&f, s->tags[i].value, "TagSpecification.1.Tag.%zu.Value", i + 2);
    }
    rc = ec2__call(p, "RunInstances", &f, &r);
    if (rc == PROV_EFATAL && strcmp(r.code, "IdempotentParameterMismatch") == 0) {
        /* the token was used before with other parameters (e.g. another subnet
           after a restart): that earlier launch is the answer */
        char saved[sizeof(p->base.errmsg)];
        snprintf(saved, sizeof(saved), "%s", p->base.errmsg);
        struct prov_list found = PROV_LIST_INIT;
        int drc = describe_locked(p, token, &found);
        if (drc == 0 && found.n > 0) {
            log_info("ec2 launch token \"%s\" was used before: adopting its %zu instance(s)", token,
                     found.n);
            rc = 0;
            for (size_t i = 0; i < found.n && rc == 0; i++)
                if (prov_list_push(out, &found.items[i]) != 0)
                    rc = provider__fail(base, PROV_ENOMEM, "out of memory");
            prov_list_release(&found);
            goto out;
        }
        prov_list_release(&found);
        rc = drc != 0 ? drc
                      : provider__fail(base, PROV_EFATAL, "%s (and no instance carries the token)",
                                       saved);
        goto out;
    }
    if (rc != 0)
        goto out;
    for (size_t i = 0; i < r.n_instances; i++) {
        struct prov_instance pi;
        to_prov(p, &r.instances[i], &pi);
        if (prov_list_push(out, &pi) != 0) {
            rc = provider__fail(base, PROV_ENOMEM, "out of memory");
            goto out;
        }
        int k = subnet_index(p, r.instances[i].subnet_id);
        if (k >= 0 && p->subnet_live != NULL)
            p->subnet_live[k]++;
    }
    if (r.n_instances == 0)
        rc = provider__fail(base, PROV_ERETRY, "ec2 RunInstances returned no instances");
out:
    ec2__buf_free(&f);
    ec2_response_release(&r);
    return rc;
}

/*
 * The ClientToken of part k of a launch split over subnets: "<token>.<k>", or
 * when that would pass EC2's 64 characters, a prefix of the token and a hash
 * of all of it. Deterministic, so a re-sent launch sends the same tokens.
 */
static void part_token(const char *token, int k, char *out, size_t outlen)
{
    if (strlen(token) + 5 <= 64) {
        snprintf(out, outlen, "%s.%d", token, k);
        return;
    }
    uint8_t d[SIGV4_SHA256_LEN];
    char hex[2 * SIGV4_SHA256_LEN + 1];
    sigv4_sha256(token, strlen(token), d);
    sigv4_hex(d, sizeof(d), hex);
    snprintf(out, outlen, "%.40s-%.16s.%d", token, hex, k);
}

/*
 * With several subnets a launch of count > 1 is split into one RunInstances
 * per subnet (count spread evenly), so a group spreads even when the
 * controller asks for several at once. If some parts fail, the instances of
 * the others are returned (success with fewer instances): the controller
 * launches the rest later; the failed parts' tokens may be re-sent safely.
 */
static int ec2_launch(struct provider *base, int count, const char *token, struct prov_list *out)
{
    struct ec2_provider *p = (struct ec2_provider *)base;
    if (count > MAX_PER_CALL)
        return provider__fail(base, PROV_EINVAL, "ec2 launch: at most %d instances per call",
                              MAX_PER_CALL);
    pthread_mutex_lock(&p->mu);
    int parts = 1;
    if (count > 1 && p->s.n_subnet_ids > 1)
        parts = count < (int)p->s.n_subnet_ids ? count : (int)p->s.n_subnet_ids;
    int rc = 0;
    if (parts == 1) {
        rc = run_part(p, count, token, out);
    } else {
        int first_err = 0;
        char first_msg[sizeof(p->base.errmsg)] = "";
        for (int k = 0; k < parts; k++) {
            char tok[72];
            part_token(token, k, tok, sizeof(tok));
            int n = count / parts + (k < count % parts ? 1 : 0);
            size_t before = out->n;
            int prc = run_part(p, n, tok, out);
            if (prc != 0 && first_err == 0) {
                first_err = prc;
                snprintf(first_msg, sizeof(first_msg), "%s", p->base.errmsg);
            }
            /* the caller knows the launch by its own token */
            for (size_t i = before; i < out->n; i++)
                snprintf(out->items[i].launch_token, sizeof(out->items[i].launch_token), "%s",
                         token);
        }
        if (first_err != 0 && (out->n == 0 || first_err == PROV_ENOMEM)) {
            rc = provider__fail(base, first_err, "%s", first_msg);
        } else if (first_err != 0) {
            log_warn("ec2 launch \"%s\": %zu of %d instances launched; the rest failed: %s", token,
                     out->n, count, first_msg);
        }
    }
    if (rc != 0)
        prov_list_release(out);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

static int terminate_batch(struct ec2_provider *p, const char *const *ids, size_t n)
{
    struct buf f;
    struct ec2_response r = EC2_RESPONSE_INIT;
    ec2__form_start(&f, "TerminateInstances");
    for (size_t i = 0; i < n; i++)
        ec2__form_addf(&f, ids[i], "InstanceId.%zu", i + 1);
    int rc = ec2__call(p, "TerminateInstances", &f, &r);
    if (rc == PROV_EFATAL && strcmp(r.code, "InvalidInstanceID.NotFound") == 0) {
        if (n == 1) {
            rc = 0; /* already gone */
        } else {
            /* one unknown id fails the whole call: go one by one */
            rc = 0;
            for (size_t i = 0; i < n && rc == 0; i++)
                rc = terminate_batch(p, &ids[i], 1);
        }
    }
    ec2__buf_free(&f);
    ec2_response_release(&r);
    return rc;
}

static int ec2_terminate(struct provider *base, const char *const *ids, size_t n)
{
    struct ec2_provider *p = (struct ec2_provider *)base;
    for (size_t i = 0; i < n; i++)
        if (ids[i] == NULL || ids[i][0] == '\0')
            return provider__fail(base, PROV_EINVAL, "ec2 terminate: empty instance id");
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    for (size_t off = 0; off < n && rc == 0; off += MAX_PER_CALL)
        rc = terminate_batch(p, ids + off, n - off > MAX_PER_CALL ? MAX_PER_CALL : n - off);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/*
 * Attach and detach (issue 12): the group tag is what makes an instance the
 * group's (describe() filters on it), so they add or remove it. DeleteTags
 * names the value: an instance tagged for another group keeps its tag.
 */
static int group_tag(struct ec2_provider *p, const char *action, const char *id)
{
    struct buf f;
    struct ec2_response r = EC2_RESPONSE_INIT;
    ec2__form_start(&f, action);
    ec2__form_add(&f, "ResourceId.1", id);
    ec2__form_add(&f, "Tag.1.Key", GROUP_TAG);
    ec2__form_add(&f, "Tag.1.Value", p->group);
    pthread_mutex_lock(&p->mu);
    int rc = ec2__call(p, action, &f, &r);
    pthread_mutex_unlock(&p->mu);
    ec2__buf_free(&f);
    ec2_response_release(&r);
    return rc;
}

static int ec2_detach(struct provider *base, const char *id)
{
    if (id == NULL || id[0] == '\0')
        return provider__fail(base, PROV_EINVAL, "ec2 detach: empty instance id");
    return group_tag((struct ec2_provider *)base, "DeleteTags", id);
}

static int ec2_attach(struct provider *base, const struct prov_instance *in,
                      struct prov_instance *out)
{
    if (in->id[0] == '\0' || strncmp(in->id, "i-", 2) != 0)
        return provider__fail(base, PROV_EINVAL, "ec2 attach: \"%.64s\" is not an instance id",
                              in->id);
    int rc = group_tag((struct ec2_provider *)base, "CreateTags", in->id);
    if (rc != 0)
        return rc;
    /* its address comes with the next describe (the controller fills it in then) */
    memset(out, 0, sizeof(*out));
    snprintf(out->id, sizeof(out->id), "%s", in->id);
    out->state = PROV_RUNNING;
    return 0;
}

const struct provider_ops ec2__ops = {
    .name = "ec2",
    .launch = ec2_launch,
    .terminate = ec2_terminate,
    .describe = ec2_describe,
    .destroy = ec2__destroy,
    .detach = ec2_detach,
    .attach = ec2_attach,
    .max_launch = MAX_PER_CALL,
    .max_terminate = MAX_PER_CALL,
};
