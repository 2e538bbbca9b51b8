#!/usr/bin/python3
"""contrib/: the Grafana dashboard and the Prometheus alert rules against a real asgd.

1. A local group runs; its /metrics gives the families asgd really exports.
2. The alert rules: `promtool check rules` clean, `promtool test rules` (each alert fires
   on its series and not on a healthy group), and every metric they name is exported.
3. The dashboard: valid JSON with unique panel ids, a datasource variable every panel uses,
   every metric its queries name is exported, and every exported family is on it.
promtool comes with Debian's prometheus package (scripts/install-deps); without it the
rules are checked structurally only (YAML, names) and the test says so.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from asgd_harness import Group, wait_until  # noqa: E402

SRC = os.environ.get("ASGD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
PROM = os.path.join(SRC, "contrib", "prometheus")
DASH = os.path.join(SRC, "contrib", "grafana", "asgd-dashboard.json")
# PromQL words that look like metric names but are not
PROMQL = {"sum", "by", "rate", "increase", "time", "histogram_quantile", "on", "group_left",
          "le", "and", "or", "unless", "without", "label_values", "instance", "job", "group",
          "lifecycle", "health", "op", "result", "direction", "offset", "bool", "humanizeDuration"}


def metric_names(expr):
    """The metric names an expression reads (identifiers before '{', '[' or alone)."""
    expr = re.sub(r'"[^"]*"', '""', expr)            # label values
    expr = re.sub(r"\$\w+|\[\$?\w+\]", "", expr)      # $vars, ranges
    names = set(re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b", expr))
    return {n for n in names if n.startswith("asgd_") or n == "up"} - PROMQL


def family_of(name):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def main():
    g = Group("ctb", min_size=1, max_size=2)
    try:
        p = g.start()
        url = f"http://127.0.0.1:{g.api_port}/metrics"

        def scrape():
            try:
                text = urllib.request.urlopen(url, timeout=2).read().decode()
            except OSError:
                return None
            return text if "asgd_instance_healthy{" in text and "asgd_average_load{" in text else None
        text = wait_until(scrape, 30, what="/metrics with an instance and its load")
        families = set(re.findall(r"^# TYPE (\S+) ", text, re.M))
        assert "asgd_controller_last_tick_timestamp_seconds" in families, families
        g.stop(p)
    finally:
        g.cleanup()
    exported = families | {"up"}
    print(f"/metrics: {len(families)} families")

    # --- alert rules ---------------------------------------------------------------------------
    rules = os.path.join(PROM, "asgd-alerts.yml")
    text = open(rules).read()
    exprs = []
    try:
        import yaml  # Debian's python3-yaml, when present
        doc = yaml.safe_load(text)
        alerts = [r for grp in doc["groups"] for r in grp["rules"]]
        assert all("alert" in r and "expr" in r and "labels" in r for r in alerts)
        exprs = [r["expr"] for r in alerts]
        names = [r["alert"] for r in alerts]
    except ImportError:
        names = re.findall(r"^\s+- alert: (\w+)", text, re.M)
        exprs = re.findall(r"expr: >-\n((?:\s{10}.*\n)+)|expr: (.*)", text)
        exprs = ["".join(e) for e in exprs]
    for want in ("AsgdControllerNoTick", "AsgdProviderFailing", "AsgdGroupBelowMin",
                 "AsgdAgentsUnhealthy"):
        assert want in names, f"no {want} alert in {rules}"
    for e in exprs:
        unknown = {family_of(n) for n in metric_names(e)} - exported
        assert not unknown, f"alert expression names metrics asgd does not export: {unknown}\n{e}"
    promtool = shutil.which("promtool")
    if promtool:
        r = subprocess.run([promtool, "check", "rules", rules], capture_output=True, text=True)
        assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
        r = subprocess.run([promtool, "test", "rules", "asgd-alerts.test.yml"], cwd=PROM,
                           capture_output=True, text=True)
        assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
        print(f"promtool: check rules and test rules clean ({len(names)} alerts)")
    else:
        print("promtool missing: rules checked for structure and names only")

    # --- dashboard -----------------------------------------------------------------------------
    dash = json.load(open(DASH))
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 30
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = dash["panels"]
    ids = [pn["id"] for pn in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    used = set()
    for pn in panels:
        assert {"x", "y", "w", "h"} <= set(pn["gridPos"]), pn["title"]
        assert pn["gridPos"]["x"] + pn["gridPos"]["w"] <= 24, pn["title"]
        if pn["type"] == "row":
            continue
        assert pn["datasource"]["uid"] == "${datasource}", pn["title"]
        assert pn["targets"], pn["title"]
        for t in pn["targets"]:
            assert t["datasource"]["uid"] == "${datasource}"
            names = {family_of(n) for n in metric_names(t["expr"])}
            unknown = names - exported
            assert not unknown, f"panel {pn['title']!r} names unknown metrics {unknown}"
            used |= names
    for v in ("job", "instance", "group"):
        unknown = {family_of(n) for n in metric_names(variables[v]["definition"])} - exported
        assert not unknown, f"variable {v}: {unknown}"
    missing = families - used
    assert not missing, f"exported families not on the dashboard: {sorted(missing)}"
    print(f"dashboard: {len(panels)} panels cover all {len(families)} families")
    return 0


if __name__ == "__main__":
    sys.exit(main())
