#!/usr/bin/python3
"""An EC2 stand-in for tests: enough of the EC2 Query API to run asgd against.

Speaks EC2, not a dialect of our own: tests/integration/test_ec2_standin_boto3.py
drives it with boto3. Stdlib only (http.server, threaded).

API (POST /, form body, SigV4 verified on every request; a bad or missing
signature, an unknown key, a wrong region/service or a clock off by more than
15 minutes gets 401 AuthFailure):
  RunInstances        ImageId | LaunchTemplate.*, InstanceType, MinCount, MaxCount,
                      ClientToken, SubnetId, SecurityGroupId.N, KeyName, UserData,
                      IamInstanceProfile.*, TagSpecification.N.*, MetadataOptions.*
  DescribeInstances   InstanceId.N, Filter.N.Name/Value.M (tag:K, tag-key,
                      instance-state-name, instance-id, client-token, subnet-id,
                      availability-zone), MaxResults (5..1000), NextToken
  TerminateInstances  InstanceId.N
  CreateTags          ResourceId.N, Tag.N.Key/Value
  DeleteTags          ResourceId.N, Tag.N.Key[/Value] (attach/detach, issue 12)
Behaviour: pending -> running after --pending-seconds; shutting-down ->
terminated after --shutdown-seconds; terminated instances stay listed for
--terminated-linger seconds. ClientToken: same token and parameters return the
original reservation; other parameters -> IdempotentParameterMismatch.
--max-instances caps live instances (InsufficientInstanceCapacity beyond).
--address-base A.B.C.D hands out private addresses from A.B.C.D upwards (e.g.
127.1.0.1: loopback addresses an agent swarm can answer on) instead of 10.x;
with --swarm-ids the k-th instance is also named as bench_swarm's agent k.
Every RunInstances call is recorded in stats "run_calls" (token, count, ok).

Faults (flags, or POST /_admin/faults with a JSON object of the same names):
  throttle   fraction of signed requests answered 503 RequestLimitExceeded
  capacity   fraction of RunInstances answered InsufficientInstanceCapacity
  unavailable fraction answered 503 Unavailable
  slow_ms    delay added to each reply (slow_fraction of them, default all)
  bogus      fraction answered 200 with an HTML page (a misbehaving proxy)
  fail_runs  the next N RunInstances calls (after fail_runs_after more) are answered
             503 Unavailable: one chosen launch call fails, the others do not

Admin (unsigned, for tests): GET /_admin/stats, GET /_admin/instances,
POST /_admin/terminate?id=i-... (terminate behind the client's back),
POST /_admin/stop?id=i-... (stop it: stopping, then stopped after --pending-seconds),
POST /_admin/reset, POST /_admin/faults.

Prints "port N" once listening and writes N to --port-file.
"""
import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import random
import re
import secrets
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit, parse_qs
from xml.sax.saxutils import escape

NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
STATES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48,
          "stopping": 64, "stopped": 80}


class ApiError(Exception):
    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class Instance:
    def __init__(self, iid, reservation, params, subnet, zone, ip, token, tags, index):
        self.id = iid
        self.reservation = reservation
        self.image_id = params.get("ImageId", "ami-fromtemplate")
        self.instance_type = params.get("InstanceType", "t3.micro")
        self.key_name = params.get("KeyName", "")
        self.subnet = subnet
        self.zone = zone
        self.private_ip = ip
        self.public_ip = "203.0.113.%d" % (int(ip.split(".")[-1]) % 250 + 1)
        self.client_token = token
        self.tags = dict(tags)
        self.launched = time.time()
        self.terminate_at = None
        self.stop_at = None
        self.index = index
        self.user_data = params.get("UserData", "")

    def state(self, st, now=None):
        now = now or time.time()
        if self.terminate_at is not None:
            if now - self.terminate_at >= st.args.shutdown_seconds:
                return "terminated"
            return "shutting-down"
        if self.stop_at is not None:
            return "stopped" if now - self.stop_at >= st.args.pending_seconds else "stopping"
        if now - self.launched >= st.args.pending_seconds:
            return "running"
        return "pending"

    def gone(self, st, now):
        return (self.terminate_at is not None and
                now - self.terminate_at >= st.args.shutdown_seconds + st.args.terminated_linger)


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.rng = random.Random(args.seed)
        self.instances = {}      # id -> Instance (in launch order)
        self.tokens = {}         # ClientToken -> (params signature, reservation id, [ids])
        self.reservations = {}   # reservation id -> [ids]
        self.pages = {}          # NextToken -> (query key, offset)
        self.ip_counter = 10
        self.address_base = None
        if args.address_base:
            a, b, c, d = (int(x) for x in args.address_base.split("."))
            self.address_base = a << 24 | b << 16 | c << 8 | d
        self.next_addr, self.seq = self.address_base, 0
        self.faults = {"throttle": args.throttle, "capacity": args.capacity,
                       "unavailable": args.unavailable, "slow_ms": args.slow_ms,
                       "bogus": args.bogus,
                       "slow_fraction": args.slow_fraction,
                       "fail_runs": 0, "fail_runs_after": 0}
        self.reset_stats()

    def next_address(self):
        """The next --address-base address: the k-th launch gets base + k, skipping .0 and
        .255 last octets, as bench/swarm.c numbers its agents."""
        a = self.next_addr
        self.next_addr += 1
        while self.next_addr & 0xff in (0, 255):
            self.next_addr += 1
        self.seq += 1
        return "%d.%d.%d.%d" % (a >> 24 & 255, a >> 16 & 255, a >> 8 & 255, a & 255)

    def reset_stats(self):
        self.stats = {"requests": 0, "calls": {}, "auth_failures": 0, "throttled": 0,
                      "run_calls": [],
                      "errors": {}, "launched": 0, "first_request": None, "last_request": None,
                      "request_times": []}

    def live_count(self, now):
        return sum(1 for i in self.instances.values()
                   if i.state(self, now) in ("pending", "running"))


# ---- SigV4 verification (independent of botocore; boto3 checks us) ------------

def _sign(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request,"
                     r"\s*SignedHeaders=([a-z0-9;\-]+),\s*Signature=([0-9a-f]{64})$")


def verify_sigv4(st, method, path, query, headers, body):
    auth = headers.get("Authorization")
    if not auth:
        raise ApiError("AuthFailure", "AWS was not able to validate the provided access "
                       "credentials (no Authorization header)", 401)
    m = AUTH_RE.match(auth.strip())
    if not m:
        raise ApiError("IncompleteSignature", "Authorization header is not SigV4", 400)
    akid, date, region, service, signed, signature = m.groups()
    secret = st.args.keys.get(akid)
    if secret is None:
        raise ApiError("AuthFailure", "AWS was not able to validate the provided access "
                       "credentials", 401)
    if region != st.args.region or service != "ec2":
        raise ApiError("AuthFailure", "Credential should be scoped to a valid region "
                       "and service", 401)
    amz_date = headers.get("X-Amz-Date", "")
    try:
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
    except ValueError:
        raise ApiError("AuthFailure", "missing or malformed X-Amz-Date", 401)
    if amz_date[:8] != date:
        raise ApiError("AuthFailure", "credential date does not match X-Amz-Date", 401)
    skew = abs((datetime.datetime.utcnow() - when).total_seconds())
    if skew > 15 * 60:
        raise ApiError("RequestExpired", "Request has expired.", 400)
    names = signed.split(";")
    if "host" not in names or "x-amz-date" not in names or names != sorted(names):
        raise ApiError("AuthFailure", "host and x-amz-date must be signed", 401)
    token_required = st.args.session_token
    token = headers.get("X-Amz-Security-Token")
    if token_required and token != token_required:
        raise ApiError("AuthFailure", "AWS was not able to validate the provided access "
                       "credentials (security token)", 401)
    if token is not None and "x-amz-security-token" not in names:
        raise ApiError("AuthFailure", "the security token must be signed", 401)
    lines = []
    for n in names:
        vals = headers.get_all(n) or []
        if not vals:
            raise ApiError("AuthFailure", "signed header %s is missing" % n, 401)
        lines.append("%s:%s" % (n, ",".join(" ".join(v.split()) for v in vals)))
    q = sorted(parse_qsl(query, keep_blank_values=True)) if query else []
    from urllib.parse import quote
    cq = "&".join("%s=%s" % (quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in q)
    canonical = "\n".join([method, path or "/", cq, "\n".join(lines) + "\n", signed,
                           hashlib.sha256(body).hexdigest()])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, "%s/%s/%s/aws4_request" % (date, region, service),
                     hashlib.sha256(canonical.encode("utf-8")).hexdigest()])
    k = _sign(("AWS4" + secret).encode("utf-8"), date)
    k = _sign(k, region)
    k = _sign(k, service)
    k = _sign(k, "aws4_request")
    want = hmac.new(k, sts.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, signature):
        # like AWS, the message does not repeat secrets; it is an AuthFailure for EC2
        raise ApiError("AuthFailure", "AWS was not able to validate the provided access "
                       "credentials (signature mismatch)", 401)


# ---- XML ---------------------------------------------------------------------------

def x(tag, inner=""):
    return "<%s>%s</%s>" % (tag, inner, tag) if inner != "" else "<%s/>" % tag


def t(tag, text):
    return "<%s>%s</%s>" % (tag, escape(str(text)), tag) if text not in (None, "") else "<%s/>" % tag


def iso(ts):
    return datetime.datetime.utcfromtimestamp(ts).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def instance_xml(st, inst, now, state_tag="instanceState", previous=None):
    s = inst.state(st, now)
    if state_tag == "currentState":
        return x("item", t("instanceId", inst.id) +
                 x("currentState", t("code", STATES[s]) + t("name", s)) +
                 x("previousState", t("code", STATES[previous]) + t("name", previous)))
    tags = "".join(x("item", t("key", k) + t("value", v)) for k, v in inst.tags.items())
    public = inst.public_ip if s == "running" else ""
    return x("item", "".join([
        t("instanceId", inst.id), t("imageId", inst.image_id),
        x("instanceState", t("code", STATES[s]) + t("name", s)),
        t("privateDnsName", "ip-%s.ec2.internal" % inst.private_ip.replace(".", "-")),
        t("dnsName", ""), t("reason", ""), t("keyName", inst.key_name),
        t("amiLaunchIndex", inst.index), x("productCodes"),
        t("instanceType", inst.instance_type), t("launchTime", iso(inst.launched)),
        x("placement", t("availabilityZone", inst.zone) + t("groupName", "") +
          t("tenancy", "default")),
        x("monitoring", t("state", "disabled")),
        t("subnetId", inst.subnet), t("vpcId", "vpc-standin0"),
        t("privateIpAddress", inst.private_ip), t("ipAddress", public),
        t("sourceDestCheck", "true"),
        x("groupSet", x("item", t("groupId", "sg-standin0") + t("groupName", "default"))),
        t("architecture", "x86_64"), t("rootDeviceType", "ebs"),
        t("rootDeviceName", "/dev/xvda"), x("blockDeviceMapping"),
        t("virtualizationType", "hvm"), t("clientToken", inst.client_token),
        x("tagSet", tags) if tags else x("tagSet"), t("hypervisor", "xen"),
        x("networkInterfaceSet", x("item", t("networkInterfaceId", "eni-" + inst.id[2:]) +
                                   t("subnetId", inst.subnet) +
                                   t("privateIpAddress", inst.private_ip))),
        t("ebsOptimized", "false"),
        x("metadataOptions", t("state", "applied") + t("httpTokens", "required")),
    ]))


def wrap(action, inner):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<%sResponse xmlns="%s">%s%s</%sResponse>'
            % (action, NS, t("requestId", str(uuid.uuid4())), inner, action))


def error_xml(code, message):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>%s%s</Error>'
            '</Errors>%s</Response>' % (t("Code", code), t("Message", message),
                                        t("RequestID", str(uuid.uuid4()))))


# ---- actions ---------------------------------------------------------------------------

def numbered(params, prefix):
    """Values of prefix.1, prefix.2, ... in order."""
    out, i = [], 1
    while "%s.%d" % (prefix, i) in params:
        out.append(params["%s.%d" % (prefix, i)])
        i += 1
    return out


def parse_tag_specs(params):
    tags = {}
    i = 1
    while "TagSpecification.%d.ResourceType" % i in params:
        rt = params["TagSpecification.%d.ResourceType" % i]
        j = 1
        while "TagSpecification.%d.Tag.%d.Key" % (i, j) in params:
            if rt == "instance":
                tags[params["TagSpecification.%d.Tag.%d.Key" % (i, j)]] = \
                    params.get("TagSpecification.%d.Tag.%d.Value" % (i, j), "")
            j += 1
        i += 1
    return tags


def run_instances(st, p):
    for req in ("MinCount", "MaxCount"):
        if req not in p:
            raise ApiError("MissingParameter", "The request must contain the parameter %s" % req)
    try:
        mn, mx = int(p["MinCount"]), int(p["MaxCount"])
    except ValueError:
        raise ApiError("InvalidParameterValue", "MinCount and MaxCount must be integers")
    if mn < 1 or mx < mn:
        raise ApiError("InvalidParameterValue", "MinCount must be >= 1 and <= MaxCount")
    lt = any(k.startswith("LaunchTemplate.") for k in p)
    if "ImageId" not in p and not lt:
        raise ApiError("MissingParameter", "The request must contain the parameter ImageId")
    if "ImageId" in p and not re.match(r"^ami-[0-9a-f]{8,17}$", p["ImageId"]):
        raise ApiError("InvalidAMIID.Malformed", "Invalid id: \"%s\"" % p["ImageId"])
    if "InstanceType" not in p and not lt:
        raise ApiError("MissingParameter", "The request must contain the parameter InstanceType")
    if "UserData" in p:
        try:
            base64.b64decode(p["UserData"], validate=True)
        except Exception:
            raise ApiError("InvalidParameterValue", "Invalid BASE64 encoding of user data")
    token = p.get("ClientToken", "")
    if len(token) > 64:
        raise ApiError("InvalidParameterValue", "ClientToken is longer than 64 characters")
    call = {"token": token, "count": mx, "ok": True}
    st.stats["run_calls"].append(call)
    if st.faults["fail_runs"] > 0:
        if st.faults["fail_runs_after"] > 0:
            st.faults["fail_runs_after"] -= 1
        else:
            st.faults["fail_runs"] -= 1
            call["ok"] = False
            raise ApiError("Unavailable", "The service is unavailable. Please try again "
                           "shortly.", 503)
    sig = json.dumps({k: v for k, v in p.items() if k not in ("ClientToken", "Action", "Version")},
                     sort_keys=True)
    now = time.time()
    if token and token in st.tokens:
        osig, rid, ids = st.tokens[token]
        if osig != sig:
            raise ApiError("IdempotentParameterMismatch",
                           "Arguments on this idempotent request are inconsistent with arguments "
                           "used in previous request(s).")
        return rid, ids
    if st.rng.random() < st.faults["capacity"]:
        raise ApiError("InsufficientInstanceCapacity",
                       "We currently do not have sufficient %s capacity in the Availability Zone "
                       "you requested." % p.get("InstanceType", "t3.micro"), 500)
    if st.args.max_instances and st.live_count(now) + mn > st.args.max_instances:
        raise ApiError("InsufficientInstanceCapacity",
                       "We currently do not have sufficient capacity (stand-in limit %d)."
                       % st.args.max_instances, 500)
    count = mx
    if st.args.max_instances:
        count = max(mn, min(mx, st.args.max_instances - st.live_count(now)))
    subnet = p.get("SubnetId", "subnet-default0")
    if not subnet.startswith("subnet-"):
        raise ApiError("InvalidSubnetID.Malformed", "Invalid subnet id \"%s\"" % subnet)
    zone = "%s%s" % (st.args.region, "abc"[sum(subnet.encode()) % 3])
    tags = parse_tag_specs(p)
    rid = "r-" + secrets.token_hex(8) + "a"
    ids = []
    for k in range(count):
        iid = "i-" + secrets.token_hex(8) + "f"
        st.ip_counter += 1
        if st.address_base is not None:
            ip = st.next_address()
            if st.args.swarm_ids:
                iid = "i-00%06d" % (st.seq - 1)
        else:
            ip = "10.%d.%d.%d" % (sum(subnet.encode()) % 250, st.ip_counter // 250 % 250,
                                  st.ip_counter % 250 + 1)
        st.instances[iid] = Instance(iid, rid, p, subnet, zone, ip, token, tags, k)
        ids.append(iid)
    st.stats["launched"] += count
    st.reservations[rid] = ids
    if token:
        st.tokens[token] = (sig, rid, ids)
    return rid, ids


def run_instances_xml(st, rid, ids):
    now = time.time()
    items = "".join(instance_xml(st, st.instances[i], now) for i in ids if i in st.instances)
    return wrap("RunInstances", t("reservationId", rid) + t("ownerId", "123456789012") +
                x("groupSet") + x("instancesSet", items))


def filters_of(p):
    out, i = [], 1
    while "Filter.%d.Name" % i in p:
        out.append((p["Filter.%d.Name" % i], numbered(p, "Filter.%d.Value" % i)))
        i += 1
    return out


FILTERS = ("tag-key", "instance-state-name", "instance-id", "client-token", "subnet-id",
           "availability-zone")


def check_filters(flt):
    for name, _ in flt:
        if not name.startswith("tag:") and name not in FILTERS:
            raise ApiError("InvalidParameterValue", "The filter '%s' is invalid" % name)


def matches(st, inst, flt, now):
    for name, values in flt:
        if name.startswith("tag:"):
            v = inst.tags.get(name[4:])
            ok = v is not None and v in values
        elif name == "tag-key":
            ok = any(k in values for k in inst.tags)
        elif name == "instance-state-name":
            ok = inst.state(st, now) in values
        elif name == "instance-id":
            ok = inst.id in values
        elif name == "client-token":
            ok = inst.client_token in values
        elif name == "subnet-id":
            ok = inst.subnet in values
        elif name == "availability-zone":
            ok = inst.zone in values
        else:
            raise ApiError("InvalidParameterValue", "The filter '%s' is invalid" % name)
        if not ok:
            return False
    return True


def describe_instances(st, p):
    now = time.time()
    for iid in [i for i, inst in st.instances.items() if inst.gone(st, now)]:
        del st.instances[iid]
    ids = numbered(p, "InstanceId")
    flt = filters_of(p)
    check_filters(flt)
    maxr = None
    if "MaxResults" in p:
        if ids:
            raise ApiError("InvalidParameterCombination",
                           "The parameter instancesSet cannot be used with the parameter maxResults")
        try:
            maxr = int(p["MaxResults"])
        except ValueError:
            raise ApiError("InvalidParameterValue", "MaxResults must be an integer")
        if not 5 <= maxr <= 1000:
            raise ApiError("InvalidParameterValue",
                           "Value ( %d ) for parameter maxResults is invalid. Expecting a value "
                           "between 5 and 1000." % maxr)
    for iid in ids:
        if iid not in st.instances:
            raise ApiError("InvalidInstanceID.NotFound",
                           "The instance ID '%s' does not exist" % iid)
    insts = [i for i in st.instances.values()
             if (not ids or i.id in ids) and matches(st, i, flt, now)]
    key = json.dumps([ids, flt])
    offset = 0
    if p.get("NextToken"):
        ent = st.pages.pop(p["NextToken"], None)
        if ent is None or ent[0] != key:
            raise ApiError("InvalidParameterValue", "The NextToken is invalid or expired")
        offset = ent[1]
    page = insts[offset:offset + maxr] if maxr else insts[offset:]
    nxt = ""
    if maxr and offset + maxr < len(insts):
        nxt = base64.b64encode(secrets.token_bytes(24)).decode() + "=="
        st.pages[nxt] = (key, offset + maxr)
    by_res = {}
    for i in page:
        by_res.setdefault(i.reservation, []).append(i)
    res = "".join(x("item", t("reservationId", rid) + t("ownerId", "123456789012") +
                    x("groupSet") +
                    x("instancesSet", "".join(instance_xml(st, i, now) for i in lst)))
                  for rid, lst in by_res.items())
    body = x("reservationSet", res) if res else x("reservationSet")
    if nxt:
        body += t("nextToken", nxt)
    return wrap("DescribeInstances", body)


def check_ids(st, ids):
    if not ids:
        raise ApiError("MissingParameter", "The request must contain the parameter InstanceId")
    bad = [i for i in ids if not re.match(r"^i-[0-9a-f]{8,17}$", i)]
    if bad:
        raise ApiError("InvalidInstanceID.Malformed", "Invalid id: \"%s\"" % bad[0])
    missing = [i for i in ids if i not in st.instances]
    if missing:
        raise ApiError("InvalidInstanceID.NotFound",
                       "The instance IDs '%s' do not exist" % ", ".join(missing))


def terminate(st, ids):
    now = time.time()
    items = []
    for iid in ids:
        inst = st.instances[iid]
        prev = inst.state(st, now)
        if inst.terminate_at is None:
            inst.terminate_at = now
        items.append(instance_xml(st, inst, now, "currentState", prev))
    return items


def terminate_instances(st, p):
    ids = numbered(p, "InstanceId")
    check_ids(st, ids)
    return wrap("TerminateInstances", x("instancesSet", "".join(terminate(st, ids))))


def create_tags(st, p):
    ids = numbered(p, "ResourceId")
    check_ids(st, ids)
    tags, j = {}, 1
    while "Tag.%d.Key" % j in p:
        tags[p["Tag.%d.Key" % j]] = p.get("Tag.%d.Value" % j, "")
        j += 1
    for iid in ids:
        st.instances[iid].tags.update(tags)
    return wrap("CreateTags", t("return", "true"))


def delete_tags(st, p):
    ids = numbered(p, "ResourceId")
    check_ids(st, ids)
    j = 1
    while "Tag.%d.Key" % j in p:
        key, want = p["Tag.%d.Key" % j], p.get("Tag.%d.Value" % j)
        for iid in ids:
            tags = st.instances[iid].tags
            if key in tags and (want is None or tags[key] == want):
                del tags[key]
        j += 1
    return wrap("DeleteTags", t("return", "true"))


ACTIONS = {
    "RunInstances": lambda st, p: run_instances_xml(st, *run_instances(st, p)),
    "DescribeInstances": describe_instances,
    "TerminateInstances": terminate_instances,
    "CreateTags": create_tags,
    "DeleteTags": delete_tags,
}


# ---- HTTP -----------------------------------------------------------------------------

def make_handler(st):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            if st.args.verbose:
                sys.stderr.write("standin: " + fmt % a + "\n")

        def reply(self, status, body, ctype="text/xml;charset=UTF-8"):
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def read_body(self):
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def admin(self, method, body):
            u = urlsplit(self.path)
            q = parse_qs(u.query)
            with st.lock:
                if u.path == "/_admin/stats" and method == "GET":
                    s = dict(st.stats)
                    s["live"] = st.live_count(time.time())
                    return self.reply(200, json.dumps(s), "application/json")
                if u.path == "/_admin/instances" and method == "GET":
                    now = time.time()
                    out = [{"id": i.id, "state": i.state(st, now), "tags": i.tags,
                            "client_token": i.client_token, "subnet": i.subnet, "zone": i.zone,
                            "private_ip": i.private_ip, "instance_type": i.instance_type,
                            "image_id": i.image_id, "user_data": i.user_data,
                            "reservation": i.reservation}
                           for i in st.instances.values()]
                    return self.reply(200, json.dumps(out), "application/json")
                if u.path == "/_admin/terminate" and method == "POST":
                    ids = q.get("id", [])
                    try:
                        check_ids(st, ids)
                    except ApiError as e:
                        return self.reply(404, json.dumps({"error": e.message}),
                                          "application/json")
                    terminate(st, ids)
                    return self.reply(200, json.dumps({"terminated": ids}), "application/json")
                if u.path == "/_admin/stop" and method == "POST":
                    ids = q.get("id", [])
                    try:
                        check_ids(st, ids)
                    except ApiError as e:
                        return self.reply(404, json.dumps({"error": e.message}),
                                          "application/json")
                    for iid in ids:
                        st.instances[iid].stop_at = st.instances[iid].stop_at or time.time()
                    return self.reply(200, json.dumps({"stopped": ids}), "application/json")
                if u.path == "/_admin/reset" and method == "POST":
                    st.reset_stats()
                    return self.reply(200, "{}", "application/json")
                if u.path == "/_admin/faults" and method == "POST":
                    try:
                        upd = json.loads(body or b"{}")
                        for k, v in upd.items():
                            if k not in st.faults:
                                raise ValueError(k)
                            st.faults[k] = float(v)
                    except (ValueError, TypeError) as e:
                        return self.reply(400, json.dumps({"error": str(e)}), "application/json")
                    return self.reply(200, json.dumps(st.faults), "application/json")
            return self.reply(404, json.dumps({"error": "no such admin endpoint"}),
                              "application/json")

        def do_GET(self):
            if self.path.startswith("/_admin/"):
                return self.admin("GET", b"")
            self.reply(400, error_xml("InvalidAction", "use POST"))

        def do_POST(self):
            body = self.read_body()
            if self.path.startswith("/_admin/"):
                return self.admin("POST", body)
            u = urlsplit(self.path)
            try:
                params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            except UnicodeDecodeError:
                params = {}
            action = params.get("Action", "?")
            now = time.time()
            with st.lock:
                st.stats["requests"] += 1
                st.stats["calls"][action] = st.stats["calls"].get(action, 0) + 1
                st.stats["first_request"] = st.stats["first_request"] or now
                st.stats["last_request"] = now
                st.stats["request_times"].append(round(now, 3))
                del st.stats["request_times"][:-500]
                faults = dict(st.faults)
                throttle = st.rng.random() < faults["throttle"]
                unavailable = st.rng.random() < faults["unavailable"]
                slow = faults["slow_ms"] > 0 and st.rng.random() < faults["slow_fraction"]
                bogus = faults["bogus"] > 0 and st.rng.random() < faults["bogus"]
            try:
                verify_sigv4(st, "POST", u.path, u.query, self.headers, body)
            except ApiError as e:
                with st.lock:
                    st.stats["auth_failures"] += 1
                return self.reply(e.status, error_xml(e.code, e.message))
            if slow:
                time.sleep(faults["slow_ms"] / 1000.0)
            if bogus:
                return self.reply(200, "<html><body>Welcome to the proxy</body></html>",
                                  "text/html")
            try:
                if "Version" not in params:
                    raise ApiError("MissingParameter", "The request must contain the parameter "
                                   "Version")
                if action not in ACTIONS:
                    raise ApiError("InvalidAction", "The action %s is not valid for this web "
                                   "service." % action)
                if throttle:
                    with st.lock:
                        st.stats["throttled"] += 1
                    raise ApiError("RequestLimitExceeded", "Request limit exceeded.", 503)
                if unavailable:
                    raise ApiError("Unavailable", "The service is unavailable. Please try "
                                   "again shortly.", 503)
                with st.lock:
                    out = ACTIONS[action](st, params)
                return self.reply(200, out)
            except ApiError as e:
                with st.lock:
                    st.stats["errors"][e.code] = st.stats["errors"].get(e.code, 0) + 1
                return self.reply(e.status, error_xml(e.code, e.message))

    return H


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--access-key", default="AKIDSTANDIN0000000001")
    ap.add_argument("--secret-key", default="standin/secret+key0000000000000000000000")
    ap.add_argument("--extra-key", action="append", default=[],
                    help="another ACCESS:SECRET pair that is accepted")
    ap.add_argument("--session-token", default=None, help="require this X-Amz-Security-Token")
    ap.add_argument("--pending-seconds", type=float, default=1.0)
    ap.add_argument("--shutdown-seconds", type=float, default=1.0)
    ap.add_argument("--terminated-linger", type=float, default=30.0)
    ap.add_argument("--max-instances", type=int, default=0)
    ap.add_argument("--address-base", default=None,
                    help="hand out private addresses from this IPv4 address upwards")
    ap.add_argument("--swarm-ids", action="store_true",
                    help="with --address-base: the k-th instance is i-00%%06d (k), as "
                         "bench_swarm --id-prefix i-00 answers for its agent k")
    ap.add_argument("--throttle", type=float, default=0.0)
    ap.add_argument("--capacity", type=float, default=0.0)
    ap.add_argument("--unavailable", type=float, default=0.0)
    ap.add_argument("--slow-ms", type=float, default=0.0)
    ap.add_argument("--bogus", type=float, default=0.0)
    ap.add_argument("--slow-fraction", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    args.keys = {args.access_key: args.secret_key}
    for kv in args.extra_key:
        k, _, s = kv.partition(":")
        args.keys[k] = s
    return args


def serve(args):
    """Starts the server in a thread; returns (server, state). For in-process use by tests."""
    st = State(args)
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(st))
    srv.daemon_threads = True
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    return srv, st


def main():
    args = parse_args()
    srv, _ = serve(args)
    port = srv.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.rename(tmp, args.port_file)
    print("port", port, flush=True)
    import signal
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    stop.wait()
    srv.shutdown()


if __name__ == "__main__":
    main()
