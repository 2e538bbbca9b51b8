#!/usr/bin/env bash
# Bad config -> a clear error naming the file, the line and the key; check-config exits 0/1.
set -u
ASGD="${ASGD_BIN:-build/bin}/asgd"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail=0

expect_error() { # name, expected substring, file content
  local name=$1 want=$2
  printf '%s\n' "$3" >"$dir/$name.ini"
  out=$("$ASGD" check-config -c "$dir/$name.ini" 2>&1); rc=$?
  if [ $rc -ne 1 ] || ! grep -qF -- "$want" <<<"$out"; then
    echo "FAIL $name: rc=$rc, want '$want', got: $out"; fail=1
  else
    echo "ok   $name: $out"
  fi
}

expect_error min_gt_max "$dir/min_gt_max.ini:3: [group] min_size" \
'[group]
name = web
min_size = 5
max_size = 3'
expect_error unknown_key "$dir/unknown_key.ini:3: [group] colour: unknown key" \
'[group]
name = web
colour = blue'
expect_error unknown_section "$dir/unknown_section.ini:4:" \
'[group]
name = web

[bogus]
a = 1'
expect_error bad_duration "$dir/bad_duration.ini:2: [health] interval" \
'[health]
interval = 5 parsecs'
expect_error bad_number "$dir/bad_number.ini:2: [group] max_size" \
'[group]
max_size = lots'
expect_error bad_policy "$dir/bad_policy.ini:2: [policy] type" \
'[policy]
type = magic'
expect_error thresholds "$dir/thresholds.ini:3: [policy] scale_down_threshold" \
'[policy]
scale_up_threshold = 50
scale_down_threshold = 60'
expect_error syntax "$dir/syntax.ini:2:" \
'[group]
this line has no equals sign'
out=$("$ASGD" check-config -c "$dir/missing.ini" 2>&1); rc=$?
if [ $rc -ne 1 ] || ! grep -qF "$dir/missing.ini" <<<"$out"; then echo "FAIL missing: $out"; fail=1; else echo "ok   missing: $out"; fi

printf '[group]\nname = web\nmin_size = 1\nmax_size = 3\n' >"$dir/good.ini"
if ! "$ASGD" check-config -c "$dir/good.ini"; then echo "FAIL good config rejected"; fail=1; fi
for f in "${ASGD_SOURCE_DIR:-.}"/examples/*.ini; do
  "$ASGD" check-config -c "$f" >/dev/null || { echo "FAIL example $f"; fail=1; }
done
# asgd itself refuses to start with a bad file, with the same message
out=$("$ASGD" -c "$dir/min_gt_max.ini" 2>&1); rc=$?
if [ $rc -eq 0 ] || ! grep -qF "[group] min_size" <<<"$out"; then echo "FAIL daemon start: $out"; fail=1; fi
# usage errors
"$ASGD" frobnicate >/dev/null 2>&1; [ $? -eq 2 ] || { echo "FAIL unknown command exit code"; fail=1; }
"$ASGD" run >/dev/null 2>&1; [ $? -eq 2 ] || { echo "FAIL missing -c exit code"; fail=1; }
[ $fail -eq 0 ] && echo "all config checks passed"
exit $fail
