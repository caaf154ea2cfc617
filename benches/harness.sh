#!/usr/bin/env bash
# The DPDK-to-DPDK harness: fvs-pktgen (one lcore, CPU 0) sends through the device under test
# (one worker lcore, CPU 1) and counts what comes out of the other side, over two memif links.
# For every case it runs the same traffic through dpdk-testpmd in io forwarding mode (the
# ceiling of the harness: what two memif hops cost with no work between them) and through
# ferrovs, alternating in short slices: testpmd, ferrovs, testpmd, ferrovs, ... (--slices N
# pairs per case and round, each --duration seconds). It prints Mpps for each and the ratio
# ferrovs/testpmd of each adjacent pair, its median and spread: this VM switches speed states
# for minutes at a time, and a pair measured seconds apart is almost always in one state,
# where whole rounds straddle a switch (ratios from 0.35 to 1.8 before).
#
#   sudo benches/harness.sh [--cases nat,fullnat,dr,tun,syn,synproxy] [--rounds N] [--slices N]
#                           [--duration S] [--warmup S] [--flows N] [--size BYTES]
#                           [--rate-mpps R] [--dut both|ferrovs|testpmd] [--workers N[,N...]]
#                           [--max-loss PCT] [--churn] [--flood [--flood-mpps F]] [--keep DIR]
#
# --workers picks the worker counts: 1 (the default), or a list such as 1,2 or 1,4,8 (every
# slice runs each count, and the summary compares each count with the first). N workers are
# lcores 1..N; with more than N CPUs each gets its own (lcore i on CPU i, the generator and
# ferrovs' main lcore on CPU 0), and the memif links get N queue pairs (the generator:
# --queues N, flow i on queue i % N). testpmd, the ceiling, runs the same layout with N
# forwarding lcores and N queues. On a machine with only 2 CPUs, 2 workers are allowed: worker
# lcore 2 shares CPU 0 with the generator (and the main lcore), so each gets a part of that
# CPU, and 2w/1w says what a second worker gives here, not what a second free core would.
#
# Cases (all TCP to the VIP 192.0.2.100:80 with 8 backends, round robin):
#   nat, fullnat, dr, tun   established: --flows connections opened by SYNs first, then ACKs
#                           cycling over them (tun: IPIP; the sink unwraps it)
#   syn                     a SYN flood into nat: every packet a new tuple, a new connection
#   synproxy                the same flood into a nat service with syn_proxy: on: ferrovs
#                           answers every SYN with a cookie SYN-ACK, which the generator counts
#                           where it sent the SYN (--count-back); testpmd forwards the SYNs as
#                           usual (not in the default list)
# --churn adds two runs of established NAT at a fixed rate (half ferrovs' NAT rate): one
# steady, one while benches/config_churn.sh changes a backend's weight continuously. It reports
# the packets lost and ferrovs' drops in each, and how long each change took to be used by
# every worker.
#
# --flood adds two runs of established NAT to a service with syn_proxy: auto at a fixed rate
# (half ferrovs' NAT rate, as --churn): one alone, one with a SYN flood at --flood-mpps (default:
# the same rate) to the same service from new tuples (the generator's --flood-mpps). The flows
# are opened gently (0.05 Mpps, under the auto threshold of 100,000 SYNs a second set for
# it), then the flood engages the proxy. It reports the established packets received in each
# and their ratio (target: >= 0.9 with the flood), and the cookies ferrovs sent.
#
# --rate-mpps sends at a fixed rate instead of as fast as the DUT takes packets; --max-loss
# makes the script fail when a run loses more than PCT percent or receives nothing (the
# end-to-end test tests/e2e/bench_harness.sh uses both). $FVS_PROFILE picks the build (release).
#
# Takes about (warmup + duration + 5 s) x runs x slices x cases x rounds, the runs being
# testpmd's and ferrovs' (one per worker count): ~5 minutes with the defaults (4 pairs of 1 s
# slices per case). Needs root and hugepages (scripts/setup.sh reserves them). Results go to
# stdout; --keep DIR keeps every run's output (generator JSON, ferrovs log and stats), as
# CASE.RUN.ROUND.SLICE.*.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

cases=nat,fullnat,dr,tun,syn rounds=1 slices=4 duration=1 warmup=1 flows=65536 size=60 rate=0 duts="testpmd ferrovs" workers=1 max_loss="" churn=0 keep=""
flood=0 flood_mpps=""
while [ $# -gt 0 ]; do
  case "$1" in
    --cases) cases=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --slices) slices=$2; shift ;;
    --duration) duration=$2; shift ;;
    --warmup) warmup=$2; shift ;;
    --flows) flows=$2; shift ;;
    --size) size=$2; shift ;;
    --rate-mpps) rate=$2; shift ;;
    --dut) case "$2" in both) duts="testpmd ferrovs" ;; ferrovs|testpmd) duts=$2 ;;
             *) echo "harness.sh: --dut wants both, ferrovs or testpmd" >&2; exit 2 ;; esac; shift ;;
    --workers) [[ "$2" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] ||
                 { echo "harness.sh: --workers wants worker counts like 1, 2 or 1,2,4" >&2; exit 2; }
               workers=$2; shift ;;
    --max-loss) max_loss=$2; shift ;;
    --churn) churn=1 ;;
    --flood) flood=1 ;;
    --flood-mpps) flood_mpps=$2; shift ;;
    --keep) keep=$2; shift ;;
    *) echo "harness.sh: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" = 0 ] || { echo "harness.sh: run as root (hugepages, DPDK)" >&2; exit 1; }
for c in ${cases//,/ }; do
  case "$c" in nat|fullnat|dr|tun|syn|synproxy) ;; *) echo "harness.sh: unknown case '$c' (want nat, fullnat, dr, tun, syn, synproxy)" >&2; exit 2 ;; esac
done
# The runs of each slice: testpmd and ferrovs, each once per worker count ("ferrovs" is 1
# worker, "ferrovs4w" 4; the names of the files --keep keeps).
runs=""
for w in ${workers//,/ }; do
  for dut in $duts; do runs+=" $dut$([ "$w" != 1 ] && echo "${w}w")"; done
done
runs=${runs# }
# label RUN: a run's name in the output.
label() {
  case "$1" in
    *[0-9]w) local base=${1%%[0-9]*}; echo "$base ${1#"$base"}" ;;
    *) [ "$workers" = 1 ] && echo "$1" || echo "$1 1w" ;;
  esac
}
# run_workers RUN: its worker count.
run_workers() {
  case "$1" in *[0-9]w) local n=${1#"${1%%[0-9]*}"}; echo "${n%w}" ;; *) echo 1 ;; esac
}
# worker_cpu N LCORE: the CPU of worker lcore LCORE (1..N) when there are N: its own where
# the machine has more than N CPUs; on 2 CPUs with 2 workers, lcore 2 shares the generator's.
worker_cpu() {
  if [ "$(nproc)" -gt "$1" ]; then echo "$2"; else [ "$2" = 1 ] && echo 1 || echo 0; fi
}
for w in ${workers//,/ }; do
  if [ "$(nproc)" -le "$w" ] && { [ "$w" != 2 ] || [ "$(nproc)" != 2 ]; }; then
    echo "harness.sh: $w workers need $((w + 1)) CPUs (this machine has $(nproc))" >&2
    exit 2
  fi
done

scripts/setup.sh --no-build --hugepages "${FVS_HUGEPAGES:-1024}" || exit 1
FVS_PROFILE=${FVS_PROFILE:-release}
profile_flag=$([ "$FVS_PROFILE" = release ] && echo --release)
cargo build $profile_flag -p ctrl -p pktgen --bins 2>&1 | grep -E '^(error|warning)' && exit 1
pktgen=$(fvs_bin fvs-pktgen)
dir=$(fvs_tmpdir)
# --keep copies the runs' files on any exit, failed runs included.
trap '[ -n "$keep" ] && mkdir -p "$keep" && cp -r "$dir"/. "$keep"/ && echo "harness: runs kept in $keep"; fvs_cleanup' EXIT

GEN_MAC0=02:9e:00:00:00:01 GEN_MAC1=02:9e:00:00:00:02
DUT_MAC0=02:d0:00:00:00:01 DUT_MAC1=02:d0:00:00:00:02

# memif_dev N ROLE: the memif vdev N (socket in $dir) as ROLE, with the DUT's or the
# generator's MAC.
memif_dev() {
  local mac
  if [ "$2" = server ]; then mac=$([ "$1" = 0 ] && echo $GEN_MAC0 || echo $GEN_MAC1); else mac=$([ "$1" = 0 ] && echo $DUT_MAC0 || echo $DUT_MAC1); fi
  # A socket file (not the abstract namespace, memif's default) so the harness can wait for it.
  echo "net_memif$1,role=$2,socket=$dir/memif$1.sock,socket-abstract=no,mac=$mac"
}

# ferrovs_config CASE WORKERS: ferrovs on the two memif links; the generator stands in for
# the client router (192.0.2.2) and the backends (198.51.100.11-18).
ferrovs_config() {
  local mode=$1 capacity=262144 extra="" workers_line lcores="" cpus="" pinned="" i auto=""
  for i in $(seq 1 "$2"); do
    lcores+="${lcores:+, }$i" cpus+="${cpus:+, }$(worker_cpu "$2" "$i")"
    [ "$(worker_cpu "$2" "$i")" = "$i" ] || pinned=1
  done
  # CPUs only where they are not the lcores' own: with 2 CPUs, worker lcore 2 shares CPU 0
  # with the generator and the main lcore.
  workers_line="workers: { lcores: [$lcores], ${pinned:+cpus: [$cpus], }idle_sleep_us: 0 }"
  # A SYN flood fills the table at the rate sent: as fast as possible needs the largest.
  [ "$mode" = syn ] && mode=nat capacity=$(/usr/bin/python3 -c "
r = $rate * 1e6 * ($warmup + $duration + 2) * 1.5
print(16777216 if $rate == 0 else max(262144, 1 << int(r).bit_length()))")
  [ "$mode" = synproxy ] && mode=nat extra="syn_proxy: on,"
  # Established flows are opened at 0.05 Mpps, under the threshold; the flood passes it.
  [ "$mode" = estflood ] && mode=nat extra="syn_proxy: auto," auto="syn_proxy_auto: { half_open: 0, syns_per_s: 100000 }"
  [ "$mode" = fullnat ] && extra="laddrs: [ 198.51.100.200, 198.51.100.201, 198.51.100.202, 198.51.100.203 ],"
  [ "$mode" = tun ] && extra="tunnel: { encap: ipip },"
  cat <<YAML
# Generated by benches/harness.sh. Main lcore (control thread) 0, shared with the generator;
# worker lcore i on CPU i, but with 2 workers on 2 CPUs worker lcore 2 runs on CPU 0, shared
# with the generator and the main lcore.
eal: { file_prefix: fvs-harness-$$, hugepages: true, memory_mb: 512, main_lcore: 0 }
$workers_line
mempool: { mbufs: 16383, cache_size: 256 }
ports:
  - { name: dp0, device: "$(memif_dev 0 client)", rx_descriptors: 1024, tx_descriptors: 1024 }
  - { name: dp1, device: "$(memif_dev 1 client)", rx_descriptors: 1024, tx_descriptors: 1024 }
addresses:
  - { port: dp0, addr: 192.0.2.1/24 }
  - { port: dp1, addr: 198.51.100.1/24 }
routes:
  - { prefix: 203.0.113.0/24, via: 192.0.2.2 }
connections:
  capacity: $capacity
  # The syn case measures forwarding of new connections: no half-open quota refusing them.
  half_open_capacity: $capacity
  $auto
services:
  - { vip: 192.0.2.100, port: 80, protocol: tcp, scheduler: rr, mode: $mode, $extra
      backends: [ { addr: 198.51.100.11, port: 80 }, { addr: 198.51.100.12, port: 80 },
                  { addr: 198.51.100.13, port: 80 }, { addr: 198.51.100.14, port: 80 },
                  { addr: 198.51.100.15, port: 80 }, { addr: 198.51.100.16, port: 80 },
                  { addr: 198.51.100.17, port: 80 }, { addr: 198.51.100.18, port: 80 } ] }
api: { socket: $dir/api.sock }
YAML
}

# run_case RUN CASE ROUND SLICE [GENERATOR ARGS...]: one run (testpmd or ferrovs; testpmdNw
# or ferrovsNw: N workers); prints the generator's JSON line.
run_case() {
  local run=$1 dut=$1 case=$2 round=$3 slice=$4 out="$dir/$2.$1.$3.$4" nworkers
  shift 4
  # One memif queue pair per worker, on both sides.
  nworkers=$(run_workers "$run")
  dut=${dut%%[0-9]*}
  local mode=tcp-est back=()
  [ "$case" = syn ] && mode=syn
  [ "$case" = synproxy ] && mode=syn back=(--count-back)
  rm -f "$dir"/memif*.sock
  "$pktgen" -l 0 --in-memory --file-prefix "fvs-pktgen-$$" -m 256 --no-pci --log-level='*:warning' \
    --vdev="$(memif_dev 0 server)" --vdev="$(memif_dev 1 server)" -- \
    --tx-port net_memif0 --rx-port net_memif1 --dst-mac $DUT_MAC0 --mode $mode --flows "$flows" \
    --size "$size" --warmup "$warmup" --duration "$duration" \
    --answer-arp 198.51.100.0/27,192.0.2.2 --rate-mpps "$rate" --queues "$nworkers" --linger 60 "${back[@]}" "$@" \
    >"$out.gen" 2>"$out.gen.err" &
  local gen=$! i
  # The device under test connects to the generator's memif sockets: they must exist first.
  for i in $(seq 1 200); do
    [ -S "$dir/memif0.sock" ] && [ -S "$dir/memif1.sock" ] && break
    kill -0 "$gen" 2>/dev/null || break
    sleep 0.1
  done
  local dut_pid
  if [ "$dut" = testpmd ]; then
    # io forwarding between the two ports, its forwarding lcore on CPU 1, statistics off.
    # N workers: forwarding lcores 1..N on the CPUs ferrovs' workers get.
    local cores=(-l 0,1) queues=() map=0@0 i
    if [ "$nworkers" != 1 ]; then
      for i in $(seq 1 "$nworkers"); do map+=",$i@$(worker_cpu "$nworkers" "$i")"; done
      cores=(--lcores "$map") queues=(--rxq="$nworkers" --txq="$nworkers" --nb-cores="$nworkers")
    fi
    dpdk-testpmd "${cores[@]}" --in-memory --file-prefix "fvs-testpmd-$$" -m 256 --no-pci --log-level='*:warning' \
      --vdev="$(memif_dev 0 client)" --vdev="$(memif_dev 1 client)" -- \
      --forward-mode=io --auto-start --stats-period 1 "${queues[@]}" >"$out.dut" 2>&1 &
    dut_pid=$!
  else
    ferrovs_config "$case" "$nworkers" >"$out.yaml"
    fvs_start - "$out.yaml" "$dir/api.sock" "$out.dut" || { kill "$gen" 2>/dev/null; wait "$gen"; return 1; }
    dut_pid=$FVS_DAEMON_PID
  fi
  if [ -n "${CHURN_SECONDS:-}" ] && [ "$dut" = ferrovs ]; then
    # The changes start once the generator is past its open phase and warm-up.
    (sleep "$CHURN_DELAY"; taskset -c 0 benches/config_churn.sh --socket "$dir/api.sock" --seconds "$CHURN_SECONDS" \
      --service 192.0.2.100:80/tcp --backend 198.51.100.11:80 >"$out.churn" 2>&1) &
    local churn_pid=$!
  fi
  # The generator prints its result, then keeps the links up (--linger) while the device
  # under test is read and stopped: memif peers may crash when the other side leaves.
  for i in $(seq 1 600); do
    grep -q '^{' "$out.gen" 2>/dev/null && break
    kill -0 "$gen" 2>/dev/null || break
    sleep 0.2
  done
  [ -n "${churn_pid:-}" ] && wait "$churn_pid"
  if [ "$dut" = ferrovs ]; then
    "$(fvs_bin fvs)" --socket "$dir/api.sock" --json stats >"$out.stats" 2>&1 || true
    fvs_stop "$dut_pid"
    FVS_PIDS=("${FVS_PIDS[@]/$dut_pid}")
  else
    kill -TERM "$dut_pid" 2>/dev/null
    # testpmd's memif client may crash on its way out after the generator left: harmless.
    wait "$dut_pid" 2>/dev/null
  fi
  kill -TERM "$gen" 2>/dev/null
  wait "$gen" 2>/dev/null
  if ! grep -q '^{' "$out.gen"; then
    echo "harness: $(label "$run") $case round $round slice $slice: the generator failed:" >&2
    cat "$out.gen.err" "$out.gen" >&2
    tail -5 "$out.dut" >&2
    return 1
  fi
  cat "$out.gen"
}

# field JSON NAME: a number from the generator's JSON line.
field() { /usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[1]); v=d
for k in sys.argv[2].split("."): v=v[k]
print(v)' "$1" "$2"; }

declare -A results mpps
echo "harness: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "harness: frames $size B (+4 FCS), $flows flows (established cases), warm-up $warmup s, measured $duration s per slice,"
echo "harness: $slices slice(s) of each run ($runs) per case and round, alternating; $rounds round(s)"
if [[ ",$workers," == *,2,* ]] && [ "$(nproc)" = 2 ]; then
  echo "harness: 2w: worker lcores 1 and 2 on CPUs 1 and 0, 2 memif queue pairs. This machine has only $(nproc) CPUs:"
  echo "harness: the second worker shares CPU 0 with the generator (and the main lcore), so neither has a CPU"
  echo "harness: to itself and 2w/1w is what a second worker gives HERE, not what it would on a core of its own."
fi
for round in $(seq 1 "$rounds"); do
  for c in ${cases//,/ }; do
    for slice in $(seq 1 "$slices"); do
      for run in $runs; do
        line=$(run_case "$run" "$c" "$round" "$slice") || exit 1
        results[$run.$c.$round.$slice]=$line
        mpps[$run.$c.$round.$slice]=$(field "$line" rx_mpps)
        per_queue=""
        [ "$(run_workers "$run")" != 1 ] && per_queue=$(/usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[1])
t = d["seconds"] * 1e6
print("  rx per queue " + " + ".join("%.3f" % (n / t) for n in d["rx_per_queue"]))' "$line")
        printf 'round %s slice %s %-8s %-11s rx %7.3f Mpps  tx %7.3f Mpps  loss %9s  latency p50 %6s ns p99 %8s ns%s\n' \
          "$round" "$slice" "$c" "$(label "$run")" "${mpps[$run.$c.$round.$slice]}" "$(field "$line" tx_mpps)" \
          "$(field "$line" loss)" "$(field "$line" latency_ns.p50)" "$(field "$line" latency_ns.p99)" "$per_queue"
        if [ -n "$max_loss" ] && ! /usr/bin/python3 -c 'import json,sys; d=json.loads(sys.argv[1])
sys.exit(0 if d["rx"] > 0 and d["loss"] <= d["tx"] * float(sys.argv[2]) / 100 else 1)' "$line" "$max_loss"; then
          echo "harness: $(label "$run") $c round $round slice $slice lost more than $max_loss% (or received nothing)" >&2
          failed=1
        fi
      done
    done
  done
done

# compare A B: per case, the medians of A's and B's slices, and the ratio B/A of each pair of
# slices run one after the other (same round and slice): its median, quartiles and range.
compare() {
  local a=$1 b=$2 c round slice args=()
  for c in ${cases//,/ }; do
    local xs=() ys=()
    for round in $(seq 1 "$rounds"); do
      for slice in $(seq 1 "$slices"); do xs+=("${mpps[$a.$c.$round.$slice]}"); ys+=("${mpps[$b.$c.$round.$slice]}"); done
    done
    args+=("$c" "${xs[*]}" "${ys[*]}")
  done
  /usr/bin/python3 - "$(label "$a")" "$(label "$b")" "${args[@]}" <<'PY'
import statistics, sys
a, b, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
w = max(7, len(a), len(b))
def quartiles(v):
    if len(v) < 2:
        return v[0], v[0]
    q = statistics.quantiles(v, n=4, method="inclusive")
    return q[0], q[2]
print(f"case      {a:>{w}}  {b:>{w}} | pairs  ratio of pairs: median  [quartiles]    range")
for i in range(0, len(rest), 3):
    case, xs, ys = rest[i], [float(x) for x in rest[i + 1].split()], [float(y) for y in rest[i + 2].split()]
    x, y = statistics.median(xs), statistics.median(ys)
    ratios = sorted(q / p for p, q in zip(xs, ys) if p)
    if ratios:
        lo, hi = quartiles(ratios)
        r = f"{len(ratios):5}  {statistics.median(ratios):21.2f}  [{lo:4.2f} {hi:4.2f}]  {ratios[0]:4.2f}-{ratios[-1]:4.2f}"
    else:
        r = f"{0:5}  {'-':>21}"
    print(f"{case:<9} {x:{w}.3f}  {y:{w}.3f} | {r}")
PY
}

if [[ " $runs " == *" testpmd"* ]] && [[ " $runs " == *" ferrovs"* ]]; then
  echo
  echo "rx at the sink, Mpps: median of the slices; ferrovs/testpmd of each adjacent pair of slices"
  for w in ${workers//,/ }; do
    w=$([ "$w" != 1 ] && echo "${w}w")
    compare "testpmd$w" "ferrovs$w"
  done
fi
if [[ "$workers" == *,* ]]; then
  first=${workers%%,*}
  echo
  echo "worker counts against $first; rx at the sink, Mpps: median of the slices; ratio of each adjacent pair"
  [[ ",$workers," == *,2,* ]] && [ "$(nproc)" = 2 ] && echo "Only $(nproc) CPUs: the second worker shares CPU 0 with the generator."
  for dut in $duts; do
    base=$dut$([ "$first" != 1 ] && echo "${first}w")
    for w in ${workers//,/ }; do
      [ "$w" = "$first" ] && continue
      compare "$base" "$dut$([ "$w" != 1 ] && echo "${w}w")"
    done
  done
fi

if [ "$churn" = 1 ]; then
  # Half what ferrovs forwarded in the first NAT round: loss here is the changes', not
  # overload's. With ferrovs' first worker count.
  cr=ferrovs$([ "${workers%%,*}" != 1 ] && echo "${workers%%,*}w")
  [ -n "${results[$cr.nat.1.1]:-}" ] || { echo "harness: --churn needs the nat case and ferrovs" >&2; exit 2; }
  rate=$(/usr/bin/python3 -c "print(round($(field "${results[$cr.nat.1.1]}" rx_mpps) / 2, 3))")
  # ferrovs' own drops, by reason, from its counters after a run.
  ferrovs_drops() { /usr/bin/python3 -c 'import json,sys
t = json.load(open(sys.argv[1]))["total"]
d = {k: v for k, v in t.items() if k.startswith("drop_") and v}
print(sum(d.values()), " ".join(f"{k}={v}" for k, v in sorted(d.items())))' "$1"; }
  echo
  echo "config churn: $(label $cr), established NAT at $rate Mpps for $duration s, first steady, then while a backend's"
  echo "weight changes continuously (benches/config_churn.sh)"
  line=$(run_case $cr nat steady 1) || exit 1
  echo "  steady: sent $(field "$line" tx), received $(field "$line" rx), lost $(field "$line" loss); ferrovs dropped $(ferrovs_drops "$dir/nat.$cr.steady.1.stats")"
  CHURN_DELAY=$(/usr/bin/python3 -c "print(2 * $flows / 0.5e6 * 1.5 + 0.7 + $warmup + 0.1)")
  CHURN_SECONDS=$duration
  export CHURN_DELAY CHURN_SECONDS
  line=$(run_case $cr nat churn 1) || exit 1
  echo "  churn:  sent $(field "$line" tx), received $(field "$line" rx), lost $(field "$line" loss); ferrovs dropped $(ferrovs_drops "$dir/nat.$cr.churn.1.stats")"
  echo "  $(cat "$dir/nat.$cr.churn.1.churn")"
fi

if [ "$flood" = 1 ]; then
  # Half what ferrovs forwarded in the first NAT round, as --churn.
  fr=ferrovs$([ "${workers%%,*}" != 1 ] && echo "${workers%%,*}w")
  [ -n "${results[$fr.nat.1.1]:-}" ] || { echo "harness: --flood needs the nat case and ferrovs" >&2; exit 2; }
  rate=$(/usr/bin/python3 -c "print(round($(field "${results[$fr.nat.1.1]}" rx_mpps) / 2, 3))")
  flood_mpps=${flood_mpps:-$rate}
  cookies() { /usr/bin/python3 -c 'import json,sys
t = json.load(open(sys.argv[1]))["total"]
print(t.get("syn_cookies_sent", 0), t.get("syn_proxy_auto_engagements", 0))' "$1"; }
  echo
  echo "established during a SYN flood: $(label $fr), established NAT at $rate Mpps to a syn_proxy: auto service for $duration s,"
  echo "first alone, then with a SYN flood at $flood_mpps Mpps to the same service"
  alone=$(run_case $fr estflood alone 1 --open-rate-mpps 0.05) || exit 1
  read -r c0 e0 <<<"$(cookies "$dir/estflood.$fr.alone.1.stats")"
  echo "  alone:      sent $(field "$alone" tx), received $(field "$alone" rx) ($(field "$alone" rx_mpps) Mpps), lost $(field "$alone" loss); cookies sent $c0, auto engagements $e0"
  during=$(run_case $fr estflood flood 1 --open-rate-mpps 0.05 --flood-mpps "$flood_mpps") || exit 1
  read -r c1 e1 <<<"$(cookies "$dir/estflood.$fr.flood.1.stats")"
  echo "  with flood: sent $(field "$during" tx), received $(field "$during" rx) ($(field "$during" rx_mpps) Mpps), lost $(field "$during" loss); flood $(field "$during" flood_tx) SYNs ($(field "$during" flood_mpps) Mpps), cookies sent $c1, auto engagements $e1"
  /usr/bin/python3 -c 'import sys; a, b = float(sys.argv[1]), float(sys.argv[2])
r = b / a if a else 0
verdict = "pass" if r >= 0.9 else "miss"
print(f"  established received with the flood / without: {r:.3f} (target >= 0.9: {verdict})")' \
    "$(field "$alone" rx)" "$(field "$during" rx)"
fi

exit "${failed:-0}"
