/*
 * Unit tests for provider/ec2_xml: real-shaped EC2 responses from
 * tests/fixtures/ec2/ (success, pagination, errors, escaping, unknown
 * elements, nested items that must not be mistaken for instance fields) and
 * malformed or hostile documents.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "provider/ec2_xml.h"

static char *slurp(const char *name, size_t *len)
{
    const char *src = getenv("ASGD_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/tests/fixtures/ec2/%s", src ? src : "..", name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    *len = fread(buf, 1, (1 << 20) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static int parse_file(const char *name, struct ec2_response *r, char *err, size_t errlen)
{
    size_t len;
    char *xml = slurp(name, &len);
    int rc = ec2_xml_parse(xml, len, r, err, errlen);
    free(xml);
    return rc;
}

static void run_instances(void **state)
{
    (void)state;
    struct ec2_response r = EC2_RESPONSE_INIT;
    char err[256];
    assert_int_equal(parse_file("run_instances.xml", &r, err, sizeof(err)), 0);
    assert_string_equal(r.root, "RunInstancesResponse");
    assert_false(r.is_error);
    assert_string_equal(r.request_id, "0b8b0a5c-0b5e-4a1c-9e7d-6c9f2f2e3a11");
    assert_int_equal(r.n_instances, 2);
    assert_null(r.next_token);
    const struct ec2_instance *a = &r.instances[0];
    assert_string_equal(a->id, "i-0123456789abcdef0");
    assert_int_equal(a->state_code, EC2_PENDING);
    assert_string_equal(a->state_name, "pending");
    /* the instance's own fields, not the network interface's nor the unknown element's */
    assert_string_equal(a->private_ip, "10.0.1.17");
    assert_string_equal(a->subnet_id, "subnet-11111111");
    assert_string_equal(a->public_ip, "");
    assert_string_equal(a->zone, "us-east-1a");
    assert_string_equal(a->client_token, "web-00000001-abcdef");
    assert_string_equal(a->group, "web");
    assert_int_equal(a->launch_time_ms, 1795937401000LL);
    assert_string_equal(r.instances[1].id, "i-0fedcba9876543210");
    assert_string_equal(r.instances[1].private_ip, "10.0.2.33");
    assert_string_equal(r.instances[1].zone, "us-east-1b");
    ec2_response_release(&r);
    assert_null(r.instances);
    assert_int_equal(r.n_instances, 0);
}

static void describe_pages(void **state)
{
    (void)state;
    struct ec2_response r = EC2_RESPONSE_INIT;
    char err[256];
    assert_int_equal(parse_file("describe_page1.xml", &r, err, sizeof(err)), 0);
    assert_int_equal(r.n_instances, 3);
    assert_non_null(r.next_token);
    assert_string_equal(r.next_token,
                        "eyJ2IjoiMiIsImMiOiJkWGx4Q2hSTkh1Z0Y3anJ3aTVVa3JkUT09In0=&+/");
    assert_int_equal(r.instances[0].state_code, EC2_RUNNING);
    assert_string_equal(r.instances[0].public_ip, "54.194.252.215");
    assert_string_equal(r.instances[0].group, "web");
    /* 272 = 0x110: the high byte is internal, the low byte (16) is the state */
    assert_int_equal(r.instances[1].state_code, EC2_RUNNING);
    assert_int_equal(r.instances[1].launch_time_ms, 1795932005000LL);
    assert_string_equal(r.instances[1].client_token, "");
    assert_int_equal(r.instances[2].state_code, EC2_SHUTTING_DOWN);
    assert_int_equal(ec2_state_to_prov(r.instances[2].state_code), PROV_STOPPING);
    assert_int_equal(r.instances[2].launch_time_ms, 0);
    ec2_response_release(&r);

    assert_int_equal(parse_file("describe_page2.xml", &r, err, sizeof(err)), 0);
    assert_int_equal(r.n_instances, 1);
    assert_null(r.next_token);
    /* stopped counts as on its way out (the controller terminates it), not as gone */
    assert_int_equal(ec2_state_to_prov(r.instances[0].state_code), PROV_STOPPING);
    assert_int_equal(ec2_state_to_prov(EC2_TERMINATED), PROV_GONE);
    assert_int_equal(ec2_state_to_prov(EC2_PENDING), PROV_PENDING);
    assert_int_equal(ec2_state_to_prov(EC2_STOPPING), PROV_STOPPING);
    assert_int_equal(ec2_state_to_prov(7), PROV_PENDING);
    ec2_response_release(&r);

    assert_int_equal(parse_file("describe_empty_page.xml", &r, err, sizeof(err)), 0);
    assert_int_equal(r.n_instances, 0);
    assert_string_equal(r.next_token, "more-after-an-empty-page");
    ec2_response_release(&r);
}

static void terminate_and_tags(void **state)
{
    (void)state;
    struct ec2_response r = EC2_RESPONSE_INIT;
    char err[256];
    assert_int_equal(parse_file("terminate.xml", &r, err, sizeof(err)), 0);
    assert_int_equal(r.n_instances, 1);
    assert_string_equal(r.instances[0].id, "i-1234567890abcdef0");
    assert_int_equal(r.instances[0].state_code, EC2_SHUTTING_DOWN); /* current, not previous */
    ec2_response_release(&r);
    assert_int_equal(parse_file("create_tags.xml", &r, err, sizeof(err)), 0);
    assert_int_equal(r.return_value, 1);
    assert_int_equal(r.n_instances, 0);
    ec2_response_release(&r);
}

static void errors(void **state)
{
    (void)state;
    struct ec2_response r = EC2_RESPONSE_INIT;
    char err[256];
    assert_int_equal(parse_file("error_auth.xml", &r, err, sizeof(err)), 0);
    assert_true(r.is_error);
    assert_string_equal(r.code, "AuthFailure");
    assert_string_equal(r.message, "AWS was not able to validate the provided access credentials");
    assert_string_equal(r.request_id, "f2c7d4a4-0bd2-4bd5-9b23-example");
    ec2_response_release(&r);
    assert_int_equal(parse_file("error_throttle.xml", &r, err, sizeof(err)), 0);
    assert_string_equal(r.code, "RequestLimitExceeded");
    ec2_response_release(&r);
    assert_int_equal(parse_file("error_capacity.xml", &r, err, sizeof(err)), 0);
    assert_string_equal(r.code, "InsufficientInstanceCapacity");
    assert_string_equal(r.request_id, "cap-1");
    assert_non_null(strstr(r.message, "t3.micro capacity"));
    ec2_response_release(&r);
    assert_int_equal(parse_file("error_escaped.xml", &r, err, sizeof(err)), 0);
    assert_string_equal(r.code, "InvalidParameterValue");
    assert_string_equal(r.message, "Value (a&b <c> \"d\" \xc3\xa9) for parameter tag is invalid");
    ec2_response_release(&r);
    /* an error document without a code still reads as an error */
    const char *nocode = "<Response><Errors><Error/></Errors></Response>";
    assert_int_equal(ec2_xml_parse(nocode, strlen(nocode), &r, err, sizeof(err)), 0);
    assert_true(r.is_error);
    assert_string_equal(r.code, "UnknownError");
    ec2_response_release(&r);
}

static void rejects_bad_documents(void **state)
{
    (void)state;
    struct ec2_response r = EC2_RESPONSE_INIT;
    char err[256];
    assert_int_equal(parse_file("malformed.xml", &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "malformed EC2 response"));
    ec2_response_release(&r);
    assert_int_equal(parse_file("doctype.xml", &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "DOCTYPE"));
    ec2_response_release(&r);
    assert_int_equal(ec2_xml_parse("", 0, &r, err, sizeof(err)), -1);
    ec2_response_release(&r);
    const char *html = "<html><body>502 Bad Gateway</body></html>";
    assert_int_equal(ec2_xml_parse(html, strlen(html), &r, err, sizeof(err)), 0);
    assert_string_equal(r.root, "html");
    assert_false(r.is_error);
    ec2_response_release(&r);
    /* a nextToken over 16 KB would lose pages if truncated: refused */
    size_t big = 20000;
    char *doc = malloc(big + 100);
    assert_non_null(doc);
    int n = snprintf(doc, big + 100, "<R><nextToken>");
    memset(doc + n, 'a', big);
    snprintf(doc + n + big, 100, "</nextToken></R>");
    assert_int_equal(ec2_xml_parse(doc, strlen(doc), &r, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "nextToken"));
    ec2_response_release(&r);
    free(doc);
    /* deep nesting beyond the name stack is skipped, not a crash */
    char deep[16384];
    size_t p = 0;
    p += (size_t)snprintf(deep + p, sizeof(deep) - p, "<R>");
    for (int i = 0; i < 200; i++)
        p += (size_t)snprintf(deep + p, sizeof(deep) - p, "<instancesSet><item>");
    for (int i = 0; i < 200; i++)
        p += (size_t)snprintf(deep + p, sizeof(deep) - p, "</item></instancesSet>");
    snprintf(deep + p, sizeof(deep) - p, "</R>");
    assert_int_equal(ec2_xml_parse(deep, strlen(deep), &r, err, sizeof(err)), 0);
    assert_int_equal(r.n_instances, 1);
    ec2_response_release(&r);
    ec2_response_release(NULL);
}

static void times(void **state)
{
    (void)state;
    assert_int_equal(ec2_parse_time("1970-01-01T00:00:00.000Z"), 0);
    assert_int_equal(ec2_parse_time("2026-11-29T07:30:00.5Z"), 1795937400500LL);
    assert_int_equal(ec2_parse_time("2026-11-29T07:30:00"), 1795937400000LL);
    assert_int_equal(ec2_parse_time("2026-11-29 07:30:00"), -1);
    assert_int_equal(ec2_parse_time("2026-11-29T07:30:00Zjunk"), -1);
    assert_int_equal(ec2_parse_time("2026-11-29T07:30:00."), -1);
    assert_int_equal(ec2_parse_time(NULL), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(run_instances),         cmocka_unit_test(describe_pages),
        cmocka_unit_test(terminate_and_tags),    cmocka_unit_test(errors),
        cmocka_unit_test(rejects_bad_documents), cmocka_unit_test(times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
