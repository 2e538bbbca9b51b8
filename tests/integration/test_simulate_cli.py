"""`asgd simulate` as a tool: defaults, stdin, --set, -v with --json, --compare/--variant,
--sweep, --csv, --plot (the SVG rendered by headless Chromium, its screenshot checked), and the
clear errors for bad input."""
import csv
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib

import testtmp

SRC = os.environ.get("ASGD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("ASGD_BUILD_DIR", "build")
BIN = os.environ.get("ASGD_BIN", os.path.join(BUILD, "bin"))
ASGD = os.path.join(BIN, "asgd")
TRACES = os.path.join(SRC, "examples", "traces")
DIURNAL = os.path.join(TRACES, "diurnal.csv")


def run(*args, stdin=None, code=0):
    r = subprocess.run([ASGD, "simulate", *args], input=stdin, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == code, f"{args}: exit {r.returncode}, want {code}: {r.stderr}"
    return r


def png_pixels(path):
    """(width, height, rows of bytes) of an 8-bit RGB/RGBA non-interlaced PNG (Chromium's)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    rows, prev = [], bytearray(stride)
    for y in range(h):
        ft = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            if ft == 1:
                line[i] = (line[i] + a) & 255
            elif ft == 2:
                line[i] = (line[i] + b) & 255
            elif ft == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ft == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


def check_svg_in_chromium(svg, tmp):
    assert os.access("/usr/bin/chromium", os.X_OK), "Debian chromium is not installed"
    shot = os.path.join(tmp, "plot.png")
    profile = os.path.join(tmp, "profile")
    r = subprocess.run(["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
                        f"--user-data-dir={profile}", "--hide-scrollbars",
                        "--window-size=960,760", f"--screenshot={shot}", "file://" + svg],
                       capture_output=True, text=True, timeout=120)
    assert os.path.exists(shot), f"no screenshot: {r.stderr[-2000:]}"
    w, h, bpp, rows = png_pixels(shot)
    colors = {}
    for y in range(0, h, 2):
        row = rows[y]
        for x in range(0, w * bpp, 2 * bpp):
            px = row[x:x + 3]
            colors[px] = colors.get(px, 0) + 1
    total = sum(colors.values())
    white = colors.get(b"\xff\xff\xff", 0)
    # the demand line is blue (#1565c0), violation bands reddish, in-service green
    blue = sum(v for k, v in colors.items() if k[2] > 150 and k[0] < 80 and k[1] < 140)
    red = sum(v for k, v in colors.items() if k[0] > 200 and k[1] < 200 and k[2] < 200)
    green = sum(v for k, v in colors.items() if k[1] > 100 and k[0] < 80 and k[2] < 80)
    print(f"screenshot {w}x{h}: {len(colors)} colours, white {white / total:.0%}, "
          f"blue {blue}, red {red}, green {green}")
    assert len(colors) > 20 and white < 0.97 * total, "the screenshot is (nearly) blank"
    assert blue > 50 and green > 50 and red > 50, "demand, in service or violations not drawn"
    shutil.copy(shot, os.path.join(BUILD, "simulate-plot.png"))


def main():
    tmp = testtmp.mkdtemp("asgd-sim-")
    try:
        # without -c: the model's defaults, min 2 / max 20
        out = run("--trace", DIURNAL).stdout
        assert "(min 2, max 20, boot 60 s, poll 5 s)" in out, out
        # - reads stdin, and gives the same figures
        with open(DIURNAL) as f:
            text = f.read()
        a = json.loads(run("--trace", DIURNAL, "--json").stdout)
        b = json.loads(run("--trace", "-", "--json", stdin=text).stdout)
        assert a == b
        # -v with --json: the JSON stays valid, the actions go to stderr
        r = run("--trace", DIURNAL, "--json", "-v", "--set", "policy.type=target")
        j = json.loads(r.stdout)
        assert r.stderr.count("t=") == j["actions"] and "target 60%" in r.stderr, r.stderr[:300]
        # a huge demand: a clear error, not inf in the JSON
        r = run("--trace", "-", "--json", stdin="t,demand\n0,1e308\n10,1\n", code=1)
        assert "beyond the limit" in r.stderr, r.stderr
        # --set reaches min, max and the policy's parameters
        j = json.loads(run("--trace", DIURNAL, "--json", "--set", "min=4", "--set", "max=6").stdout)
        assert j["cost"] >= 4 * j["seconds"] and j["cost"] <= 6 * j["seconds"]
        # bad input: clear errors naming what is wrong
        for args, want in [
            (["--set", "policy.target=abc"], "policy.target: must be a number"),
            (["--set", "policy.target=500"], "500 must be above 0 and at most 100"),
            (["--set", "policy.nope=1"], "nope"),
            (["--set", "min=30"], "min_size 30 > max_size 20"),
            (["--set", "policy.type=magic"], "unknown policy type \"magic\""),
            (["--set", "target"], "expected KEY=VALUE"),
            (["--sweep", "policy.target=80:50:5"], "need FROM <= TO and STEP > 0"),
            (["--sweep", "policy.target=5"], "expected KEY=FROM:TO:STEP"),
            (["--sweep", "policy.target=1:1000000:1"], "at most"),
            (["--variant", ","], "no KEY=VALUE"),
            (["--compare", "/nonexistent.ini"], "/nonexistent.ini"),
        ]:
            r = run("--trace", DIURNAL, *args, code=1)
            assert want in r.stderr, f"{args}: {r.stderr}"
        r = run("--trace", "/nonexistent.csv", code=1)
        assert "/nonexistent.csv: cannot open" in r.stderr
        run("--set", "min=1", code=2)  # no trace

        # --compare files and --variant: one table, best of each column marked
        ini = os.path.join(tmp, "target.ini")
        with open(ini, "w") as f:
            f.write("[group]\nname = t\nmin_size = 2\nmax_size = 20\n[policy]\ntype = target\n")
        out = run("--trace", DIURNAL, "--compare", ini, "--variant", "policy.type=threshold",
                  "--variant", "policy.type=target,policy.scale_down_window=3600s").stdout
        print(out)
        lines = [l for l in out.splitlines() if l.startswith(("target.ini", "policy.type"))]
        assert len(lines) == 3 and out.count("*") >= 6 + 1, out
        j = json.loads(run("--trace", DIURNAL, "--json", "--compare", ini, "--variant",
                           "policy.type=threshold").stdout)
        single = json.loads(run("--trace", DIURNAL, "--json", "--set", "policy.type=target").stdout)
        assert j[0]["cost"] == single["cost"] and j[0]["policy"] == "target"

        # --sweep: the grid, its Pareto front
        out = run("--trace", DIURNAL, "--set", "policy.type=target", "--sweep",
                  "policy.target=50:80:10", "--sweep", "policy.scale_down_window=60:300:240").stdout
        print(out)
        assert "Pareto front" in out and len([l for l in out.splitlines()
                                              if l.startswith(("50 ", "60 ", "70 ", "80 "))]) == 8
        grid = json.loads(run("--trace", DIURNAL, "--json", "--set", "policy.type=target",
                              "--sweep", "policy.target=50:80:10").stdout)
        assert [g["policy.target"] for g in grid] == [50, 60, 70, 80]
        front = [g for g in grid if g["pareto"]]
        for g in grid:  # nothing on the front is dominated, everything off it is
            dominated = any(h["cost_ratio"] <= g["cost_ratio"] and
                            h["violation_pct"] <= g["violation_pct"] and
                            (h["cost_ratio"] < g["cost_ratio"] or
                             h["violation_pct"] < g["violation_pct"]) for h in grid)
            assert dominated != g["pareto"], g
        assert front

        # --csv: one row per second, consistent with the JSON's figures
        path = os.path.join(tmp, "run.csv")
        j = json.loads(run("--trace", DIURNAL, "--json", "--csv", path).stdout)
        with open(path) as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == j["seconds"]
        assert sum(int(r["in_service"]) + int(r["booting"]) for r in rows) == j["cost"]
        assert sum(int(r["violation"]) for r in rows) == j["violation_s"]
        assert list(rows[0].keys()) == ["t", "demand", "desired", "in_service", "booting",
                                        "load", "violation"]

        # --plot: a self-contained SVG, one panel per policy, that Chromium renders
        svg = os.path.join(tmp, "plot.svg")
        run("--trace", os.path.join(TRACES, "flash.csv"), "--plot", svg, "--variant",
            "policy.type=threshold", "--variant", "policy.type=target")
        with open(svg) as f:
            s = f.read()
        assert s.count("cost ratio") == 2 and "http://www.w3.org/2000/svg" in s
        assert "<script" not in s and "href=" not in s, "the SVG is not self-contained"
        check_svg_in_chromium(svg, tmp)
        print("OK")
    finally:
        testtmp.finish(tmp)  # kept when the test fails


if __name__ == "__main__":
    sys.exit(main())
