#!/usr/bin/env bash
# End to end, IPv6: an IPv6-only client reaches three real HTTP/UDP backends (IPv6 addresses)
# through ferrovs' IPv6 VIPs (af_packet veths), in NAT, FullNAT (IPv6 local address), DR and
# TUN (IPv6-in-IPv6 and GUE over IPv6, decapsulated by tests/e2e/tools/decap.py; DR/TUN
# replies return through a router namespace). Checks:
# curl -6 and lbclient answered; round robin and weighted distribution exact; the backend sees
# the client (NAT) or the local address (FullNAT); ND answered for the VIP and the local
# address; a backend's ICMPv6 port unreachable reaches the client's socket; an ICMPv6 packet
# too big reaches the client (dp1's MTU is 1400) and its stack learns the path MTU; backends
# removed and added under load (reset ends only the removed backend's connections, drain
# keeps them); persistence; `conn list` and `service show` print [addr]:port; connections
# expire; mixed-family services are refused; the IPv6 VIPs are announced as kernel routes;
# DR and TUN round robin over TCP (curl -6) and UDP, the decapsulators saw both encapsulations, a packet too big for the tunnel tells the
# client the MTU less the tunnel's overhead; a backend's outbound TCP and UDP leave by SNAT.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
trap fvs_cleanup EXIT

id="v6$((RANDOM % 100000))"
dir=$(fvs_tmpdir)
socket="$dir/fvs.sock"
tools="$(fvs_root)/tests/e2e/tools"
vip=2001:db8:1::100
fvs_lb_topology "$id" 3
fvs_lb_ipv6
fvs_dsr_return "$id"
fvs_dsr_return_ipv6 "$id" 2001:db8:1::101 2001:db8:1::102 2001:db8:1::103
fvs_write_lb6_config "$dir/ferrovs.yaml" "$id" "$socket" 1400
echo "announce: { table: 100 }" >>"$dir/ferrovs.yaml"
fvs_backends_spawn "$dir" b backend.py @NAME@ --http "[::]:8080" --udp "[::]:5353"
fvs_decap_start "$dir" --gue 6080
fvs_outside6_start "$dir"
fvs_start "$NS_LB" "$dir/ferrovs.yaml" "$socket" "$dir/ferrovs.log"
fvs_lb_test_helpers
hold_start() {
  client hold "http://[$vip]/" --conns "$2" --ready-file "$dir/ready-$1" --go-file "$dir/go-$1" --timeout 30 >"$dir/$1.json" &
  hold_pid=$!
  for _ in $(seq 1 100); do [ -e "$dir/ready-$1" ] && break; sleep 0.1; done
  [ -e "$dir/ready-$1" ] || fail "hold client $1 did not get ready"
}
hold_finish() { touch "$dir/go-$1"; wait "$hold_pid" || true; }

# IPv6 VIPs are announced as /128 kernel routes for BIRD/FRR, like IPv4's /32s.
announced=$(ip -n "$NS_LB" -6 route show table 100 proto 250 | awk '{print $2}' | sort | tr '\n' ' ')
[ "$announced" = "2001:db8:1::100 2001:db8:1::101 2001:db8:1::102 2001:db8:1::103 " ] ||
  fail "announced IPv6 VIPs: '$announced' (want the four VIPs)"

# curl -6 through NAT: three requests, three backends (round robin), each sees the client.
for i in 1 2 3; do
  ip netns exec "$NS_CLIENT" curl -6 -sS --max-time 5 "http://[$vip]/" >>"$dir/curl.out" || fail "curl -6 to the VIP"
done
[ "$(awk '{print $1}' "$dir/curl.out" | sort -u | tr '\n' ' ')" = "backend=b1 backend=b2 backend=b3 " ] ||
  fail "curl -6 round robin: $(cat "$dir/curl.out")"
grep -c "peer=\[2001:db8:1::2\]:" "$dir/curl.out" | grep -qx 3 || fail "NAT: backends see the client: $(cat "$dir/curl.out")"
ip -n "$NS_CLIENT" -6 neigh show "$vip" | grep -q lladdr || fail "no ND entry for the VIP: $(ip -n "$NS_CLIENT" -6 neigh)"

# NAT, TCP and UDP: round robin over 30 connections / flows, backends see the client.
client http "http://[$vip]/" --count 30 >"$dir/nat_http.json"
expect "$dir/nat_http.json" "d['ok']" 30 "NAT HTTP answered"
expect "$dir/nat_http.json" "sorted(d['backends'].values())" "[10, 10, 10]" "NAT round robin"
expect "$dir/nat_http.json" "list(d['peers'])" "['2001:db8:1::2']" "NAT: backends see the client"
client udp "$vip" 53 --count 30 --sport-range 42000-42029 >"$dir/nat_udp.json"
expect "$dir/nat_udp.json" "d['ok']" 30 "NAT UDP answered"
expect "$dir/nat_udp.json" "sorted(d['backends'].values())" "[10, 10, 10]" "NAT UDP round robin"
expect "$dir/nat_udp.json" "list(d['peers'])" "['2001:db8:1::2']" "NAT UDP: backends see the client"

# FullNAT, TCP weights 1:2:3 and UDP: the backends see the IPv6 local address.
ip netns exec "$NS_CLIENT" curl -6 -sS --max-time 5 "http://[$vip]:8080/" | grep -q "peer=\[2001:db8:2::200\]:" ||
  fail "curl -6 through FullNAT"
client http "http://[$vip]:8080/" --count 30 >"$dir/fnat_http.json"
expect "$dir/fnat_http.json" "d['ok']" 30 "FullNAT HTTP answered"
expect "$dir/fnat_http.json" "sorted(d['backends'].values())" "[5, 10, 15]" "FullNAT weighted round robin"
expect "$dir/fnat_http.json" "list(d['peers'])" "['2001:db8:2::200']" "FullNAT: backends see the local address"
client udp "$vip" 5354 --count 30 --sport-range 43000-43029 >"$dir/fnat_udp.json"
expect "$dir/fnat_udp.json" "d['ok']" 30 "FullNAT UDP answered"
expect "$dir/fnat_udp.json" "list(d['peers'])" "['2001:db8:2::200']" "FullNAT UDP: backends see the local address"

# ICMPv6 errors follow their connection: the backend's port unreachable (to the local address)
# reaches the client from the VIP, and its connected socket sees the refusal.
refused=$(udp6_refused "$vip" 5355)
[ "$refused" = refused ] || fail "UDP to a closed backend port: $refused (want refused)"
[ "$(counter icmp_errors_translated)" -ge 1 ] || fail "icmp_errors_translated not counted"

# Packet too big: a 1500-byte IPv6 packet does not fit dp1 (MTU 1400). The client gets an
# ICMPv6 packet too big from the VIP and its socket's path MTU becomes 1400.
pmtu=$(udp6_path_mtu "$vip" 53 1452)
[ "$pmtu" = 1400 ] || fail "the client's path MTU to the VIP is $pmtu, want 1400"
[ "$(counter icmp6_packet_too_big_sent)" -ge 1 ] || fail "icmp6_packet_too_big_sent not counted"

# conn list and service show print IPv6 endpoints bracketed.
fvs --json conn list service udp "[$vip]:5354" >"$dir/conns.json"
expect "$dir/conns.json" "d['matched']" 30 "conn list of the FullNAT UDP service"
expect "$dir/conns.json" "sorted({c['local'].rsplit(':', 1)[0] for c in d['conns']})" "['[2001:db8:2::200]']" "conn list local address"
fvs conn list service udp "[$vip]:5354" | grep -q "\[2001:db8:1::100\]:5354" || fail "conn list text: $(fvs conn list | head -5)"
fvs service show | grep -q "\[2001:db8:1::100\]:8080" || fail "service show: $(fvs service show)"
fvs laddr show | grep -q "2001:db8:2::200" || fail "laddr show: $(fvs laddr show)"

# Live change under load, reset: b3 is removed while 30 keep-alive connections are open.
fvs service set tcp "[$vip]:80" removal reset || fail "service set removal reset"
hold_start hold1 30
fvs backend del tcp "[$vip]:80" "[2001:db8:2::13]:8080" || fail "backend del"
hold_finish hold1
expect "$dir/hold1.json" "sorted(d['survived_by_backend'].items())" "[('b1', 10), ('b2', 10)]" "connections to b1/b2 survive b3's removal"
expect "$dir/hold1.json" "d['broken_by_backend'].get('b3', 0)" 10 "b3's connections are reset"
expect "$dir/hold1.json" "d['switched']" 0 "no connection moved between backends"
[ "$(counter conns_reset)" -ge 1 ] || fail "conns_reset not counted"

# Live change under load, drain: b2 removed and b3 added back with 20 connections open.
fvs service set tcp "[$vip]:80" removal drain || fail "service set removal drain"
hold_start hold2 20
fvs backend del tcp "[$vip]:80" "[2001:db8:2::12]:8080" || fail "backend del (drain)"
fvs backend add tcp "[$vip]:80" "[2001:db8:2::13]:8080" weight 1 || fail "backend add"
client http "http://[$vip]/" --count 20 >"$dir/after.json"
hold_finish hold2
expect "$dir/hold2.json" "d['survived']" 20 "all connections survive a drain and an add"
expect "$dir/after.json" "d['ok']" 20 "requests during the change"
expect "$dir/after.json" "sorted(d['backends'])" "['b1', 'b3']" "new connections avoid the drained backend"

# Persistence.
fvs service set tcp "[$vip]:80" persistence 60 || fail "service set persistence"
client persist "http://[$vip]/" --count 12 >"$dir/persist.json"
expect "$dir/persist.json" "d['ok']" 12 "persistent requests answered"
expect "$dir/persist.json" "d['single_backend']" True "persistence holds"

# Counters.
fvs --json service show --stats >"$dir/svc.json"
expect "$dir/svc.json" "[s['stats']['conns'] >= 30 for s in d if s['port'] == 8080][0]" True "service stats count IPv6 connections"

# Expiry: idle UDP flows and closed TCP connections leave the IPv6 table.
sleep 4
fvs --json conn list service udp "[$vip]:53" >"$dir/udp_after.json"
expect "$dir/udp_after.json" "d['matched']" 0 "UDP connections expired"
fvs --json conn list service tcp "[$vip]:8080" >"$dir/tcp_after.json"
expect "$dir/tcp_after.json" "d['matched']" 0 "closed TCP connections expired"

# DR, TUN (IPv6-in-IPv6) and TUN (GUE): curl -6, and round robin over TCP and UDP; the
# backends answer the client directly, from the VIP.
for v in 101 102 103; do
  ip netns exec "$NS_CLIENT" curl -6 -sS --max-time 5 "http://[2001:db8:1::$v]:8080/" | grep -q "peer=\[2001:db8:1::2\]:" ||
    fail "curl -6 through 2001:db8:1::$v"
  client http "http://[2001:db8:1::$v]:8080/" --count 30 >"$dir/one_way_$v.json"
  expect "$dir/one_way_$v.json" "d['ok']" 30 "HTTP through 2001:db8:1::$v"
  expect "$dir/one_way_$v.json" "sorted(d['backends'].values())" "[10, 10, 10]" "round robin through 2001:db8:1::$v"
  client udp "2001:db8:1::$v" 5353 --count 30 --sport-range 44000-44029 >"$dir/one_way_udp_$v.json"
  expect "$dir/one_way_udp_$v.json" "d['ok']" 30 "UDP through 2001:db8:1::$v"
  expect "$dir/one_way_udp_$v.json" "list(d['peers'])" "['2001:db8:1::2']" "UDP through 2001:db8:1::$v: backends see the client"
done
fvs --json conn list service tcp "[2001:db8:1::102]:8080" >"$dir/tun_conns.json"
expect "$dir/tun_conns.json" "sorted({c['mode'] for c in d['conns']})" "['tun']" "conn list mode of IPv6 TUN connections"

# Path MTU through the tunnels: a 1500-byte packet plus 40 (IPv6-in-IPv6) or 48 (GUE) bytes
# does not fit dp1 (1400); the client learns 1360 and 1352.
for want in "102 1360" "103 1352"; do
  set -- $want
  pmtu=$(ip netns exec "$NS_CLIENT" /usr/bin/python3 -c "
import socket, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, 23, 2)
s.connect(('2001:db8:1::$1', 5353))
s.send(b'x' * 1452)
time.sleep(0.5)
print(s.getsockopt(socket.IPPROTO_IPV6, 24))")
  [ "$pmtu" = "$2" ] || fail "path MTU through the tunnel of 2001:db8:1::$1: $pmtu, want $2"
done
[ "$(counter drop_tunnel_too_big)" -ge 2 ] || fail "drop_tunnel_too_big not counted"

# The decapsulators saw both IPv6 encapsulations and nothing they could not parse.
for pid in "${FVS_DECAP_PIDS[@]}"; do kill -USR1 "$pid"; done
sleep 0.5
decap=$(for f in "$dir"/decap-b*.out; do tail -1 "$f"; done | /usr/bin/python3 -c "
import json, sys
c = [json.loads(l) for l in sys.stdin]
print(sum(x['ip6ip6'] for x in c) > 0, sum(x['gue6'] for x in c) > 0, sum(x['bad'] for x in c))")
[ "$decap" = "True True 0" ] || fail "decapsulation counters (ip6ip6>0, gue6>0, bad): $decap"

# SNAT for IPv6 sources: a backend's own connections to an outside server leave from
# 2001:db8:1::50, over TCP (curl -6) and UDP, and the answers come back to it.
ip netns exec "${NS_BACKENDS[0]}" curl -6 -sS --max-time 5 "http://[2001:db8:1::2]:9000/" >"$dir/snat.out" ||
  fail "curl -6 from a backend through SNAT"
grep -q "backend=outside6 peer=\[2001:db8:1::50\]:" "$dir/snat.out" || fail "SNAT source: $(cat "$dir/snat.out")"
snat_udp=$(ip netns exec "${NS_BACKENDS[1]}" /usr/bin/python3 -c "
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.settimeout(3)
s.sendto(b'ping', ('2001:db8:1::2', 9001))
print(s.recv(200).decode().split()[1])")
[ "$snat_udp" = "peer=[2001:db8:1::50]:$(fvs --json conn list | json /dev/stdin "[c['local'] for c in d['conns'] if c['mode'] == 'snat' and c['protocol'] == 'udp'][0].rsplit(':', 1)[1]")" ] ||
  fail "SNAT UDP: $snat_udp"
[ "$(counter snat_out_packets)" -ge 2 ] && [ "$(counter snat_in_packets)" -ge 2 ] || fail "SNAT packets not counted"

# Refused, and nothing changes: a mixed-family backend, an IPv4 local address for an IPv6
# service, a DR backend off every connected network.
before=$(fvs_services_config "$socket")
for bad in "backend add tcp [$vip]:80 198.51.100.11:8080" \
           "service add tcp [$vip]:81 mode fullnat laddr 198.51.100.200" \
           "backend add tcp [2001:db8:1::101]:8080 [2001:db8:9::11]:8080"; do
  if fvs $bad 2>"$dir/err"; then fail "'fvs $bad' was accepted"; fi
  [ -s "$dir/err" ] || fail "'fvs $bad' gave no message"
done
[ "$(fvs_services_config "$socket")" = "$before" ] || fail "a refused command changed the services"

fvs_stop "$FVS_DAEMON_PID" || fail "ferrovs did not stop on SIGTERM"
echo "ok: IPv6 NAT, FullNAT, DR and TUN (IPv6-in-IPv6, GUE) over TCP (curl -6) and UDP, distribution, ICMPv6 errors and packet too big (tunnels too), SNAT, live reset/drain/add, persistence, conn list, expiry, refusals"
