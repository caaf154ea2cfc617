#!/usr/bin/env bash
# End to end: health checks. Three real HTTP backends (tests/e2e/tools/backend.py) behind a
# NAT VIP with an http check (200 ms interval, 300 ms timeout, rise 2, fall 2); the probes leave
# through dp1's kernel interface (the box's own 198.51.100.1), so they cross the same port as
# the traffic. Under continuous new-connection load through the VIP:
# - a backend's server is killed: "detected in N ms, M failed requests"; no request started
#   after detection fails; restarted, it is back in rotation after `rise` checks;
# - a backend's server is frozen (SIGSTOP): the check's timeout takes it out, SIGCONT brings
#   it back;
# - passive (no active check): a backend where nothing listens (the kernel answers each SYN
#   with a RST) is marked down by the data path's failed-connection counts, and comes back
#   after the backoff once it listens;
# - a backend's link goes down (no operator action): out by the check's timeout, nothing
#   fails after; link up, back in rotation;
# - every backend down: `fail_open` keeps forwarding to them (the client sees their refusals)
#   and keeps the VIP announced; `drop` drops the SYNs and withdraws the VIP's route;
# - fvs backend show / service show / --json and the Prometheus gauge ferrovs_backend_up say
#   so, and each change is logged once.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
trap fvs_cleanup EXIT
has() { [[ "$1" == *"$2"* ]]; }

id="he$((RANDOM % 100000))"
dir=$(fvs_tmpdir)
socket="$dir/fvs.sock"
tools="$(fvs_root)/tests/e2e/tools"
kif="${id}k1"
metrics_port=$((20000 + RANDOM % 20000))
fvs_lb_topology "$id" 3
# The balancer's kernel owns 198.51.100.1 (on the tap): it must not hear it on dp1's veth too.
fvs_kernel_deaf "$NS_LB" "$IF_LB1"
fvs_config_head "$id" false \
  | sed "s|^\(  - { name: dp1, device: \"[^\"]*\"\) }|\1, kernel: { name: $kif, device: tap } }|" >"$dir/ferrovs.yaml"
has "$(cat "$dir/ferrovs.yaml")" "kernel: { name: $kif" || { echo "FAIL: no kernel block in the config" >&2; exit 1; }
b="{ addr: 198.51.100.11, port: PORT }, { addr: 198.51.100.12, port: PORT }, { addr: 198.51.100.13, port: PORT }"
cat >>"$dir/ferrovs.yaml" <<YAML
  - { port: dp1, addr: 198.51.100.1/24 }
connections:
  capacity: 65536
  timeouts: { tcp_time_wait: 2, tcp_close: 2, tcp_fin_wait: 5, tcp_close_wait: 5, tcp_last_ack: 5 }
announce: { table: 100 }
metrics: { listen: "127.0.0.1:$metrics_port" }
services:
  - vip: 192.0.2.100
    port: 80
    protocol: tcp
    scheduler: rr
    health: { type: http, path: /, status: 200, interval_ms: 200, timeout_ms: 300, rise: 2, fall: 2 }
    backends: [ ${b//PORT/8080} ]
  - vip: 192.0.2.100
    port: 81
    protocol: tcp
    scheduler: rr
    passive: { failures: 3, window_ms: 5000, backoff_ms: 5000 }
    backends: [ ${b//PORT/8081} ]
  # Nothing listens on 8090 anywhere: both VIPs' backends are all down.
  - vip: 192.0.2.101
    port: 80
    protocol: tcp
    all_down: fail_open
    health: { type: tcp, interval_ms: 200, timeout_ms: 300, rise: 1, fall: 1 }
    backends: [ { addr: 198.51.100.11, port: 8090 } ]
  - vip: 192.0.2.102
    port: 80
    protocol: tcp
    all_down: drop
    health: { type: tcp, interval_ms: 200, timeout_ms: 300, rise: 1, fall: 1 }
    backends: [ { addr: 198.51.100.11, port: 8090 } ]
api: { socket: $socket }
YAML
fvs_backends_start "$dir"
web_pids=("${FVS_SPAWNED_PIDS[@]}")
# The passive service's servers: b1 and b2 only; b3 refuses (the kernel RSTs its SYNs).
NS_ALL=("${NS_BACKENDS[@]}")
NS_BACKENDS=("${NS_ALL[0]}" "${NS_ALL[1]}")
fvs_backends_spawn "$dir" p backend.py @NAME@ --http 0.0.0.0:8081 --udp 0.0.0.0:5354
NS_BACKENDS=("${NS_ALL[@]}")
fvs_start "$NS_LB" "$dir/ferrovs.yaml" "$socket" "$dir/ferrovs.log"
fvs_lb_test_helpers
pass() { echo "PASS: $*"; }
now() { date +%s.%N; }
ms_between() { /usr/bin/python3 -c "import sys; print(round((float(sys.argv[2]) - float(sys.argv[1])) * 1000))" "$1" "$2"; }
# health ADDR:PORT VIP_PORT: up | down (from fvs --json backend show).
health() {
  fvs --json backend show | /usr/bin/python3 -c "
import json, sys
for s in json.load(sys.stdin):
    if s['vip'] == '${3:-192.0.2.100}' and s['port'] == $2:
        for b in s['backends']:
            if '%s:%d' % (b['addr'], b['port']) == '$1':
                h = b.get('health')
                print('unchecked' if h is None else ('up' if h['up'] else 'down'))"
}
# wait_health ADDR:PORT VIP_PORT WANT SECONDS [VIP]: polls every 20 ms; prints the time it saw WANT.
wait_health() {
  local end=$(( $(date +%s) + $4 ))
  while [ "$(date +%s)" -le "$end" ]; do
    if [ "$(health "$1" "$2" "${5:-192.0.2.100}")" = "$3" ]; then now; return 0; fi
    sleep 0.02
  done
  return 1
}
# failures FILE FROM TO: failed requests of a loop report started in [FROM, TO).
failures() {
  /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(sum(1 for t in d['fail_times'] if float(sys.argv[2]) <= t < float(sys.argv[3])))" "$1" "$2" "$3"
}
# failures_ended FILE T: failed requests of a loop report that had failed before T.
failures_ended() {
  /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(sum(1 for t in d['fail_ends'] if t < float(sys.argv[2])))" "$1" "$2"
}
spawn_web() { # NS NAME OUT INDEX: backend.py on :8080 again, its PID in web_pids[INDEX]
  # Not run in a command substitution: FVS_PIDS must keep the PID so that cleanup ends it.
  ip netns exec "$1" /usr/bin/python3 "$tools/backend.py" "$2" --http 0.0.0.0:8080 --udp 0.0.0.0:5353 >"$3" 2>&1 &
  FVS_PIDS+=($!)
  web_pids[$4]=$!
  fvs_wait_ready "$3" "backend $2" || fail "backend $2 did not restart"
}

grep -q "health checks: probes leave through the kernel" "$dir/ferrovs.log" || fail "no start-up line saying what the probes use"
for i in 1 2 3; do
  wait_health "198.51.100.1$i:8080" 80 up 5 >/dev/null || fail "b$i is not up at start"
done
# Every request answered before anything breaks, spread over all three.
client http http://192.0.2.100/ --count 30 >"$dir/warm.json"
expect "$dir/warm.json" "d['ok']" 30 "all answered before the test"
expect "$dir/warm.json" "sorted(d['backends'].values())" "[10, 10, 10]" "round robin over three healthy backends"

# 1. Kill b2's server under load.
client loop http://192.0.2.100/ --duration 6 --concurrency 4 --timeout 1 >"$dir/kill.json" &
load=$!
sleep 1.5
t_kill=$(now)
kill -KILL "${web_pids[1]}"
t_down=$(wait_health 198.51.100.12:8080 80 down 5) || fail "b2 not marked down within 5 s of its server's death"
wait "$load" || true
detect_ms=$(ms_between "$t_kill" "$t_down")
# A request in flight at the kill may fail after it (reset by the dying server): "before"
# counts the requests that had already failed when the server was killed.
before=$(failures_ended "$dir/kill.json" "$t_kill")
during=$(failures "$dir/kill.json" "$t_kill" "$t_down")
after=$(failures "$dir/kill.json" "$t_down" 1e12)
echo "kill: detected in $detect_ms ms, $during failed requests ($(json "$dir/kill.json" "d['ok']") answered in all)"
[ "$before" -eq 0 ] || fail "$before requests failed before the kill ($(cat "$dir/kill.json"))"
[ "$after" -eq 0 ] || fail "$after requests started after detection failed ($(cat "$dir/kill.json"))"
[ "$detect_ms" -le 2000 ] || fail "detection took $detect_ms ms (interval 200 ms x fall 2 + timeout)"
pass "killed server: detected in $detect_ms ms, $during failed requests, none after detection"
has "$(fvs backend show)" "down" || fail "backend show: $(fvs backend show)"
down_lines=$(grep -c '"backend down".*198.51.100.12:8080\|backend down.*198.51.100.12:8080' "$dir/ferrovs.log" || true)
[ "$down_lines" -eq 1 ] || fail "b2's down logged $down_lines times (want once): $(grep 198.51.100.12 "$dir/ferrovs.log")"
grep "backend down" "$dir/ferrovs.log" | grep -q "connection refused" || fail "the log line does not say why: $(grep 'backend down' "$dir/ferrovs.log")"
fvs --json backend show >"$dir/show.json"
json "$dir/show.json" "[b['health'] for s in d if s['port'] == 80 and s['vip'] == '192.0.2.100' for b in s['backends'] if b['addr'] == '198.51.100.12'][0]" >"$dir/b2.txt"
has "$(cat "$dir/b2.txt")" "'up': False" || fail "--json health: $(cat "$dir/b2.txt")"
has "$(cat "$dir/b2.txt")" "'last_ok': False" || fail "--json last result: $(cat "$dir/b2.txt")"
has "$(cat "$dir/b2.txt")" "'since_ms':" || fail "--json since: $(cat "$dir/b2.txt")"
has "$(fvs service show)" "Health" || fail "service show has no health column: $(fvs service show)"
curl -s "http://127.0.0.1:$metrics_port/metrics" >"$dir/metrics.txt" 2>/dev/null \
  || ip netns exec "$NS_LB" curl -s "http://127.0.0.1:$metrics_port/metrics" >"$dir/metrics.txt"
grep -q 'ferrovs_backend_up{.*backend="198.51.100.12:8080".*} 0' "$dir/metrics.txt" \
  || fail "metrics: $(grep backend_up "$dir/metrics.txt")"
grep -q 'ferrovs_backend_up{.*backend="198.51.100.11:8080".*} 1' "$dir/metrics.txt" \
  || fail "metrics: $(grep backend_up "$dir/metrics.txt")"
pass "backend show, --json, service show, the log (once, with the reason) and ferrovs_backend_up say b2 is down"

# Restart it: back in rotation after rise (2) successful checks.
t_start=$(now)
spawn_web "${NS_BACKENDS[1]}" b2 "$dir/b2-again.out" 1
t_up=$(wait_health 198.51.100.12:8080 80 up 5) || fail "b2 not back within 5 s of its restart"
up_ms=$(ms_between "$t_start" "$t_up")
[ "$up_ms" -ge 150 ] || fail "b2 back in $up_ms ms: faster than rise 2 x interval 200 ms allows"
client http http://192.0.2.100/ --count 30 >"$dir/back.json"
expect "$dir/back.json" "d['ok']" 30 "all answered after the restart"
expect "$dir/back.json" "sorted(d['backends'].values())" "[10, 10, 10]" "b2 back in the round robin"
pass "restarted server back in rotation after $up_ms ms (rise 2 x 200 ms)"

# 2. Freeze b1's server: it accepts (the kernel does) but never answers; the check's timeout.
client loop http://192.0.2.100/ --duration 5 --concurrency 4 --timeout 1 >"$dir/stop.json" &
load=$!
sleep 1
t_stop=$(now)
kill -STOP "${web_pids[0]}"
t_down=$(wait_health 198.51.100.11:8080 80 down 5) || { kill -CONT "${web_pids[0]}"; fail "frozen b1 not marked down within 5 s"; }
wait "$load" || true
stop_ms=$(ms_between "$t_stop" "$t_down")
after=$(failures "$dir/stop.json" "$t_down" 1e12)
echo "freeze: detected in $stop_ms ms, $(failures "$dir/stop.json" "$t_stop" "$t_down") failed requests"
[ "$after" -eq 0 ] || fail "$after requests started after the frozen backend was marked down failed"
grep "backend down" "$dir/ferrovs.log" | grep "198.51.100.11:8080" | grep -q "timeout" \
  || fail "the frozen backend's log line does not name the timeout: $(grep 'backend down' "$dir/ferrovs.log")"
kill -CONT "${web_pids[0]}"
wait_health 198.51.100.11:8080 80 up 5 >/dev/null || fail "b1 not back within 5 s of SIGCONT"
client http http://192.0.2.100/ --count 30 >"$dir/cont.json"
expect "$dir/cont.json" "d['ok']" 30 "all answered after SIGCONT"
expect "$dir/cont.json" "sorted(d['backends'].values())" "[10, 10, 10]" "b1 back in the round robin"
pass "frozen server out by the check's timeout in $stop_ms ms, none failed after; back after SIGCONT"

# 2b. b3's link goes down under load, no operator action: the check's timeout takes it out;
# once it is marked down no request fails. Link up: back after rise checks.
client loop http://192.0.2.100/ --duration 4 --concurrency 4 --timeout 1 >"$dir/link.json" &
load=$!
sleep 1
t_link=$(now)
ip -n "${NS_BACKENDS[2]}" link set "${id}b3" down
t_down=$(wait_health 198.51.100.13:8080 80 down 5) || { ip -n "${NS_BACKENDS[2]}" link set "${id}b3" up; fail "b3 with its link down not marked down within 5 s"; }
wait "$load" || true
link_ms=$(ms_between "$t_link" "$t_down")
after=$(failures "$dir/link.json" "$t_down" 1e12)
echo "link down: detected in $link_ms ms, $(failures "$dir/link.json" "$t_link" "$t_down") failed requests"
[ "$after" -eq 0 ] || fail "$after requests started after the link-down backend was marked down failed"
ip -n "${NS_BACKENDS[2]}" link set "${id}b3" up
ip -n "${NS_BACKENDS[2]}" route replace default via 198.51.100.1
wait_health 198.51.100.13:8080 80 up 8 >/dev/null || fail "b3 not back within 8 s of its link coming up"
client http http://192.0.2.100/ --count 30 >"$dir/linkup.json"
expect "$dir/linkup.json" "d['ok']" 30 "all answered after the link came back"
expect "$dir/linkup.json" "sorted(d['backends'].values())" "[10, 10, 10]" "b3 back in the round robin"
pass "link down: out in $link_ms ms by the check's timeout, none failed after; back when the link is up"

# 3. Passive: no active check on :81; b3 has no server on 8081, so its kernel RSTs each SYN.
[ "$(health 198.51.100.13:8081 81)" = up ] || fail "passive: b3 should start up"
client loop http://192.0.2.100:81/ --duration 1.5 --concurrency 2 --timeout 1 >"$dir/passive1.json" &
load=$!
t_pstart=$(now)
t_pdown=$(wait_health 198.51.100.13:8081 81 down 3) || fail "passive: b3 not marked down ($(fvs backend show))"
wait "$load" || true
grep "backend down" "$dir/ferrovs.log" | grep "198.51.100.13:8081" | grep -q "passive" \
  || fail "passive down not logged with its reason"
failed=$(failures "$dir/passive1.json" 0 "$t_pdown")
after=$(failures "$dir/passive1.json" "$t_pdown" 1e12)
echo "passive: detected in $(ms_between "$t_pstart" "$t_pdown") ms of load, $failed failed requests"
[ "$failed" -ge 3 ] || fail "passive: $failed failed before detection (it takes 3)"
[ "$after" -eq 0 ] || fail "passive: $after requests started after detection failed"
client http http://192.0.2.100:81/ --count 20 >"$dir/passive2.json"
expect "$dir/passive2.json" "d['ok']" 20 "passive: all answered while b3 is out"
expect "$dir/passive2.json" "sorted(d['backends'])" "['b1', 'b2']" "passive: b3 gets nothing while out"
# It listens again; after the 5 s backoff it is admitted and serves.
ip netns exec "${NS_BACKENDS[2]}" /usr/bin/python3 "$tools/backend.py" b3 --http 0.0.0.0:8081 --udp 0.0.0.0:5354 >"$dir/p3.out" 2>&1 &
FVS_PIDS+=($!)
fvs_wait_ready "$dir/p3.out" "b3 on 8081" || fail "b3 on 8081 did not start"
t_pup=$(wait_health 198.51.100.13:8081 81 up 8) || fail "passive: b3 not admitted again after the backoff"
back_ms=$(ms_between "$t_pdown" "$t_pup")
[ "$back_ms" -ge 4500 ] || fail "passive: b3 back after $back_ms ms, before the 5000 ms backoff"
client http http://192.0.2.100:81/ --count 30 >"$dir/passive3.json"
expect "$dir/passive3.json" "d['ok']" 30 "passive: all answered after re-admission"
expect "$dir/passive3.json" "sorted(d['backends'].values())" "[10, 10, 10]" "passive: b3 back in the round robin"
pass "passive: refused SYNs took b3 out ($failed failed requests), back after the backoff ($back_ms ms)"

# 4. Every backend down. fail_open: still forwarded (the dead backend's RST reaches the client
# as 'connection refused') and announced; drop: SYNs dropped (the client times out) and the
# VIP's route withdrawn.
wait_health 198.51.100.11:8090 80 down 3 192.0.2.101 >/dev/null || fail "192.0.2.101's backend not down"
wait_health 198.51.100.11:8090 80 down 3 192.0.2.102 >/dev/null || fail "192.0.2.102's backend not down"
routes=$(ip -n "$NS_LB" route show table 100)
has "$routes" "192.0.2.100" || fail "the healthy VIP is not announced: $routes"
has "$routes" "192.0.2.101" || fail "fail_open VIP withdrawn: $routes"
! has "$routes" "192.0.2.102" || fail "drop VIP still announced: $routes"
client http http://192.0.2.101/ --count 5 --timeout 1 >"$dir/open.json" || true
expect "$dir/open.json" "(d['failed'], all('Refused' in e for e in d['errors']))" "(5, True)" "fail_open: forwarded to the dead backend"
drops_before=$(counter drop_no_backend)
client http http://192.0.2.102/ --count 3 --timeout 1 >"$dir/drop.json" || true
expect "$dir/drop.json" "d['ok']" 0 "drop: nothing answered"
expect "$dir/drop.json" "list(d['errors'])" "['timeout']" "drop: the SYNs were dropped"
[ "$(counter drop_no_backend)" -gt "$drops_before" ] || fail "drop: drop_no_backend not counted"
pass "all down: fail_open forwards and stays announced, drop drops and withdraws the VIP"

# fvs health set: the drop VIP turns fail_open (announced again, forwarding), and gets a
# check that passes (port 8080 of its backend listens): its backend comes up.
fvs health set tcp 192.0.2.102:80 all-down fail_open || fail "fvs health set all-down"
has "$(ip -n "$NS_LB" route show table 100)" "192.0.2.102" || fail "fail_open by fvs: VIP not announced again"
has "$(fvs service show)" "health tcp" || fail "service show flags: $(fvs service show)"
fvs health set tcp 192.0.2.102:80 backend 198.51.100.11:8090 port 8080 || fail "fvs health set backend port"
wait_health 198.51.100.11:8090 80 up 3 192.0.2.102 >/dev/null || fail "the backend override's check did not pass"
fvs health set tcp 192.0.2.102:80 type smtp 2>/dev/null && fail "a bad check type was accepted"
fvs health del tcp 192.0.2.102:80 || fail "fvs health del: $(fvs health del tcp 192.0.2.102:80 2>&1)"
[ "$(health 198.51.100.11:8090 80 192.0.2.102)" = unchecked ] || fail "fvs health del: still checked"
pass "fvs health set/del change checks and policies live"
echo "health.sh: all passed"
