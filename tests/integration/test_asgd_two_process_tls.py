"""The two-process mode over mutual TLS ([monitor] tls_ca_file/tls_cert_file/tls_key_file and
tls_server_name): `asgd controller` makes its own calls to the agents, and they go over TLS with
the [monitor] certificates, as the monitor process's polls do.

One group (local provider) whose monitorc agents serve mutual TLS only (--tls-cert/--tls-key/
--tls-ca, certificates from a throw-away CA: tests/tools/tlsca.py) and run
`--on-terminate 'sh DIR/drain.sh'`, with a terminate hook of 30 s:
- `asgd monitor` polls them: they become healthy (the monitor process's TLS);
- attach by address: an instance detached with --decrement comes back through
  `POST .../instances {"attach": "ADDRESS"}`, for which the controller process asks the agent at
  that address who it is (MonitorC/Lifecycle, gRPC core client) — over TLS, or the attach fails;
- a scale-in with the terminate hook: the controller process tells the victim's agent that it is
  in terminating:wait and asks for the drain's result (MonitorC/Lifecycle over the poller's
  HTTP/2 client) — over TLS, or the agent never hears of it, the drain command never runs and the
  hook times out with its default (abandon). The drain's file exists and the hook's activity says
  "continue ... drain command succeeded" well before the timeout.
An agent refuses clear text, so a controller that spoke it fails both checks (seen by breaking
the controller's TLS on purpose).
"""
import os
import sys
import time

import tlsca
from asgd_harness import Group, edit_file, pid_alive, wait_until
from group_api import FAST_HEALTH, STILL_POLICY, api, asgctl, insts

TOKEN = "two-tls-" + str(os.getpid())
HOOK_TIMEOUT_S = 30


def in_service(g):
    return sorted(i["id"] for i in insts(g).values()
                  if i["lifecycle"] == "in-service" and i["health"] == "healthy")


def make_group():
    g = Group("tpt", min_size=2, max_size=3, policy=STILL_POLICY, health=FAST_HEALTH,
              agent_args="--on-terminate 'sh DRAIN' TLSARGS", load=50)
    ca = tlsca.CA(os.path.join(g.dir, "pki"))
    node_cert, node_key = ca.issue("asgd")
    agent_cert, agent_key = ca.issue("agent")  # DNS localhost: the agents are on 127.x.y.z
    drain = os.path.join(g.dir, "drain.sh")
    g.drained = os.path.join(g.dir, "drained")
    with open(drain, "w") as f:
        f.write(f"sleep 1; echo drained > {g.drained}\n")
    edit_file(g.config, "DRAIN", drain)
    edit_file(g.config, "TLSARGS",
              f"--tls-cert {agent_cert} --tls-key {agent_key} --tls-ca {ca.cert}")
    edit_file(g.config, "[monitor]\n",
              f"[monitor]\ntls_ca_file = {ca.cert}\ntls_cert_file = {node_cert}\n"
              f"tls_key_file = {node_key}\ntls_server_name = localhost\n")
    edit_file(g.config, "[store]", f"[hooks]\nterminate_timeout = {HOOK_TIMEOUT_S}s\n"
              "terminate_default = abandon\n\n[store]")
    g.use_token(TOKEN)
    return g


def hook_acts(g, who):
    acts = api(g, "GET", "/activities?limit=200")
    return [a for a in acts if a["kind"] == "hook" and who in a["cause"]]


def attach_by_address(g):
    d = in_service(g)[0]
    info = insts(g)[d]
    asgctl(g, "detach", d, "--decrement")
    wait_until(lambda: d not in insts(g), 10, what="detached")
    assert pid_alive(info["pid"]), "detach terminated the process"
    # asgctl fails (raises) when the controller process could not ask the agent who it is
    out = asgctl(g, "attach", info["address"])
    wait_until(lambda: d in in_service(g), 20, what="attached by address and in service")
    assert insts(g)[d]["pid"] == info["pid"], (insts(g)[d], info)
    print(f"attach by address: the controller process identified {d} at {info['address']} over "
          f"TLS ({out.strip()})")


def drain_over_tls(g):
    api(g, "PATCH", "", {"min_size": 1, "desired_capacity": 1})
    w = wait_until(lambda: [i for i in insts(g).values() if i["lifecycle"] == "terminating:wait"],
                   10, step=0.05, what="an instance in terminating:wait")
    victim, pid, t0 = w[0]["id"], w[0]["pid"], time.monotonic()
    wait_until(lambda: not pid_alive(pid), HOOK_TIMEOUT_S + 10, step=0.05,
               what="the victim terminated")
    took = time.monotonic() - t0
    acts = wait_until(lambda: [a for a in hook_acts(g, victim) if a["status"] != "terminating:wait"],
                      5, what="the hook's result")
    print(f"drain: {victim} terminated {took:.2f}s after entering terminating:wait; hook: "
          f"{acts[0]['status']}: {acts[0]['cause']}")
    assert os.path.exists(g.drained), "the agent never ran its drain command"
    assert any(a["status"] == "continue" and "drain command succeeded" in a["cause"]
               for a in acts), acts
    assert took < HOOK_TIMEOUT_S / 2, took


def main():
    g = make_group()
    try:
        mon = g.start("monitor")
        ctl = g.start("controller")
        wait_until(lambda: len(in_service(g)) == 2, 40, what="2 healthy over TLS")
        print("the monitor process polls the agents over TLS: 2 healthy")
        attach_by_address(g)
        drain_over_tls(g)
        assert "handshake" not in g.log_text(), g.log_text()[-3000:]
        assert mon.poll() is None and ctl.poll() is None
        g.stop(ctl)
        g.stop(mon)
        assert ctl.returncode == 0 and mon.returncode == 0, (ctl.returncode, mon.returncode)
        print("ok")
    finally:
        g.cleanup()


if __name__ == "__main__":
    sys.exit(main())
