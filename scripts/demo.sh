#!/usr/bin/env bash
# The ferrovs demo: builds everything, creates a client, a server and a load-balancer
# namespace joined by veth pairs, starts ferrovs on the balancer's veths (DPDK af_packet
# PMD), and shows real ping/arping answered by ferrovs and its counters. Removes everything
# it created on exit. Run as root on Debian 12: sudo scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

scripts/setup.sh --release
trap fvs_cleanup EXIT

id=fvdemo
socket=/run/ferrovs/demo.sock
dir=$(fvs_tmpdir)
fvs_topology "$id"
# conf/demo.yaml is this same config, written out for reading.
fvs_write_config "$dir/demo.yaml" "$id" "$socket"
fvs=$(fvs_bin fvs)
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "starting ferrovs in namespace $NS_LB (ports $IF_LB0, $IF_LB1)"
fvs_start "$NS_LB" "$dir/demo.yaml" "$socket" "$dir/ferrovs.log"
"$fvs" --socket "$socket" link show
"$fvs" --socket "$socket" addr show
"$fvs" --socket "$socket" route show

say "client: ping 192.0.2.1 (answered by ferrovs)"
ip netns exec "$NS_CLIENT" ping -c 3 -i 0.2 -W 2 192.0.2.1
say "client: arping 192.0.2.1 (ferrovs answers with the MAC of its port dp0)"
ip netns exec "$NS_CLIENT" arping -c 3 -w 5 -I "$IF_CLIENT" 192.0.2.1
say "client: ping -6 2001:db8:1::1 (neighbour discovery and ICMPv6 echo)"
ip netns exec "$NS_CLIENT" ping -6 -c 3 -i 0.2 -W 2 2001:db8:1::1
say "client: ping from 203.0.113.10 (ferrovs routes the reply via 192.0.2.2)"
ip netns exec "$NS_CLIENT" ping -c 3 -i 0.2 -W 2 -I 203.0.113.10 192.0.2.1
say "server: ping 198.51.100.1 (second port)"
ip netns exec "$NS_SERVER" ping -c 3 -i 0.2 -W 2 198.51.100.1
say "client: ping 192.0.2.99 (nobody owns it: ferrovs stays silent and counts the ARP as not for us)"
ip netns exec "$NS_CLIENT" ping -c 1 -W 1 192.0.2.99 || true

say "fvs link show -s"
"$fvs" --socket "$socket" link show -s
say "fvs neigh show"
"$fvs" --socket "$socket" neigh show
say "fvs stats"
"$fvs" --socket "$socket" stats

say "stopping ferrovs and removing the topology"
