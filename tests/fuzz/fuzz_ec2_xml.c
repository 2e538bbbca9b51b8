/*
 * fuzz_ec2_xml.c - libFuzzer target for the EC2 response parser.
 *
 * Feeds arbitrary bytes to ec2_xml_parse() and checks the invariants the
 * provider relies on: every kept string is NUL-terminated within its field,
 * the instance count stays within the allocation, and release always leaves
 * an empty response. Seeds: tests/fuzz/corpus/ec2_xml/ (the unit fixtures).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "provider/ec2_xml.h"

#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ec2_response r = EC2_RESPONSE_INIT;
    char err[256];
    int rc = ec2_xml_parse((const char *)data, size, &r, err, sizeof(err));
    if (memchr(err, '\0', sizeof(err)) == NULL)
        abort();
    if (r.n_instances > r.cap_instances)
        abort();
    if (memchr(r.code, '\0', sizeof(r.code)) == NULL ||
        memchr(r.message, '\0', sizeof(r.message)) == NULL ||
        memchr(r.request_id, '\0', sizeof(r.request_id)) == NULL)
        abort();
    for (size_t i = 0; i < r.n_instances; i++) {
        const struct ec2_instance *in = &r.instances[i];
        if (memchr(in->id, '\0', sizeof(in->id)) == NULL ||
            memchr(in->private_ip, '\0', sizeof(in->private_ip)) == NULL ||
            memchr(in->group, '\0', sizeof(in->group)) == NULL ||
            memchr(in->client_token, '\0', sizeof(in->client_token)) == NULL)
            abort();
        if (in->state_code < -1 || in->state_code > 255)
            abort();
        (void)ec2_state_to_prov(in->state_code);
    }
    if (rc == 0 && r.next_token != NULL && strlen(r.next_token) >= 16384)
        abort();
    ec2_response_release(&r);
    if (r.instances != NULL || r.next_token != NULL || r.n_instances != 0)
        abort();
    return 0;
}
