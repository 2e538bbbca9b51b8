/*
 * ec2_xml.h - reading EC2 Query API responses (RunInstances, TerminateInstances,
 * DescribeInstances, CreateTags, and the error document).
 *
 * The parser (expat) keeps only what the provider needs: for each instance
 * item under an instancesSet its id, state, addresses, zone, subnet, client
 * token, launch time and asg:group tag; the request id; nextToken; and for an
 * error document the first Error's Code and Message. Unknown elements, at any
 * depth, are skipped, so new fields AWS adds never break us. A DOCTYPE is
 * refused (no entity tricks), and every kept string is bounded.
 *
 * tests/unit/test_ec2_xml.c runs it on real-shaped responses in
 * tests/fixtures/ec2/; tests/fuzz/fuzz_ec2_xml.c fuzzes it.
 */
#ifndef ASGD_EC2_XML_H
#define ASGD_EC2_XML_H

#include <stddef.h>
#include <stdint.h>

#include "provider/provider.h"

/* EC2 instance state codes (the low byte of instanceState/code). */
enum ec2_state_code {
    EC2_PENDING = 0,
    EC2_RUNNING = 16,
    EC2_SHUTTING_DOWN = 32,
    EC2_TERMINATED = 48,
    EC2_STOPPING = 64,
    EC2_STOPPED = 80,
};

struct ec2_instance {
    char id[PROV_ID_MAX];
    int state_code;      /* low byte of instanceState/code (or currentState); -1 if absent */
    char state_name[24]; /* "running", ... or "" */
    char private_ip[48]; /* privateIpAddress or "" */
    char public_ip[48];  /* ipAddress or "" */
    char zone[40];       /* placement/availabilityZone or "" */
    char subnet_id[48];  /* subnetId or "" */
    char client_token[PROV_ID_MAX + 1]; /* clientToken (<= 64 chars) or "" */
    int64_t launch_time_ms;             /* launchTime as wall ms, 0 if absent or unreadable */
    char group[128];                    /* value of the asg:group tag, "" if none */
};

struct ec2_response {
    char root[64];       /* root element, e.g. "DescribeInstancesResponse" or "Response" */
    int is_error;        /* the document is an <Response><Errors> error */
    char code[96];       /* error: first Error/Code */
    char message[512];   /* error: first Error/Message (truncated) */
    char request_id[96]; /* requestId (success) or RequestID (error) */
    int return_value;    /* <return>true</return> (CreateTags): 1, false: 0, absent: -1 */
    struct ec2_instance *instances; /* owned; n_instances items */
    size_t n_instances, cap_instances;
    char *next_token; /* owned; NULL when there is no further page */
};

#define EC2_RESPONSE_INIT                                                                          \
    {                                                                                              \
        .return_value = -1                                                                         \
    }

/*
 * Parses len bytes of xml into *out (which must be EC2_RESPONSE_INIT or
 * released). Returns 0; or -1 on malformed XML, a DOCTYPE, a nextToken longer
 * than 16 KB, more than 100000 instances or out of memory, with a message in
 * err (NUL-terminated). *out may hold partial results either way; the caller
 * always calls ec2_response_release().
 */
int ec2_xml_parse(const char *xml, size_t len, struct ec2_response *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* Frees what *r owns; *r becomes EC2_RESPONSE_INIT. NULL is a no-op. */
void ec2_response_release(struct ec2_response *r);

/*
 * Maps an EC2 state code to the provider's state: pending -> PENDING, running ->
 * RUNNING, shutting-down/stopping/stopped -> STOPPING, terminated -> GONE,
 * unknown -> PENDING. Stopped is "stopping" on purpose: the controller then
 * terminates the instance instead of forgetting it while it stays stopped.
 */
enum prov_state ec2_state_to_prov(int code);
/* Parses "2026-11-29T07:30:00.000Z" (fraction and Z optional) into wall ms; -1 if invalid. */
int64_t ec2_parse_time(const char *iso);

#endif
