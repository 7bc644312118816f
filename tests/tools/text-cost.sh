#!/usr/bin/env bash
# Bytes on the wire of one short text end to end: the sender's `send`, the
# recipient's `sync` (receiving it and sending its receipt), and the sender's
# next `sync` (receiving the receipt), against an idle `sync` for comparison.
# Usage: tests/tools/text-cost.sh DIR   (DIR holds tropa and tropa-relay, e.g. target/debug)
# The relay sits behind a counting UDP proxy (udp-count-proxy.py); figures are UDP
# payload bytes through it, client to relay ("up") and back ("down"). Loopback only.
set -e
T=$1
W=$(mktemp -d)
export TROPA_PASSPHRASE="plover gasket violin orchard"
$T/tropa-relay init --data $W/r --listen 127.0.0.1:47121 >/dev/null
$T/tropa-relay run --data $W/r > $W/r.out 2>$W/r.err </dev/null &
for i in $(seq 50); do [ -s $W/r.out ] && break; sleep 0.1; done
python3 "$(dirname "$0")/udp-count-proxy.py" 47131 47121 $W/r.count >/dev/null 2>&1 &
sleep 0.3
R=$(head -1 $W/r.out | sed "s/:47121\$/:47131/")
P() { $T/tropa --home $W/$1 "${@:2}"; }
for n in alice bob; do P $n init --name $n --relay "$R" --kdf-memory-mib 1 --kdf-passes 1 2>/dev/null; done
LINK=$(P alice invite --name bob 2>/dev/null)
echo "$LINK" | P bob accept --name alice >/dev/null 2>&1
P alice sync >/dev/null 2>&1; P bob sync >/dev/null 2>&1
total() { awk '{print $1, $2}' $W/r.count; }
step() { # label command...
  sleep 0.5; read u0 d0 < <(total)
  "${@:2}" 2>&1 | sed "s/^/    /" || true
  sleep 0.5; read u1 d1 < <(total)
  echo "$1: $((u1-u0)) up, $((d1-d0)) down"
}
step "idle sync (bob)" P bob sync
step "bob: send alice 'hi'" sh -c "echo hi | $T/tropa --home $W/bob send alice"
step "alice: sync (text in, receipt out)" P alice -v sync
step "bob: sync (receipt in)" P bob -v sync
pkill -f "$W" ; sleep 0.5; rm -rf $W
