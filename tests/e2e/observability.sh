#!/usr/bin/env bash
# End to end: ferrovs seen through the stock tools and its own, with traffic through the VIP
# (issue 19). Each check prints PASS or FAIL; the script fails if any did.
#   - the Prometheus endpoint (metrics.listen): `promtool check metrics` accepts it, and a real
#     Prometheus server of the test's own scrapes it: rate() of the UDP service's forwarded
#     packets matches the rate sent;
#   - DPDK telemetry (eal.telemetry): dpdk-telemetry.py shows /ferrovs/stats;
#   - packet capture (eal.pdump): dpdk-dumpcap captures the VIP's traffic, tcpdump reads it;
#   - `fvs trace` shows each step for a new connection (classification, connection created,
#     scheduler and backend, rewrite, output port and next hop) and the reason of a drop (a
#     SYN to a VIP port no service uses);
#   - `fvs top` runs in a tmux terminal: its screen (capture-pane) shows the service with a
#     non-zero rate of new connections and the core's packet rate; q quits it;
#   - the handshake latency histogram (ferrovs_backend_handshake_seconds) has counts for the
#     NAT and the FullNAT service after traffic, and `service show --stats` prints it.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
trap 'stop_prometheus; stop_tmux; fvs_cleanup' EXIT

id="ob$((RANDOM % 100000))"
dir=$(fvs_tmpdir)
socket="$dir/fvs.sock"
tools="$(fvs_root)/tests/e2e/tools"
prefix="ferrovs-$id"
metrics=127.0.0.1:9470     # inside the test's own ferrovs namespace: collides with nothing
prom_addr=127.0.0.1:9471
prom_pid=""
tmux_sock=""
stop_tmux() {
  [ -n "$tmux_sock" ] || return 0
  tmux -S "$tmux_sock" kill-server 2>/dev/null || true
  tmux_sock=""
}
stop_prometheus() {
  [ -n "$prom_pid" ] || return 0
  kill -TERM "$prom_pid" 2>/dev/null || true
  wait "$prom_pid" 2>/dev/null || true
  prom_pid=""
}

fvs_lb_topology "$id" 3
fvs_write_lb_config "$dir/ferrovs.yaml" "$id" "$socket" true
sed -i "s/^eal: { \(.*\) }$/eal: { \1, telemetry: true, pdump: true }/" "$dir/ferrovs.yaml"
echo "metrics: { listen: \"$metrics\" }" >>"$dir/ferrovs.yaml"
fvs_backends_start "$dir"
fvs_start "$NS_LB" "$dir/ferrovs.yaml" "$socket" "$dir/ferrovs.log"
fvs_lb_test_helpers

failed=0
pass() { echo "PASS: $*"; }
fail_check() { echo "FAIL: $*"; failed=1; }
in_lb() { ip netns exec "$NS_LB" "$@"; }
scrape() { in_lb curl -sf --max-time 5 "http://$metrics/metrics"; }

# Some traffic first, so every family has samples.
client http http://192.0.2.100/ --count 6 >"$dir/http.json"
expect "$dir/http.json" "d['ok']" 6 "HTTP through the VIP"
sleep 1.5   # the view a scrape reads is refreshed every second

# 1a. promtool accepts the exposition, and it has what the traffic did.
scrape >"$dir/metrics.txt" || fail "GET /metrics on $metrics failed"
if promtool check metrics <"$dir/metrics.txt" >"$dir/promtool.out" 2>&1; then
  pass "promtool check metrics accepts the endpoint ($(grep -vc '^#' "$dir/metrics.txt") samples)"
else
  fail_check "promtool check metrics: $(cat "$dir/promtool.out")"
fi
conns=$(awk '/^ferrovs_service_connections_total\{protocol="tcp",vip="192.0.2.100",port="80"\}/ { print $2 }' "$dir/metrics.txt")
if [ "${conns:-0}" -ge 6 ]; then pass "ferrovs_service_connections_total of tcp/80 is $conns (>= 6)"
else fail_check "ferrovs_service_connections_total of tcp/80 is '${conns}', want >= 6"; fi

# 1b. A real Prometheus scrapes it every second while UDP datagrams go to the VIP at a steady
# rate; rate() over 10 s of the service's inbound packets must match what the sender sent in
# those 10 s (it logs when each datagram left) within 10 %: scrapes are a second apart and
# rate() extrapolates to the window's edges.
cat >"$dir/prometheus.yml" <<YAML
global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: ferrovs
    static_configs: [ { targets: [ "$metrics" ] } ]
YAML
in_lb prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/prom-data" \
  --web.listen-address="$prom_addr" >"$dir/prometheus.log" 2>&1 &
prom_pid=$!
# Until its first scrape of ferrovs succeeded: a window without early samples would make
# rate() extrapolate less than the whole window.
for _ in $(seq 1 100); do
  in_lb curl -sf --max-time 1 "http://$prom_addr/api/v1/query" --data-urlencode 'query=up{job="ferrovs"}' 2>/dev/null \
    | grep -q '"value":\[[0-9.]*,"1"\]' && break
  sleep 0.2
done
pps=200 seconds=15
ip netns exec "$NS_CLIENT" /usr/bin/python3 - "$pps" "$seconds" "$dir/sent.txt" <<'PY' &
import socket, sys, time
pps, seconds, log = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("192.0.2.2", 41000))
start, sent = time.monotonic(), []
for i in range(pps * seconds):
    delay = start + i / pps - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    s.sendto(b"rate", ("192.0.2.100", 53))
    sent.append(time.time())
open(log, "w").write("\n".join(f"{t:.6f}" for t in sent))
PY
sender=$!
sleep 13
at=$(date +%s.%N)
query='rate(ferrovs_service_packets_total{protocol="udp",vip="192.0.2.100",port="53",direction="in"}[10s])'
in_lb curl -sf --max-time 5 "http://$prom_addr/api/v1/query" --data-urlencode "query=$query" \
  --data-urlencode "time=$at" >"$dir/rate.json" || true
wait "$sender"
verdict=$(/usr/bin/python3 - "$dir/rate.json" "$dir/sent.txt" "$at" <<'PY' || true
import json, sys
result = json.load(open(sys.argv[1]))["data"]["result"]
at = float(sys.argv[3])
# Each scrape makes ferrovs sum its counters afresh, so the window is the query's own.
sent = [float(t) for t in open(sys.argv[2]).read().split()]
want = sum(1 for t in sent if at - 10 < t <= at) / 10
got = float(result[0]["value"][1]) if result else -1
print(f"{'ok' if abs(got - want) <= 0.10 * want else 'bad'} {got:.1f} {want:.1f}")
PY
)
read -r ok got want <<<"${verdict:-bad none none}"
if [ "$ok" = ok ]; then
  pass "Prometheus: $query = $got/s; sent $want/s in that window (tolerance 10 %)"
else
  fail_check "Prometheus: $query = $got, sent $want/s ($(cat "$dir/rate.json" 2>/dev/null); $(tail -3 "$dir/prometheus.log"); now: $(scrape | grep 'service_packets_total{protocol="udp",vip="192.0.2.100",port="53"'))"
fi
stop_prometheus

# 2. dpdk-telemetry.py shows /ferrovs/stats beside ethdev's commands.
dpdk-telemetry.py -f "$prefix" >"$dir/telemetry.out" 2>&1 <<'CMDS' || true
/
/ferrovs/stats
/ferrovs/services
/ferrovs/conns
CMDS
tel_rx=$(/usr/bin/python3 - "$dir/telemetry.out" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    line = line.strip().removeprefix("--> ").strip()
    if line.startswith("{"):
        answer = json.loads(line)
        if isinstance(answer.get("/ferrovs/stats"), dict):
            print(answer["/ferrovs/stats"].get("rx_packets", 0))
PY
) || true
if [ "${tel_rx:-0}" -gt "$((pps * seconds))" ] && grep -q '"/ethdev/stats"' "$dir/telemetry.out" && grep -q '"/ferrovs/conns": {"active"' "$dir/telemetry.out" \
   && grep -q '"udp/192_0_2_100/53/in_packets": [1-9]' "$dir/telemetry.out"; then
  pass "dpdk-telemetry.py: /ferrovs/stats rx_packets $tel_rx, /ferrovs/services and /ferrovs/conns answer, listed beside /ethdev/stats"
else
  fail_check "dpdk-telemetry.py: $(cat "$dir/telemetry.out")"
fi

# 3. dpdk-dumpcap (a secondary process) captures 10 datagrams to the VIP and their 10 replies.
timeout 20 dpdk-dumpcap --file-prefix="$prefix" -i net_af_packet0 -f 'udp port 53' -c 20 -a duration:15 \
  -w "$dir/vip.pcapng" >"$dir/dumpcap.out" 2>&1 &
dumpcap=$!
for _ in $(seq 1 50); do grep -q "Capturing on" "$dir/dumpcap.out" 2>/dev/null && break; sleep 0.2; done
sleep 0.5
client udp 192.0.2.100 53 --count 10 --sport-range 44000-44009 >"$dir/capture_udp.json"
wait "$dumpcap" || true
tcpdump -nr "$dir/vip.pcapng" >"$dir/tcpdump.out" 2>/dev/null || true
to_vip=$(grep -c '192.0.2.2.4400[0-9] > 192.0.2.100.53: ' "$dir/tcpdump.out" || true)
from_vip=$(grep -c '192.0.2.100.53 > 192.0.2.2.4400[0-9]: ' "$dir/tcpdump.out" || true)
if [ "$to_vip" = 10 ] && [ "$from_vip" = 10 ]; then
  pass "dpdk-dumpcap: tcpdump -r reads 10 datagrams to the VIP and 10 replies"
else
  fail_check "dpdk-dumpcap: $to_vip to the VIP, $from_vip from it, want 10 and 10 ($(cat "$dir/dumpcap.out"); $(head -5 "$dir/tcpdump.out"))"
fi

# 4. fvs trace: the next 3 packets from the client to port 80 (the SYN, its ACK, the request)
# while one HTTP request goes through; then a SYN to port 81 of the VIP, which no service uses.
trace_until_armed() { # OUT ARGS...: starts fvs trace in the background, returns once armed
  local out=$1; shift
  fvs trace "$@" >"$out" 2>&1 &
  trace_pid=$!
  for _ in $(seq 1 50); do grep -q "^trace [0-9]*: the next" "$out" 2>/dev/null && return 0; sleep 0.1; done
  fail_check "fvs trace $*: not armed: $(cat "$out")"
}
trace_until_armed "$dir/trace_new.txt" host 192.0.2.2 port 80 proto tcp count 3 timeout 20
client http http://192.0.2.100/ --count 1 >"$dir/trace_http.json" || true
wait "$trace_pid" || fail_check "fvs trace (new connection) exited with $?"
missing=""
for want in "classify    new to service tcp 192.0.2.100:80 (nat, scheduler rr)" \
            "connection  created: nat 192.0.2.2:" "schedule    rr chose backend 198.51.100.1" \
            "rewrite     tcp 192.0.2.2:" "output      dp1 to " "(next hop 198.51.100.1" \
            "connection  found (client side): nat 192.0.2.2:" "state SYN_RECV -> ESTABLISHED" \
            "verdict     sent" "3 packet(s) (all of them)"; do
  grep -qF -- "$want" "$dir/trace_new.txt" || missing+=" [$want]"
done
if [ -z "$missing" ]; then
  pass "fvs trace: a new connection's SYN (classified, created, scheduled, rewritten, sent out of dp1 to the backend's next hop), then its ACK on the established connection"
else
  fail_check "fvs trace (new connection): missing$missing in: $(cat "$dir/trace_new.txt")"
fi
trace_until_armed "$dir/trace_drop.txt" host 192.0.2.100 port 81 count 1 timeout 20
ip netns exec "$NS_CLIENT" curl -s --max-time 1 http://192.0.2.100:81/ >/dev/null 2>&1 || true
wait "$trace_pid" || fail_check "fvs trace (drop) exited with $?"
if grep -qF "classify    to VIP 192.0.2.100, which has no tcp service on port 81" "$dir/trace_drop.txt" \
   && grep -qF "drop        no_service" "$dir/trace_drop.txt" && grep -qF "verdict     dropped: no_service" "$dir/trace_drop.txt"; then
  pass "fvs trace: a SYN to VIP port 81 (no service) is shown dropped as no_service"
else
  fail_check "fvs trace (drop): $(cat "$dir/trace_drop.txt")"
fi
cat "$dir/trace_new.txt" "$dir/trace_drop.txt"

# 5. fvs top in a tmux terminal while new connections go to the NAT service; its screen after
# a few refreshes must show the service with new connections a second and the core's packets.
client loop http://192.0.2.100/ --duration 8 --concurrency 2 >"$dir/loop.json" &
loader=$!
tmux_sock="$dir/tmux.sock"
tmux -S "$tmux_sock" new-session -d -s top -x 100 -y 24 \
  "$(fvs_bin fvs) --socket $socket top; echo \"exit \$?\" >$dir/top.exit; sleep 30"
sleep 4.5
tmux -S "$tmux_sock" capture-pane -p -t top >"$dir/top.txt" || true
tmux -S "$tmux_sock" send-keys -t top q
for _ in $(seq 1 30); do [ -s "$dir/top.exit" ] && break; sleep 0.1; done
wait "$loader" || true
top_rates=$(/usr/bin/python3 - "$dir/top.txt" <<'PY' || true
import re, sys
screen = open(sys.argv[1]).read()
def cells(line):
    return line.replace("│", " ").replace("|", " ").split()
svc = next((cells(l) for l in screen.splitlines() if "tcp 192.0.2.100:80 " in l + " "), None)
core = next((cells(l) for l in screen.splitlines() if re.match(r"^\W*0\s+\d+\s+\d", l)), None)
def num(s):
    m = re.fullmatch(r"([0-9.]+)([kM]?)", s)
    return float(m[1]) * {"": 1, "k": 1e3, "M": 1e6}[m[2]] if m else -1
# service: tcp VIP:80 mode conns/s active inactive in out; core: core lcore rxMpps txMpps rx tx drops
print(f"{num(svc[3]) if svc else -1:g} {num(core[4]) if core else -1:g}")
PY
)
read -r top_cps top_rx <<<"${top_rates:--1 -1}"
if awk -v c="$top_cps" -v r="$top_rx" 'BEGIN { exit !(c > 0 && r > 0) }' && grep -q "exit 0" "$dir/top.exit" 2>/dev/null; then
  pass "fvs top under tmux: tcp 192.0.2.100:80 at $top_cps new connections/s, core 0 receiving $top_rx packets/s; q quit it"
else
  fail_check "fvs top: conns/s '$top_cps', rx pps '$top_rx', $(cat "$dir/top.exit" 2>/dev/null || echo "did not quit"); screen:
$(cat "$dir/top.txt")"
fi
cat "$dir/top.txt"
stop_tmux

# 6. Handshake latency: every connection so far had its SYN-ACK timed; FullNAT's too.
client http http://192.0.2.100:8080/ --count 6 >"$dir/fullnat.json"
expect "$dir/fullnat.json" "d['ok']" 6 "HTTP through the FullNAT service"
sleep 1.5
scrape >"$dir/metrics2.txt" || fail "GET /metrics on $metrics failed"
hs() { # PORT: the sum over the service's backends of ferrovs_backend_handshake_seconds_count
  awk -v p="port=\"$1\"" '/^ferrovs_backend_handshake_seconds_count\{/ && index($0, "vip=\"192.0.2.100\"") && index($0, p) { n += $2 } END { print n + 0 }' "$dir/metrics2.txt"
}
hs_nat=$(hs 80) hs_fullnat=$(hs 8080)
loop_conns=$(json "$dir/loop.json" "d.get('ok', 0)" 2>/dev/null || echo 0)
fvs --stats service show >"$dir/service_stats.txt"
if [ "$hs_nat" -ge $((7 + loop_conns)) ] && [ "$hs_fullnat" -ge 6 ] && promtool check metrics <"$dir/metrics2.txt" >/dev/null 2>&1 \
   && grep -q "^ferrovs_backend_handshake_seconds_bucket{le=\"0.0001\",protocol=\"tcp\",vip=\"192.0.2.100\",port=\"80\"" "$dir/metrics2.txt" \
   && grep -q "^TCP  192.0.2.100:8080 -> 198.51.100.1[123]:8080  count [1-9]" "$dir/service_stats.txt"; then
  pass "handshake latency: ferrovs_backend_handshake_seconds_count $hs_nat for tcp/80 (NAT, $((7 + loop_conns)) connections) and $hs_fullnat for tcp/8080 (FullNAT, 6); service show --stats prints it"
else
  fail_check "handshake latency: counts $hs_nat (tcp/80, want >= $((7 + loop_conns))) and $hs_fullnat (tcp/8080, want >= 6); $(grep handshake_seconds_count "$dir/metrics2.txt"); $(cat "$dir/service_stats.txt")"
fi
sed -n '/^Handshake latency/,$p' "$dir/service_stats.txt"

fvs_stop "$FVS_DAEMON_PID" || fail_check "ferrovs did not stop on SIGTERM"
if ls /dev/hugepages 2>/dev/null | grep -q "^$prefix"; then fail_check "hugepage files of $prefix left in /dev/hugepages"
elif [ -e "/var/run/dpdk/$prefix" ]; then fail_check "/var/run/dpdk/$prefix left behind: $(ls "/var/run/dpdk/$prefix")"
else pass "no hugepage files or runtime directory left behind"; fi
[ "$failed" = 0 ] || exit 1
echo "ok: Prometheus endpoint, DPDK telemetry, dpdk-dumpcap, fvs trace, fvs top and handshake latency"
