# Shell helpers for the demo and the end-to-end tests: namespaces, veth pairs, starting and
# stopping ferrovs. Everything created is recorded and removed by fvs_cleanup (by name for
# namespaces and links we made, by PID for processes). Source it; do not run it.

FVS_NAMESPACES=()
FVS_PIDS=()
# The scratch directory is made here, not on first use: `dir=$(fvs_tmpdir)` runs in a
# subshell, whose FVS_TMP fvs_cleanup would never see (the directory was left behind).
FVS_TMP=$(mktemp -d /tmp/ferrovs.XXXXXX)

fvs_root() { cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd; }

# fvs_bin NAME: the ferrovs/fvs binary to use ($FVS_PROFILE: release (default) or debug).
fvs_bin() {
  local dir="${CARGO_TARGET_DIR:-$(fvs_root)/target}/${FVS_PROFILE:-release}"
  echo "$dir/$1"
}

fvs_tmpdir() {
  [ -n "$FVS_TMP" ] || FVS_TMP=$(mktemp -d /tmp/ferrovs.XXXXXX)
  echo "$FVS_TMP"
}

fvs_netns_add() {
  ip netns add "$1"
  FVS_NAMESPACES+=("$1")
  ip -n "$1" link set lo up
}

# fvs_veth NS_A IF_A NS_B IF_B: a veth pair between two namespaces. Checksum offloads are
# off so frames ferrovs reads with AF_PACKET carry complete checksums.
fvs_veth() {
  ip link add "$2" netns "$1" type veth peer name "$4" netns "$3"
  ip netns exec "$1" ethtool -K "$2" tx off rx off >/dev/null 2>&1 || true
  ip netns exec "$3" ethtool -K "$4" tx off rx off >/dev/null 2>&1 || true
  ip -n "$1" link set "$2" up
  ip -n "$3" link set "$4" up
}

# fvs_dataplane_if NS IF: an interface ferrovs drives: the kernel must stay silent on it
# (no IPv6 link-local address, no router solicitations, no ARP answers).
fvs_dataplane_if() {
  ip netns exec "$1" sysctl -qw "net.ipv6.conf.$2.disable_ipv6=1"
  ip -n "$1" link set "$2" arp off
}

# fvs_kernel_deaf NS IF: the kernel's IPv4 stack drops every packet arriving on IF, while
# af_packet still reads them all. For a namespace whose kernel has addresses of its own (a
# port's kernel interface carries the port's): else it would answer for them straight from the
# veth, past ferrovs. IF has no route, so strict reverse-path filtering drops every source
# (tc would be the direct way, but this machine's kernel has no tc classifiers); ARP and IPv6
# are off on it already (fvs_dataplane_if).
fvs_kernel_deaf() {
  ip netns exec "$1" sysctl -qw "net.ipv4.conf.$2.rp_filter=1"
}

# fvs_start NS CONFIG SOCKET LOG: starts ferrovs inside NS ('-': in this namespace, for
# vdevs such as memif that need no interface) and waits for its API.
fvs_start() {
  local ns=$1 config=$2 socket=$3 log=$4
  if [ "$ns" = - ]; then
    "$(fvs_bin ferrovs)" -c "$config" >"$log" 2>&1 &
  else
    ip netns exec "$ns" "$(fvs_bin ferrovs)" -c "$config" >"$log" 2>&1 &
  fi
  FVS_PIDS+=($!)
  FVS_DAEMON_PID=$!
  local i
  for i in $(seq 1 100); do
    if "$(fvs_bin fvs)" --socket "$socket" link show >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$FVS_DAEMON_PID" 2>/dev/null; then
      echo "ferrovs exited during start-up:" >&2; cat "$log" >&2; return 1
    fi
    sleep 0.2
  done
  echo "ferrovs API did not come up within 20 s:" >&2; cat "$log" >&2
  return 1
}

# fvs_stop PID: SIGTERM, then wait (bounded), then SIGKILL.
fvs_stop() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    sleep 0.2
  done
  echo "ferrovs (pid $pid) did not stop within 10 s; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  return 1
}

fvs_cleanup() {
  local pid ns
  for pid in "${FVS_PIDS[@]}"; do fvs_stop "$pid" || true; done
  for ns in "${FVS_NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
  [ -n "$FVS_TMP" ] && rm -rf "$FVS_TMP"
  FVS_PIDS=() FVS_NAMESPACES=() FVS_TMP=""
}

# fvs_topology ID: the demo/test network. ferrovs runs in namespace ID-lb with two ports:
#   client (ID-client) 192.0.2.2/24, 2001:db8:1::2/64, and 203.0.113.10 behind it
#       <-> dp0 192.0.2.1/24, 2001:db8:1::1/64
#   server (ID-server) 198.51.100.2/24  <-> dp1 198.51.100.1/24
# Interface names are derived from ID (keep ID <= 8 characters: names max out at 15).
fvs_topology() {
  local id=$1
  NS_LB="$id-lb" NS_CLIENT="$id-client" NS_SERVER="$id-server"
  IF_LB0="${id}l0" IF_LB1="${id}l1" IF_CLIENT="${id}c0" IF_SERVER="${id}s0"
  fvs_netns_add "$NS_LB"
  fvs_netns_add "$NS_CLIENT"
  fvs_netns_add "$NS_SERVER"
  fvs_veth "$NS_CLIENT" "$IF_CLIENT" "$NS_LB" "$IF_LB0"
  fvs_veth "$NS_SERVER" "$IF_SERVER" "$NS_LB" "$IF_LB1"
  fvs_dataplane_if "$NS_LB" "$IF_LB0"
  fvs_dataplane_if "$NS_LB" "$IF_LB1"
  ip -n "$NS_CLIENT" addr add 192.0.2.2/24 dev "$IF_CLIENT"
  ip -n "$NS_CLIENT" addr add 2001:db8:1::2/64 dev "$IF_CLIENT" nodad
  # A host "behind" the client, reached by ferrovs through its static route via 192.0.2.2.
  ip -n "$NS_CLIENT" addr add 203.0.113.10/32 dev lo
  ip -n "$NS_SERVER" addr add 198.51.100.2/24 dev "$IF_SERVER"
}

# fvs_config_head ID HUGEPAGES [WORKERS [DP1_MTU]]: what every generated config starts with:
# EAL, WORKERS workers (default 1), ports dp0/dp1 on the topology's veths with a queue pair per
# worker (dp1 with `mtu: DP1_MTU` when given; the kernel's veth MTUs stay as they are), and
# dp0's IPv4 address (the list continues). Two workers on a two-CPU machine share CPU 0 with
# the main lcore (workers.cpus), and sleep when idle so the test's own processes run.
fvs_config_head() {
  local id=$1 huge=$2 workers=${3:-1} dp1_mtu=${4:+, mtu: $4} workers_yaml qpairs=""
  case "$workers" in
    1) workers_yaml="{ lcores: [1] }" ;;
    2) if [ "$(nproc)" -ge 3 ]; then workers_yaml="{ lcores: [1, 2], idle_sleep_us: 20 }"
       else workers_yaml="{ lcores: [1, 2], cpus: [1, 0], idle_sleep_us: 20 }"; fi
       qpairs=",qpairs=2" ;;
    *) echo "fvs_config_head: 1 or 2 workers, not '$workers'" >&2; return 1 ;;
  esac
  cat <<YAML
# Generated by scripts/lib.sh for topology '$id'.
eal: { file_prefix: ferrovs-$id, hugepages: $huge, memory_mb: 256 }
workers: $workers_yaml
mempool: { mbufs: 8191, cache_size: 128 }
ports:
  - { name: dp0, device: "net_af_packet0,iface=${id}l0$qpairs" }
  - { name: dp1, device: "net_af_packet1,iface=${id}l1$qpairs"$dp1_mtu }
addresses:
  - { port: dp0, addr: 192.0.2.1/24 }
YAML
}

# fvs_write_config FILE ID SOCKET [HUGEPAGES]: a ferrovs config for fvs_topology ID.
fvs_write_config() {
  local file=$1 id=$2 socket=$3 huge=${4:-true}
  fvs_config_head "$id" "$huge" >"$file"
  cat >>"$file" <<YAML
  - { port: dp0, addr: "2001:db8:1::1/64" }
  - { port: dp1, addr: 198.51.100.1/24 }
routes:
  - { prefix: 203.0.113.0/24, via: 192.0.2.2 }
api: { socket: $socket }
YAML
}

# fvs_lb_topology ID [N]: the load-balancing network. ferrovs runs in ID-lb:
#   client (ID-client) 192.0.2.2/24 <-> dp0 192.0.2.1/24 (the VIP 192.0.2.100 is answered there)
#   dp1 198.51.100.1/24 <-> a bridge in ID-sw <-> backends ID-b1..ID-bN at 198.51.100.1N/24,
#   whose default route is ferrovs (NAT replies must come back through it).
# Sets NS_LB NS_CLIENT NS_SW IF_LB0 IF_LB1 IF_CLIENT and the array NS_BACKENDS.
fvs_lb_topology() {
  local id=$1 n=${2:-3} i ns
  NS_LB="$id-lb" NS_CLIENT="$id-client" NS_SW="$id-sw"
  IF_LB0="${id}l0" IF_LB1="${id}l1" IF_CLIENT="${id}c0"
  fvs_netns_add "$NS_LB"
  fvs_netns_add "$NS_CLIENT"
  fvs_netns_add "$NS_SW"
  fvs_veth "$NS_CLIENT" "$IF_CLIENT" "$NS_LB" "$IF_LB0"
  fvs_veth "$NS_SW" "${id}s0" "$NS_LB" "$IF_LB1"
  fvs_dataplane_if "$NS_LB" "$IF_LB0"
  fvs_dataplane_if "$NS_LB" "$IF_LB1"
  ip -n "$NS_SW" link add br0 type bridge
  ip -n "$NS_SW" link set br0 up
  ip -n "$NS_SW" link set "${id}s0" master br0
  ip -n "$NS_CLIENT" addr add 192.0.2.2/24 dev "$IF_CLIENT"
  NS_BACKENDS=()
  for i in $(seq 1 "$n"); do
    ns="$id-b$i"
    fvs_netns_add "$ns"
    fvs_veth "$ns" "${id}b$i" "$NS_SW" "${id}p$i"
    ip -n "$NS_SW" link set "${id}p$i" master br0
    ip -n "$ns" addr add "198.51.100.1$i/24" dev "${id}b$i"
    ip -n "$ns" route add default via 198.51.100.1
    NS_BACKENDS+=("$ns")
  done
}

# fvs_lb_ipv6: IPv6 on an fvs_lb_topology network (call it after fvs_lb_topology):
#   client 2001:db8:1::2/64 <-> dp0 2001:db8:1::1/64 (the VIP 2001:db8:1::100 is answered there)
#   dp1 2001:db8:2::1/64 <-> backends at 2001:db8:2::1N/64, their default IPv6 route via ferrovs.
# No duplicate address detection (nodad), so the addresses work at once.
fvs_lb_ipv6() {
  local id=${NS_LB%-lb} i=0 ns
  ip -n "$NS_CLIENT" addr add 2001:db8:1::2/64 dev "$IF_CLIENT" nodad
  for ns in "${NS_BACKENDS[@]}"; do
    i=$((i + 1))
    ip -n "$ns" addr add "2001:db8:2::1$i/64" dev "${id}b$i" nodad
    ip -n "$ns" -6 route add default via 2001:db8:2::1
  done
}

# fvs_dsr_return_ipv6 ID VIP6...: fvs_dsr_return's return path for IPv6 DR/TUN replies (call
# fvs_dsr_return ID first): the router ID-rt gets 2001:db8:2::fe/64 on the backends' bridge and
# 2001:db8:3::1/64 towards the client's second interface (2001:db8:3::2/64) and forwards IPv6;
# each backend gets every VIP6 on lo (/128) and a policy rule so that only packets FROM a VIP
# take the router (table 100: default via 2001:db8:2::fe). Linux answers neighbour
# solicitations only for addresses of the receiving interface, so a VIP on lo stays unanswered
# (no arp_ignore needed).
fvs_dsr_return_ipv6() {
  local id=$1 vip ns
  shift
  ip -n "$NS_RT" addr add 2001:db8:2::fe/64 dev "${id}r0" nodad
  ip -n "$NS_RT" addr add 2001:db8:3::1/64 dev "${id}r1" nodad
  ip -n "$NS_RT" -6 route add 2001:db8:1::/64 via 2001:db8:3::2
  ip netns exec "$NS_RT" sysctl -qw net.ipv6.conf.all.forwarding=1
  ip -n "$NS_CLIENT" addr add 2001:db8:3::2/64 dev "$IF_CLIENT_RETURN" nodad
  for ns in "${NS_BACKENDS[@]}"; do
    for vip in "$@"; do
      ip -n "$ns" addr add "$vip/128" dev lo
      ip -n "$ns" -6 rule add from "$vip/128" lookup 100
    done
    ip -n "$ns" -6 route add default via 2001:db8:2::fe table 100
  done
}

# fvs_write_lb6_config FILE ID SOCKET [DP1_MTU]: a ferrovs config for fvs_lb_topology ID plus
# fvs_lb_ipv6, with three backends (b1..b3 at 2001:db8:2::11..13): on VIP 2001:db8:1::100, NAT
# services (tcp 80 round robin, udp 53) and FullNAT services from local address
# 2001:db8:2::200 (tcp 8080 weighted 1:2:3, udp 5354, udp 5355 to a closed port); tcp 8080 and
# udp 5353 round robin on 2001:db8:1::101 in DR, on 2001:db8:1::102 in TUN (IPv6-in-IPv6) and
# on 2001:db8:1::103 in TUN with GUE (port 6080) (these need fvs_dsr_return_ipv6 and
# fvs_decap_start); SNAT for the backends' own outbound connections (source 2001:db8:2::/64
# leaving by dp0 gets 2001:db8:1::50); dp1 with `mtu: DP1_MTU` when given. Short timeouts, as
# fvs_write_lb_config.
fvs_write_lb6_config() {
  local file=$1 id=$2 socket=$3 mtu=${4:-}
  local b="{ addr: '2001:db8:2::11', port: PORT }, { addr: '2001:db8:2::12', port: PORT }, { addr: '2001:db8:2::13', port: PORT }"
  fvs_config_head "$id" true 1 "$mtu" >"$file"
  cat >>"$file" <<YAML
  - { port: dp0, addr: "2001:db8:1::1/64" }
  - { port: dp1, addr: 198.51.100.1/24 }
  - { port: dp1, addr: "2001:db8:2::1/64" }
connections:
  capacity: 65536
  timeouts: { tcp_time_wait: 2, tcp_close: 2, tcp_fin_wait: 5, tcp_close_wait: 5, tcp_last_ack: 5, udp: 3 }
services:
  - { vip: "2001:db8:1::100", port: 80, protocol: tcp, scheduler: rr, backends: [ ${b//PORT/8080} ] }
  - { vip: "2001:db8:1::100", port: 53, protocol: udp, scheduler: rr, backends: [ ${b//PORT/5353} ] }
  - vip: "2001:db8:1::100"
    port: 8080
    protocol: tcp
    scheduler: wrr
    mode: fullnat
    laddrs: [ "2001:db8:2::200" ]
    backends:
      - { addr: "2001:db8:2::11", port: 8080, weight: 1 }
      - { addr: "2001:db8:2::12", port: 8080, weight: 2 }
      - { addr: "2001:db8:2::13", port: 8080, weight: 3 }
  - { vip: "2001:db8:1::100", port: 5354, protocol: udp, scheduler: rr, mode: fullnat, laddrs: [ "2001:db8:2::200" ],
      backends: [ ${b//PORT/5353} ] }
  # Nothing listens on 5399: the backend's port unreachable comes back translated.
  - { vip: "2001:db8:1::100", port: 5355, protocol: udp, mode: fullnat, laddrs: [ "2001:db8:2::200" ],
      backends: [ { addr: "2001:db8:2::11", port: 5399 } ] }
  - { vip: "2001:db8:1::101", port: 8080, protocol: tcp, scheduler: rr, mode: dr, backends: [ ${b//PORT/8080} ] }
  - { vip: "2001:db8:1::101", port: 5353, protocol: udp, scheduler: rr, mode: dr, backends: [ ${b//PORT/5353} ] }
  - { vip: "2001:db8:1::102", port: 8080, protocol: tcp, scheduler: rr, mode: tun, backends: [ ${b//PORT/8080} ] }
  - { vip: "2001:db8:1::102", port: 5353, protocol: udp, scheduler: rr, mode: tun, backends: [ ${b//PORT/5353} ] }
  - { vip: "2001:db8:1::103", port: 8080, protocol: tcp, scheduler: rr, mode: tun, tunnel: { encap: gue, gue_port: 6080 },
      backends: [ ${b//PORT/8080} ] }
  - { vip: "2001:db8:1::103", port: 5353, protocol: udp, scheduler: rr, mode: tun, tunnel: { encap: gue, gue_port: 6080 },
      backends: [ ${b//PORT/5353} ] }
snat:
  - { source: "2001:db8:2::/64", out_port: dp0, addresses: [ "2001:db8:1::50" ] }
api: { socket: $socket }
YAML
}

# fvs_wait_ready FILE WHAT: waits (at most 10 s) until the tool writing FILE printed `ready`.
fvs_wait_ready() {
  local n
  for n in $(seq 1 100); do grep -q ready "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "$2 did not start:" >&2; cat "$1" >&2
  return 1
}

# fvs_backends_start DIR: starts tests/e2e/tools/backend.py in every backend namespace
# (b1..bN: HTTP on :8080, UDP echo on :5353) and waits until each listens.
fvs_backends_start() {
  fvs_backends_spawn "$1" b backend.py @NAME@ --http 0.0.0.0:8080 --udp 0.0.0.0:5353
}

# fvs_backends_spawn DIR OUT TOOL ARGS...: runs tests/e2e/tools/TOOL in every backend
# namespace (@NAME@ in ARGS becomes b1..bN), output in DIR/OUTI.out, PIDs in FVS_PIDS and
# FVS_SPAWNED_PIDS, and waits until each printed `ready`.
fvs_backends_spawn() {
  local dir=$1 out=$2 tool=$3 i=0 ns
  shift 3
  FVS_SPAWNED_PIDS=()
  for ns in "${NS_BACKENDS[@]}"; do
    i=$((i + 1))
    ip netns exec "$ns" /usr/bin/python3 "$(fvs_root)/tests/e2e/tools/$tool" "${@//@NAME@/b$i}" \
      >"$dir/$out$i.out" 2>&1 &
    FVS_PIDS+=($!)
    FVS_SPAWNED_PIDS+=($!)
  done
  for i in $(seq 1 "${#NS_BACKENDS[@]}"); do
    fvs_wait_ready "$dir/$out$i.out" "$tool in b$i" || return 1
  done
}

# fvs_nginx_backends_start DIR PORT: nginx (Debian's nginx-light) in every backend namespace
# b1..bN, on 0.0.0.0:PORT, one worker, no access log; every request is answered with
# `backend=bI peer=IP:PORT` (the line tests/e2e/tools/backend.py sends, so lbclient.py reads
# both). The masters run in the foreground (their PIDs in FVS_PIDS: SIGTERM stops them);
# files in DIR/nginx-bI. Waits (at most 10 s) until each listens.
fvs_nginx_backends_start() {
  local dir=$1 port=$2 i=0 ns conf n
  for ns in "${NS_BACKENDS[@]}"; do
    i=$((i + 1))
    conf="$dir/nginx-b$i"
    mkdir -p "$conf"
    cat >"$conf/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
user root;
pid $conf/nginx.pid;
error_log $conf/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $conf/body;
  proxy_temp_path $conf/proxy;
  server {
    listen $port backlog=4096;
    location / { default_type text/plain; return 200 "backend=b$i peer=\$remote_addr:\$remote_port\n"; }
  }
}
NGINX
    ip netns exec "$ns" nginx -p "$conf" -e "$conf/error.log" -c "$conf/nginx.conf" >"$conf/out" 2>&1 &
    FVS_PIDS+=($!)
  done
  i=0
  for ns in "${NS_BACKENDS[@]}"; do
    i=$((i + 1))
    for n in $(seq 1 100); do
      ip netns exec "$ns" ss -Hltn "sport = :$port" | grep -q LISTEN && continue 2
      sleep 0.1
    done
    echo "nginx in b$i did not listen on :$port:" >&2; cat "$dir/nginx-b$i/error.log" "$dir/nginx-b$i/out" >&2
    return 1
  done
}

# fvs_nstat NS NAME...: the sum of the kernel's SNMP counters NAME... (nstat names, such as
# TcpExtPAWSTimewait) in namespace NS, absolute values (nstat's history is left alone).
fvs_nstat() {
  local ns=$1
  shift
  ip netns exec "$ns" nstat -asz "$@" | awk '!/^#/ { s += $2 } END { print s + 0 }'
}

# fvs_dsr_return ID VIP...: for fvs_lb_topology ID, a return path for DR/TUN replies that
# bypasses ferrovs (which only sees client->VIP packets in those modes):
#   backends --bridge-- ID-rt 198.51.100.254/24 | 203.0.113.1/24 <-> client 203.0.113.2/24
# on the client's second interface ${ID}c1 (set as IF_CLIENT_RETURN; the router namespace is
# NS_RT). Each backend gets every VIP on lo (/32), arp_ignore=1/arp_announce=2 (it never
# answers ARP for a VIP) and a policy rule so that only packets FROM a VIP take the router
# (`from VIP lookup 100`, table 100: default via 198.51.100.254); everything else, such as
# NAT/FullNAT replies from the backend's own address, keeps the default route via ferrovs, so
# all modes work in one topology. rp_filter is 0 in the router and the client (replies from
# the VIP arrive on ${ID}c1, not where the VIP is routed). With FVS_DSR_ADVMSS=N (unset by
# default) the table-100 route advertises TCP MSS N (1432: full-size client segments still
# fit in 1500 bytes after IPIP's 20 or GUE's 28 bytes; without it they rely on ferrovs' PMTU
# handling). UDP backends must answer from the VIP: bound to it, or with IP_PKTINFO.
fvs_dsr_return() {
  local id=$1 vip ns i=0 k
  shift
  local advmss=${FVS_DSR_ADVMSS:-}
  NS_RT="$id-rt" IF_CLIENT_RETURN="${id}c1"
  fvs_netns_add "$NS_RT"
  fvs_veth "$NS_SW" "${id}pr" "$NS_RT" "${id}r0"
  ip -n "$NS_SW" link set "${id}pr" master br0
  fvs_veth "$NS_RT" "${id}r1" "$NS_CLIENT" "$IF_CLIENT_RETURN"
  ip -n "$NS_RT" addr add 198.51.100.254/24 dev "${id}r0"
  ip -n "$NS_RT" addr add 203.0.113.1/24 dev "${id}r1"
  ip -n "$NS_RT" route add 192.0.2.0/24 via 203.0.113.2
  ip netns exec "$NS_RT" sysctl -qw net.ipv4.ip_forward=1
  for k in all default "${id}r0" "${id}r1"; do
    ip netns exec "$NS_RT" sysctl -qw "net.ipv4.conf.$k.rp_filter=0"
  done
  ip -n "$NS_CLIENT" addr add 203.0.113.2/24 dev "$IF_CLIENT_RETURN"
  for k in all default "$IF_CLIENT" "$IF_CLIENT_RETURN"; do
    ip netns exec "$NS_CLIENT" sysctl -qw "net.ipv4.conf.$k.rp_filter=0"
  done
  for ns in "${NS_BACKENDS[@]}"; do
    i=$((i + 1))
    for k in all "${id}b$i"; do
      ip netns exec "$ns" sysctl -qw "net.ipv4.conf.$k.arp_ignore=1" "net.ipv4.conf.$k.arp_announce=2"
    done
    for vip in "$@"; do
      ip -n "$ns" addr add "$vip/32" dev lo
      ip -n "$ns" rule add from "$vip/32" lookup 100
    done
    ip -n "$ns" route add default via 198.51.100.254 table 100 ${advmss:+advmss "$advmss"}
  done
}

# fvs_decap_start DIR [--gue PORT]: starts tests/e2e/tools/decap.py (userspace IPIP, and GUE
# on UDP PORT, decapsulation into a TUN device decap0: the kernel has no ipip module) in every
# backend namespace and waits until each is ready. Output goes to DIR/decap-bI.out (the last
# line is the JSON counters, written on SIGTERM or SIGUSR1); the PIDs are also in
# FVS_DECAP_PIDS. Use with fvs_dsr_return (the VIPs on lo, the return path).
fvs_decap_start() {
  local dir=$1
  shift
  fvs_backends_spawn "$dir" decap-b decap.py "$@" || return 1
  FVS_DECAP_PIDS=("${FVS_SPAWNED_PIDS[@]}")
}

# fvs_write_lb_config FILE ID SOCKET [HUGEPAGES]: a ferrovs config for fvs_lb_topology ID with
# three backends: NAT services on VIP 192.0.2.100 (tcp 80 round robin, udp 53) and FullNAT
# services (tcp 8080 weighted 1:2:3, udp 5354, udp 5355 to a closed port) from local address
# 198.51.100.200. Short timeouts so finished connections visibly leave `fvs conn list`.
fvs_write_lb_config() {
  local file=$1 id=$2 socket=$3 huge=${4:-true}
  local b="{ addr: 198.51.100.11, port: PORT }, { addr: 198.51.100.12, port: PORT }, { addr: 198.51.100.13, port: PORT }"
  fvs_config_head "$id" "$huge" >"$file"
  cat >>"$file" <<YAML
  - { port: dp1, addr: 198.51.100.1/24 }
connections:
  capacity: 65536
  timeouts: { tcp_time_wait: 2, tcp_close: 2, tcp_fin_wait: 5, tcp_close_wait: 5, tcp_last_ack: 5, udp: 3 }
services:
  - vip: 192.0.2.100
    port: 80
    protocol: tcp
    scheduler: rr
    backends: [ ${b//PORT/8080} ]
  - vip: 192.0.2.100
    port: 53
    protocol: udp
    scheduler: rr
    backends: [ ${b//PORT/5353} ]
  - vip: 192.0.2.100
    port: 8080
    protocol: tcp
    scheduler: wrr
    mode: fullnat
    laddrs: [ 198.51.100.200 ]
    backends:
      - { addr: 198.51.100.11, port: 8080, weight: 1 }
      - { addr: 198.51.100.12, port: 8080, weight: 2 }
      - { addr: 198.51.100.13, port: 8080, weight: 3 }
  - vip: 192.0.2.100
    port: 5354
    protocol: udp
    scheduler: rr
    mode: fullnat
    laddrs: [ 198.51.100.200 ]
    backends: [ ${b//PORT/5353} ]
  # Nothing listens on 5399: the backend's port-unreachable comes back translated.
  - { vip: 192.0.2.100, port: 5355, protocol: udp, mode: fullnat, laddrs: [ 198.51.100.200 ],
      backends: [ { addr: 198.51.100.11, port: 5399 } ] }
api: { socket: $socket }
YAML
}

# fvs_write_demo_config FILE ID SOCKET MODE [HUGEPAGES]: the demo's config for fvs_lb_topology
# ID with three backends: VIP 192.0.2.100 with tcp 8080 and udp 5353, round robin, forwarded in
# MODE (nat | fullnat | dr | tun; the ports stay equal so every mode can serve them), and SNAT
# for the backends' own outbound connections (source 198.51.100.0/24 leaving by dp0 gets
# 192.0.2.50). dr and tun need fvs_dsr_return; tun needs fvs_decap_start.
fvs_write_demo_config() {
  local file=$1 id=$2 socket=$3 mode=$4 huge=${5:-true} extra=""
  local b="{ addr: 198.51.100.11, port: PORT }, { addr: 198.51.100.12, port: PORT }, { addr: 198.51.100.13, port: PORT }"
  case "$mode" in
    nat|dr|tun) ;;
    fullnat) extra=", laddrs: [ 198.51.100.200 ]" ;;
    *) echo "unknown demo mode '$mode' (nat, fullnat, dr or tun)" >&2; return 1 ;;
  esac
  fvs_config_head "$id" "$huge" >"$file"
  cat >>"$file" <<YAML
  - { port: dp1, addr: 198.51.100.1/24 }
connections:
  capacity: 65536
  timeouts: { tcp_time_wait: 2, tcp_close: 2, tcp_fin_wait: 5, tcp_close_wait: 5, tcp_last_ack: 5, udp: 3 }
services:
  - { vip: 192.0.2.100, port: 8080, protocol: tcp, scheduler: rr, mode: $mode$extra,
      backends: [ ${b//PORT/8080} ] }
  - { vip: 192.0.2.100, port: 5353, protocol: udp, scheduler: rr, mode: $mode$extra,
      backends: [ ${b//PORT/5353} ] }
snat:
  - { source: 198.51.100.0/24, out_port: dp0, addresses: [ 192.0.2.50 ] }
api: { socket: $socket }
YAML
}

# fvs_services_config SOCKET: the services as configured, as one line of JSON without the live
# connection counts, so a before/after comparison shows configuration changes only.
fvs_services_config() {
  "$(fvs_bin fvs)" --socket "$1" --json service show | /usr/bin/python3 -c "import json,sys
d=json.load(sys.stdin)
for s in d:
    for b in s['backends']: b.pop('active_conns'); b.pop('inactive_conns')
print(json.dumps(d, sort_keys=True))"
}

# fvs_outside_start DIR: an HTTP (:9000) and UDP echo (:9001) server at 192.0.2.2 in the
# client namespace of fvs_lb_topology, for SNAT: "outside", with no route to the backends.
fvs_outside_start() {
  ip netns exec "$NS_CLIENT" /usr/bin/python3 "$(fvs_root)/tests/e2e/tools/backend.py" outside \
    --http 192.0.2.2:9000 --udp 192.0.2.2:9001 >"$1/outside.out" 2>&1 &
  FVS_PIDS+=($!)
  fvs_wait_ready "$1/outside.out" "the outside server"
}

# fvs_outside6_start DIR: fvs_outside_start's servers at [2001:db8:1::2] (fvs_lb_ipv6).
fvs_outside6_start() {
  ip netns exec "$NS_CLIENT" /usr/bin/python3 "$(fvs_root)/tests/e2e/tools/backend.py" outside6 \
    --http "[2001:db8:1::2]:9000" --udp "[2001:db8:1::2]:9001" >"$1/outside6.out" 2>&1 &
  FVS_PIDS+=($!)
  fvs_wait_ready "$1/outside6.out" "the IPv6 outside server"
}

# fvs_lb_test_helpers: defines what the load-balancing e2e tests share, over their globals
# socket, dir, tools and NS_CLIENT: fvs (the CLI on $socket), fail MSG (exits with ferrovs'
# log tail), client (lbclient.py in the client namespace), json FILE EXPR (a Python
# expression over the JSON object `d` in FILE), expect FILE EXPR WANT WHAT, counter NAME (a
# total from `fvs stats`), udp6_refused VIP PORT (a UDP datagram from the client namespace:
# refused, answered or timeout, as its connected socket saw it), udp6_path_mtu VIP PORT SIZE
# (the client's path MTU to the VIP after a SIZE-byte datagram it may not fragment).
fvs_lb_test_helpers() {
  fvs() { "$(fvs_bin fvs)" --socket "$socket" "$@"; }
  fail() { echo "FAIL: $*" >&2; tail -20 "$dir/ferrovs.log" >&2; exit 1; }
  client() { ip netns exec "$NS_CLIENT" /usr/bin/python3 "$tools/lbclient.py" "$@" 2>/dev/null; }
  json() { /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
  expect() {
    local got; got=$(json "$1" "$2")
    [ "$got" = "$3" ] || fail "$4: got $got, want $3 ($(cat "$1"))"
  }
  counter() { fvs --json stats | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['total'].get('$1', 0))"; }
  udp6_refused() {
    ip netns exec "$NS_CLIENT" /usr/bin/python3 -c "
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.settimeout(3)
s.connect((sys.argv[1], int(sys.argv[2]))); s.send(b'anyone?')
try:
    s.recv(100); print('answered')
except ConnectionRefusedError:
    print('refused')
except socket.timeout:
    print('timeout')" "$1" "$2"
  }
  udp6_path_mtu() {
    ip netns exec "$NS_CLIENT" /usr/bin/python3 -c "
import socket, sys, time
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, 23, 2)  # IPV6_MTU_DISCOVER = IPV6_PMTUDISC_DO: never fragment
s.connect((sys.argv[1], int(sys.argv[2])))
s.send(b'x' * int(sys.argv[3]))
time.sleep(0.5)
print(s.getsockopt(socket.IPPROTO_IPV6, 24))  # IPV6_MTU: the path MTU the stack knows" "$1" "$2" "$3"
  }
}
