#!/usr/bin/env bash
# The ferrovs demo: builds everything, creates a client namespace, a load-balancer namespace
# and three backend namespaces running real HTTP and UDP servers, starts ferrovs on the
# balancer's veths (DPDK af_packet PMD), and sends real requests to the VIP 192.0.2.100 in the
# chosen forwarding mode: each answer names the backend that served it and the address it
# saw. Then it shows the connection table, a backend drained live, a backend reaching the
# outside through SNAT, and the counters. Removes everything on exit.
# Run as root on Debian 12 (another account re-runs it through sudo where sudo is installed):
#   scripts/demo.sh [--mode nat|fullnat|dr|tun]   (default nat; or FVS_DEMO_MODE=...)
set -euo pipefail
source "$(dirname "$0")/root.sh"
fvs_as_root "$@"
cd "$(dirname "$0")/.."
source scripts/lib.sh

mode=${FVS_DEMO_MODE:-nat}
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) mode=${2:-}; shift 2 || { echo "--mode needs a value" >&2; exit 2; } ;;
    --mode=*) mode=${1#--mode=}; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown argument '$1' (usage: scripts/demo.sh [--mode nat|fullnat|dr|tun])" >&2; exit 2 ;;
  esac
done
case "$mode" in nat|fullnat|dr|tun) ;; *) echo "unknown mode '$mode' (nat, fullnat, dr or tun)" >&2; exit 2 ;; esac

scripts/setup.sh --release
trap fvs_cleanup EXIT

id=fvdemo
socket=/run/ferrovs/demo.sock
dir=$(fvs_tmpdir)
fvs_lb_topology "$id" 3
# conf/demo.yaml is this same config in nat mode, written out for reading.
fvs_write_demo_config "$dir/demo.yaml" "$id" "$socket" "$mode"
fvs_backends_start "$dir"
case "$mode" in
  dr|tun)
    # The backends hold the VIP on lo and answer the client directly, through a router.
    fvs_dsr_return "$id" 192.0.2.100 ;;
esac
# This kernel has no ipip module: a userspace helper decapsulates on each backend.
if [ "$mode" = tun ]; then fvs_decap_start "$dir"; fi
fvs=$(fvs_bin fvs)
fvs() { "$fvs" --socket "$socket" "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_client() { ip netns exec "$NS_CLIENT" "$@"; }
counter() { fvs --json stats | /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['total'].get('$1', 0))"; }

say "starting ferrovs in namespace $NS_LB (ports $IF_LB0, $IF_LB1); backends b1-b3 at 198.51.100.11-13; mode $mode"
fvs_start "$NS_LB" "$dir/demo.yaml" "$socket" "$dir/ferrovs.log"
fvs link show
fvs service show

case "$mode" in
  nat) seen="the client's own address: NAT rewrites the destination only" ;;
  fullnat) seen="ferrovs' local address 198.51.100.200: FullNAT rewrites both ends" ;;
  dr) seen="the client's own address: DR sends the frame unchanged to the backend's MAC" ;;
  tun) seen="the client's own address: TUN sends the packet inside IP-in-IP" ;;
esac
say "client: 9 HTTP requests to 192.0.2.100:8080 ($mode, round robin); the backend sees $seen"
for i in $(seq 1 9); do
  echo "request $i -> $(in_client curl -s --max-time 3 http://192.0.2.100:8080/ || echo failed)"
done

say "client: 3 UDP datagrams to 192.0.2.100:5353 ($mode), each a new flow"
in_client /usr/bin/python3 tests/e2e/tools/lbclient.py udp 192.0.2.100 5353 --count 3 --sport-range 41000-41002

say "fvs conn list (like ipvsadm -Lnc)"
fvs conn list

case "$mode" in
  dr|tun)
    say "the answers bypassed ferrovs: it forwarded $(counter lb_in_packets) client packets and $(counter lb_out_packets) replies" ;;
esac

say "taking b3 out of the service while the client keeps requesting"
fvs backend set tcp 192.0.2.100:8080 198.51.100.13:8080 state draining
for i in $(seq 1 4); do
  echo "request $i -> $(in_client curl -s --max-time 3 http://192.0.2.100:8080/ || echo failed)"
done

say "SNAT: backend b1 fetches from a server outside (192.0.2.2:9000, which has no route to the backends); it sees 192.0.2.50"
fvs_outside_start "$dir"
for i in 1 2 3; do
  echo "fetch $i -> $(ip netns exec "${NS_BACKENDS[0]}" curl -s --max-time 3 http://192.0.2.2:9000/ || echo failed)"
done
fvs snat show

say "fvs service show --stats (like ipvsadm -Ln --stats)"
fvs service show --stats
say "fvs stats"
fvs stats

say "stopping ferrovs and removing the topology"
