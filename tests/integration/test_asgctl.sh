#!/bin/bash
# asgctl against a running asgd (local provider): every subcommand in human and --json output,
# and the exit codes scripts rely on: 0 ok, 1 asgd refused (with its message), 2 usage,
# 3 asgd unreachable, 4 token missing or rejected.
set -u
BIN=${ASGD_BIN:-build/bin}
PY=/usr/bin/python3
dir=$(mktemp -d /tmp/asgd-ctl-XXXXXX)
name="ctl$$-$RANDOM"
name2="$name-w2"  # the group created by create-group: unique too, its fleet table is in /dev/shm
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
api_port=$(free_port); mon_port=$(free_port); agent_port=$(free_port)
base="127.$((RANDOM % 240 + 5)).$((RANDOM % 250 + 1)).2"
echo "ctl-token-$$" > "$dir/token"; chmod 600 "$dir/token"
echo "not-the-token" > "$dir/bad-token"
echo 50 > "$dir/load"
cat > "$dir/asgd.ini" <<EOF
[group]
name = $name
min_size = 1
max_size = 4

[policy]
type = threshold
evaluation_period = 3s
cooldown = 3s

[health]
interval = 500ms
timeout = 300ms
healthy_threshold = 2
unhealthy_threshold = 3
grace_period = 2s

[monitor]
listen = 127.0.0.1:$mon_port
agent_port = $agent_port

[local]
agent_args = --load file:$dir/load
address_base = $base

[store]
dir = $dir/state

[api]
listen = 127.0.0.1:$api_port
token_file = $dir/token
EOF

"$BIN/asgd" -c "$dir/asgd.ini" > "$dir/asgd.log" 2>&1 &
asgd_pid=$!

cleanup() {
  local rc=$?
  kill "$asgd_pid" 2>/dev/null; wait "$asgd_pid" 2>/dev/null
  for f in "$dir"/state/local/*.pid; do
    [ -f "$f" ] || continue
    pid=$(sed -n 's/^pid=//p' "$f"); [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
  done
  rm -f "/dev/shm/asgd-$name" "/dev/shm/asgd-$name2"
  # a failing run keeps its dir (asgd's log, the agents' logs), as the python harness does
  if [ "$rc" -ne 0 ] || [ "${ASGD_KEEP_TMP:-0}" != 0 ]; then
    echo "kept $dir" >&2
  else
    rm -rf "$dir"
  fi
}
trap cleanup EXIT

fails=0
URL="http://127.0.0.1:$api_port"
ctl() { "$BIN/asgctl" --url "$URL" "$@"; }

# expect CODE DESCRIPTION -- command...: runs it, keeps stdout in $out and stderr in $err
expect() {
  local want=$1 what=$2; shift 3
  "$@" > "$dir/out" 2> "$dir/err"; local rc=$?
  out=$(cat "$dir/out"); err=$(cat "$dir/err")
  if [ "$rc" != "$want" ]; then
    echo "FAIL: $what: exit $rc, want $want"; echo "  stdout: $out"; echo "  stderr: $err"
    fails=$((fails + 1)); return 1
  fi
  echo "ok: $what (exit $rc)"
}
contains() { # contains HAYSTACK NEEDLE WHAT
  case "$1" in *"$2"*) ;; *) echo "FAIL: $3: \"$2\" not in:"; echo "$1"; fails=$((fails + 1)) ;; esac
}
jq_py() { # jq_py JSON EXPR -> prints eval(EXPR) with j = parsed JSON
  $PY -c 'import json,sys; j=json.loads(sys.argv[1]); print(eval(sys.argv[2]))' "$1" "$2"
}

# wait for asgd and one healthy instance
for _ in $(seq 1 200); do
  n=$(ctl --json instances 2>/dev/null | $PY -c 'import json,sys; print(sum(1 for i in json.load(sys.stdin) if i["health"]=="healthy"))' 2>/dev/null)
  [ "${n:-0}" -ge 1 ] && break
  sleep 0.1
done
[ "${n:-0}" -ge 1 ] || { echo "FAIL: asgd did not come up"; cat "$dir/asgd.log"; exit 1; }

# --- reads: human and --json -------------------------------------------------------------
expect 0 "status" -- ctl status
contains "$out" "group         $name" "status names the group"
contains "$out" "min 1  desired 1  max 4" "status shows sizes"
contains "$out" "threshold: above 70% x2" "status shows the policy"
echo "$out" | sed 's/^/    /'
expect 0 "status --json" -- ctl --json status
[ "$(jq_py "$out" 'j["name"]')" = "$name" ] || { echo "FAIL: status --json name"; fails=$((fails+1)); }

expect 0 "instances" -- ctl instances
contains "$out" "ID" "instances header"; contains "$out" "LIFECYCLE" "instances header"
contains "$out" "$name-" "instances lists the instance"
contains "$out" "healthy" "instances shows health"
echo "$out" | sed 's/^/    /'
header_col=$(echo "$out" | head -1 | awk '{print index($0, "ADDRESS")}')
row_col=$(echo "$out" | sed -n 2p | awk -v b="$base" '{print index($0, substr(b, 1, 4))}')
[ "$header_col" = "$row_col" ] || { echo "FAIL: columns not aligned ($header_col vs $row_col)"; fails=$((fails+1)); }
expect 0 "instances --json" -- ctl instances --json
[ "$(jq_py "$out" 'len(j)')" = 1 ] || { echo "FAIL: instances --json length"; fails=$((fails+1)); }
id=$(jq_py "$out" 'j[0]["id"]')

expect 0 "activities" -- ctl activities --limit 5
contains "$out" "TIME" "activities header"; contains "$out" "launch" "activities shows the launch"
echo "$out" | sed 's/^/    /'
expect 0 "activities --json --limit 1" -- ctl --json activities --limit 1
[ "$(jq_py "$out" 'len(j)')" = 1 ] || { echo "FAIL: activities --limit 1"; fails=$((fails+1)); }

# --- auth ------------------------------------------------------------------------------------
expect 4 "set without token" -- ctl set max 3
contains "$err" "token" "message names the token"
expect 4 "set with a wrong token" -- ctl --token-file "$dir/bad-token" set max 3
contains "$err" "token rejected" "wrong token message"
expect 2 "unreadable token file" -- ctl --token-file "$dir/none" set max 3

# --- set -----------------------------------------------------------------------------------
expect 0 "set max 3" -- ctl --token-file "$dir/token" set max 3
contains "$out" "max 3" "set max output"
expect 0 "set desired 2 --json (token from env)" -- env ASGCTL_TOKEN_FILE="$dir/token" "$BIN/asgctl" --url "$URL" --json set desired 2
[ "$(jq_py "$out" 'j["desired_capacity"]')" = 2 ] || { echo "FAIL: set desired --json"; fails=$((fails+1)); }
expect 1 "set min 5 > max" -- ctl --token-file "$dir/token" set min 5
contains "$err" "min_size 5 > max_size 3" "API's message is shown"
expect 0 "set policy" -- ctl --token-file "$dir/token" set policy up_threshold=80 cooldown=5s scale_down_factor=0.25
contains "$out" "up_threshold=80" "set policy echoes the new values"
expect 0 "status --json after set policy" -- ctl status --json
[ "$(jq_py "$out" 'j["policy"]["up_threshold"]')" = 80.0 ] || { echo "FAIL: policy not changed"; fails=$((fails+1)); }
[ "$(jq_py "$out" 'j["policy"]["cooldown"]')" = 5s ] || { echo "FAIL: cooldown not changed"; fails=$((fails+1)); }
expect 1 "set policy unknown key" -- ctl --token-file "$dir/token" set policy speed=3
contains "$err" 'unknown key "policy.speed"' "unknown policy key message"
expect 1 "set policy bad value" -- ctl --token-file "$dir/token" set policy down_threshold=95
expect 2 "set min abc" -- ctl --token-file "$dir/token" set min abc
expect 2 "set colour 3" -- ctl --token-file "$dir/token" set colour 3
expect 2 "set policy without pairs" -- ctl --token-file "$dir/token" set policy
expect 2 "set policy bad pair" -- ctl --token-file "$dir/token" set policy up_threshold

# --- terminate -------------------------------------------------------------------------------
for _ in $(seq 1 200); do
  n=$(ctl --json instances | $PY -c 'import json,sys; print(sum(1 for i in json.load(sys.stdin) if i["health"]=="healthy" and i["lifecycle"]=="in-service"))')
  [ "$n" = 2 ] && break; sleep 0.1
done
[ "$n" = 2 ] || { echo "FAIL: desired 2 never reached"; fails=$((fails+1)); }
expect 1 "terminate unknown id" -- ctl --token-file "$dir/token" terminate i-nope
contains "$err" "i-nope" "404 message names the id"
expect 2 "terminate without id" -- ctl --token-file "$dir/token" terminate
expect 0 "terminate --decrement" -- ctl --token-file "$dir/token" terminate "$id" --decrement
contains "$out" "terminate of $id requested" "terminate output"
expect 0 "status --json after terminate" -- ctl status --json
[ "$(jq_py "$out" 'j["desired_capacity"]')" = 1 ] || { echo "FAIL: desired not decremented"; fails=$((fails+1)); }
id2=$(ctl --json instances | $PY -c 'import json,sys,os; print([i["id"] for i in json.load(sys.stdin) if i["id"]!=sys.argv[1]][0])' "$id")
expect 0 "terminate --json" -- ctl --token-file "$dir/token" --json terminate "$id2"
[ "$(jq_py "$out" 'j["decrement_desired"]')" = False ] || { echo "FAIL: terminate --json"; fails=$((fails+1)); }
# id2 was terminated without decrementing: its replacement is launched a moment after it is
# gone, so the group may list 0 instances (or 2) for a while; wait for the one replacement.
for _ in $(seq 1 100); do
  n=$(ctl --json instances 2>/dev/null | $PY -c 'import json,sys; print(len([i for i in json.load(sys.stdin) if i["id"] not in sys.argv[1:]]))' "$id" "$id2" 2>/dev/null)
  m=$(ctl --json instances 2>/dev/null | $PY -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null)
  [ "${n:-0}" = 1 ] && [ "${m:-0}" = 1 ] && break; sleep 0.1
done
[ "${m:-0}" = 1 ] || { echo "FAIL: the replacement of $id2 never stood alone ($m listed)"; fails=$((fails+1)); }

# --- many groups: -g, groups, cluster, create-group, delete-group ----------------------------
expect 0 "-g NAME status" -- ctl -g "$name" status
contains "$out" "group         $name" "-g status names the group"
expect 0 "--group=NAME instances --json" -- ctl --group="$name" --json instances
[ "$(jq_py "$out" 'len(j)')" = 1 ] || { echo "FAIL: -g instances --json length"; fails=$((fails+1)); }
expect 0 "ASGCTL_GROUP activities" -- env ASGCTL_GROUP="$name" "$BIN/asgctl" --url "$URL" activities --limit 2
contains "$out" "TIME" "ASGCTL_GROUP activities header"
expect 1 "-g unknown group" -- ctl -g nosuchgroup status
contains "$err" 'no group "nosuchgroup"' "404 message names the group"
expect 1 "-g unknown group set" -- ctl --token-file "$dir/token" -g nosuchgroup set max 3
expect 2 "-g bad name" -- ctl -g ../etc status
expect 2 "-g without a value" -- ctl status -g
expect 0 "groups" -- ctl groups
contains "$out" "NAME" "groups header"; contains "$out" "OWNER" "groups header"
contains "$out" "$name" "groups lists the group"
echo "$out" | sed 's/^/    /'
expect 0 "groups --json" -- ctl --json groups
[ "$(jq_py "$out" 'j[0]["name"]')" = "$name" ] || { echo "FAIL: groups --json"; fails=$((fails+1)); }
[ "$(jq_py "$out" 'j[0]["live"]')" = True ] || { echo "FAIL: groups --json live"; fails=$((fails+1)); }
expect 0 "cluster" -- ctl cluster
contains "$out" "mode   single" "cluster mode"; contains "$out" "$name" "cluster lists the group"
echo "$out" | sed 's/^/    /'
expect 0 "cluster --json" -- ctl cluster --json
[ "$(jq_py "$out" 'len(j["nodes"])')" = 1 ] || { echo "FAIL: cluster --json nodes"; fails=$((fails+1)); }
cat > "$dir/new.ini" <<EOF
[group]
name = $name2
min_size = 0
max_size = 2

[provider]
type = local
EOF
printf '[group]\nmin_size = 1\n' > "$dir/noname.ini"
printf '[group\nname = x\n' > "$dir/broken.ini"
expect 2 "create-group without a name" -- ctl --token-file "$dir/token" create-group "$dir/noname.ini"
contains "$err" "name" "create-group names the missing key"
expect 2 "create-group broken file" -- ctl --token-file "$dir/token" create-group "$dir/broken.ini"
contains "$err" "broken.ini:1" "create-group names the file and line"
expect 2 "create-group missing file" -- ctl --token-file "$dir/token" create-group "$dir/none.ini"
expect 2 "create-group without FILE" -- ctl --token-file "$dir/token" create-group
expect 4 "create-group without token" -- ctl create-group "$dir/new.ini"
# a group created from a file runs next to the first one; a second create is refused
expect 0 "create-group" -- ctl --token-file "$dir/token" create-group "$dir/new.ini"
expect 1 "create-group twice" -- ctl --token-file "$dir/token" create-group "$dir/new.ini"
contains "$err" "$name2" "create-group twice names the group"
expect 0 "groups lists both" -- ctl groups
contains "$out" "$name2" "groups shows the new group"
expect 1 "status without -g is ambiguous with two groups" -- ctl status
expect 0 "status -g $name2" -- ctl -g $name2 status
expect 0 "delete-group $name2" -- ctl --token-file "$dir/token" delete-group $name2
expect 0 "status is the one group again" -- ctl status
expect 2 "delete-group without NAME" -- ctl --token-file "$dir/token" delete-group
expect 2 "delete-group bad name" -- ctl --token-file "$dir/token" delete-group "a/b"
expect 4 "delete-group without token" -- ctl delete-group "$name" --force
expect 1 "delete-group unknown" -- ctl --token-file "$dir/token" delete-group nosuchgroup
contains "$err" "nosuchgroup" "delete-group 404 names the group"

# --- usage and reachability ------------------------------------------------------------------
expect 2 "no command" -- "$BIN/asgctl"
expect 2 "unknown command" -- ctl frobnicate
expect 0 "--help" -- "$BIN/asgctl" --help
contains "$out" "terminate ID [--decrement]" "help lists the commands"
dead=$(free_port)
expect 3 "asgd down" -- "$BIN/asgctl" --url "http://127.0.0.1:$dead" status
contains "$err" "cannot reach asgd at http://127.0.0.1:$dead: connection refused" "unreachable message"
expect 3 "ASGCTL_URL is used" -- env ASGCTL_URL="http://127.0.0.1:$dead" "$BIN/asgctl" instances
expect 0 "ASGCTL_URL is used (live)" -- env ASGCTL_URL="$URL" "$BIN/asgctl" status

if [ "$fails" -ne 0 ]; then
  echo "$fails check(s) failed"; echo "--- asgd log"; tail -40 "$dir/asgd.log"; exit 1
fi
echo OK
