#!/usr/bin/env bash
# End to end: real kernel ping/arping from namespaces against ferrovs on af_packet veths.
# ARP and NDP answers, ICMP echo on both ports and families, a reply routed via a gateway,
# silence for addresses not owned, live address changes, and the counters that show it.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
trap fvs_cleanup EXIT

id="fe$((RANDOM % 100000))"
dir=$(fvs_tmpdir)
socket="$dir/fvs.sock"
fvs_topology "$id"
fvs_write_config "$dir/ferrovs.yaml" "$id" "$socket" false
fvs_start "$NS_LB" "$dir/ferrovs.yaml" "$socket" "$dir/ferrovs.log"
fvs() { "$(fvs_bin fvs)" --socket "$socket" "$@"; }
fail() { echo "FAIL: $*" >&2; cat "$dir/ferrovs.log" >&2; exit 1; }
in_client() { ip netns exec "$NS_CLIENT" "$@"; }
counter() { fvs --json stats | python3 -c "import json,sys; print(json.load(sys.stdin)['total'].get('$1', 0))"; }

lb_mac=$(ip -n "$NS_LB" link show "$IF_LB0" | awk '/link\/ether/ {print $2}')

in_client ping -c 3 -i 0.2 -W 2 192.0.2.1 >/dev/null || fail "ping 192.0.2.1"
out=$(in_client arping -c 3 -w 5 -I "$IF_CLIENT" 192.0.2.1) || fail "arping 192.0.2.1: $out"
echo "$out" | grep -qi "Received 3 response" || fail "arping got: $out"
echo "$out" | grep -qi "\[$lb_mac\]" || fail "arping reply is not from dp0's MAC $lb_mac: $out"
in_client ping -6 -c 3 -i 0.2 -W 2 2001:db8:1::1 >/dev/null || fail "ping -6 2001:db8:1::1"
in_client ping -c 3 -i 0.2 -W 2 -I 203.0.113.10 192.0.2.1 >/dev/null || fail "ping from 203.0.113.10 (routed via 192.0.2.2)"
ip netns exec "$NS_SERVER" ping -c 3 -i 0.2 -W 2 198.51.100.1 >/dev/null || fail "ping 198.51.100.1 on dp1"
# dp1's address must not be answered on dp0 (no ARP flux).
if in_client arping -c 2 -w 2 -I "$IF_CLIENT" 198.51.100.1 >/dev/null; then fail "dp1's address answered ARP on dp0"; fi
if in_client ping -c 1 -W 1 192.0.2.99 >/dev/null; then fail "192.0.2.99 is not ferrovs' address but answered"; fi

[ "$(counter icmp_echo_replies_out)" -ge 12 ] || fail "icmp_echo_replies_out $(counter icmp_echo_replies_out) < 12"
[ "$(counter arp_replies_out)" -ge 3 ] || fail "arp_replies_out < 3"
[ "$(counter nd_adverts_out)" -ge 1 ] || fail "nd_adverts_out < 1"
[ "$(counter drop_arp_not_for_us)" -ge 3 ] || fail "drop_arp_not_for_us $(counter drop_arp_not_for_us) < 3"
client_mac=$(ip -n "$NS_CLIENT" link show "$IF_CLIENT" | awk '/link\/ether/ {print $2}')
fvs neigh show | grep -q "^192.0.2.2 dev dp0 lladdr $client_mac REACHABLE" || fail "neigh show: $(fvs neigh show)"
fvs neigh show | grep -q "^2001:db8:1::2 dev dp0 lladdr $client_mac" || fail "neigh show (v6): $(fvs neigh show)"
rx=$(fvs --json link show -s | python3 -c "import json,sys; print(json.load(sys.stdin)[0]['stats']['rx_packets'])")
[ "$rx" -ge 20 ] || fail "dp0 rx_packets $rx < 20"

# Live change: a new address answers at once, a removed one goes silent.
fvs addr add 192.0.2.50/24 dev dp0 || fail "addr add"
in_client ping -c 2 -i 0.2 -W 2 192.0.2.50 >/dev/null || fail "ping the added 192.0.2.50"
fvs addr del 192.0.2.50/24 dev dp0 || fail "addr del"
in_client ip neigh flush dev "$IF_CLIENT"
if in_client ping -c 1 -W 1 192.0.2.50 >/dev/null; then fail "192.0.2.50 still answers after addr del"; fi
in_client ping -c 1 -W 2 192.0.2.1 >/dev/null || fail "192.0.2.1 stopped answering after the change"

fvs_stop "$FVS_DAEMON_PID" || fail "ferrovs did not stop on SIGTERM"
[ ! -e "$socket" ] || fail "API socket left behind"
[ ! -d "/var/run/dpdk/ferrovs-$id" ] || fail "DPDK runtime dir left behind"
echo "ok: ping, arping, ping -6, routed reply, second port, silence, live address change"
