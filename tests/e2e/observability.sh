#!/usr/bin/env bash
# End to end: ferrovs seen through the stock tools, with traffic through the VIP (issue 19
# items 1-3). Each check prints PASS or FAIL; the script fails if any did.
#   - the Prometheus endpoint (metrics.listen): `promtool check metrics` accepts it, and a real
#     Prometheus server of the test's own scrapes it: rate() of the UDP service's forwarded
#     packets matches the rate sent;
#   - DPDK telemetry (eal.telemetry): dpdk-telemetry.py shows /ferrovs/stats;
#   - packet capture (eal.pdump): dpdk-dumpcap captures the VIP's traffic, tcpdump reads it.
# Not yet here (issue 19 items 4-6, a later change): `fvs trace`, `fvs top` under tmux.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
trap 'stop_prometheus; fvs_cleanup' EXIT

id="ob$((RANDOM % 100000))"
dir=$(fvs_tmpdir)
socket="$dir/fvs.sock"
tools="$(fvs_root)/tests/e2e/tools"
prefix="ferrovs-$id"
metrics=127.0.0.1:9470     # inside the test's own ferrovs namespace: collides with nothing
prom_addr=127.0.0.1:9471
prom_pid=""
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

fvs_stop "$FVS_DAEMON_PID" || fail_check "ferrovs did not stop on SIGTERM"
if ls /dev/hugepages 2>/dev/null | grep -q "^$prefix"; then fail_check "hugepage files of $prefix left in /dev/hugepages"
elif [ -e "/var/run/dpdk/$prefix" ]; then fail_check "/var/run/dpdk/$prefix left behind: $(ls "/var/run/dpdk/$prefix")"
else pass "no hugepage files or runtime directory left behind"; fi
[ "$failed" = 0 ] || exit 1
echo "ok: Prometheus endpoint, DPDK telemetry and dpdk-dumpcap"
