#!/usr/bin/env bash
# Instructions per packet of the load-balancing pipeline, counted by callgrind (exact, unlike
# ns per packet on a shared machine): builds benches/examples/instructions.rs in release, runs
# it under valgrind once per mode (nat, fullnat, dr, tun; and IPv6 nat6, fullnat6, nat64 from
# benches/examples/instructions6.rs, whose copy-only baseline is its own 74-byte frame) and
# table size, and prints one row per case: instructions per packet, and the same minus the
# copy-only baseline (the per-packet frame preparation, included in every case;
# copy_only_burst for the burst cases).
#
#   benches/instructions.sh [SIZE...]              sizes like 1k 100k 1M (default: 1k 1M)
#   benches/instructions.sh --profile MODE SIZE CASE [N]
#       the top N functions (default 15) of one case (copy_only, established, reply, new_syn,
#       synproxy_syn: nat and fullnat, a SYN answered by the SYN proxy's cookie SYN-ACK)
#       by inclusive and by self instructions, e.g. --profile nat 1k established;
#       FVS_INSTR_KEEP=FILE keeps that case's callgrind file (for callgrind_annotate)
#
# K (packets per case) is FVS_INSTR_K, default 10000; new_syn sends at most the table's headroom
# (1,000 SYNs at 1k). Uses $CARGO_TARGET_DIR if set. Counts repeat from run to run but for
# new_syn, within 0.1% (the connection table's hash seed is random). Time here (2 shared vCPUs,
# after the build): about 1.5 minutes for 1k and 1M, almost all of it opening the 1M
# connections under valgrind (about 20 s per mode); each valgrind run is cut off after 10
# minutes. The callgrind files go to a temporary directory, removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

k=${FVS_INSTR_K:-10000}
profile=()
if [ "${1:-}" = --profile ]; then
  [ $# -ge 4 ] || { echo "usage: $0 --profile MODE SIZE CASE [N]" >&2; exit 2; }
  profile=("$2" "$3" "$4" "${5:-15}")
else
  sizes=("$@")
  [ ${#sizes[@]} -gt 0 ] || sizes=(1k 1M)
fi

if ! command -v valgrind >/dev/null || ! command -v callgrind_annotate >/dev/null; then
  apt-get install -y valgrind >/dev/null
fi

cargo build --release -p ferrovs-benches --example instructions --example instructions6
bin=${CARGO_TARGET_DIR:-target}/release/examples/instructions

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Runs one mode and size; leaves the cases in $tmp/cases and the i-th case's dump in
# $tmp/cg.i (the example calls one measure_* function per case, and a dump follows each call).
run() {
  rm -f "$tmp"/cg* "$tmp"/cases
  # The IPv6 modes are the other example's (its functions carry its crate name).
  local example=instructions
  case "$1" in *6 | nat64) example=instructions6 ;; esac
  timeout 600 valgrind --tool=callgrind --collect-atstart=no \
    --toggle-collect="$example::measure_*" \
    --dump-after="$example::measure_copy_only" \
    --dump-after="$example::measure_packets" \
    --dump-after="$example::measure_copy_only_bursts" \
    --dump-after="$example::measure_bursts" \
    --dump-after="$example::measure_new_syns" \
    --callgrind-out-file="$tmp/cg" --log-file="$tmp/valgrind.log" \
    "${bin%/*}/$example" "$1" "$2" "$k" >"$tmp/cases" || { cat "$tmp/valgrind.log" >&2; exit 1; }
}

# totals: line of a dump (older callgrind files only have summary:).
total() {
  awk '/^totals:/ {t = $2} /^summary:/ {s = $2} END {print (t != "" ? t : s)}' "$1"
}

if [ ${#profile[@]} -gt 0 ]; then
  run "${profile[0]}" "${profile[1]}"
  i=$(awk -v c="${profile[2]}" '$1 == "case" {n++; if ($2 == c) print n}' "$tmp/cases")
  [ -n "$i" ] || { echo "no case ${profile[2]} in: $(awk '{print $2}' "$tmp/cases" | xargs)" >&2; exit 2; }
  packets=$(awk -v n="$i" '$1 == "case" && ++m == n {print $3}' "$tmp/cases")
  echo "${profile[0]} ${profile[1]} ${profile[2]}: $(total "$tmp/cg.$i") instructions for $packets packets," \
    "$(awk -v t="$(total "$tmp/cg.$i")" -v n="$packets" 'BEGIN {printf "%.1f", t / n}') per packet"
  # Read from the callgrind file itself: callgrind_annotate splits a function's lines by the
  # source file of inlined code, and which piece carries the calls depends on the directory it
  # runs in. Here a function's self cost is all its cost lines; its inclusive cost is the cost
  # of the calls into it (a `calls=` line, then the call's cost); names are compressed as
  # "(id) name" on first use, "(id)" after. Prints "self|incl|file <TAB> instructions <TAB> name".
  costs() {
    awk '
      function name(s, table,   id) {
        if (match(s, /^\([0-9]+\)/)) {
          id = substr(s, 2, RLENGTH - 2)
          if (length(s) > RLENGTH) table[id] = substr(s, RLENGTH + 2)
          return table[id]
        }
        return s
      }
      /^fl=/ { file = fl = name(substr($0, 4), files); next }
      /^f[ie]=/ { file = name(substr($0, 4), files); next }
      /^cf[il]=/ { name(substr($0, 5), files); next }
      /^fn=/ { fn = name(substr($0, 4), fns); file = fl; next }
      /^cfn=/ { callee = name(substr($0, 5), fns); next }
      /^calls=/ { call = 1; next }
      /^[-+*0-9]/ {
        if (call) incl[callee] += $NF; else { self[fn] += $NF; byfile[file ":" fn] += $NF }
        call = 0
      }
      END {
        for (f in self) printf "self\t%d\t%s\n", self[f], f
        for (f in incl) printf "incl\t%d\t%s\n", incl[f], f
        for (f in byfile) printf "file\t%d\t%s\n", byfile[f], f
      }' "$tmp/cg.$i" | sed -e "s|$PWD/||" -e 's|/rustc/[0-9a-f]*/library/||'
  }
  top() {
    awk -F '\t' -v kind="$1" -v packets="$packets" -v total="$(total "$tmp/cg.$i")" '
      $1 == kind && $3 !~ /(^|:)(main|\(below main\)|__libc_start|std::rt::|std::sys::backtrace|instructions::|0x)/ {
        printf "%8.1f %5.1f%%  %s\n", $2 / packets, 100 * $2 / total, $3
      }' "$tmp/costs" | sort -rn | head -n "${profile[3]}"
  }
  costs >"$tmp/costs"
  echo "instructions per packet, share of the case, function"
  echo; echo "== top ${profile[3]} functions by inclusive instructions"; top incl
  echo; echo "== top ${profile[3]} functions by self instructions (inlined code counts in its caller)"; top self
  echo; echo "== top ${profile[3]} by self instructions and source file of the (inlined) code"; top file
  if [ -n "${FVS_INSTR_KEEP:-}" ]; then
    cp "$tmp/cg.$i" "$FVS_INSTR_KEEP" && echo && echo "callgrind file: $FVS_INSTR_KEEP (callgrind_annotate it)"
  fi
  exit 0
fi

printf '%-8s %-5s %-17s %7s %14s %12s\n' mode size case packets instr/packet "minus copy"
for size in "${sizes[@]}"; do
  for mode in nat fullnat dr tun nat6 fullnat6 nat64; do
    run "$mode" "$size"
    i=0 copy=0 copy_burst=0
    while read -r _ case packets; do
      i=$((i + 1))
      per=$(awk -v t="$(total "$tmp/cg.$i")" -v n="$packets" 'BEGIN {printf "%.1f", t / n}')
      [ "$case" = copy_only ] && copy=$per
      [ "$case" = copy_only_burst ] && copy_burst=$per
      base=$([[ "$case" == *_burst ]] && echo "$copy_burst" || echo "$copy")
      net=$(awk -v a="$per" -v b="$base" 'BEGIN {printf "%.1f", a - b}')
      # The baselines are the same in every mode of a family: show them once per size and family.
      if [[ "$case" != copy_only* ]] || [ "$mode" = nat ] || [ "$mode" = nat6 ]; then
        printf '%-8s %-5s %-17s %7s %14s %12s\n' "$mode" "$size" "$case" "$packets" "$per" \
          "$([[ "$case" == copy_only* ]] && echo - || echo "$net")"
      fi
    done <"$tmp/cases"
  done
done
