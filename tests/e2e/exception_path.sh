#!/usr/bin/env bash
# End to end: the kernel interface of a port (exception path, net_tap). ferrovs runs in its
# namespace with dp0's kernel interface; the balancer's kernel there owns 192.0.2.1 too.
# Checks: the interface carries dp0's MAC, MTU and addresses (and follows fvs addr add/del);
# a TCP service of the kernel at 192.0.2.1 is reached from the client through dp0; the
# kernel pings the client (ARP and echo out through the tap and dp0, replies back through
# the exception path); ferrovs still answers ping and ARP itself (its counters, the kernel's
# untouched); a bounded SYN flood at 192.0.2.1 from documentation sources stays within the
# rate limit (drops counted, the kernel receives at most rate x time + burst) while HTTP
# through a NAT VIP keeps working; fvs link show (-s, --json) shows all of it; the interface
# is gone when ferrovs stops.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
trap fvs_cleanup EXIT
# has TEXT WANT: WANT is in TEXT (not `cmd | grep -q`: under pipefail the writer may die of
# SIGPIPE when grep stops reading early, and a match would count as a failure).
has() { [[ "$1" == *"$2"* ]]; }

id="ex$((RANDOM % 100000))"
dir=$(fvs_tmpdir)
socket="$dir/fvs.sock"
tools="$(fvs_root)/tests/e2e/tools"
kif="${id}k0"
rate=500 burst=200 flood=30000
# FVS_EXCEPTION_WORKERS=2: two workers, each with its own queue pair of the tap and its own
# bucket (the bound doubles).
workers=${FVS_EXCEPTION_WORKERS:-1}
fvs_lb_topology "$id" 1
# The balancer's kernel owns 192.0.2.1 (on the tap): it must not hear it on dp0's veth too.
fvs_kernel_deaf "$NS_LB" "$IF_LB0"
fvs_config_head "$id" false "$workers" \
  | sed "s|^\(  - { name: dp0, device: \"[^\"]*\"\) }|\1, kernel: { name: $kif, device: tap, rate_pps: $rate, burst: $burst } }|" \
  >"$dir/ferrovs.yaml"
cat >>"$dir/ferrovs.yaml" <<YAML
  - { port: dp1, addr: 198.51.100.1/24 }
services:
  - { vip: 192.0.2.100, port: 80, protocol: tcp, backends: [ { addr: 198.51.100.11, port: 8080 } ] }
api: { socket: $socket }
YAML
has "$(cat "$dir/ferrovs.yaml")" "kernel: { name: $kif" || { echo "FAIL: no kernel block in the config" >&2; exit 1; }
fvs_backends_start "$dir"
fvs_start "$NS_LB" "$dir/ferrovs.yaml" "$socket" "$dir/ferrovs.log"
fvs_lb_test_helpers
lbns() { ip netns exec "$NS_LB" "$@"; }
kaddrs() { ip -n "$NS_LB" addr show dev "$kif"; }
kernel_rx() { ip -n "$NS_LB" -s -j link show dev "$kif" | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)[0]['stats64']['rx']['packets'])"; }
link_json() { fvs --json link show -s >"$dir/link.json"; json "$dir/link.json" "[l for l in d if l['name'] == 'dp0'][0]$1"; }

# The interface: dp0's MAC and MTU, up, with dp0's address.
mac=$(link_json "['mac']")
ip -n "$NS_LB" -j link show dev "$kif" >"$dir/kif.json"
expect "$dir/kif.json" "d[0]['address']" "$mac" "the kernel interface carries dp0's MAC"
expect "$dir/kif.json" "d[0]['mtu']" 1500 "the kernel interface carries dp0's MTU"
expect "$dir/kif.json" "'UP' in d[0]['flags']" True "the kernel interface is up (dp0's link is)"
has "$(kaddrs)" "inet 192.0.2.1/24" || fail "no 192.0.2.1/24 on $kif: $(kaddrs)"
[ "$(link_json "['kernel']['name']")" = "$kif" ] || fail "link show --json: $(cat "$dir/link.json")"
[ "$(link_json "['kernel']['device']")" = tap ] || fail "link show --json device: $(cat "$dir/link.json")"
has "$(fvs link show)" "kernel $kif <UP> device tap" || fail "link show: $(fvs link show)"

# Addresses follow fvs addr add/del.
fvs addr add 192.0.2.5/24 dev dp0 || fail "addr add"
has "$(kaddrs)" "inet 192.0.2.5/24" || fail "192.0.2.5 not added to $kif: $(kaddrs)"
fvs addr del 192.0.2.5/24 dev dp0 || fail "addr del"
if has "$(kaddrs)" "192.0.2.5/"; then fail "192.0.2.5 not removed from $kif: $(kaddrs)"; fi
has "$(kaddrs)" "inet 192.0.2.1/24" || fail "192.0.2.1/24 went with 192.0.2.5: $(kaddrs)"

# A TCP service of the kernel at the box's address, reached from the client through dp0.
# Started by `ip netns exec` itself (not through the lbns function, whose background subshell
# would be the PID recorded, leaving the server behind at cleanup).
ip netns exec "$NS_LB" /usr/bin/python3 -c "
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('192.0.2.1', 2222)); s.listen(64); print('ready', flush=True)
while True:
    c, peer = s.accept(); c.sendall(b'kernel-service peer=%s\n' % peer[0].encode()); c.close()
" >"$dir/ksvc.out" 2>&1 &
FVS_PIDS+=($!)
fvs_wait_ready "$dir/ksvc.out" "the kernel's TCP service"
kernel_service() {
  ip netns exec "$NS_CLIENT" /usr/bin/python3 -c "
import socket
s = socket.create_connection(('192.0.2.1', 2222), timeout=3); print(s.recv(100).decode().strip())" 2>&1 || true
}
got=$(kernel_service)
[ "$got" = "kernel-service peer=192.0.2.2" ] || fail "the kernel's TCP service through dp0: '$got'"
[ "$(counter to_kernel)" -gt 0 ] && [ "$(counter from_kernel)" -gt 0 ] || fail "to_kernel/from_kernel not counted"

# The kernel pings the client: its ARP and echo requests go out of dp0, the replies come back.
lbns ping -c 3 -i 0.2 -W 2 192.0.2.2 >"$dir/kping.out" || fail "the kernel cannot ping the client: $(cat "$dir/kping.out")"
has "$(ip -n "$NS_LB" neigh show dev "$kif")" "192.0.2.2 lladdr" || fail "the kernel has no neighbour entry for the client"

# ferrovs still answers ping and ARP itself: its counters grow, the kernel's do not.
echo_before=$(counter icmp_echo_replies_out) arp_before=$(counter arp_replies_out)
kernel_echos=$(fvs_nstat "$NS_LB" IcmpInEchos)
ip -n "$NS_CLIENT" neigh flush dev "$IF_CLIENT"
ip netns exec "$NS_CLIENT" ping -c 3 -i 0.2 -W 2 192.0.2.1 >"$dir/ping.out" || fail "ping 192.0.2.1: $(cat "$dir/ping.out")"
[ $(( $(counter icmp_echo_replies_out) - echo_before )) -ge 3 ] || fail "ferrovs did not answer the pings itself"
[ $(( $(counter arp_replies_out) - arp_before )) -ge 1 ] || fail "ferrovs did not answer the client's ARP itself"
[ "$(fvs_nstat "$NS_LB" IcmpInEchos)" = "$kernel_echos" ] || fail "echo requests reached the kernel: IcmpInEchos $kernel_echos -> $(fvs_nstat "$NS_LB" IcmpInEchos)"

# A bounded flood at the box's address, VIP traffic at the same time.
rx_before=$(kernel_rx) limited_before=$(counter drop_kernel_rate_limited) to_before=$(counter to_kernel)
ip netns exec "$NS_CLIENT" /usr/bin/python3 "$tools/flood.py" 192.0.2.1 2223 --count "$flood" >"$dir/flood.json" &
flood_pid=$!
start=$(date +%s.%N)
client http http://192.0.2.100/ --count 50 >"$dir/vip.json"
wait "$flood_pid" || fail "flood.py failed"
sleep 0.5  # what ferrovs still held has gone to the kernel or been dropped
elapsed=$(/usr/bin/python3 -c "import time; print($(date +%s.%N) - $start)")
expect "$dir/flood.json" "d['sent']" "$flood" "flood sent"
expect "$dir/vip.json" "d['ok']" 50 "HTTP through the VIP during the flood"
limited=$(( $(counter drop_kernel_rate_limited) - limited_before ))
to_kernel=$(( $(counter to_kernel) - to_before ))
kernel_got=$(( $(kernel_rx) - rx_before ))
bound=$(/usr/bin/python3 -c "import math; print($workers * (math.ceil($rate * $elapsed) + $burst))")
echo "flood: $(cat "$dir/flood.json"), $elapsed s: to_kernel $to_kernel, rate-limited $limited, kernel received $kernel_got (bound $bound)"
[ "$limited" -gt 0 ] || fail "no frame was rate-limited"
[ "$to_kernel" -le "$bound" ] || fail "ferrovs passed $to_kernel frames to the kernel, more than $bound"
[ "$kernel_got" -le "$bound" ] || fail "the kernel received $kernel_got frames, more than $bound"
# af_packet loses part of a flood this fast before ferrovs reads it; most of the rest is held back.
[ "$limited" -ge $(( flood / 4 )) ] || fail "only $limited of the $flood flood frames were rate-limited"
[ "$(link_json "['kernel']['stats']['rate_limited'] >= $limited")" = True ] || fail "link show -s: $(cat "$dir/link.json")"
has "$(fvs link show -s)" "KERNEL:" || fail "link show -s: $(fvs link show -s)"
# After it, the kernel's own service answers again.
sleep 0.5
got=$(kernel_service)
[ "$got" = "kernel-service peer=192.0.2.2" ] || fail "the kernel's TCP service after the flood: '$got'"

fvs_stop "$FVS_DAEMON_PID" || fail "ferrovs did not stop on SIGTERM"
if ip -n "$NS_LB" link show dev "$kif" >/dev/null 2>&1; then fail "$kif is left after ferrovs stopped"; fi
echo "ok: kernel interface with dp0's MAC/MTU/addresses, kernel TCP service and ping through dp0, ferrovs answers ping/ARP itself, flood of $flood held to the rate ($kernel_got <= $bound to the kernel, $limited dropped) with the VIP serving"
