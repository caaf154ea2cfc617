#!/usr/bin/env bash
# End to end: a client namespace reaches three real HTTP/UDP backends through ferrovs' VIP
# (af_packet veths), in NAT and FullNAT. Checks: every request answered; round robin and
# weighted distribution exact; the backend sees the client (NAT) or the local address
# (FullNAT); removing a backend under load breaks no connection to the others (reset ends
# its own, drain keeps them); persistence; connections leave `fvs conn list` when they expire.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
trap fvs_cleanup EXIT

id="fl$((RANDOM % 100000))"
dir=$(fvs_tmpdir)
socket="$dir/fvs.sock"
tools="$(fvs_root)/tests/e2e/tools"
fvs_lb_topology "$id" 3
fvs_write_lb_config "$dir/ferrovs.yaml" "$id" "$socket" false
fvs_backends_start "$dir"
fvs_start "$NS_LB" "$dir/ferrovs.yaml" "$socket" "$dir/ferrovs.log"
fvs_lb_test_helpers
# hold_start NAME CONNS: CONNS keep-alive connections to the NAT service, each with one
# answer, held until $dir/go-NAME exists; the report goes to $dir/NAME.json.
hold_start() {
  client hold http://192.0.2.100/ --conns "$2" --ready-file "$dir/ready-$1" --go-file "$dir/go-$1" --timeout 30 >"$dir/$1.json" &
  hold_pid=$!
  for _ in $(seq 1 100); do [ -e "$dir/ready-$1" ] && break; sleep 0.1; done
  [ -e "$dir/ready-$1" ] || fail "hold client $1 did not get ready"
}
# hold_finish NAME: lets the held connections send their second request and waits for the report.
hold_finish() { touch "$dir/go-$1"; wait "$hold_pid" || true; }

# NAT, TCP: 60 new connections, round robin 20/20/20, the backends see the client itself.
client http http://192.0.2.100/ --count 60 >"$dir/nat_http.json"
expect "$dir/nat_http.json" "d['ok']" 60 "NAT HTTP answered"
expect "$dir/nat_http.json" "sorted(d['backends'].items())" "[('b1', 20), ('b2', 20), ('b3', 20)]" "NAT round robin"
expect "$dir/nat_http.json" "list(d['peers'])" "['192.0.2.2']" "NAT: backends see the client"

# NAT, UDP: 30 flows (one source port each), round robin, echo through the VIP.
client udp 192.0.2.100 53 --count 30 --sport-range 42000-42029 >"$dir/nat_udp.json"
expect "$dir/nat_udp.json" "d['ok']" 30 "NAT UDP answered"
expect "$dir/nat_udp.json" "sorted(d['backends'].values())" "[10, 10, 10]" "NAT UDP round robin"
expect "$dir/nat_udp.json" "list(d['peers'])" "['192.0.2.2']" "NAT UDP: backends see the client"

# FullNAT, TCP, weights 1:2:3: exactly 5/10/15 of 30; the backends see the local address.
client http http://192.0.2.100:8080/ --count 30 >"$dir/fnat_http.json"
expect "$dir/fnat_http.json" "d['ok']" 30 "FullNAT HTTP answered"
expect "$dir/fnat_http.json" "sorted(d['backends'].items())" "[('b1', 5), ('b2', 10), ('b3', 15)]" "FullNAT weighted round robin"
expect "$dir/fnat_http.json" "list(d['peers'])" "['198.51.100.200']" "FullNAT: backends see the local address"

# FullNAT, UDP.
client udp 192.0.2.100 5354 --count 30 --sport-range 43000-43029 >"$dir/fnat_udp.json"
expect "$dir/fnat_udp.json" "d['ok']" 30 "FullNAT UDP answered"
expect "$dir/fnat_udp.json" "list(d['peers'])" "['198.51.100.200']" "FullNAT UDP: backends see the local address"

# ICMP errors follow their connection: the backend's port unreachable (sent to the local
# address) reaches the client from the VIP, and its connected socket sees the refusal.
refused=$(ip netns exec "$NS_CLIENT" /usr/bin/python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
s.connect(('192.0.2.100', 5355)); s.send(b'anyone?')
try:
    s.recv(100); print('answered')
except ConnectionRefusedError:
    print('refused')
except socket.timeout:
    print('timeout')")
[ "$refused" = refused ] || fail "UDP to a closed backend port: $refused (want refused)"
[ "$(counter icmp_errors_translated)" -ge 1 ] || fail "icmp_errors_translated not counted"

# The connections are listed, with their local address in FullNAT.
fvs --json conn list service udp 192.0.2.100:5354 >"$dir/conns.json"
expect "$dir/conns.json" "d['matched']" 30 "conn list of the FullNAT UDP service"
expect "$dir/conns.json" "sorted({c['local'].split(':')[0] for c in d['conns']})" "['198.51.100.200']" "conn list local address"
fvs conn list service tcp 192.0.2.100:80 state TIME_WAIT >/dev/null || fail "conn list with a state filter"
fvs laddr show | grep -q "198.51.100.200" || fail "laddr show: $(fvs laddr show)"

# Live change under load, reset: b3 is removed while 30 keep-alive connections are open.
# Its 10 are reset; the 20 to b1 and b2 carry on.
fvs service set tcp 192.0.2.100:80 removal reset || fail "service set removal reset"
hold_start hold1 30
fvs backend del tcp 192.0.2.100:80 198.51.100.13:8080 || fail "backend del"
hold_finish hold1
expect "$dir/hold1.json" "sorted(d['survived_by_backend'].items())" "[('b1', 10), ('b2', 10)]" "connections to b1/b2 survive b3's removal"
expect "$dir/hold1.json" "d['broken_by_backend'].get('b3', 0)" 10 "b3's connections are reset"
expect "$dir/hold1.json" "d['switched']" 0 "no connection moved between backends"
[ "$(counter conns_reset)" -ge 1 ] || fail "conns_reset not counted"

# Live change under load, drain: b2 is removed and b3 added back while 20 connections are
# open. Every one of them survives (b2's drain), and new connections go to b1 and b3 only.
fvs service set tcp 192.0.2.100:80 removal drain || fail "service set removal drain"
hold_start hold2 20
fvs backend del tcp 192.0.2.100:80 198.51.100.12:8080 || fail "backend del (drain)"
fvs backend add tcp 192.0.2.100:80 198.51.100.13:8080 weight 1 || fail "backend add"
client http http://192.0.2.100/ --count 20 >"$dir/after.json"
hold_finish hold2
expect "$dir/hold2.json" "d['survived']" 20 "all connections survive a drain and an add"
expect "$dir/hold2.json" "d['broken']" 0 "no broken connection on drain"
expect "$dir/after.json" "d['ok']" 20 "requests during the change"
expect "$dir/after.json" "sorted(d['backends'])" "['b1', 'b3']" "new connections avoid the drained backend"

# Persistence: with it on, every new connection of the client goes to one backend.
fvs service set tcp 192.0.2.100:80 persistence 60 || fail "service set persistence"
client persist http://192.0.2.100/ --count 12 >"$dir/persist.json"
expect "$dir/persist.json" "d['ok']" 12 "persistent requests answered"
expect "$dir/persist.json" "d['single_backend']" True "persistence holds"
fvs service show | grep -q "persistent 60" || fail "service show: $(fvs service show)"

# Counters read like ipvsadm --stats.
fvs --json service show --stats >"$dir/svc.json"
expect "$dir/svc.json" "[s['stats']['conns'] >= 30 for s in d if s['port'] == 8080][0]" True "service stats count connections"
fvs service show --stats | grep -q "InPkts" || fail "service show --stats: $(fvs service show --stats)"

# Expiry: UDP flows idle for more than 3 s and closed TCP connections (TIME_WAIT 2 s) leave.
sleep 4
fvs --json conn list service udp 192.0.2.100:53 >"$dir/udp_after.json"
expect "$dir/udp_after.json" "d['matched']" 0 "UDP connections expired"
fvs --json conn list service tcp 192.0.2.100:8080 >"$dir/tcp_after.json"
expect "$dir/tcp_after.json" "d['matched']" 0 "closed TCP connections expired"
[ "$(counter conns_expired)" -ge 60 ] || fail "conns_expired $(counter conns_expired) < 60"

# fvs apply: a file with one more service and a longer UDP timeout is applied as one change.
awk '/^api:/ { print "  - { vip: 192.0.2.100, port: 5356, protocol: udp, backends: [ { addr: 198.51.100.12, port: 5353 } ] }" } { print }' \
  "$dir/ferrovs.yaml" | sed 's/udp: 3 }/udp: 4 }/' >"$dir/applied.yaml"
fvs apply -f "$dir/applied.yaml" >"$dir/apply.out" || fail "apply: $(cat "$dir/apply.out")"
grep -q "service add udp 192.0.2.100:5356" "$dir/apply.out" || fail "apply output: $(cat "$dir/apply.out")"
grep -q "connections timeouts set" "$dir/apply.out" || fail "apply output: $(cat "$dir/apply.out")"
client udp 192.0.2.100 5356 --count 3 >"$dir/applied.json"
expect "$dir/applied.json" "d['backends']" "{'b2': 3}" "the applied service answers"

# Bad commands are refused and change nothing.
before=$(fvs_services_config "$socket")
for bad in "service add tcp 192.0.2.100:80" "backend add tcp 192.0.2.100:81 198.51.100.11:80" \
           "backend del tcp 192.0.2.100:80 198.51.100.99:8080" "service set tcp 192.0.2.100:80 scheduler mh maglev-size 100"; do
  if fvs $bad 2>"$dir/err"; then fail "'fvs $bad' was accepted"; fi
  [ -s "$dir/err" ] || fail "'fvs $bad' gave no message"
done
[ "$(fvs_services_config "$socket")" = "$before" ] || fail "a refused command changed the services"

fvs_stop "$FVS_DAEMON_PID" || fail "ferrovs did not stop on SIGTERM"
echo "ok: NAT and FullNAT over TCP and UDP, distribution, live reset/drain/add, persistence, expiry"
