/*
 * Unit tests for provider/aws_config: the credential chain (environment beats
 * files, profile selection, config-file profiles, IMDSv2 through the real
 * tests/tools/fake_imds.py with caching and refresh before expiry), region and
 * endpoint resolution, and that no secret ever reaches an error message.
 * Each test runs with a fresh temporary HOME and every AWS_* variable cleared.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "provider/aws_config.h"
#include "unit/tool_proc.h"

static char home[256];

static const char *const aws_vars[] = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_EC2",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_METADATA_SERVICE_TIMEOUT",
    NULL,
};

static void write_file(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/.aws", home);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/%s", home, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    for (int i = 0; aws_vars[i]; i++)
        unsetenv(aws_vars[i]);
    snprintf(home, sizeof(home), "/tmp/asgd-awscfg-XXXXXX");
    if (mkdtemp(home) == NULL)
        return -1;
    setenv("HOME", home, 1);
    /* nothing in these tests may reach the real 169.254.169.254 */
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", home);
    return system(cmd) == 0 ? 0 : -1;
}

static const char creds_file[] = "# comment\n"
                                 "[default]\n"
                                 "aws_access_key_id = AKIDFILEDEFAULT\n"
                                 "aws_secret_access_key = file-default-secret\n"
                                 "\n"
                                 "[other]\n"
                                 "aws_access_key_id=AKIDFILEOTHER\n"
                                 "aws_secret_access_key=file-other-secret\n"
                                 "aws_session_token = file-other-token\n"
                                 "[halfway]\n"
                                 "aws_access_key_id = AKIDHALF\n";

static const char config_file[] = "[default]\n"
                                  "region = eu-central-1\n"
                                  "[profile other]\n"
                                  "region = ap-south-1\n"
                                  "endpoint_url = http://127.0.0.1:4566\n"
                                  "s3 =\n"
                                  "    region = not-this-one\n"
                                  "[profile cfgonly]\n"
                                  "aws_access_key_id = AKIDCONFIG\n"
                                  "aws_secret_access_key = config-secret\n"
                                  "[cfgonly]\n"
                                  "region = without-profile-prefix-is-ignored\n";

static void env_beats_files(void **state)
{
    (void)state;
    write_file(".aws/credentials", creds_file);
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "env-secret", 1);
    setenv("AWS_SESSION_TOKEN", "env-token", 1);
    struct aws_chain *ch = aws_chain_new(NULL);
    struct aws_credentials c = AWS_CREDENTIALS_INIT;
    char err[512];
    assert_int_equal(aws_chain_get(ch, &c, err, sizeof(err)), 0);
    assert_string_equal(c.access_key_id, "AKIDENV");
    assert_string_equal(c.secret_access_key, "env-secret");
    assert_string_equal(c.session_token, "env-token");
    assert_string_equal(c.source, "environment");
    aws_credentials_release(&c);
    assert_null(c.access_key_id);
    /* half the pair in the environment is an error, not a silent fall-through */
    unsetenv("AWS_SECRET_ACCESS_KEY");
    assert_int_equal(aws_chain_get(ch, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "AWS_SECRET_ACCESS_KEY"));
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SESSION_TOKEN");
    assert_int_equal(aws_chain_get(ch, &c, err, sizeof(err)), 0);
    assert_string_equal(c.access_key_id, "AKIDFILEDEFAULT");
    assert_null(c.session_token);
    assert_string_equal(c.source, "shared credentials file");
    aws_credentials_release(&c);
    aws_chain_free(ch);
}

static void profile_selection(void **state)
{
    (void)state;
    write_file(".aws/credentials", creds_file);
    write_file(".aws/config", config_file);
    struct aws_credentials c = AWS_CREDENTIALS_INIT;
    char err[512];
    setenv("AWS_PROFILE", "other", 1);
    struct aws_chain *ch = aws_chain_new(NULL);
    assert_int_equal(aws_chain_get(ch, &c, err, sizeof(err)), 0);
    assert_string_equal(c.access_key_id, "AKIDFILEOTHER");
    assert_string_equal(c.session_token, "file-other-token");
    aws_credentials_release(&c);
    aws_chain_free(ch);
    /* an explicit profile beats AWS_PROFILE */
    ch = aws_chain_new("cfgonly");
    assert_int_equal(aws_chain_get(ch, &c, err, sizeof(err)), 0);
    assert_string_equal(c.access_key_id, "AKIDCONFIG");
    assert_string_equal(c.source, "shared config file");
    aws_credentials_release(&c);
    aws_chain_free(ch);
    /* a key without its secret */
    ch = aws_chain_new("halfway");
    assert_int_equal(aws_chain_get(ch, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "\"halfway\""));
    aws_chain_free(ch);
    /* AWS_SHARED_CREDENTIALS_FILE moves the file */
    char alt[512];
    snprintf(alt, sizeof(alt), "%s/alt-creds", home);
    FILE *f = fopen(alt, "w");
    assert_non_null(f);
    fputs("[other]\naws_access_key_id = AKIDALT\naws_secret_access_key = alt-secret\n", f);
    fclose(f);
    setenv("AWS_SHARED_CREDENTIALS_FILE", alt, 1);
    ch = aws_chain_new(NULL);
    assert_int_equal(aws_chain_get(ch, &c, err, sizeof(err)), 0);
    assert_string_equal(c.access_key_id, "AKIDALT");
    aws_credentials_release(&c);
    aws_chain_free(ch);
}

static void nothing_found_names_sources_not_secrets(void **state)
{
    (void)state;
    write_file(".aws/credentials", creds_file);
    struct aws_chain *ch = aws_chain_new("missing");
    struct aws_credentials c = AWS_CREDENTIALS_INIT;
    char err[512];
    assert_int_equal(aws_chain_get(ch, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no AWS credentials found"));
    assert_non_null(strstr(err, "\"missing\""));
    assert_non_null(strstr(err, "disabled"));
    assert_null(strstr(err, "secret"));
    assert_null(c.access_key_id);
    aws_chain_free(ch);
}

static void imds_cache_and_refresh(void **state)
{
    (void)state;
    struct tool_proc t;
    const char *args[] = {"--expiry-seconds", "21600", NULL};
    assert_int_equal(tool_start(&t, "fake_imds.py", args), 0);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", t.port);
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url, 1);
    unsetenv("AWS_EC2_METADATA_DISABLED");
    struct aws_chain *ch = aws_chain_new(NULL);
    struct aws_credentials c = AWS_CREDENTIALS_INIT;
    char err[512];
    assert_int_equal(aws_chain_get(ch, &c, err, sizeof(err)), 0);
    assert_string_equal(c.access_key_id, "ASIAFAKE1");
    assert_string_equal(c.secret_access_key, "fake-secret-1");
    assert_string_equal(c.session_token, "fake-token-1");
    assert_string_equal(c.source, "instance metadata");
    assert_true(c.expires_ms > 0);
    aws_credentials_release(&c);
    /* six hours left: served from the cache */
    assert_int_equal(aws_chain_get(ch, &c, err, sizeof(err)), 0);
    assert_string_equal(c.access_key_id, "ASIAFAKE1");
    assert_int_equal(aws_chain_imds_fetches(ch), 1);
    aws_credentials_release(&c);
    aws_chain_free(ch);
    tool_stop(&t);

    /* credentials that expire in 10 minutes are inside the 15-minute refresh window */
    const char *args2[] = {"--expiry-seconds", "600", NULL};
    assert_int_equal(tool_start(&t, "fake_imds.py", args2), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", t.port);
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url, 1);
    ch = aws_chain_new(NULL);
    assert_int_equal(aws_chain_get(ch, &c, err, sizeof(err)), 0);
    assert_string_equal(c.access_key_id, "ASIAFAKE1");
    aws_credentials_release(&c);
    assert_int_equal(aws_chain_get(ch, &c, err, sizeof(err)), 0);
    assert_string_equal(c.access_key_id, "ASIAFAKE2");
    assert_int_equal(aws_chain_imds_fetches(ch), 2);
    aws_credentials_release(&c);
    /* the service goes away: the cached ones are still valid for 10 minutes */
    tool_stop(&t);
    assert_int_equal(aws_chain_get(ch, &c, err, sizeof(err)), 0);
    assert_string_equal(c.access_key_id, "ASIAFAKE2");
    aws_credentials_release(&c);
    aws_chain_free(ch);

    /* files still come before IMDS */
    write_file(".aws/credentials", creds_file);
    ch = aws_chain_new(NULL);
    assert_int_equal(aws_chain_get(ch, &c, err, sizeof(err)), 0);
    assert_string_equal(c.access_key_id, "AKIDFILEDEFAULT");
    assert_int_equal(aws_chain_imds_fetches(ch), 0);
    aws_credentials_release(&c);
    aws_chain_free(ch);
}

static void imds_failures(void **state)
{
    (void)state;
    struct tool_proc t;
    const char *args[] = {"--no-role", NULL};
    assert_int_equal(tool_start(&t, "fake_imds.py", args), 0);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", t.port);
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url, 1);
    unsetenv("AWS_EC2_METADATA_DISABLED");
    struct aws_chain *ch = aws_chain_new(NULL);
    struct aws_credentials c = AWS_CREDENTIALS_INIT;
    char err[512];
    assert_int_equal(aws_chain_get(ch, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no instance role attached"));
    tool_stop(&t);
    /* nothing listening: a transport error, reported */
    assert_int_equal(aws_chain_get(ch, &c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "instance metadata"));
    aws_chain_free(ch);
}

static void region_order(void **state)
{
    (void)state;
    char *r = NULL;
    char err[256];
    assert_int_equal(aws_resolve_region(NULL, NULL, &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "region"));
    assert_int_equal(aws_resolve_region(NULL, "us-west-1", &r, err, sizeof(err)), 0);
    assert_string_equal(r, "us-west-1");
    free(r);
    write_file(".aws/config", config_file);
    assert_int_equal(aws_resolve_region(NULL, "us-west-1", &r, err, sizeof(err)), 0);
    assert_string_equal(r, "eu-central-1");
    free(r);
    assert_int_equal(aws_resolve_region("other", "us-west-1", &r, err, sizeof(err)), 0);
    assert_string_equal(r, "ap-south-1");
    free(r);
    /* "[cfgonly]" without the "profile " prefix is not the profile's section */
    assert_int_equal(aws_resolve_region("cfgonly", "us-west-1", &r, err, sizeof(err)), 0);
    assert_string_equal(r, "us-west-1");
    free(r);
    setenv("AWS_DEFAULT_REGION", "sa-east-1", 1);
    assert_int_equal(aws_resolve_region("other", "us-west-1", &r, err, sizeof(err)), 0);
    assert_string_equal(r, "sa-east-1");
    free(r);
    setenv("AWS_REGION", "ca-central-1", 1);
    assert_int_equal(aws_resolve_region("other", "us-west-1", &r, err, sizeof(err)), 0);
    assert_string_equal(r, "ca-central-1");
    free(r);
}

static void endpoint_order(void **state)
{
    (void)state;
    char *e = NULL;
    char err[256];
    assert_int_equal(aws_resolve_endpoint(NULL, NULL, "us-east-1", &e, err, sizeof(err)), 0);
    assert_string_equal(e, "https://ec2.us-east-1.amazonaws.com");
    free(e);
    assert_int_equal(aws_resolve_endpoint(NULL, NULL, "cn-north-1", &e, err, sizeof(err)), 0);
    assert_string_equal(e, "https://ec2.cn-north-1.amazonaws.com.cn");
    free(e);
    assert_int_equal(
        aws_resolve_endpoint(NULL, "http://10.0.0.1:9000/", "us-east-1", &e, err, sizeof(err)), 0);
    assert_string_equal(e, "http://10.0.0.1:9000");
    free(e);
    write_file(".aws/config", config_file);
    assert_int_equal(
        aws_resolve_endpoint("other", "http://10.0.0.1:9000", "x", &e, err, sizeof(err)), 0);
    assert_string_equal(e, "http://127.0.0.1:4566");
    free(e);
    setenv("AWS_ENDPOINT_URL", "https://generic.example", 1);
    assert_int_equal(aws_resolve_endpoint("other", NULL, "x", &e, err, sizeof(err)), 0);
    assert_string_equal(e, "https://generic.example");
    free(e);
    setenv("AWS_ENDPOINT_URL_EC2", "https://ec2.example:8443", 1);
    assert_int_equal(aws_resolve_endpoint("other", NULL, "x", &e, err, sizeof(err)), 0);
    assert_string_equal(e, "https://ec2.example:8443");
    free(e);
    setenv("AWS_ENDPOINT_URL_EC2", "ftp://nope", 1);
    assert_int_equal(aws_resolve_endpoint(NULL, NULL, "x", &e, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "ftp://nope"));
    assert_null(e);
}

/* An empty endpoint_url in the profile is no endpoint: with no region either, the error path
   (which must free the empty value it read: ASan's leak check here) */
static void endpoint_empty_in_file_and_no_region(void **state)
{
    (void)state;
    char *e = NULL;
    char err[256];
    write_file(".aws/config", "[profile blank]\n"
                              "endpoint_url =\n");
    assert_int_equal(aws_resolve_endpoint("blank", NULL, NULL, &e, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no region"));
    assert_null(e);
    assert_int_equal(aws_resolve_endpoint("blank", NULL, "eu-west-1", &e, err, sizeof(err)), 0);
    assert_string_equal(e, "https://ec2.eu-west-1.amazonaws.com");
    free(e);
}

static void endpoint_hosts(void **state)
{
    (void)state;
    char h[64];
    assert_int_equal(aws_endpoint_host("https://ec2.us-east-1.amazonaws.com", h, sizeof(h)), 0);
    assert_string_equal(h, "ec2.us-east-1.amazonaws.com");
    assert_int_equal(aws_endpoint_host("https://ec2.example:443/", h, sizeof(h)), 0);
    assert_string_equal(h, "ec2.example");
    assert_int_equal(aws_endpoint_host("http://127.0.0.1:80", h, sizeof(h)), 0);
    assert_string_equal(h, "127.0.0.1");
    assert_int_equal(aws_endpoint_host("http://127.0.0.1:8123/", h, sizeof(h)), 0);
    assert_string_equal(h, "127.0.0.1:8123");
    assert_int_equal(aws_endpoint_host("https://[::1]:8443", h, sizeof(h)), 0);
    assert_string_equal(h, "[::1]:8443");
    assert_int_equal(aws_endpoint_host("https://[::1]", h, sizeof(h)), 0);
    assert_string_equal(h, "[::1]");
    assert_int_equal(aws_endpoint_host("ec2.example", h, sizeof(h)), -1);
    assert_int_equal(aws_endpoint_host("http://", h, sizeof(h)), -1);
    assert_int_equal(aws_endpoint_host("http://h:x1", h, sizeof(h)), -1);
    assert_int_equal(aws_endpoint_host("http://user@h", h, sizeof(h)), -1);
    assert_int_equal(aws_endpoint_host("http://h:", h, sizeof(h)), -1);
    char tiny[4];
    assert_int_equal(aws_endpoint_host("http://longhost", tiny, sizeof(tiny)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(env_beats_files, setup, teardown),
        cmocka_unit_test_setup_teardown(profile_selection, setup, teardown),
        cmocka_unit_test_setup_teardown(nothing_found_names_sources_not_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(imds_cache_and_refresh, setup, teardown),
        cmocka_unit_test_setup_teardown(imds_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(region_order, setup, teardown),
        cmocka_unit_test_setup_teardown(endpoint_order, setup, teardown),
        cmocka_unit_test_setup_teardown(endpoint_empty_in_file_and_no_region, setup, teardown),
        cmocka_unit_test_setup_teardown(endpoint_hosts, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
