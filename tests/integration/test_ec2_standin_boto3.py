#!/usr/bin/python3
"""The EC2 stand-in (tests/tools/ec2_standin.py) checked with boto3.

boto3 must be able to drive it (run, describe through the paginator and a
waiter, terminate, tags, error codes), and its SigV4 signatures must verify,
while tampered, unsigned or wrongly keyed requests must not. If boto3 can talk
to the stand-in, the stand-in speaks EC2 and not a dialect of our own, so the
C provider tests against it mean something.
"""
import json
import sys
import time
import unittest
import urllib.request
import warnings

import boto3
import botocore
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

import ec2_standin

AK, SK = "AKIDBOTO3TEST0000001", "boto3/test+secret000000000000000000000000"


def start(*extra):
    args = ec2_standin.parse_args(["--access-key", AK, "--secret-key", SK, "--pending-seconds",
                                   "0.5", "--shutdown-seconds", "0.5", "--seed", "7"] + list(extra))
    srv, st = ec2_standin.serve(args)
    return srv, st, "http://127.0.0.1:%d" % srv.server_address[1]


def client(url, ak=AK, sk=SK, token=None, attempts=1):
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=url, aws_access_key_id=ak,
                        aws_secret_access_key=sk, aws_session_token=token,
                        config=Config(retries={"max_attempts": attempts, "mode": "standard"},
                                      connect_timeout=5, read_timeout=10))


def admin(url, path, data=None):
    req = urllib.request.Request(url + path, data=data, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def code_of(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


TAGS = [{"ResourceType": "instance", "Tags": [{"Key": "asg:group", "Value": "web"},
                                               {"Key": "team", "Value": "a&b <c>"}]}]


class StandinWithBoto3(unittest.TestCase):
    def setUp(self):
        warnings.simplefilter("ignore", ResourceWarning)
        self.srv, self.st, self.url = start()
        self.ec2 = client(self.url)

    def tearDown(self):
        self.srv.shutdown()
        self.srv.server_close()

    def run_web(self, n, token, **kw):
        args = dict(ImageId="ami-0abcdef1234567890", InstanceType="t3.micro", MinCount=n,
                    MaxCount=n, ClientToken=token, TagSpecifications=TAGS)
        args.update(kw)
        return self.ec2.run_instances(**args)

    def test_run_describe_paginate_terminate(self):
        r = self.run_web(3, "tok-1", SubnetId="subnet-aaaa1111", UserData="#!/bin/sh\necho hi\n")
        ids = [i["InstanceId"] for i in r["Instances"]]
        self.assertEqual(len(ids), 3)
        self.assertTrue(all(i["State"]["Name"] == "pending" for i in r["Instances"]))
        self.assertTrue(all(i["PrivateIpAddress"].startswith("10.") for i in r["Instances"]))
        self.assertEqual(r["Instances"][0]["SubnetId"], "subnet-aaaa1111")
        tags = {t["Key"]: t["Value"] for t in r["Instances"][0]["Tags"]}
        self.assertEqual(tags, {"asg:group": "web", "team": "a&b <c>"})
        # idempotent: same token + same parameters -> the same instances, nothing new
        again = self.run_web(3, "tok-1", SubnetId="subnet-aaaa1111",
                             UserData="#!/bin/sh\necho hi\n")
        self.assertEqual([i["InstanceId"] for i in again["Instances"]], ids)
        self.assertEqual(admin(self.url, "/_admin/stats")["launched"], 3)
        # same token, other parameters -> IdempotentParameterMismatch
        self.assertEqual(code_of(self.run_web, 2, "tok-1"), "IdempotentParameterMismatch")
        for k in range(9):
            self.run_web(1, "tok-more-%d" % k)
        # a waiter (DescribeInstances by id) sees them reach running
        self.ec2.get_waiter("instance_running").wait(
            InstanceIds=ids, WaiterConfig={"Delay": 1, "MaxAttempts": 10})
        # the paginator follows nextToken with MaxResults=5: 12 instances -> 3 pages
        pages = list(self.ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "tag:asg:group", "Values": ["web"]},
                     {"Name": "instance-state-name", "Values": ["pending", "running"]}],
            PaginationConfig={"PageSize": 5}))
        self.assertEqual(len(pages), 3)
        seen = [i["InstanceId"] for p in pages for res in p["Reservations"]
                for i in res["Instances"]]
        self.assertEqual(len(seen), 12)
        self.assertEqual(len(set(seen)), 12)
        self.assertTrue(set(ids) <= set(seen))
        self.assertIn("NextToken", pages[0])
        self.assertNotIn("NextToken", pages[-1])
        # terminate: shutting-down now, terminated later, still listed for a while
        t = self.ec2.terminate_instances(InstanceIds=ids[:2])
        self.assertEqual([i["CurrentState"]["Name"] for i in t["TerminatingInstances"]],
                         ["shutting-down"] * 2)
        self.assertEqual([i["PreviousState"]["Name"] for i in t["TerminatingInstances"]],
                         ["running"] * 2)
        self.ec2.get_waiter("instance_terminated").wait(
            InstanceIds=ids[:2], WaiterConfig={"Delay": 1, "MaxAttempts": 10})
        live = self.ec2.describe_instances(Filters=[
            {"Name": "tag:asg:group", "Values": ["web"]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "shutting-down"]}])
        live_ids = [i["InstanceId"] for res in live["Reservations"] for i in res["Instances"]]
        self.assertEqual(len(live_ids), 10)
        self.assertFalse(set(ids[:2]) & set(live_ids))
        # terminating again is fine (idempotent), and CreateTags works
        self.ec2.terminate_instances(InstanceIds=ids[:1])
        self.ec2.create_tags(Resources=[ids[2]], Tags=[{"Key": "note", "Value": "x y"}])
        d = self.ec2.describe_instances(InstanceIds=[ids[2]])
        tags = {t["Key"]: t["Value"] for t in d["Reservations"][0]["Instances"][0]["Tags"]}
        self.assertEqual(tags["note"], "x y")
        # every request boto3 signed verified
        self.assertEqual(admin(self.url, "/_admin/stats")["auth_failures"], 0)

    def test_errors(self):
        self.assertEqual(code_of(self.ec2.describe_instances, InstanceIds=["i-0123456789abcdef0"]),
                         "InvalidInstanceID.NotFound")
        self.assertEqual(code_of(self.ec2.terminate_instances, InstanceIds=["bogus"]),
                         "InvalidInstanceID.Malformed")
        self.assertEqual(code_of(self.ec2.run_instances, ImageId="nope", InstanceType="t3.micro",
                                 MinCount=1, MaxCount=1), "InvalidAMIID.Malformed")
        self.assertEqual(code_of(self.ec2.describe_instances, MaxResults=5,
                                 InstanceIds=["i-0123456789abcdef0"]),
                         "InvalidParameterCombination")
        self.assertEqual(code_of(self.ec2.describe_instances,
                                 Filters=[{"Name": "no-such-filter", "Values": ["x"]}]),
                         "InvalidParameterValue")
        admin(self.url, "/_admin/faults", json.dumps({"capacity": 1.0}).encode())
        self.assertEqual(code_of(self.run_web, 1, "cap-1"), "InsufficientInstanceCapacity")
        admin(self.url, "/_admin/faults", json.dumps({"capacity": 0.0, "throttle": 1.0}).encode())
        self.assertEqual(code_of(self.ec2.describe_instances), "RequestLimitExceeded")
        # 30% throttling: boto3's own retries get through
        admin(self.url, "/_admin/faults", json.dumps({"throttle": 0.3}).encode())
        patient = client(self.url, attempts=10)
        for _ in range(10):
            patient.describe_instances()
        self.assertGreater(admin(self.url, "/_admin/stats")["throttled"], 0)
        self.assertEqual(admin(self.url, "/_admin/stats")["auth_failures"], 0)

    def test_signatures_are_checked(self):
        self.assertEqual(code_of(client(self.url, sk="wrong-secret").describe_instances),
                         "AuthFailure")
        self.assertEqual(code_of(client(self.url, ak="AKIDUNKNOWN000000000").describe_instances),
                         "AuthFailure")
        # a request signed by botocore, then tampered with, is refused
        body = "Action=DescribeInstances&Version=2016-11-15"
        req = AWSRequest(method="POST", url=self.url + "/", data=body.encode(),
                         headers={"Content-Type":
                                  "application/x-www-form-urlencoded; charset=utf-8"})
        SigV4Auth(Credentials(AK, SK), "ec2", "us-east-1").add_auth(req)
        ok = urllib.request.Request(self.url + "/", data=body.encode(),
                                    headers=dict(req.headers.items()), method="POST")
        with urllib.request.urlopen(ok, timeout=5) as r:
            self.assertEqual(r.status, 200)
        bad = urllib.request.Request(self.url + "/", data=(body + "&MaxResults=5").encode(),
                                     headers=dict(req.headers.items()), method="POST")
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(bad, timeout=5)
        self.assertEqual(cm.exception.code, 401)
        self.assertIn(b"AuthFailure", cm.exception.read())
        # no signature at all
        nosig = urllib.request.Request(self.url + "/", data=body.encode(), method="POST")
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(nosig, timeout=5)
        self.assertEqual(cm.exception.code, 401)
        # a region other than the stand-in's
        other = boto3.client("ec2", region_name="eu-west-1", endpoint_url=self.url,
                             aws_access_key_id=AK, aws_secret_access_key=SK,
                             config=Config(retries={"max_attempts": 1}))
        self.assertEqual(code_of(other.describe_instances), "AuthFailure")
        self.assertEqual(admin(self.url, "/_admin/stats")["auth_failures"], 5)

    def test_session_token(self):
        srv, st, url = start("--session-token", "tok/en+with=chars")
        try:
            self.assertIsNotNone(client(url, token="tok/en+with=chars").describe_instances())
            self.assertEqual(code_of(client(url, token="other").describe_instances),
                             "AuthFailure")
            self.assertEqual(code_of(client(url).describe_instances), "AuthFailure")
        finally:
            srv.shutdown()
            srv.server_close()

    def test_admin_terminate_behind_the_back(self):
        iid = self.run_web(1, "adm-1")["Instances"][0]["InstanceId"]
        admin(self.url, "/_admin/terminate?id=" + iid, b"")
        d = self.ec2.describe_instances(InstanceIds=[iid])
        self.assertIn(d["Reservations"][0]["Instances"][0]["State"]["Name"],
                      ("shutting-down", "terminated"))
        self.assertEqual(admin(self.url, "/_admin/stats")["calls"]["RunInstances"], 1)


if __name__ == "__main__":
    warnings.simplefilter("ignore", ResourceWarning)
    unittest.main(verbosity=2)
