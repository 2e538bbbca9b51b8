#!/usr/bin/python3
"""A seed-style MonitorC agent: grpcio, only GetStatus and GetMemoryUsage.

This is what the seed project's Python agents answer: every newer method
(Ping, GetMetrics) gets UNIMPLEMENTED from grpcio itself. asgd's monitor must
still watch such an agent through the two seed methods.

Usage: seed_agent.py [--listen 127.0.0.1:0] [--load 37] [--status OK]
Prints the bound port on the first line of stdout, then serves until it is
killed or its stdin closes. Needs monitor_pb2 on PYTHONPATH (build/gen/py).
"""
import argparse
import sys
import threading
from concurrent import futures

import grpc
import monitor_pb2


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--load", type=int, default=37)
    ap.add_argument("--status", default="OK")
    args = ap.parse_args()

    def get_status(request, context):
        return monitor_pb2.StatusResponse(status=args.status)

    def get_memory_usage(request, context):
        return monitor_pb2.MemoryUsageResponse(usage=args.load)

    handlers = {
        "GetStatus": grpc.unary_unary_rpc_method_handler(
            get_status,
            request_deserializer=monitor_pb2.Request.FromString,
            response_serializer=monitor_pb2.StatusResponse.SerializeToString),
        "GetMemoryUsage": grpc.unary_unary_rpc_method_handler(
            get_memory_usage,
            request_deserializer=monitor_pb2.Request.FromString,
            response_serializer=monitor_pb2.MemoryUsageResponse.SerializeToString),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("MonitorC", handlers),))
    port = server.add_insecure_port(args.listen)
    if port == 0:
        print("seed_agent: cannot listen on %r" % args.listen, file=sys.stderr)
        return 1
    server.start()
    print(port, flush=True)
    # stop when the parent goes away (stdin closed) or on a signal
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    server.stop(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
