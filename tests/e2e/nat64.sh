#!/usr/bin/env bash
# End to end, NAT64: an IPv6-only client reaches three IPv4-only HTTP/UDP backends through
# ferrovs' IPv6 VIP 2001:db8:1::64 (mode nat64, IPv4 local address 198.51.100.200, af_packet
# veths). Checks: curl -6 and lbclient answered over TCP and UDP; round robin exact; every
# backend sees the IPv4 local address; a 2 MB download arrives whole (the backend's full-size
# IPv4 segments grow by 20 bytes and still fit: the client's MSS was kept to what fits);
# persistence; passive health takes out a backend that refuses; a backend's ICMPv4 port unreachable reaches the client's socket as ICMPv6
# (ECONNREFUSED); a packet too big for the IPv4 side (dp1's MTU is 1400) tells the client
# 1420 (20 bytes of header more), which its stack learns; `conn list` shows the client
# bracketed and the local address and backend as IPv4, mode nat64; `service show` lists the
# service; refusals of mixed-family services other than nat64 leave the services unchanged;
# with two workers every connection is on one of them and both are used.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
trap fvs_cleanup EXIT

id="n64$((RANDOM % 10000))"
dir=$(fvs_tmpdir)
socket="$dir/fvs.sock"
tools="$(fvs_root)/tests/e2e/tools"
vip=2001:db8:1::64
fvs_lb_topology "$id" 3
# The client speaks IPv6 only; the backends stay IPv4 only.
ip -n "$NS_CLIENT" addr flush dev "$IF_CLIENT"
ip -n "$NS_CLIENT" addr add 2001:db8:1::2/64 dev "$IF_CLIENT" nodad
b="{ addr: 198.51.100.11, port: PORT }, { addr: 198.51.100.12, port: PORT }, { addr: 198.51.100.13, port: PORT }"
fvs_config_head "$id" true 1 1400 >"$dir/ferrovs.yaml"
cat >>"$dir/ferrovs.yaml" <<YAML
  - { port: dp0, addr: "2001:db8:1::1/64" }
  - { port: dp1, addr: 198.51.100.1/24 }
connections:
  timeouts: { tcp_time_wait: 2, tcp_close: 2, tcp_fin_wait: 5, tcp_close_wait: 5, tcp_last_ack: 5, udp: 3 }
services:
  - { vip: "$vip", port: 80, protocol: tcp, scheduler: rr, mode: nat64, laddrs: [ 198.51.100.200 ],
      backends: [ ${b//PORT/8080} ] }
  - { vip: "$vip", port: 53, protocol: udp, scheduler: rr, mode: nat64, laddrs: [ 198.51.100.200 ],
      backends: [ ${b//PORT/5353} ] }
  - { vip: "$vip", port: 8080, protocol: tcp, scheduler: rr, mode: nat64, persistence_s: 60,
      laddrs: [ 198.51.100.200 ], backends: [ ${b//PORT/8080} ] }
  # Nothing listens on b3's port 9: its refusals of the SYNs take it out (passive health).
  - { vip: "$vip", port: 85, protocol: tcp, scheduler: rr, mode: nat64, laddrs: [ 198.51.100.200 ],
      passive: { failures: 3, window_ms: 5000, backoff_ms: 60000 },
      backends: [ { addr: 198.51.100.11, port: 8080 }, { addr: 198.51.100.12, port: 8080 }, { addr: 198.51.100.13, port: 9 } ] }
  # Nothing listens on 5399: the backend's ICMPv4 port unreachable comes back as ICMPv6.
  - { vip: "$vip", port: 5355, protocol: udp, mode: nat64, laddrs: [ 198.51.100.200 ],
      backends: [ { addr: 198.51.100.11, port: 5399 } ] }
api: { socket: $socket }
YAML
fvs_backends_start "$dir"
fvs_start "$NS_LB" "$dir/ferrovs.yaml" "$socket" "$dir/ferrovs.log"
fvs_lb_test_helpers

# curl -6: three requests, three backends (round robin), each sees the IPv4 local address.
for i in 1 2 3; do
  ip netns exec "$NS_CLIENT" curl -6 -sS --max-time 5 "http://[$vip]/" >>"$dir/curl.out" || fail "curl -6 to the NAT64 VIP"
done
[ "$(awk '{print $1}' "$dir/curl.out" | sort -u | tr '\n' ' ')" = "backend=b1 backend=b2 backend=b3 " ] ||
  fail "curl -6 round robin: $(cat "$dir/curl.out")"
grep -c "peer=198.51.100.200:" "$dir/curl.out" | grep -qx 3 || fail "backends see the local address: $(cat "$dir/curl.out")"
[ "$(ip -n "$NS_CLIENT" addr show | grep -c 'inet ')" = 1 ] || fail "the client has an IPv4 address besides 127.0.0.1"

# TCP and UDP, 30 connections / flows each: round robin, the local address seen.
client http "http://[$vip]/" --count 30 >"$dir/http.json"
expect "$dir/http.json" "d['ok']" 30 "NAT64 HTTP answered"
expect "$dir/http.json" "sorted(d['backends'].values())" "[10, 10, 10]" "NAT64 HTTP round robin"
expect "$dir/http.json" "list(d['peers'])" "['198.51.100.200']" "NAT64 HTTP: backends see the local address"
client udp "$vip" 53 --count 30 --sport-range 42000-42029 >"$dir/udp.json"
expect "$dir/udp.json" "d['ok']" 30 "NAT64 UDP answered"
expect "$dir/udp.json" "sorted(d['backends'].values())" "[10, 10, 10]" "NAT64 UDP round robin"
expect "$dir/udp.json" "list(d['peers'])" "['198.51.100.200']" "NAT64 UDP: backends see the local address"

# A 2 MB download: the backend sends full-size segments; all of it arrives.
got=$(ip netns exec "$NS_CLIENT" curl -6 -sS --max-time 20 "http://[$vip]/bytes?n=2000000" | wc -c)
[ "$got" -gt 2000000 ] || fail "2 MB download through NAT64: $got bytes"

# Persistence: 12 connections from the client, one backend.
client persist "http://[$vip]:8080/" --count 12 >"$dir/persist.json"
expect "$dir/persist.json" "d['ok']" 12 "persistent requests answered"
expect "$dir/persist.json" "d['single_backend']" True "NAT64 persistence holds"

# The backend's ICMPv4 port unreachable reaches the client from the VIP as ICMPv6, and its
# connected socket sees the refusal.
refused=$(udp6_refused "$vip" 5355)
[ "$refused" = refused ] || fail "UDP to a closed backend port: $refused (want refused)"
[ "$(counter icmp_errors_translated)" -ge 1 ] || fail "icmp_errors_translated not counted"

# Packet too big: a 1500-byte IPv6 packet is a 1480-byte IPv4 one, which does not fit dp1
# (MTU 1400). The client is told 1420 (what fits, as IPv6) and its path MTU becomes that.
pmtu=$(udp6_path_mtu "$vip" 53 1452)
[ "$pmtu" = 1420 ] || fail "the client's path MTU to the VIP is $pmtu, want 1420"
[ "$(counter icmp6_packet_too_big_sent)" -ge 1 ] || fail "icmp6_packet_too_big_sent not counted"
# A datagram that fits it now goes through.
fits=$(ip netns exec "$NS_CLIENT" /usr/bin/python3 -c "
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.settimeout(3)
s.connect(('$vip', 53)); s.send(b'y' * 1372)
print(len(s.recv(2000)) > 1372)")
[ "$fits" = True ] || fail "a 1420-byte IPv6 datagram through NAT64: $fits"

# conn list: client bracketed, local address and backend IPv4, mode nat64; service show.
# (UDP flows live 3 s: the 30 flows are made again just before.)
client udp "$vip" 53 --count 30 --sport-range 42000-42029 >"$dir/udp2.json"
expect "$dir/udp2.json" "d['ok']" 30 "NAT64 UDP answered again"
fvs --json conn list service udp "[$vip]:53" >"$dir/conns.json"
expect "$dir/conns.json" "d['matched'] >= 30" True "conn list of the NAT64 UDP service"
expect "$dir/conns.json" "sorted({c['mode'] for c in d['conns']})" "['nat64']" "conn list mode"
expect "$dir/conns.json" "sorted({c['local'].rsplit(':', 1)[0] for c in d['conns']})" "['198.51.100.200']" "conn list local address"
expect "$dir/conns.json" "sorted({c['backend'].rsplit(':', 1)[0] for c in d['conns']})" "['198.51.100.11', '198.51.100.12', '198.51.100.13']" "conn list backends"
fvs conn list service udp "[$vip]:53" | grep -q "\[2001:db8:1::2\]:42000" || fail "conn list text: $(fvs conn list | head -5)"
fvs --json conn list backend 198.51.100.11:5353 >"$dir/conns_b1.json"
expect "$dir/conns_b1.json" "d['matched'] >= 10" True "conn list filtered by an IPv4 backend"
fvs service show >"$dir/show.txt"
grep -q "\[2001:db8:1::64\]:80" "$dir/show.txt" && grep -q "nat64" "$dir/show.txt" && grep -q "198.51.100.11:8080" "$dir/show.txt" ||
  fail "service show: $(cat "$dir/show.txt")"
fvs --json service show --stats >"$dir/svc.json"
expect "$dir/svc.json" "[s['stats']['conns'] >= 33 for s in d if s['port'] == 80][0]" True "service stats count NAT64 connections"

# Passive health of an IPv4 backend: b3's kernel resets the SYNs sent to it; after 3 the
# backend is down and new connections go to b1 and b2 only.
client http "http://[$vip]:85/" --count 12 --timeout 1 >"$dir/passive1.json" || true
for _ in $(seq 1 50); do
  fvs --json backend show >"$dir/bshow.json"
  state=$(json "$dir/bshow.json" "[('up' if b['health']['up'] else 'down') if b.get('health') else 'unchecked' for s in d if s['port'] == 85 for b in s['backends'] if b['addr'] == '198.51.100.13'][0]")
  [ "$state" = down ] && break
  sleep 0.1
done
[ "$state" = down ] || fail "passive health: b3 (refusing) is $state, want down ($(fvs backend show))"
client http "http://[$vip]:85/" --count 20 >"$dir/passive2.json"
expect "$dir/passive2.json" "d['ok']" 20 "passive: all answered while b3 is out"
expect "$dir/passive2.json" "sorted(d['backends'])" "['b1', 'b2']" "passive: b3 gets nothing while out"

# Live: a service added by the CLI, the backend added by the CLI; refusals change nothing.
fvs service add tcp "[$vip]:81" mode nat64 laddr 198.51.100.200 scheduler rr || fail "service add mode nat64"
fvs backend add tcp "[$vip]:81" 198.51.100.12:8080 || fail "backend add (IPv4) to a nat64 service"
ip netns exec "$NS_CLIENT" curl -6 -sS --max-time 5 "http://[$vip]:81/" | grep -q "backend=b2 peer=198.51.100.200:" ||
  fail "curl -6 through the nat64 service added live"
# The services as configured (health verdicts carry a clock: left out).
services_config() {
  fvs_services_config "$socket" | /usr/bin/python3 -c "import json,sys
d=json.load(sys.stdin)
for s in d:
    for b in s['backends']: b.pop('health', None)
print(json.dumps(d, sort_keys=True))"
}
before=$(services_config)
for bad in "service add tcp [$vip]:82 mode fullnat laddr 198.51.100.200" \
           "service add tcp 192.0.2.100:80 mode nat64 laddr 198.51.100.200" \
           "service add tcp [$vip]:83 mode nat64" \
           "backend add tcp [$vip]:81 [2001:db8:2::11]:8080"; do
  if fvs $bad 2>"$dir/err"; then fail "'fvs $bad' was accepted"; fi
  [ -s "$dir/err" ] || fail "'fvs $bad' gave no message"
done
after=$(services_config)
[ "$after" = "$before" ] || fail "a refused command changed the services: $(diff <(echo "$before") <(echo "$after"))"

fvs_stop "$FVS_DAEMON_PID" || fail "ferrovs did not stop on SIGTERM"

# Two workers (af_packet qpairs=2: the kernel's fanout spreads flows over both): each NAT64
# connection is tracked by one worker, both are used, the IPv4 replies and the ICMPv4 error
# reach the worker that chose the local port.
fvs_config_head "$id" true 2 1400 >"$dir/ferrovs2.yaml"
sed -n '/^  - { port: dp0, addr: "2001/,$p' "$dir/ferrovs.yaml" >>"$dir/ferrovs2.yaml"
fvs_start "$NS_LB" "$dir/ferrovs2.yaml" "$socket" "$dir/ferrovs.log"
[ "$(fvs --json stats | /usr/bin/python3 -c "import json,sys; print(len(json.load(sys.stdin)['cores']))")" = 2 ] || fail "not two workers"
client http "http://[$vip]/" --count 40 >"$dir/mc_http.json"
expect "$dir/mc_http.json" "d['ok']" 40 "two workers: NAT64 HTTP answered"
expect "$dir/mc_http.json" "list(d['peers'])" "['198.51.100.200']" "two workers: backends see the local address"
client udp "$vip" 53 --count 40 --sport-range 45000-45039 >"$dir/mc_udp.json"
expect "$dir/mc_udp.json" "d['ok']" 40 "two workers: NAT64 UDP answered"
fvs --json conn list service udp "[$vip]:53" limit 10000 >"$dir/mc_conns.json"
expect "$dir/mc_conns.json" "len(d['conns']) == len({c['client'] for c in d['conns']}) == 40" True "two workers: each flow on one worker"
expect "$dir/mc_conns.json" "sorted({c['core'] for c in d['conns']})" "[0, 1]" "two workers: both used"
# (b1's kernel would send 6 port unreachables at once to one address, then 1 a second.)
ip netns exec "${NS_BACKENDS[0]}" sysctl -qw net.ipv4.icmp_ratelimit=0
refused=$(ip netns exec "$NS_CLIENT" /usr/bin/python3 -c "
import socket
n = 0
for _ in range(8):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.settimeout(3)
    s.connect(('$vip', 5355)); s.send(b'anyone?')
    try:
        s.recv(100)
    except ConnectionRefusedError:
        n += 1
    except socket.timeout:
        pass
print(n)")
[ "$refused" = 8 ] || fail "two workers: $refused of 8 UDP sockets saw the refusal"
fvs_stop "$FVS_DAEMON_PID" || fail "ferrovs (two workers) did not stop on SIGTERM"
echo "ok: NAT64 from an IPv6-only client to IPv4 backends over TCP (curl -6, lbclient, 2 MB) and UDP, round robin, local address seen, persistence, passive health, ICMPv4 port unreachable as ICMPv6, packet too big with MTU+20, conn list, service show, live add, refusals, two workers"
