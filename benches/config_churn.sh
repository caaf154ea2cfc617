#!/usr/bin/env bash
# Config churn: changes one backend's weight back and forth through `fvs backend set`, as fast
# as the CLI goes (one fvs process per change), for a given time, then prints one line with
# the changes made and, from `fvs --json stats`, how long they took to be used by every worker:
#
#   benches/config_churn.sh --socket PATH --seconds S --service VIP:PORT/tcp|udp --backend ADDR:PORT
#                           [--weights A,B]
#
#   config_churn: changes=N seconds=S rate_per_s=R published=P not_visible=T visible_last_us=L
#     visible_max_us=M visible_mean_us=A visible_buckets_us=10:n,100:n,1000:n,10000:n,100000:n,inf:n
#   (one line). The buckets count this run's publishes by delay (BOUND: below BOUND us, inf:
#   slower), published/not_visible/mean are this run's too; visible_max_us is the daemon's
#   maximum since it started.
#
# The weight alternates between the backend's current weight W and W+1 (or --weights A,B)
# and is W again at the end, also when interrupted. Only weights change: no backend is added
# or removed, so no connection is dropped. --socket defaults to $FVS_SOCKET; the fvs binary is
# $(fvs_bin fvs) from scripts/lib.sh ($FVS_PROFILE, $CARGO_TARGET_DIR), or $FVS_BIN.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../scripts/lib.sh"

usage="usage: benches/config_churn.sh --socket PATH --seconds S --service VIP:PORT/tcp|udp --backend ADDR:PORT [--weights A,B]"
die() { echo "config_churn: $*" >&2; exit 1; }
bad() { echo "config_churn: $*" >&2; echo "$usage" >&2; exit 2; }

socket=${FVS_SOCKET:-} seconds="" service="" backend="" weights=""
while [ $# -gt 0 ]; do
  case "$1" in
    --socket|--seconds|--service|--backend|--weights)
      [ $# -ge 2 ] || bad "$1 needs a value"
      case "$1" in
        --socket) socket=$2 ;; --seconds) seconds=$2 ;; --service) service=$2 ;;
        --backend) backend=$2 ;; --weights) weights=$2 ;;
      esac
      shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) bad "unknown argument '$1'" ;;
  esac
done
[ -n "$socket" ] || bad "--socket is missing (or set FVS_SOCKET)"
[ -n "$service" ] || bad "--service is missing"
[ -n "$backend" ] || bad "--backend is missing"
[[ "$seconds" =~ ^[0-9]+(\.[0-9]+)?$ ]] && [[ ! "$seconds" =~ ^0+(\.0+)?$ ]] \
  || bad "--seconds wants a positive number of seconds, not '$seconds'"
[[ "$service" =~ ^(.+)/(tcp|udp)$ ]] || bad "--service wants VIP:PORT/tcp or VIP:PORT/udp, not '$service'"
vip_port=${BASH_REMATCH[1]} proto=${BASH_REMATCH[2]}
if [ -n "$weights" ]; then
  [[ "$weights" =~ ^([0-9]+),([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" != "${BASH_REMATCH[2]}" ] \
    || bad "--weights wants two different weights A,B, not '$weights'"
fi

fvs=${FVS_BIN:-$(fvs_bin fvs)}
[ -x "$fvs" ] || die "no fvs binary at $fvs (build it: cargo build --release -p ctrl, or set FVS_BIN)"
python=/usr/bin/python3
[ -x "$python" ] || python=python3

# The backend's current weight, from `fvs --json service show` (addresses compared as
# addresses: 2001:db8::1 and 2001:0db8::1 are one).
services=$("$fvs" --socket "$socket" --json service show 2>&1) || die "$services"
read -r -d '' find_weight <<'PY' || true
import ipaddress, json, sys
proto, vip_port, backend = sys.argv[1:]
def split(s, what):
    host, sep, port = s.rpartition(":")
    try:
        return ipaddress.ip_address(host.strip("[]")), int(port)
    except ValueError:
        sys.exit(f"{what} '{s}' is not ADDR:PORT")
vip, vport = split(vip_port, "--service")
addr, port = split(backend, "--backend")
for s in json.load(sys.stdin):
    if (s["protocol"], ipaddress.ip_address(s["vip"]), s["port"]) == (proto, vip, vport):
        for b in s["backends"]:
            if (ipaddress.ip_address(b["addr"]), b["port"]) == (addr, port):
                print(b["weight"])
                sys.exit(0)
        sys.exit(f"service {proto} {vip_port} has no backend {backend} (see fvs service show)")
sys.exit(f"no service {proto} {vip_port} (see fvs service show)")
PY
current=$("$python" -c "$find_weight" "$proto" "$vip_port" "$backend" <<<"$services" 2>&1) || die "$current"
if [ -n "$weights" ]; then
  w_a=${weights%,*} w_b=${weights#*,}
else
  w_a=$current w_b=$((current + 1))
fi

stats() { "$fvs" --socket "$socket" --json stats; }
set_weight() { "$fvs" --socket "$socket" backend set "$proto" "$vip_port" "$backend" weight "$1"; }

before=$(stats 2>&1) || die "$before"
restore() { set_weight "$current" >/dev/null 2>&1 || echo "config_churn: could not set the weight back to $current" >&2; }
trap restore EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# $EPOCHREALTIME (bash 5) reads the clock in microseconds without a process per change.
duration_us=$("$python" -c "print(round(float('$seconds') * 1e6))")
start=${EPOCHREALTIME/[.,]/} changes=0 weight=$w_b
while [ $((${EPOCHREALTIME/[.,]/} - start)) -lt "$duration_us" ]; do
  err=$(set_weight "$weight" 2>&1) || die "change $((changes + 1)) (weight $weight) failed: $err"
  changes=$((changes + 1))
  if [ "$weight" = "$w_a" ]; then weight=$w_b; else weight=$w_a; fi
done
elapsed_us=$((${EPOCHREALTIME/[.,]/} - start))
after=$(stats 2>&1) || die "$after"

"$python" - "$changes" "$elapsed_us" "$before" "$after" <<'PY'
import json, sys
changes, elapsed_us = int(sys.argv[1]), int(sys.argv[2])
try:
    before, after = (json.loads(a)["config"] for a in sys.argv[3:5])
except KeyError:
    sys.exit("config_churn: this ferrovs reports no config section in fvs stats (too old?)")
published = after["published"] - before["published"]
counts = [a["count"] - b["count"] for a, b in zip(after["visible_buckets"], before["visible_buckets"])]
visible = sum(counts)
mean = (after["visible_sum_us"] - before["visible_sum_us"]) // visible if visible else "none"
last = after["visible_last_us"] if after["visible_last_us"] is not None else "none"
buckets = ",".join(f'{b["below_us"] if b["below_us"] is not None else "inf"}:{n}'
                   for b, n in zip(after["visible_buckets"], counts))
seconds = elapsed_us / 1e6
print(f"config_churn: changes={changes} seconds={seconds:.3f} rate_per_s={changes / seconds:.1f} "
      f"published={published} not_visible={after['not_visible'] - before['not_visible']} "
      f"visible_last_us={last} visible_max_us={after['visible_max_us']} visible_mean_us={mean} "
      f"visible_buckets_us={buckets}")
PY
