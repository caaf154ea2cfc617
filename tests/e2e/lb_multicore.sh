#!/usr/bin/env bash
# End to end with two workers: each port has two queue pairs (af_packet qpairs=2, the kernel's
# flow-hash fanout spreads flows over them), so packets arrive on either worker. NAT, FullNAT,
# DR, TUN (IPIP) and SNAT carry real TCP (HTTP) and UDP through the VIPs. Checks, per service:
# every request answered; every connection is tracked by exactly one worker, and the two
# workers both own some; NAT/FullNAT TCP connections reached TIME_WAIT on their one worker
# (the owner saw both sides' FINs, so the packets of the connection, both ways, went through
# it), DR/TUN ones FIN_WAIT (they see the client's side only); no worker
# dropped a packet for want of a connection. af_packet has no RSS key to steer replies by, so
# `fvs link show` reports rings, and the workers handed packets to each other.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
trap fvs_cleanup EXIT

id="mc$((RANDOM % 100000))"
dir=$(fvs_tmpdir)
socket="$dir/fvs.sock"
tools="$(fvs_root)/tests/e2e/tools"
vip=192.0.2.100 dr_vip=192.0.2.200 tun_vip=192.0.2.201 snat_addr=192.0.2.50
fvs_lb_topology "$id" 3
fvs_dsr_return "$id" "$dr_vip" "$tun_vip"
b="{ addr: 198.51.100.11, port: PORT }, { addr: 198.51.100.12, port: PORT }, { addr: 198.51.100.13, port: PORT }"
fvs_config_head "$id" false 2 >"$dir/ferrovs.yaml"
cat >>"$dir/ferrovs.yaml" <<YAML
  - { port: dp1, addr: 198.51.100.1/24 }
connections:
  timeouts: { tcp_time_wait: 60, udp: 60 }
services:
  - { vip: $vip, port: 80, protocol: tcp, scheduler: rr, mode: nat, backends: [ ${b//PORT/8080} ] }
  - { vip: $vip, port: 53, protocol: udp, scheduler: rr, mode: nat, backends: [ ${b//PORT/5353} ] }
  - { vip: $vip, port: 8080, protocol: tcp, scheduler: rr, mode: fullnat, laddrs: [ 198.51.100.200 ], backends: [ ${b//PORT/8080} ] }
  - { vip: $vip, port: 5354, protocol: udp, scheduler: rr, mode: fullnat, laddrs: [ 198.51.100.200 ], backends: [ ${b//PORT/5353} ] }
  - { vip: $dr_vip, port: 8080, protocol: tcp, scheduler: rr, mode: dr, backends: [ ${b//PORT/8080} ] }
  - { vip: $tun_vip, port: 8080, protocol: tcp, scheduler: rr, mode: tun, backends: [ ${b//PORT/8080} ] }
snat:
  - { source: 198.51.100.0/24, out_port: dp0, addresses: [ $snat_addr ] }
api: { socket: $socket }
YAML
fvs_backends_start "$dir"
fvs_decap_start "$dir"
fvs_start "$NS_LB" "$dir/ferrovs.yaml" "$socket" "$dir/ferrovs.log"
fvs_lb_test_helpers
# per_core NAME: the counter NAME of each worker, space-separated.
per_core() { fvs --json stats | /usr/bin/python3 -c "import json,sys; print(*[c['counters'].get('$1', 0) for c in json.load(sys.stdin)['cores']])"; }
# one_owner PROTO VIP:PORT COUNT FINAL: COUNT connections to the service, each on exactly one
# worker, both workers used, every one in state FINAL.
one_owner() {
  fvs --json conn list service "$1" "$2" limit 10000 >"$dir/conns.json"
  local got
  got=$(/usr/bin/python3 - "$dir/conns.json" "$3" "$4" <<'PY'
import collections, json, sys
d = json.load(open(sys.argv[1]))
want, final = int(sys.argv[2]), sys.argv[3]
by_client = collections.defaultdict(list)
for c in d['conns']:
    by_client[c['client']].append(c['core'])
problems = []
if len(by_client) != want:
    problems.append(f"{len(by_client)} clients, want {want}")
twice = {k: v for k, v in by_client.items() if len(v) != 1}
if twice:
    problems.append(f"tracked on more than one worker: {twice}")
cores = collections.Counter(v[0] for v in by_client.values())
if len(cores) != 2:
    problems.append(f"connections per worker {dict(cores)}: want both workers")
states = collections.Counter(c['state'] for c in d['conns'])
if set(states) != {final}:
    problems.append(f"states {dict(states)}, want all {final}")
print("; ".join(problems) or "ok " + str(dict(sorted(cores.items()))))
PY
)
  case "$got" in ok*) echo "  $1 $2: $got" ;; *) fail "$1 $2: $got" ;; esac
}

fvs link show | grep -q "steering rings" || fail "link show steering: $(fvs link show)"
[ "$(fvs --json stats | /usr/bin/python3 -c "import json,sys; print(len(json.load(sys.stdin)['cores']))")" = 2 ] || fail "not two workers"

# NAT: both directions go to the worker the client's address and port name.
client http "http://$vip/" --count 40 >"$dir/nat_http.json"
expect "$dir/nat_http.json" "d['ok']" 40 "NAT HTTP answered"
expect "$dir/nat_http.json" "list(d['peers'])" "['192.0.2.2']" "NAT: backends see the client"
one_owner tcp "$vip:80" 40 TIME_WAIT
client udp "$vip" 53 --count 40 --sport-range 42000-42039 >"$dir/nat_udp.json"
expect "$dir/nat_udp.json" "d['ok']" 40 "NAT UDP answered"
one_owner udp "$vip:53" 40 UDP

# FullNAT: the client's side stays where RSS put it; replies come back by local port.
client http "http://$vip:8080/" --count 40 >"$dir/fnat_http.json"
expect "$dir/fnat_http.json" "d['ok']" 40 "FullNAT HTTP answered"
expect "$dir/fnat_http.json" "list(d['peers'])" "['198.51.100.200']" "FullNAT: backends see the local address"
one_owner tcp "$vip:8080" 40 TIME_WAIT
client udp "$vip" 5354 --count 40 --sport-range 43000-43039 >"$dir/fnat_udp.json"
expect "$dir/fnat_udp.json" "d['ok']" 40 "FullNAT UDP answered"
one_owner udp "$vip:5354" 40 UDP
# A local port's owner is the worker its number names (port % 2).
/usr/bin/python3 -c "
import json, sys
d = json.load(open('$dir/conns.json'))
bad = [c for c in d['conns'] if int(c['local'].split(':')[1]) % 2 != c['core']]
sys.exit(1 if bad or not d['conns'] else 0)" || fail "FullNAT local ports not owned by port number: $(cat "$dir/conns.json")"

# DR and TUN: the client's side only, by RSS. Seeing one side, a connection ends in
# FIN_WAIT: the worker that opened it saw the client's FIN.
client http "http://$dr_vip:8080/" --count 40 >"$dir/dr_http.json"
expect "$dir/dr_http.json" "d['ok']" 40 "DR HTTP answered"
one_owner tcp "$dr_vip:8080" 40 FIN_WAIT
client http "http://$tun_vip:8080/" --count 40 >"$dir/tun_http.json"
expect "$dir/tun_http.json" "d['ok']" 40 "TUN HTTP answered"
one_owner tcp "$tun_vip:8080" 40 FIN_WAIT

# SNAT: a backend reaches a server outside; replies come back by SNAT port.
fvs_outside_start "$dir" || fail "outside server"
for i in $(seq 1 10); do
  got=$(ip netns exec "${NS_BACKENDS[0]}" curl -s --max-time 3 http://192.0.2.2:9000/)
  case "$got" in "backend=outside peer=$snat_addr:"*) ;; *) fail "SNAT fetch $i: '$got'" ;; esac
done
got=$(ip netns exec "${NS_BACKENDS[1]}" /usr/bin/python3 "$tools/lbclient.py" udp 192.0.2.2 9001 --count 20 --sport-range 45000-45019 2>/dev/null)
[ "$(echo "$got" | /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print(d['ok'], list(d['peers']))")" = "20 ['$snat_addr']" ] \
  || fail "SNAT UDP: $got"

# Nothing was dropped for want of a connection on the worker that got it; both workers
# handed packets to the other and took the other's.
for name in drop_no_connection drop_handoff_full drop_conn_key_exists; do
  [ "$(counter "$name")" = 0 ] || fail "$name: $(per_core "$name")"
done
read -r off0 off1 <<<"$(per_core handed_off)"
read -r in0 in1 <<<"$(per_core handed_in)"
[ "$off0" -gt 0 ] && [ "$off1" -gt 0 ] || fail "handed_off per worker: $off0 $off1"
[ "$in0" = "$off1" ] && [ "$in1" = "$off0" ] || fail "handed_in $in0 $in1 vs handed_off $off0 $off1"
read -r rx0 rx1 <<<"$(per_core rx_packets)"
[ "$rx0" -gt 0 ] && [ "$rx1" -gt 0 ] || fail "rx_packets per worker: $rx0 $rx1"
echo "  rx_packets per worker: $rx0 $rx1; handed_off: $off0 $off1"
echo "ok: two workers, NAT, FullNAT, DR, TUN and SNAT, one worker per connection"
