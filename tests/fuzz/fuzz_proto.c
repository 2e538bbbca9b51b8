/*
 * fuzz_proto.c - libFuzzer target for the protobuf messages asgd and
 * monitorc decode from the network: MonitorS (mon.c: RegisterRequest,
 * DeregisterRequest), monitorc (service.c: Request, PingRequest,
 * MetricsRequest), and the answers MonitorS's poller (poll.c: StatusResponse,
 * MemoryUsageResponse, Metrics) and the agent's registration (reg.c:
 * RegisterReply, DeregisterReply) read. The first byte picks the message.
 *
 * Invariants: a message that decodes packs within its computed size and,
 * without unknown fields, that encoding decodes again; every string field is a NUL-terminated C
 * string (ASan checks the strlen). Seeds:
 * tests/fuzz/corpus/proto/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "monitor.pb-c.h"

#include "common/banned.h"

static const ProtobufCMessageDescriptor *const descs[] = {
    &register_request__descriptor,
    &deregister_request__descriptor,
    &request__descriptor,
    &ping_request__descriptor,
    &metrics_request__descriptor,
    &status_response__descriptor,
    &memory_usage_response__descriptor,
    &metrics__descriptor,
    &register_reply__descriptor,
    &deregister_reply__descriptor,
    &pong__descriptor,
};
#define N_DESCS (sizeof(descs) / sizeof(descs[0]))

static void check_strings(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type == PROTOBUF_C_TYPE_STRING && f->label != PROTOBUF_C_LABEL_REPEATED) {
            const char *s = *(const char *const *)((const char *)m + f->offset);
            if (s != NULL)
                (void)strlen(s); /* ASan: must be terminated inside its allocation */
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const ProtobufCMessageDescriptor *d = descs[data[0] % N_DESCS];
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, size - 1, data + 1);
    if (m == NULL)
        return 0;
    check_strings(m);
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL)
        abort();
    /* Never more than computed (ASan would see the overflow). Fewer happens:
     * protobuf-c 1.4 keeps an unknown field numbered 0 (invalid on the wire)
     * and packs it shorter than it sized it; nothing here re-packs a received
     * message, so only a clean round trip is checked further. */
    size_t packed = protobuf_c_message_pack(m, buf);
    if (packed > n)
        abort();
    if (packed == n && m->n_unknown_fields == 0) {
        ProtobufCMessage *again = protobuf_c_message_unpack(d, NULL, n, buf);
        if (again == NULL)
            abort(); /* what we encode must decode */
        protobuf_c_message_free_unpacked(again, NULL);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    free(buf);
    return 0;
}
