#!/usr/bin/env bash
# Bytes on the wire of `tropa send` for a profile with 20 contacts on two relays.
# Usage: tests/tools/send-cost.sh DIR   (DIR holds tropa and tropa-relay, e.g. target/debug)
# Each relay sits behind a counting UDP proxy (udp-count-proxy.py); the figures are
# UDP payload bytes through both proxies while one `tropa send` runs. Loopback only.
set -e
T=$1
W=$(mktemp -d)
export TROPA_PASSPHRASE="plover gasket violin orchard"
start_relay() { # name port proxyport
  $T/tropa-relay init --data $W/$1 --listen 127.0.0.1:$2 >/dev/null
  $T/tropa-relay run --data $W/$1 > $W/$1.out 2>$W/$1.err </dev/null &
  for i in $(seq 50); do [ -s $W/$1.out ] && break; sleep 0.1; done
  python3 "$(dirname "$0")/udp-count-proxy.py" $3 $2 $W/$1.count >/dev/null 2>&1 &
  sleep 0.3
  head -1 $W/$1.out | sed "s/:$2\$/:$3/"
}
RA=$(start_relay ra 47101 47111)
RB=$(start_relay rb 47102 47112)
P() { $T/tropa --home $W/$1 "${@:2}"; }
P me init --name Me --relay "$RA" --kdf-memory-mib 1 --kdf-passes 1 2>/dev/null
for i in $(seq 20); do
  R=$RA; [ $i -gt 10 ] && R=$RB
  P c$i init --name C$i --relay "$R" --kdf-memory-mib 1 --kdf-passes 1 2>/dev/null
  LINK=$(P me invite --name c$i 2>/dev/null)
  P c$i accept "$LINK" --name me >/dev/null 2>&1
done
P me sync >/dev/null 2>&1 || true
total() { cat $W/ra.count $W/rb.count | awk '{u+=$1; d+=$2} END {print u, d}'; }
for target in c15 c3 c15 c3; do
  sleep 0.5; read u0 d0 < <(total)
  P me send $target "hello there" >/dev/null 2>&1
  sleep 0.5; read u1 d1 < <(total)
  echo "send to $target: $((u1-u0)) up, $((d1-d0)) down, $((u1-u0+d1-d0)) total"
done
pkill -f "$W" ; sleep 0.5; rm -rf $W
