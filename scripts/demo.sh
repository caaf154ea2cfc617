#!/usr/bin/env bash
# The ferrovs demo: builds everything, creates a client namespace, a load-balancer namespace
# and three backend namespaces running real HTTP and UDP servers, starts ferrovs on the
# balancer's veths (DPDK af_packet PMD), and sends real requests to the VIP 192.0.2.100:
# each answer names the backend that served it. Then it shows the per-backend counters, the
# connection table, and a backend taken out live. Removes everything on exit.
# Run as root on Debian 12: sudo scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

scripts/setup.sh --release
trap fvs_cleanup EXIT

id=fvdemo
socket=/run/ferrovs/demo.sock
dir=$(fvs_tmpdir)
fvs_lb_topology "$id" 3
# conf/demo.yaml is this same config, written out for reading.
fvs_write_lb_config "$dir/demo.yaml" "$id" "$socket"
fvs_backends_start "$dir"
fvs=$(fvs_bin fvs)
fvs() { "$fvs" --socket "$socket" "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_client() { ip netns exec "$NS_CLIENT" "$@"; }

say "starting ferrovs in namespace $NS_LB (ports $IF_LB0, $IF_LB1); backends b1-b3 at 198.51.100.11-13"
fvs_start "$NS_LB" "$dir/demo.yaml" "$socket" "$dir/ferrovs.log"
fvs link show
fvs service show

say "client: 9 HTTP requests to the VIP (NAT, round robin): the backend sees the client's address"
for i in $(seq 1 9); do
  echo "request $i -> $(in_client curl -s --max-time 3 http://192.0.2.100/ || echo failed)"
done

say "client: 6 HTTP requests to 192.0.2.100:8080 (FullNAT, weights 1:2:3): the backend sees ferrovs' 198.51.100.200"
for i in $(seq 1 6); do
  echo "request $i -> $(in_client curl -s --max-time 3 http://192.0.2.100:8080/ || echo failed)"
done

say "client: 3 UDP datagrams to 192.0.2.100:53 (NAT), each a new flow"
in_client /usr/bin/python3 tests/e2e/tools/lbclient.py udp 192.0.2.100 53 --count 3 --sport-range 41000-41002

say "fvs conn list (like ipvsadm -Lnc)"
fvs conn list

say "taking b3 out of the NAT service while the client keeps requesting"
fvs backend set tcp 192.0.2.100:80 198.51.100.13:8080 state draining
for i in $(seq 1 4); do
  echo "request $i -> $(in_client curl -s --max-time 3 http://192.0.2.100/ || echo failed)"
done

say "fvs service show --stats (like ipvsadm -Ln --stats)"
fvs service show --stats
say "fvs service show"
fvs service show
say "fvs stats"
fvs stats

say "stopping ferrovs and removing the topology"
