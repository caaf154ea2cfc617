#!/usr/bin/env bash
# End to end, the client's address for FullNAT backends (service `client_address`): real nginx
# backends (Debian's nginx-light) with `listen ... proxy_protocol` behind FullNAT services over
# IPv4 and IPv6 with PROXY protocol v2 and v1, and one with the SYN proxy too, and behind NAT64
# services (IPv6 VIP, the IPv4 nginx) with v2 and v1. Checks: nginx's
# access log names the real client ($proxy_protocol_addr 192.0.2.2 / 2001:db8:1::2, the client's
# port) while its TCP peer is ferrovs's local address; an 8 MB upload (PUT, nginx's dav module
# writes it) and the same file downloaded back keep their sha256 through the sequence shift, on
# every service; a TOA service (IPv4 and IPv6): a capture in the backend's namespace shows the
# option (kind 254: the client's port and address) on the first segments from ferrovs, and
# curl is answered; NAT and UDP services with client_address are refused, naming the field.
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
trap fvs_cleanup EXIT

id="pp$((RANDOM % 100000))"
dir=$(fvs_tmpdir)
socket="$dir/fvs.sock"
tools="$(fvs_root)/tests/e2e/tools"
fvs_lb_topology "$id" 2
fvs_lb_ipv6
b1=198.51.100.11 b2=198.51.100.12 b16=2001:db8:2::11 b26=2001:db8:2::12
vip=192.0.2.100 vip6=2001:db8:1::100

# b1: nginx with PROXY protocol on 8081 (v1 and v2 both accepted), logging what it learns;
# PUT stores the body under files/, GET serves it.
conf="$dir/nginx-pp"
mkdir -p "$conf/files"
cat >"$conf/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
user root;
pid $conf/nginx.pid;
error_log $conf/error.log warn;
events { worker_connections 1024; }
http {
  log_format pp '\$proxy_protocol_addr \$proxy_protocol_port \$remote_addr \$request_method \$uri \$status';
  access_log $conf/access.log pp;
  client_body_temp_path $conf/body;
  client_max_body_size 64m;
  server {
    listen 8081 proxy_protocol;
    listen [::]:8081 proxy_protocol;
    location /who { default_type text/plain; return 200 "pp=\$proxy_protocol_addr:\$proxy_protocol_port peer=\$remote_addr\n"; }
    location /files/ { root $conf; dav_methods PUT; create_full_put_path on; }
  }
}
NGINX
ip netns exec "${NS_BACKENDS[0]}" nginx -p "$conf" -e "$conf/error.log" -c "$conf/nginx.conf" >"$conf/out" 2>&1 &
FVS_PIDS+=($!)
# b2: a plain HTTP server for the TOA services (the option means nothing to it).
ip netns exec "${NS_BACKENDS[1]}" /usr/bin/python3 "$tools/backend.py" b2 --http "[::]:9000" --udp "[::]:9001" >"$dir/b2.out" 2>&1 &
FVS_PIDS+=($!)
fvs_wait_ready "$dir/b2.out" "backend.py in b2"
for _ in $(seq 1 100); do
  ip netns exec "${NS_BACKENDS[0]}" ss -Hltn "sport = :8081" | grep -q LISTEN && break
  sleep 0.1
done

cat >"$dir/ferrovs.yaml" <<YAML
$(fvs_config_head "$id" false)
  - { port: dp0, addr: "2001:db8:1::1/64" }
  - { port: dp1, addr: 198.51.100.1/24 }
  - { port: dp1, addr: "2001:db8:2::1/64" }
connections:
  capacity: 65536
  timeouts: { tcp_time_wait: 2, tcp_close: 2 }
services:
  - { vip: $vip, port: 8081, protocol: tcp, mode: fullnat, laddrs: [ 198.51.100.200 ], client_address: proxy_v2,
      backends: [ { addr: $b1, port: 8081 } ] }
  - { vip: $vip, port: 8082, protocol: tcp, mode: fullnat, laddrs: [ 198.51.100.200 ], client_address: proxy_v1,
      backends: [ { addr: $b1, port: 8081 } ] }
  - { vip: $vip, port: 8084, protocol: tcp, mode: fullnat, laddrs: [ 198.51.100.200 ], client_address: proxy_v2,
      syn_proxy: on, backends: [ { addr: $b1, port: 8081 } ] }
  - { vip: $vip, port: 8083, protocol: tcp, mode: fullnat, laddrs: [ 198.51.100.200 ], client_address: toa,
      backends: [ { addr: $b2, port: 9000 } ] }
  - { vip: "$vip6", port: 8081, protocol: tcp, mode: fullnat, laddrs: [ "2001:db8:2::200" ], client_address: proxy_v2,
      backends: [ { addr: "$b16", port: 8081 } ] }
  - { vip: "$vip6", port: 8082, protocol: tcp, mode: fullnat, laddrs: [ "2001:db8:2::200" ], client_address: proxy_v1,
      backends: [ { addr: "$b16", port: 8081 } ] }
  - { vip: "$vip6", port: 8083, protocol: tcp, mode: fullnat, laddrs: [ "2001:db8:2::200" ], client_address: toa,
      backends: [ { addr: "$b26", port: 9000 } ] }
  - { vip: "$vip6", port: 8085, protocol: tcp, mode: nat64, laddrs: [ 198.51.100.201 ], client_address: proxy_v2,
      backends: [ { addr: $b1, port: 8081 } ] }
  - { vip: "$vip6", port: 8086, protocol: tcp, mode: nat64, laddrs: [ 198.51.100.201 ], client_address: proxy_v1,
      backends: [ { addr: $b1, port: 8081 } ] }
api: { socket: $socket }
YAML
fvs_start "$NS_LB" "$dir/ferrovs.yaml" "$socket" "$dir/ferrovs.log"
fvs_lb_test_helpers
fvs service show | grep -q "client-address proxy-v2" || fail "service show: $(fvs service show)"
# Bounded: 3 s a request, 8 s a transfer (they take well under one), so the whole test stays
# under 2 minutes even if every request hangs.
ccurl() { ip netns exec "$NS_CLIENT" curl -sS --max-time 3 "$@"; }

# Who the backend sees: the PROXY header's client, and ferrovs's local address as its peer.
lp=41230
for svc in "$vip:8081 192.0.2.2 198.51.100.200" "$vip:8082 192.0.2.2 198.51.100.200" \
  "$vip:8084 192.0.2.2 198.51.100.200" "[$vip6]:8081 2001:db8:1::2 2001:db8:2::200" \
  "[$vip6]:8082 2001:db8:1::2 2001:db8:2::200" "[$vip6]:8085 2001:db8:1::2 198.51.100.201" \
  "[$vip6]:8086 2001:db8:1::2 198.51.100.201"; do
  read -r url client laddr <<<"$svc"
  # Each from a port of its own (a port in TIME_WAIT cannot be bound again at once).
  lp=$((lp + 1))
  got=$(ccurl --local-port "$lp" "http://$url/who") || fail "curl http://$url/who"
  [ "$got" = "pp=$client:$lp peer=$laddr" ] || fail "http://$url/who: '$got', want 'pp=$client:$lp peer=$laddr'"
done

# Large transfers both ways on every service: 8 MB up (PUT) and back down (GET), sha256 equal.
head -c $((8 * 1024 * 1024)) /dev/urandom >"$dir/up.bin"
want=$(sha256sum <"$dir/up.bin" | cut -d' ' -f1)
n=0
for url in "$vip:8081" "$vip:8082" "$vip:8084" "[$vip6]:8081" "[$vip6]:8082" "[$vip6]:8085" "[$vip6]:8086"; do
  n=$((n + 1))
  ccurl --max-time 8 -f -T "$dir/up.bin" "http://$url/files/up$n.bin" >/dev/null || fail "PUT 8 MB to http://$url"
  stored=$(sha256sum <"$conf/files/up$n.bin" | cut -d' ' -f1)
  [ "$stored" = "$want" ] || fail "upload through http://$url arrived changed ($stored, want $want)"
  down=$(ccurl --max-time 8 -f "http://$url/files/up$n.bin" | sha256sum | cut -d' ' -f1) || fail "GET 8 MB from http://$url"
  [ "$down" = "$want" ] || fail "download through http://$url arrived changed ($down, want $want)"
done

# nginx's access log: every request names the real client, the TCP peer is the local address.
log="$conf/access.log"
[ "$(grep -c '^192\.0\.2\.2 [0-9]* 198\.51\.100\.200 ' "$log")" = 9 ] || fail "IPv4 log lines: $(cat "$log")"
[ "$(grep -c '^2001:db8:1::2 [0-9]* 2001:db8:2::200 ' "$log")" = 6 ] || fail "IPv6 log lines: $(cat "$log")"
# NAT64: the IPv6 client in the header, the IPv4 local address as the peer.
[ "$(grep -c '^2001:db8:1::2 [0-9]* 198\.51\.100\.201 ' "$log")" = 6 ] || fail "NAT64 log lines: $(cat "$log")"
grep -q '^192\.0\.2\.2 41231 198\.51\.100\.200 GET /who 200$' "$log" || fail "the client's port in the log: $(cat "$log")"
[ "$(wc -l <"$log")" = 21 ] || fail "access log: $(cat "$log")"
[ "$(counter client_addr_sent)" -ge 21 ] || fail "client_addr_sent: $(counter client_addr_sent)"
[ "$(counter syn_cookies_valid)" -ge 2 ] || fail "the SYN-proxied service's connections: $(counter syn_cookies_valid)"

# TOA: a capture in b2's namespace; the option carries the client's port and address.
ip netns exec "${NS_BACKENDS[1]}" tcpdump --immediate-mode -i "${id}b2" -U -w "$dir/toa.pcap" "tcp dst port 9000" 2>"$dir/tcpdump.err" &
tcpdump_pid=$!
FVS_PIDS+=("$tcpdump_pid")
for _ in $(seq 1 50); do grep -q "listening on" "$dir/tcpdump.err" && break; sleep 0.1; done
ccurl --local-port 41301 "http://$vip:8083/" | grep -q "backend=b2 peer=198.51.100.200:" || fail "curl through the TOA service"
ccurl --local-port 41302 "http://[$vip6]:8083/" | grep -q "backend=b2 peer=\[2001:db8:2::200\]:" ||
  fail "curl -6 through the TOA service"
sleep 0.5
kill -INT "$tcpdump_pid"
wait "$tcpdump_pid" 2>/dev/null || true
toa=$(/usr/bin/python3 - "$dir/toa.pcap" <<'PY'
import ipaddress, sys
from scapy.all import rdpcap, TCP
seen = []
for p in rdpcap(sys.argv[1]):
    if TCP not in p:
        continue
    raw = bytes(p[TCP])[20:p[TCP].dataofs * 4]
    i = 0
    while i < len(raw):
        kind = raw[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        size = raw[i + 1]
        if kind == 254 and size in (8, 20):
            port = int.from_bytes(raw[i + 2:i + 4], "big")
            seen.append(f"{ipaddress.ip_address(raw[i + 4:i + size])}:{port}")
        i += max(size, 2)
print(" ".join(sorted(set(seen))))
PY
)
[ "$toa" = "192.0.2.2:41301 2001:db8:1::2:41302" ] || fail "TOA options seen by b2: '$toa' in $(tcpdump -nr "$dir/toa.pcap" 2>&1 | head -12) $(cat "$dir/tcpdump.err")"

# Refused where it cannot work, with the field named.
err=$(fvs service add tcp 192.0.2.100:9100 mode nat client-address proxy-v2 2>&1) && fail "a NAT service took client-address"
echo "$err" | grep -q "client_address is only for fullnat" || fail "NAT refusal: $err"
err=$(fvs service add udp 192.0.2.100:9101 mode fullnat laddr 198.51.100.200 client-address proxy-v2 2>&1) &&
  fail "a UDP service took client-address"
echo "$err" | grep -q "is for tcp only" || fail "UDP refusal: $err"
echo "proxy_protocol: ok"
