/*
 * ec2_settings.c - the [ec2] section of the EC2 provider: parsing, cross-key
 * checks and copies (see ec2.h for the keys, ec2_int.h for the files).
 */
#include "provider/ec2_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "provider/aws_config.h"

#include "common/banned.h"

/* ---- settings ------------------------------------------------------------------ */

void ec2_settings_init(struct ec2_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->require_imdsv2 = 1;
    s->api_calls_per_second = 5.0;
    s->call_timeout_ms = 10000;
    s->max_attempts = 4;
    s->retry_base_delay_ms = 200;
    s->describe_page_size = 500;
    s->auth_failure_backoff_ms = 60000;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void ec2_settings_release(struct ec2_settings *s)
{
    if (s == NULL)
        return;
    free(s->profile);
    free(s->region);
    free(s->endpoint);
    free(s->image_id);
    free(s->launch_template);
    free(s->launch_template_version);
    free(s->instance_type);
    free(s->key_name);
    free_strv(s->security_group_ids, s->n_security_group_ids);
    free_strv(s->subnet_ids, s->n_subnet_ids);
    free(s->iam_instance_profile);
    free(s->user_data_file);
    for (size_t i = 0; i < s->n_tags; i++) {
        free(s->tags[i].key);
        free(s->tags[i].value);
    }
    free(s->tags);
    ec2_settings_init(s);
}

static char *trim_dup(const char *b, const char *e)
{
    while (b < e && isspace((unsigned char)*b))
        b++;
    while (e > b && isspace((unsigned char)e[-1]))
        e--;
    return strndup(b, (size_t)(e - b));
}

/* Splits "a, b,c" into a string vector. Empty items are an error (-2); -1 = out of memory. */
static int split_list(const char *text, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (text == NULL)
        return 0;
    const char *p = text;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        char *item = trim_dup(p, end);
        if (item == NULL)
            goto oom;
        if (item[0] == '\0') {
            free(item);
            if (comma == NULL && *n == 0 && end == p + strlen(p)) {
                /* whole value blank: an empty list */
                const char *q = text;
                while (isspace((unsigned char)*q))
                    q++;
                if (*q == '\0')
                    return 0;
            }
            free_strv(*out, *n);
            *out = NULL;
            *n = 0;
            return -2;
        }
        char **v = realloc(*out, (*n + 1) * sizeof(*v));
        if (v == NULL) {
            free(item);
            goto oom;
        }
        *out = v;
        (*out)[(*n)++] = item;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return 0;
oom:
    free_strv(*out, *n);
    *out = NULL;
    *n = 0;
    return -1;
}

static int has_space(const char *s)
{
    for (; *s; s++)
        if (isspace((unsigned char)*s) || (unsigned char)*s < 0x20)
            return 1;
    return 0;
}

static int load_list(struct cfg *c, const char *key, char ***out, size_t *n, char *err,
                     size_t errlen)
{
    char *text = NULL;
    if (cfg_get_str(c, "ec2", key, NULL, &text, err, errlen) != 0)
        return -1;
    int rc = split_list(text, out, n);
    free(text);
    if (rc == -1) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (rc == -2) {
        cfg_error_at(c, "ec2", key, err, errlen, "empty item in the comma-separated list");
        return -1;
    }
    for (size_t i = 0; i < *n; i++) {
        if (has_space((*out)[i]) || strlen((*out)[i]) > 255) {
            cfg_error_at(c, "ec2", key, err, errlen, "\"%.64s\" is not a valid id", (*out)[i]);
            return -1;
        }
    }
    return 0;
}

static int load_tags(struct cfg *c, struct ec2_settings *s, char *err, size_t errlen)
{
    char **items = NULL;
    size_t n = 0;
    char *text = NULL;
    int rc = -1;
    if (cfg_get_str(c, "ec2", "tags", NULL, &text, err, errlen) != 0)
        return -1;
    int r = split_list(text, &items, &n);
    free(text);
    if (r == -1) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (r == -2) {
        cfg_error_at(c, "ec2", "tags", err, errlen, "empty item in the comma-separated list");
        return -1;
    }
    if (n > 49) {
        cfg_error_at(c, "ec2", "tags", err, errlen, "at most 49 tags (EC2 allows 50, one is %s)",
                     GROUP_TAG);
        goto out;
    }
    if (n > 0) {
        s->tags = calloc(n, sizeof(*s->tags));
        if (s->tags == NULL) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        char *eq = strchr(items[i], '=');
        if (eq == NULL) {
            cfg_error_at(c, "ec2", "tags", err, errlen, "\"%.64s\" is not key=value", items[i]);
            goto out;
        }
        char *k = trim_dup(items[i], eq);
        char *v = trim_dup(eq + 1, eq + 1 + strlen(eq + 1));
        if (k == NULL || v == NULL) {
            free(k);
            free(v);
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        s->tags[s->n_tags].key = k;
        s->tags[s->n_tags].value = v;
        s->n_tags++;
        if (k[0] == '\0' || strlen(k) > 128 || strlen(v) > 256) {
            cfg_error_at(c, "ec2", "tags", err, errlen,
                         "tag \"%.64s\": keys are 1-128 characters, values up to 256", k);
            goto out;
        }
        if (strncmp(k, "aws:", 4) == 0 || strcmp(k, GROUP_TAG) == 0) {
            cfg_error_at(c, "ec2", "tags", err, errlen, "tag key \"%.64s\" is reserved", k);
            goto out;
        }
    }
    rc = 0;
out:
    free_strv(items, n);
    return rc;
}

int ec2_settings_load(struct cfg *c, struct ec2_settings *out, char *err, size_t errlen)
{
    struct ec2_settings s;
    ec2_settings_init(&s);
    long l;
    double d;
    int b;
    if (cfg_get_str(c, "ec2", "profile", NULL, &s.profile, err, errlen) ||
        cfg_get_str(c, "ec2", "region", NULL, &s.region, err, errlen) ||
        cfg_get_str(c, "ec2", "endpoint", NULL, &s.endpoint, err, errlen) ||
        cfg_get_str(c, "ec2", "image_id", NULL, &s.image_id, err, errlen) ||
        cfg_get_str(c, "ec2", "launch_template", NULL, &s.launch_template, err, errlen) ||
        cfg_get_str(c, "ec2", "launch_template_version", NULL, &s.launch_template_version, err,
                    errlen) ||
        cfg_get_str(c, "ec2", "instance_type", NULL, &s.instance_type, err, errlen) ||
        cfg_get_str(c, "ec2", "key_name", NULL, &s.key_name, err, errlen) ||
        cfg_get_str(c, "ec2", "iam_instance_profile", NULL, &s.iam_instance_profile, err, errlen) ||
        cfg_get_str(c, "ec2", "user_data_file", NULL, &s.user_data_file, err, errlen))
        goto fail;
    if (load_list(c, "security_group_ids", &s.security_group_ids, &s.n_security_group_ids, err,
                  errlen) ||
        load_list(c, "subnet_ids", &s.subnet_ids, &s.n_subnet_ids, err, errlen) ||
        load_tags(c, &s, err, errlen))
        goto fail;
    if (cfg_get_bool(c, "ec2", "use_public_ip", 0, &s.use_public_ip, err, errlen) ||
        cfg_get_bool(c, "ec2", "require_imdsv2", 1, &b, err, errlen))
        goto fail;
    s.require_imdsv2 = b;
    if (cfg_get_double(c, "ec2", "api_calls_per_second", 5.0, 0.1, 1000.0, &d, err, errlen))
        goto fail;
    s.api_calls_per_second = d;
    if (cfg_get_duration(c, "ec2", "call_timeout", 10000, 100, 120000, &s.call_timeout_ms, err,
                         errlen) ||
        cfg_get_duration(c, "ec2", "retry_base_delay", 200, 1, 10000, &s.retry_base_delay_ms, err,
                         errlen) ||
        cfg_get_duration(c, "ec2", "auth_failure_backoff", 60000, 0, 3600000,
                         &s.auth_failure_backoff_ms, err, errlen))
        goto fail;
    if (cfg_get_int(c, "ec2", "max_attempts", 4, 1, 10, &l, err, errlen))
        goto fail;
    s.max_attempts = (int)l;
    if (cfg_get_int(c, "ec2", "describe_page_size", 500, 5, 1000, &l, err, errlen))
        goto fail;
    s.describe_page_size = (int)l;

    /* cross-key checks */
    static const struct {
        const char *key;
        size_t off;
    } strs[] = {
        {"profile", offsetof(struct ec2_settings, profile)},
        {"region", offsetof(struct ec2_settings, region)},
        {"image_id", offsetof(struct ec2_settings, image_id)},
        {"launch_template", offsetof(struct ec2_settings, launch_template)},
        {"launch_template_version", offsetof(struct ec2_settings, launch_template_version)},
        {"instance_type", offsetof(struct ec2_settings, instance_type)},
        {"key_name", offsetof(struct ec2_settings, key_name)},
        {"iam_instance_profile", offsetof(struct ec2_settings, iam_instance_profile)},
    };
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        const char *v = *(char **)((char *)&s + strs[i].off);
        if (v != NULL && (v[0] == '\0' || has_space(v) || strlen(v) > 255)) {
            cfg_error_at(c, "ec2", strs[i].key, err, errlen, "\"%.64s\" is not a valid value", v);
            goto fail;
        }
    }
    if (s.image_id == NULL && s.launch_template == NULL) {
        cfg_error_at(c, "ec2", "image_id", err, errlen,
                     "missing: set image_id (an AMI) or launch_template");
        goto fail;
    }
    if (s.instance_type == NULL && s.launch_template == NULL) {
        cfg_error_at(c, "ec2", "instance_type", err, errlen,
                     "missing: set instance_type (e.g. t3.micro) or use a launch_template");
        goto fail;
    }
    if (s.launch_template_version != NULL && s.launch_template == NULL) {
        cfg_error_at(c, "ec2", "launch_template_version", err, errlen,
                     "set without launch_template");
        goto fail;
    }
    if (s.endpoint != NULL) {
        char host[512];
        if (aws_endpoint_host(s.endpoint, host, sizeof(host)) != 0) {
            cfg_error_at(c, "ec2", "endpoint", err, errlen,
                         "\"%.128s\" is not an http:// or https:// URL", s.endpoint);
            goto fail;
        }
    }
    if (s.user_data_file != NULL && access(s.user_data_file, R_OK) != 0) {
        cfg_error_at(c, "ec2", "user_data_file", err, errlen, "cannot read \"%.200s\": %s",
                     s.user_data_file, strerror(errno));
        goto fail;
    }
    *out = s;
    return 0;
fail:
    ec2_settings_release(&s);
    *out = s;
    return -1;
}

static int strdup_opt(char **dst, const char *src)
{
    *dst = NULL;
    if (src == NULL)
        return 0;
    *dst = strdup(src);
    return *dst == NULL ? -1 : 0;
}

static int strv_copy(char ***dst, size_t *dn, char *const *src, size_t n)
{
    *dst = NULL;
    *dn = 0;
    if (n == 0)
        return 0;
    *dst = calloc(n, sizeof(char *));
    if (*dst == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        (*dst)[i] = strdup(src[i]);
        if ((*dst)[i] == NULL)
            return -1;
        *dn = i + 1;
    }
    return 0;
}

int ec2__settings_copy(struct ec2_settings *d, const struct ec2_settings *s)
{
    *d = *s;
    d->profile = d->region = d->endpoint = d->image_id = d->launch_template = NULL;
    d->launch_template_version = d->instance_type = d->key_name = NULL;
    d->iam_instance_profile = d->user_data_file = NULL;
    d->security_group_ids = d->subnet_ids = NULL;
    d->n_security_group_ids = d->n_subnet_ids = 0;
    d->tags = NULL;
    d->n_tags = 0;
    if (strdup_opt(&d->profile, s->profile) || strdup_opt(&d->region, s->region) ||
        strdup_opt(&d->endpoint, s->endpoint) || strdup_opt(&d->image_id, s->image_id) ||
        strdup_opt(&d->launch_template, s->launch_template) ||
        strdup_opt(&d->launch_template_version, s->launch_template_version) ||
        strdup_opt(&d->instance_type, s->instance_type) || strdup_opt(&d->key_name, s->key_name) ||
        strdup_opt(&d->iam_instance_profile, s->iam_instance_profile) ||
        strdup_opt(&d->user_data_file, s->user_data_file) ||
        strv_copy(&d->security_group_ids, &d->n_security_group_ids, s->security_group_ids,
                  s->n_security_group_ids) ||
        strv_copy(&d->subnet_ids, &d->n_subnet_ids, s->subnet_ids, s->n_subnet_ids))
        return -1;
    if (s->n_tags > 0) {
        d->tags = calloc(s->n_tags, sizeof(*d->tags));
        if (d->tags == NULL)
            return -1;
        for (size_t i = 0; i < s->n_tags; i++) {
            d->tags[i].key = strdup(s->tags[i].key);
            d->tags[i].value = strdup(s->tags[i].value);
            d->n_tags = i + 1;
            if (d->tags[i].key == NULL || d->tags[i].value == NULL)
                return -1;
        }
    }
    return 0;
}
