#!/usr/bin/env bash
# e2e-timeout: 420
# End to end: two ferrovs balancers behind a router that spreads each VIP over both (ECMP),
# and a connection surviving the loss of the balancer it went through.
#
#   client 198.51.100.2 -- router (bird2: merge paths; fib_multipath_hash_policy=1) 198.51.100.1
#                            | 192.0.2.254 on bridge br0
#        +-------------------+-------------------+---------------+
#   ferrovs A: dp0 192.0.2.1   ferrovs B: dp0 192.0.2.2   backends b1 192.0.2.11, b2 .12
#   kernel fvs-dp0 + bird2     kernel fvs-dp0 + bird2     (VIPs on lo; answer the client
#   (BGP + BFD to the router)  (BGP + BFD)                 directly via the router)
#
# Both balancers serve VIP 203.0.113.100:8080 in DR and 203.0.113.101:8080 in TUN (IPIP),
# scheduler mh, the same backends; each keeps its VIPs in kernel table 100 (`announce`) and
# its bird announces them over BGP from the port's kernel interface (conf/bird-ecmp.conf; the
# router runs conf/bird-router.conf). Checks: the router holds two next hops per VIP; new
# connections are spread over both balancers (their counters); 100 held connections per VIP
# (one request a second each) go on when balancer A is killed with SIGKILL: the line
# "N of 100 connections survived" per VIP (>= 99 wanted) and the time until the router
# withdrew A; A restarted re-announces, and new and held connections keep working (the ones
# ECMP moves back to A are picked up there). Needs the kernel interface (ports[].kernel).
set -euo pipefail
source "$(dirname "$0")/../../scripts/lib.sh"
trap fvs_cleanup EXIT

id="ec$((RANDOM % 10000))"
dir=$(fvs_tmpdir)
root=$(fvs_root)
tools="$root/tests/e2e/tools"
dr_vip=203.0.113.100 tun_vip=203.0.113.101
NS_RT="$id-rt" NS_CLIENT="$id-cl" NS_A="$id-la" NS_B="$id-lb"
held=100 hold_s=40

fail() { echo "FAIL: $*" >&2; for f in "$dir"/ferrovs-*.log "$dir"/bird-*.log; do echo "== $f" >&2; tail -15 "$f" >&2; done; exit 1; }
fvs() { local sock=$1; shift; "$(fvs_bin fvs)" --socket "$sock" "$@"; }
counter() { fvs "$1" --json stats | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['total'].get('$2', 0))"; }
client() { ip netns exec "$NS_CLIENT" /usr/bin/python3 "$tools/lbclient.py" "$@" 2>/dev/null; }
json() { /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# next_hops VIP: the router's next hops for VIP, sorted, space-separated.
next_hops() { ip -n "$NS_RT" -4 route show "$1/32" | grep -o 'via [0-9.]*' | awk '{print $2}' | sort | xargs; }
# wait_next_hops VIP WANT SECONDS: waits until the router's next hops are WANT.
wait_next_hops() {
  local end=$(( $(now_ms) + $3 * 1000 ))
  while [ "$(next_hops "$1")" != "$2" ]; do
    [ "$(now_ms)" -lt "$end" ] || return 1
    sleep 0.02
  done
}

# --- the network ---------------------------------------------------------------------------
for ns in "$NS_RT" "$NS_CLIENT" "$NS_A" "$NS_B"; do fvs_netns_add "$ns"; done
ip -n "$NS_RT" link add br0 type bridge
ip -n "$NS_RT" link set br0 up
ip -n "$NS_RT" addr add 192.0.2.254/24 dev br0
fvs_veth "$NS_RT" "${id}r1" "$NS_CLIENT" "${id}c0"
ip -n "$NS_RT" addr add 198.51.100.1/24 dev "${id}r1"
ip -n "$NS_CLIENT" addr add 198.51.100.2/24 dev "${id}c0"
ip -n "$NS_CLIENT" route add default via 198.51.100.1
ip netns exec "$NS_RT" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1
for k in all default br0; do ip netns exec "$NS_RT" sysctl -qw "net.ipv4.conf.$k.rp_filter=0"; done
for side in a b; do
  ns=$NS_A; [ "$side" = b ] && ns=$NS_B
  fvs_veth "$ns" "${id}${side}0" "$NS_RT" "${id}r$side"
  ip -n "$NS_RT" link set "${id}r$side" master br0
  fvs_dataplane_if "$ns" "${id}${side}0"
done
NS_BACKENDS=()
for i in 1 2; do
  ns="$id-b$i"
  fvs_netns_add "$ns"
  fvs_veth "$ns" "${id}b$i" "$NS_RT" "${id}p$i"
  ip -n "$NS_RT" link set "${id}p$i" master br0
  ip -n "$ns" addr add "192.0.2.1$i/24" dev "${id}b$i"
  ip -n "$ns" route add default via 192.0.2.254
  for k in all "${id}b$i"; do
    ip netns exec "$ns" sysctl -qw "net.ipv4.conf.$k.arp_ignore=1" "net.ipv4.conf.$k.arp_announce=2"
  done
  ip -n "$ns" addr add "$dr_vip/32" dev lo
  ip -n "$ns" addr add "$tun_vip/32" dev lo
  NS_BACKENDS+=("$ns")
done
fvs_backends_start "$dir" || fail "backends"
fvs_decap_start "$dir" || fail "decapsulation on the backends"

# --- the balancers -------------------------------------------------------------------------
# config_for SIDE ADDR: one balancer; both fit on two CPUs (worker lcore 1, idle sleep).
config_for() {
  local backends="[ { addr: 192.0.2.11, port: 8080 }, { addr: 192.0.2.12, port: 8080 } ]"
  cat <<YAML
eal: { file_prefix: ferrovs-$id-$1, hugepages: false, memory_mb: 256 }
workers: { lcores: [1], idle_sleep_us: 100 }
mempool: { mbufs: 8191, cache_size: 128 }
ports:
  - name: dp0
    device: "net_af_packet0,iface=${id}${1}0"
    kernel: { name: fvs-dp0, device: tap, rate_pps: 20000, burst: 2000 }
addresses:
  - { port: dp0, addr: $2/24 }
announce: { table: 100, protocol: 250 }
services:
  - { vip: $dr_vip, port: 8080, protocol: tcp, scheduler: mh, mode: dr, backends: $backends }
  - { vip: $tun_vip, port: 8080, protocol: tcp, scheduler: mh, mode: tun, backends: $backends }
api: { socket: $dir/$1.sock }
YAML
}
config_for a 192.0.2.1 >"$dir/a.yaml"
config_for b 192.0.2.2 >"$dir/b.yaml"
sed -E 's/192\.0\.2\.1([; ])/192.0.2.2\1/g' "$root/conf/bird-ecmp.conf" >"$dir/bird-b.conf"
grep -q "local 192.0.2.2 as" "$dir/bird-b.conf" || fail "bird config for B"

# start_balancer SIDE: ferrovs (PID in pid_SIDE), then its kernel interface carrying the port's
# address, then bird in the same namespace.
start_balancer() {
  local side=$1 ns=$NS_A addr=192.0.2.1 conf="$root/conf/bird-ecmp.conf" i
  [ "$side" = b ] && { ns=$NS_B addr=192.0.2.2 conf="$dir/bird-b.conf"; }
  fvs_start "$ns" "$dir/$side.yaml" "$dir/$side.sock" "$dir/ferrovs-$side.log" || fail "ferrovs $side did not start"
  eval "pid_$side=$FVS_DAEMON_PID"
  for i in $(seq 1 100); do
    [[ "$(ip -n "$ns" -4 addr show dev fvs-dp0 2>/dev/null)" == *"inet $addr/24"* ]] && break
    [ "$i" = 100 ] && fail "ferrovs $side: no kernel interface fvs-dp0 with $addr/24 (ports[].kernel)"
    sleep 0.1
  done
  # bird keeps running across a ferrovs restart; start it once.
  if [ ! -e "$dir/bird-$side.ctl" ]; then
    ip netns exec "$ns" bird -f -c "$conf" -s "$dir/bird-$side.ctl" -P "$dir/bird-$side.pid" >"$dir/bird-$side.log" 2>&1 &
    FVS_PIDS+=($!)
  fi
}
start_balancer a
start_balancer b
# (Read whole first: grep -q would close the pipe on ip, which pipefail counts as a failure.)
table_a=$(ip -n "$NS_A" -4 route show table 100 proto 250)
grep -q "blackhole $dr_vip" <<<"$table_a" || fail "A has no route for $dr_vip in table 100: '$table_a'"
ip netns exec "$NS_RT" bird -f -c "$root/conf/bird-router.conf" -s "$dir/bird-rt.ctl" -P "$dir/bird-rt.pid" >"$dir/bird-rt.log" 2>&1 &
FVS_PIDS+=($!)

t0=$(now_ms)
for vip in $dr_vip $tun_vip; do
  wait_next_hops "$vip" "192.0.2.1 192.0.2.2" 30 || fail "router: $vip via '$(next_hops "$vip")', want both balancers"
done
echo "router: $dr_vip and $tun_vip via 192.0.2.1 and 192.0.2.2 after $(( $(now_ms) - t0 )) ms"

# --- new connections spread over both balancers --------------------------------------------
for vip in $dr_vip $tun_vip; do
  client http "http://$vip:8080/" --count 40 >"$dir/http-$vip.json"
  [ "$(json "$dir/http-$vip.json" 'd["failed"]')" = 0 ] || fail "$vip: $(cat "$dir/http-$vip.json")"
done
created_a=$(counter "$dir/a.sock" conns_created) created_b=$(counter "$dir/b.sock" conns_created)
echo "spread: 80 new connections, balancer A made $created_a entries, B $created_b"
[ "$created_a" -gt 0 ] && [ "$created_b" -gt 0 ] || fail "new connections not spread over both balancers"

# --- held connections across the loss of A -------------------------------------------------
for vip in $dr_vip $tun_vip; do
  client stream "http://$vip:8080/" --conns "$held" --duration "$hold_s" --interval-ms 1000 \
    --timeout 5 --no-reconnect >"$dir/held-$vip.json" &
  eval "held_pid_${vip//./_}=$!"
done
for i in $(seq 1 100); do
  n=$(ip netns exec "$NS_CLIENT" ss -Htn state established | grep -c ":8080" || true)
  [ "$n" -ge $((2 * held)) ] && break
  [ "$i" = 100 ] && fail "only $n of $((2 * held)) held connections established"
  sleep 0.1
done
sleep 3
in_a=$(counter "$dir/a.sock" lb_in_packets) in_b=$(counter "$dir/b.sock" lb_in_packets)
echo "held: $((2 * held)) connections up; packets so far through A: $in_a, B: $in_b"
[ "$in_a" -gt 0 ] && [ "$in_b" -gt 0 ] || fail "held connections not spread over both balancers"

picked_before=$(counter "$dir/b.sock" conns_picked_up)
kill -KILL "$pid_a"
wait "$pid_a" 2>/dev/null || true
t_kill=$(now_ms)
for vip in $dr_vip $tun_vip; do
  wait_next_hops "$vip" "192.0.2.2" 10 || fail "router still sends $vip via '$(next_hops "$vip")' 10 s after A died"
done
withdrawn_ms=$(( $(now_ms) - t_kill ))
echo "withdrawal: the router dropped A's next hop $withdrawn_ms ms after SIGKILL"
sleep 8
picked=$(( $(counter "$dir/b.sock" conns_picked_up) - picked_before ))
echo "pickup: B picked up $picked connections begun on A"
[ "$picked" -gt 0 ] || fail "B picked up no connection"

# --- A comes back ---------------------------------------------------------------------------
t_start=$(now_ms)
start_balancer a
for vip in $dr_vip $tun_vip; do
  wait_next_hops "$vip" "192.0.2.1 192.0.2.2" 30 || fail "A restarted but $vip is via '$(next_hops "$vip")'"
done
echo "restart: A re-announced $(( $(now_ms) - t_start )) ms after its start"

for vip in $dr_vip $tun_vip; do
  pid_var="held_pid_${vip//./_}"
  wait "${!pid_var}" || true
done
survived_total=0
for vip in $dr_vip $tun_vip; do
  f="$dir/held-$vip.json"
  conns=$(json "$f" 'len(d["conns"])')
  broken=$(json "$f" 'd["broken"]')
  switched=$(json "$f" 'd["switched"]')
  # A slot whose connection never opened has no record: it did not survive either.
  survived=$((conns - broken))
  echo "$vip: $survived of $held connections survived (errors: $(json "$f" 'd["errors"]'), switched backend: $switched)"
  [ "$survived" -ge $((held * 99 / 100)) ] || fail "$vip: only $survived of $held connections survived"
  [ "$switched" = 0 ] || fail "$vip: $switched connections were answered by two backends"
done
picked_a=$(counter "$dir/a.sock" conns_picked_up)
echo "pickup: the restarted A picked up $picked_a held connections ECMP moved back to it"

for vip in $dr_vip $tun_vip; do
  client http "http://$vip:8080/" --count 40 >"$dir/after-$vip.json"
  [ "$(json "$dir/after-$vip.json" 'd["failed"]')" = 0 ] || fail "$vip after the restart: $(cat "$dir/after-$vip.json")"
done
echo "after the restart: 80 new connections answered; A made $(counter "$dir/a.sock" conns_created) entries"

# A clean stop withdraws A's routes from the kernel table.
fvs_stop "$pid_a" || fail "ferrovs A did not stop"
[ -z "$(ip -n "$NS_A" -4 route show table 100 proto 250)" ] || fail "A left routes in table 100 after a clean stop"
wait_next_hops "$dr_vip" "192.0.2.2" 10 || fail "after A's clean stop, $dr_vip is via '$(next_hops "$dr_vip")'"
echo "PASS ecmp_cluster"
