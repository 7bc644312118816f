#!/usr/bin/env bash
# Runs deploy/tropa-relay.service under a real systemd, as an operator would
# install it, on a machine without systemd as PID 1 (a CI box, a container):
# systemd boots in its own PID and mount namespaces, the relay is installed
# at /usr/local/bin and the unit in /etc/systemd/system, and then:
#   1. the unit starts, creates the data dir, and `tropa-relay check` /
#      `address` agree after setting public_host and restarting;
#   2. two `tropa` profiles connect and exchange a message through it;
#   3. deploy/README.md's backup and restore keep the address and a
#      waiting message;
#   4. the IP allow list is really enforced here (a drop-in that leaves out
#      loopback makes the relay unreachable), so steps 2-3 passing mean the
#      shipped list lets clients in.
# Everything systemd sees as writable state (/etc/systemd/system,
# /usr/local/bin, /var/lib, /run, /tmp, /var/tmp) is a tmpfs private to its
# mount namespace, so nothing is installed on this machine, and its boot-time
# cleaning (systemd-tmpfiles, which empties /tmp) never reaches the host's
# /tmp. Not part of `cargo test`: it needs root (namespaces, mounts).
#
# Usage: tests/tools/systemd-unit-check.sh [RELAY_BINARY [TROPA_BINARY]]
# (defaults: target/debug/tropa-relay, target/debug/tropa)
set -euo pipefail
cd "$(dirname "$0")/../.."
relay_bin=$(realpath "${1:-target/debug/tropa-relay}")
tropa_bin=$(realpath "${2:-target/debug/tropa}")
unit_src=$(realpath deploy/tropa-relay.service)
[ "$(id -u)" = 0 ] || { echo "needs root" >&2; exit 2; }
work=$(mktemp -d)
# Runs as PID 1 of the new namespaces, then becomes systemd.
boot='set -e
for d in /run /tmp /var/tmp /var/lib /etc/systemd/system /usr/local/bin; do
  mount -t tmpfs -o mode=0755 tmpfs "$d"
done
chmod 1777 /tmp /var/tmp
install -m 0755 "$RELAY_BIN" /usr/local/bin/tropa-relay
cp "$UNIT_SRC" /etc/systemd/system/tropa-relay.service
exec /lib/systemd/systemd --system --unit=basic.target'
RELAY_BIN=$relay_bin UNIT_SRC=$unit_src setsid unshare --pid --fork --mount --mount-proc \
  --propagation private sh -c "$boot" >"$work/systemd.log" 2>&1 </dev/null &
launcher=$!
# systemd is unshare's child (PID 1 inside); its own forks share its name,
# so it is found by parentage, not by name.
pid=
for _ in $(seq 50); do
  child=$(pgrep -P "$launcher" || true)
  if [ -n "$child" ] && tr '\0' ' ' <"/proc/$child/cmdline" 2>/dev/null | grep -q '^/lib/systemd/systemd '; then
    pid=$child
    break
  fi
  sleep 0.2
done
[ -n "$pid" ] || { echo "systemd did not start:" >&2; cat "$work/systemd.log" >&2; exit 1; }
S() { timeout 60 nsenter -t "$pid" -m -p "$@"; }
cleanup() {
  kill -9 "$pid" "$launcher" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 30); do
  state=$(S systemctl is-system-running 2>/dev/null || true)
  case $state in running | degraded) break ;; esac
  sleep 1
done
echo "systemd $(S systemctl --version | head -1 | cut -d' ' -f2) in namespace (pid $pid): $state"

S systemctl daemon-reload
S systemctl enable --now tropa-relay
sleep 1
S systemctl is-active tropa-relay
S sed -i 's/^# public_host = .*/public_host = "127.0.0.1"/' /var/lib/tropa-relay/relay.toml
S tropa-relay check --data /var/lib/tropa-relay
S systemctl restart tropa-relay
addr=$(S tropa-relay address --data /var/lib/tropa-relay)
echo "address: $addr"

export TROPA_PASSPHRASE="systemd unit check $(date +%s) plenty of words"
t() { TROPA_HOME=$work/$1 timeout 60 "$tropa_bin" "${@:2}"; }
t a init --name a --relay "$addr" >/dev/null
t b init --name b --relay "$addr" >/dev/null
t a invite --name b | t b accept --name a >/dev/null
t a sync >/dev/null
echo "through the unit" | t b send a >/dev/null
t a sync
t a read b | grep -q "through the unit"
echo "ok: message delivered through the relay under the shipped unit"

# deploy/README.md's backup and restore, with a message left waiting. The
# restore extracts as root-owned files (as on a fresh server, where the
# dynamic user's ID differs), which systemd must hand back to the relay.
echo "left waiting" | t b send a >/dev/null
S systemctl stop tropa-relay
S tar -C /var/lib/private -czf /var/tmp/tropa-relay-backup.tar.gz tropa-relay
S rm -rf /var/lib/private/tropa-relay
S tar -C /var/lib/private --no-same-owner -xzf /var/tmp/tropa-relay-backup.tar.gz
S systemctl start tropa-relay
restored=$(S tropa-relay address --data /var/lib/tropa-relay)
[ "$restored" = "$addr" ] || { echo "FAIL: address changed: $restored" >&2; exit 1; }
t a sync
t a read b | grep -q "left waiting"
echo "ok: backup, wipe, restore: same address, the waiting message delivered"

S mkdir -p /etc/systemd/system/tropa-relay.service.d
printf '[Service]\nIPAddressAllow=\nIPAddressAllow=192.0.2.0/24\n' |
  S tee /etc/systemd/system/tropa-relay.service.d/probe.conf >/dev/null
S systemctl daemon-reload
S systemctl restart tropa-relay
if t a sync >/dev/null 2>&1; then
  echo "FAIL: the IP allow list is not enforced here; step 2 proves nothing about it" >&2
  exit 1
fi
echo "ok: without loopback in IPAddressAllow the relay is unreachable (the filter is live)"
S journalctl -u tropa-relay --no-pager -o cat | grep -v "^tropa://" | tail -n 12
