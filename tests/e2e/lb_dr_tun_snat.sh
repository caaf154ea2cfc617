#!/usr/bin/env bash
# End to end: DR and TUN (IP-in-IP and GUE) with real kernel peers, and SNAT.
# The backends hold the VIPs on lo and answer clients directly through a router namespace,
# so ferrovs sees only the client's side. Checks: every request answered and spread over the
# backends; ferrovs counts no reply packet; a capture on the client shows the answers
# arriving from the VIP on the router's link, and none on ferrovs' link; the backends
# decapsulated what came to them (this kernel has no ipip module: tests/e2e/tools/decap.py);
# an upload bigger than the tunnel's MTU completes after ferrovs' ICMP fragmentation-needed;
# a DR backend off the connected networks is refused; a backend host reaches a server
# outside through SNAT, which sees the SNAT address.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
trap fvs_cleanup EXIT

id="dt$((RANDOM % 100000))"
dir=$(fvs_tmpdir)
socket="$dir/fvs.sock"
tools="$(fvs_root)/tests/e2e/tools"
dr_vip=192.0.2.200 ipip_vip=192.0.2.201 gue_vip=192.0.2.202 snat_addr=192.0.2.50
fvs_lb_topology "$id" 3
fvs_dsr_return "$id" "$dr_vip" "$ipip_vip" "$gue_vip"
b="{ addr: 198.51.100.11, port: PORT }, { addr: 198.51.100.12, port: PORT }, { addr: 198.51.100.13, port: PORT }"
fvs_config_head "$id" false >"$dir/ferrovs.yaml"
cat >>"$dir/ferrovs.yaml" <<YAML
  - { port: dp1, addr: 198.51.100.1/24 }
connections:
  timeouts: { udp: 3 }
services:
  - { vip: $dr_vip, port: 8080, protocol: tcp, scheduler: rr, mode: dr, backends: [ ${b//PORT/8080} ] }
  - { vip: $dr_vip, port: 5353, protocol: udp, scheduler: rr, mode: dr, backends: [ ${b//PORT/5353} ] }
  - { vip: $ipip_vip, port: 8080, protocol: tcp, scheduler: rr, mode: tun, backends: [ ${b//PORT/8080} ] }
  - { vip: $ipip_vip, port: 5353, protocol: udp, scheduler: rr, mode: tun, backends: [ ${b//PORT/5353} ] }
  - { vip: $gue_vip, port: 8080, protocol: tcp, scheduler: rr, mode: tun, tunnel: { encap: gue, gue_port: 6080 },
      backends: [ ${b//PORT/8080} ] }
  - { vip: $gue_vip, port: 5353, protocol: udp, scheduler: rr, mode: tun, tunnel: { encap: gue, gue_port: 6080, too_big: drop },
      backends: [ ${b//PORT/5353} ] }
snat:
  - { source: 198.51.100.0/24, out_port: dp0, addresses: [ $snat_addr ] }
api: { socket: $socket }
YAML
fvs_backends_start "$dir"
fvs_decap_start "$dir" --gue 6080
fvs_start "$NS_LB" "$dir/ferrovs.yaml" "$socket" "$dir/ferrovs.log"
fvs_lb_test_helpers
# capture_start NAME IFACE: summarises the frames the client receives on IFACE, into
# $dir/NAME.json at capture_stop NAME.
capture_start() {
  ip netns exec "$NS_CLIENT" /usr/bin/python3 "$tools/capture.py" "$2" --seconds 120 --in-only >"$dir/$1.out" 2>&1 &
  eval "cap_$1=$!"
  FVS_PIDS+=($!)
  fvs_wait_ready "$dir/$1.out" "capture on $2" || fail "capture"
}
capture_stop() { local pid; eval "pid=\$cap_$1"; kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; tail -1 "$dir/$1.out" >"$dir/$1.json"; }

# DR and TUN, TCP and UDP: every answer arrives, round robin over the three backends, and the
# backends see the client's own address (nothing is rewritten).
capture_start direct "$IF_CLIENT_RETURN"
capture_start via_lb "$IF_CLIENT"
for vip in $dr_vip $ipip_vip $gue_vip; do
  client http "http://$vip:8080/" --count 30 >"$dir/http-$vip.json"
  expect "$dir/http-$vip.json" "d['ok']" 30 "HTTP through $vip answered"
  expect "$dir/http-$vip.json" "sorted(d['backends'].values())" "[10, 10, 10]" "HTTP through $vip: round robin"
  expect "$dir/http-$vip.json" "list(d['peers'])" "['192.0.2.2']" "HTTP through $vip: backends see the client"
  got=$(ip netns exec "$NS_CLIENT" curl -s --max-time 3 "http://$vip:8080/")
  case "$got" in "backend=b"[123]" peer=192.0.2.2:"*) ;; *) fail "curl through $vip: '$got'" ;; esac
  client udp "$vip" 5353 --count 15 --sport-range 44000-44014 >"$dir/udp-$vip.json"
  expect "$dir/udp-$vip.json" "d['ok']" 15 "UDP through $vip answered"
  expect "$dir/udp-$vip.json" "sorted(d['backends'].values())" "[5, 5, 5]" "UDP through $vip: round robin"
done
capture_stop direct
capture_stop via_lb

# No reply passed ferrovs: it forwarded the clients' packets only.
[ "$(counter lb_out_packets)" = 0 ] || fail "ferrovs forwarded $(counter lb_out_packets) reply packets"
[ "$(counter lb_in_packets)" -ge 200 ] || fail "lb_in_packets $(counter lb_in_packets)"
# The answers came from the VIPs on the router's link, none on ferrovs' link.
for vip in $dr_vip $ipip_vip $gue_vip; do
  n=$(json "$dir/direct.json" "sum(f['count'] for f in d['flows'] if f['src'] == '$vip')")
  [ "$n" -ge 60 ] || fail "client capture on the direct link: $n frames from $vip ($(cat "$dir/direct.json"))"
  n=$(json "$dir/via_lb.json" "sum(f['count'] for f in d['flows'] if f['src'] == '$vip')")
  [ "$n" = 0 ] || fail "client capture on ferrovs' link: $n frames from $vip"
done
# What reached the backends was encapsulated as configured.
fvs --json conn list >"$dir/conns.json"
expect "$dir/conns.json" "sorted({c['mode'] for c in d['conns']})" "['dr', 'tun']" "conn list shows the modes"

# PMTU, UDP with DF: the first too-big datagram through IPIP is answered by
# fragmentation-needed (MTU 1480), which the client's socket reports and its kernel then
# enforces; one that fits goes through. With too_big: drop (the GUE UDP service), the
# datagram is only counted and the client learns nothing.
pmtu=$(ip netns exec "$NS_CLIENT" /usr/bin/python3 - "$ipip_vip" "$gue_vip" <<'PY'
import socket, sys, time
def probe(vip, big, small):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO: DF set
    s.settimeout(1.0)
    s.connect((vip, 5353))
    out = []
    s.send(b"x" * big)
    try:
        s.recv(4096); out.append("answered")
    except socket.timeout:
        out.append("timeout")
    except OSError as e:
        out.append("err%d" % e.errno)
    time.sleep(0.2)
    try:
        s.send(b"x" * big); out.append("sent")
    except OSError as e:
        out.append("err%d" % e.errno)  # EMSGSIZE (90) once the kernel learned the PMTU
    s.settimeout(2.0)
    s.send(b"y" * small)
    try:
        out.append("small:%d" % len(s.recv(4096)))
    except OSError as e:
        out.append("small-err%d" % e.errno)
    return ",".join(out)
print(probe(sys.argv[1], 1472, 1400), probe(sys.argv[2], 1472, 1400))
PY
)
set -- $pmtu
case "$1" in timeout,err90,small:*|err90,err90,small:*) ;; *) fail "UDP PMTU through IPIP: $1" ;; esac
case "$2" in timeout,sent,small:*) ;; *) fail "UDP too big through GUE with too_big drop: $2" ;; esac
[ "$(counter drop_tunnel_too_big)" -ge 2 ] || fail "drop_tunnel_too_big $(counter drop_tunnel_too_big)"
[ "$(counter icmp_frag_needed_sent)" -ge 1 ] || fail "no fragmentation-needed sent"
# PMTU, TCP: an upload bigger than one segment through GUE. The client's full-size segments
# do not fit once encapsulated; ferrovs answers fragmentation-needed with MTU 1472, the
# client's kernel lowers its segment size and the upload completes.
head -c 200000 /dev/zero >"$dir/upload"
got=$(ip netns exec "$NS_CLIENT" curl -s --max-time 10 --data-binary @"$dir/upload" "http://$gue_vip:8080/upload")
case "$got" in *received=200000*) ;; *) fail "upload through GUE: '$got'" ;; esac
ip -n "$NS_CLIENT" route get "$gue_vip" | grep -q "mtu 1472" || fail "client's PMTU: $(ip -n "$NS_CLIENT" route get "$gue_vip")"
# The backends' decapsulators saw both encapsulations, and nothing they could not parse.
for pid in "${FVS_DECAP_PIDS[@]}"; do kill -USR1 "$pid"; done
sleep 0.5
decap=$(for f in "$dir"/decap-b*.out; do tail -1 "$f"; done | /usr/bin/python3 -c "
import json, sys
rows = [json.loads(l) for l in sys.stdin]
print(sum(r['ipip'] for r in rows) > 0, sum(r['gue'] for r in rows) > 0, sum(r['bad'] for r in rows))")
[ "$decap" = "True True 0" ] || fail "decapsulation counters (ipip>0, gue>0, bad): $decap"

# A DR backend must be on a directly connected network; refused, and nothing changes.
before=$(fvs_services_config "$socket")
if fvs backend add tcp $dr_vip:8080 203.0.113.77:8080 2>"$dir/err"; then fail "DR backend off-link accepted"; fi
grep -q "directly connected" "$dir/err" || fail "DR refusal message: $(cat "$dir/err")"
if fvs backend add tcp $ipip_vip:8080 198.51.100.14:9090 2>"$dir/err"; then fail "TUN backend with another port accepted"; fi
[ "$(fvs_services_config "$socket")" = "$before" ] || fail "a refused command changed the services"

# SNAT: backend b1 fetches from a server outside (in the client namespace, which has no
# route to the backends' network); the server sees the SNAT address.
fvs_outside_start "$dir" || fail "outside server"
for i in 1 2 3; do
  got=$(ip netns exec "${NS_BACKENDS[0]}" curl -s --max-time 3 http://192.0.2.2:9000/)
  case "$got" in "backend=outside peer=$snat_addr:"*) ;; *) fail "SNAT fetch $i: '$got'" ;; esac
done
got=$(ip netns exec "${NS_BACKENDS[1]}" /usr/bin/python3 "$tools/lbclient.py" udp 192.0.2.2 9001 --count 5 --sport-range 45000-45004 2>/dev/null)
[ "$(echo "$got" | /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print(d['ok'], list(d['peers']))")" = "5 ['$snat_addr']" ] \
  || fail "SNAT UDP: $got"
[ "$(counter snat_out_packets)" -ge 8 ] || fail "snat_out_packets $(counter snat_out_packets)"
[ "$(counter snat_in_packets)" -ge 8 ] || fail "snat_in_packets $(counter snat_in_packets)"
fvs snat show | grep -q "$snat_addr" || fail "snat show: $(fvs snat show)"

fvs_stop "$FVS_DAEMON_PID" || fail "ferrovs did not stop on SIGTERM"
echo "ok: DR, TUN (IPIP, GUE) with direct replies, PMTU, SNAT"
