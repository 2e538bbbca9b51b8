/*
 * rpc.c - unary gRPC server and asynchronous client over the gRPC core C API
 * (rpc.h): what both sides share. The server is rpc_server.c, the client
 * rpc_client.c (rpc_int.h lists the files).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>

#include "rpc/rpc_int.h"

#include "common/banned.h"

const char *rpc_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case RPC_EINVAL:
        return "invalid argument";
    case RPC_ENOMEM:
        return "out of memory";
    case RPC_EBIND:
        return "cannot listen on address";
    case RPC_ESTATE:
        return "wrong state for this operation";
    case RPC_ESHUTDOWN:
        return "shut down";
    case RPC_EGRPC:
        return "grpc refused the operation";
    case RPC_ETOOBIG:
        return "message too large";
    default:
        return "unknown error";
    }
}

int rpc_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *len)
{
    if (!msg || !out || !len)
        return RPC_EINVAL;
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return RPC_ENOMEM;
    *len = protobuf_c_message_pack(msg, buf);
    *out = buf;
    return 0;
}

int rpc_reply_pack(struct rpc_reply *reply, const ProtobufCMessage *msg)
{
    if (!reply)
        return RPC_EINVAL;
    return rpc_pack(msg, &reply->data, &reply->len);
}

/*
 * A client channel's connection attempt is only driven while some thread
 * polls a completion queue with a call pending on that channel, or by gRPC's
 * "backup poller" (every 5 s by default). A poller whose calls to a restarted
 * agent fail fast has no call pending, so the reconnect used to complete only
 * on the backup poller's tick: 3-8 s after the agent came back, whatever the
 * reconnect backoff. gRPC reads the interval from the environment once, at
 * its first grpc_init(): set 100 ms there unless the operator chose a value.
 */
/*
 * Debian's libabsl is built without NDEBUG, so every absl::Mutex that gRPC
 * takes runs abseil's deadlock detector (a global graph of lock ids under a
 * global lock): ~17 % of a 5,000-instance poller's CPU samples were in
 * GraphCycles::GetId/InsertEdge. abseil has no environment knob for it, only
 * absl::SetMutexDeadlockDetectionMode(), a C++ function: it is looked up by
 * its mangled name (the inline namespace is Debian's "debian3"; the plain one
 * is what an upstream build exports) and called with kIgnore (0). Where
 * neither exists the detector is either compiled out or unreachable: nothing
 * to do. ASGD_ABSL_DEADLOCK_DETECTION=1 leaves it on (for debugging gRPC
 * lock order).
 */
static void absl_deadlock_detection_off(void)
{
    const char *keep = getenv("ASGD_ABSL_DEADLOCK_DETECTION");
    if (keep && strcmp(keep, "1") == 0)
        return;
    static const char *const names[] = {
        "_ZN4absl7debian329SetMutexDeadlockDetectionModeENS0_15OnDeadlockCycleE",
        "_ZN4absl29SetMutexDeadlockDetectionModeENS_15OnDeadlockCycleE",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        void *sym = dlsym(RTLD_DEFAULT, names[i]);
        if (sym) {
            void (*set_mode)(int);
            memcpy(&set_mode, &sym,
                   sizeof(set_mode)); /* object to function pointer, as POSIX allows */
            set_mode(0);              /* absl::OnDeadlockCycle::kIgnore */
            return;
        }
    }
}

static void set_backup_poll(void)
{
    setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "100", 0);
    absl_deadlock_detection_off();
}

void rpc__grpc_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, set_backup_poll);
    grpc_init();
}
