#!/usr/bin/env bash
# End to end, DPDK to DPDK: the benchmark harness (benches/harness.sh) drives ferrovs with
# fvs-pktgen over two memif links, in NAT, FullNAT, DR and TUN (established connections) and
# with a SYN flood, at a fixed low rate. Checks: at most 0.5% lost per run (none, in
# practice) and latency sampled; ferrovs counted every packet the generator sent through it
# and opened exactly one connection per flow (a new one per SYN in the flood); TUN's packets
# arrived encapsulated (the sink unwraps them to find its timestamps). Then testpmd and ferrovs
# alternate in two pairs of short slices (NAT): the summary gives the ratio of each pair.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
keep=$(mktemp -d /tmp/fvs-bench-e2e.XXXXXX)
trap 'rm -rf "$keep"' EXIT
flows=2000

"$root/benches/harness.sh" --dut ferrovs --cases nat,fullnat,dr,tun,syn --rounds 1 --slices 1 --warmup 0.3 \
  --duration 1 --flows $flows --rate-mpps 0.05 --max-loss 0.5 --keep "$keep"

/usr/bin/python3 - "$keep" "$flows" <<'PY'
import json, sys
keep, flows = sys.argv[1], int(sys.argv[2])
bad = []
for case in ["nat", "fullnat", "dr", "tun", "syn"]:
    gen = json.loads(open(f"{keep}/{case}.ferrovs.1.1.gen").read().splitlines()[0])
    stats = json.load(open(f"{keep}/{case}.ferrovs.1.1.stats"))["total"]
    lb_in, created = stats.get("lb_in_packets", 0), stats.get("conns_created", 0)
    print(f"{case}: sent {gen['tx']} received {gen['rx']} lost {gen['loss']} "
          f"latency p50 {gen['latency_ns']['p50']} ns; ferrovs lb_in_packets {lb_in} conns_created {created}")
    if gen["latency_ns"]["samples"] < gen["rx"]:
        bad.append(f"{case}: {gen['latency_ns']['samples']} latency samples for {gen['rx']} packets")
    if lb_in < gen["tx"] + gen["open_tx"]:
        bad.append(f"{case}: ferrovs saw {lb_in} packets, the generator sent {gen['tx'] + gen['open_tx']}")
    if case == "syn":
        if created < gen["tx"]:
            bad.append(f"syn: {created} connections for {gen['tx']} SYNs from new tuples")
    elif created != flows:
        bad.append(f"{case}: {created} connections for {flows} flows")
    if case in ("dr", "tun") and stats.get("lb_out_packets", 0) != 0:
        bad.append(f"{case}: replies counted in a one-way mode")
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
PY

# Alternating slices: testpmd, ferrovs, testpmd, ferrovs; the summary has the two pairs' ratio.
summary=$("$root/benches/harness.sh" --dut both --cases nat --rounds 1 --slices 2 --warmup 0.3 --duration 0.5 \
  --flows $flows --rate-mpps 0.05 | tee /dev/stderr)
for run in "slice 1 nat      testpmd" "slice 1 nat      ferrovs" "slice 2 nat      testpmd" "slice 2 nat      ferrovs"; do
  grep -q "$run" <<<"$summary" || { echo "FAIL: no run '$run' in the harness output"; exit 1; }
done
# The summary's pairs and median ratio are those of the slices printed above it (to the
# rounding of the printed rates; the rates and their losses depend on how much CPU this
# machine gives the generator: the first part checks losses).
/usr/bin/python3 - "$summary" <<'PY'
import re, statistics, sys
out = sys.argv[1]
rx = {(int(m[1]), m[2]): float(m[3]) for m in re.finditer(r"^round 1 slice (\d) nat +(testpmd|ferrovs) +rx +([0-9.]+) Mpps", out, re.M)}
ratios = [rx[(i, "ferrovs")] / rx[(i, "testpmd")] for i in (1, 2)]
m = re.search(r"^nat +[0-9.]+ +[0-9.]+ \| +(\d+) +([0-9.]+) ", out, re.M)
if not m or int(m[1]) != 2 or abs(float(m[2]) - statistics.median(ratios)) > 0.03:
    print(f"FAIL: want 2 pairs with median ratio {statistics.median(ratios):.2f} in the summary"); sys.exit(1)
print(f"alternating slices: 2 pairs of testpmd and ferrovs, ratios {ratios[0]:.2f} {ratios[1]:.2f}, median {m[2]}")
PY
