#!/usr/bin/python3
"""test_monitor_asgd.py over mutual TLS (see its TLS mode)."""
import os
import sys

os.environ["ASGD_TEST_TLS"] = "1"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_monitor_asgd  # noqa: E402  (reads ASGD_TEST_TLS at import)

if __name__ == "__main__":
    assert test_monitor_asgd.TLS
    sys.exit(test_monitor_asgd.main())
