#!/usr/bin/python3
"""test_agent_interop.py's every test, over mutual TLS (see its TLS mode)."""
import os
import sys
import unittest

os.environ["ASGD_TEST_TLS"] = "1"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_agent_interop  # noqa: E402  (reads ASGD_TEST_TLS at import)

if __name__ == "__main__":
    assert test_agent_interop.TLS
    unittest.main(module=test_agent_interop, verbosity=2)
