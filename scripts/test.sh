#!/usr/bin/env bash
# Runs every ferrovs test on a Debian 12 machine as root (another account re-runs it through
# sudo where sudo is installed): installs what is missing, builds, then unit and property
# tests, the DPDK integration tests (EAL with pcap vdevs), the gates (format, lints, the build
# without DPDK, the control-state tests without DPDK, the layering check), a bounded fuzz run of
# each fuzz target, scripts/bootstrap.sh and ferrovs --doctor on fake sysfs trees, the Debian
# package round trip, and the end-to-end tests on
# namespaces. Each gate and each fuzz target counts as one test. Prints one closing line:
# "N passed, M failed".
#
#   FVS_FUZZ_SECONDS  seconds per fuzz target (default 15)
set -uo pipefail
source "$(dirname "$0")/root.sh"
fvs_as_root "$@"
cd "$(dirname "$0")/.."

scripts/setup.sh --debug || exit 1
export FVS_PROFILE=debug
start=$(date +%s)

cargo_log=$(mktemp)
cargo test 2>&1 | tee "$cargo_log"
cargo_status=${PIPESTATUS[0]}
cargo_passed=$(awk '/^test result:/ {s += $4} END {print s + 0}' "$cargo_log")
cargo_failed=$(awk '/^test result:/ {s += $6} END {print s + 0}' "$cargo_log")
rm -f "$cargo_log"
if [ "$cargo_status" != 0 ] && [ "$cargo_failed" = 0 ]; then
  cargo_failed=1 # A build failure or a crashed test binary.
fi

# Gates: each one passed/failed test; on failure its output's tail and one line naming it.
gates_passed=0 gates_failed=0
gate() { # gate NAME COMMAND...
  local name=$1 log
  shift
  log=$(mktemp)
  if "$@" >"$log" 2>&1; then
    gates_passed=$((gates_passed + 1))
    echo "gate: $name: ok"
  else
    gates_failed=$((gates_failed + 1))
    tail -40 "$log"
    echo "gate: $name FAILED: $*"
  fi
  rm -f "$log"
}
gate "format" cargo fmt --all -- --check
# --workspace covers every member, the benchmarks (not a default member) included.
gate "lints" cargo clippy --workspace --all-targets -- -D warnings
gate "dataplane without DPDK" cargo build -p dataplane --no-default-features
gate "control state without DPDK" cargo test -p ctrl --no-default-features
# The packet core names nothing from dpdk/, and dpdk/'s imports point one way
# (dataplane/tests/layering.rs, here built without DPDK as the packet core is meant to).
gate "layering" cargo test -p dataplane --no-default-features --test layering
# ferrovs --doctor on this machine: the demo config can start here (setup.sh reserved the
# hugepages the e2e tests start it with); the appliance config cannot (no such PCI NIC).
gate "doctor: conf/demo.yaml can start here" target/debug/ferrovs --doctor -c conf/demo.yaml
if [ ! -e /sys/bus/pci/devices/0000:3b:00.0 ]; then
  gate "doctor: conf/appliance.yaml refused here (no NIC 0000:3b:00.0)" bash -c \
    'target/debug/ferrovs --doctor -c conf/appliance.yaml > /tmp/fvs-doctor.$$; rc=$?; cat /tmp/fvs-doctor.$$;
     grep -q "^FAIL  port outside: no PCI device 0000:3b:00.0" /tmp/fvs-doctor.$$ && rm -f /tmp/fvs-doctor.$$ && [ $rc = 1 ]'
fi
# The BIRD examples parse (bird2 from setup.sh).
gate "BIRD configs" bash -c 'for f in conf/bird-*.conf; do bird -p -c "$f" || exit 1; done'

# Each fuzz target for FVS_FUZZ_SECONDS on stable Rust (RUSTC_BOOTSTRAP=1, no sanitizer; setup.sh
# installs cargo-fuzz). The corpus grows in dataplane/fuzz/corpus/ (not in git); the saved
# regression inputs seed it. A crash fails the target, and its input is copied to
# dataplane/fuzz/regressions/<target>/, which `cargo test -p dataplane` replays from then on.
fuzz_seconds=${FVS_FUZZ_SECONDS:-15}
fuzz_targets=(parse_frame process_burst)
fuzz_passed=0 fuzz_failed=0
fuzz_log=$(mktemp)
if (cd dataplane/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build -s none) >"$fuzz_log" 2>&1; then
  for target in "${fuzz_targets[@]}"; do
    mkdir -p "dataplane/fuzz/corpus/$target" "dataplane/fuzz/regressions/$target"
    rm -rf "dataplane/fuzz/artifacts/$target"
    if (cd dataplane/fuzz && RUSTC_BOOTSTRAP=1 timeout $((fuzz_seconds + 120)) cargo fuzz run -s none "$target" \
          "corpus/$target" "regressions/$target" -- -max_total_time="$fuzz_seconds" -rss_limit_mb=2048) \
          >"$fuzz_log" 2>&1; then
      fuzz_passed=$((fuzz_passed + 1))
      echo "fuzz: $target: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$fuzz_log"), no crash"
    else
      fuzz_failed=$((fuzz_failed + 1))
      grep -m 1 -A 2 -E 'panicked|ERROR: libFuzzer' "$fuzz_log" || tail -30 "$fuzz_log"
      kept=()
      for input in "dataplane/fuzz/artifacts/$target"/*; do
        [ -f "$input" ] || continue
        cp "$input" "dataplane/fuzz/regressions/$target/" && kept+=("dataplane/fuzz/regressions/$target/$(basename "$input")")
      done
      echo "fuzz: $target FAILED; input kept as ${kept[*]:-(none written)}: commit it with the fix"
    fi
  done
else
  tail -30 "$fuzz_log"
  fuzz_failed=${#fuzz_targets[@]}
  echo "fuzz: cargo fuzz build FAILED (every target counted failed)"
fi
rm -f "$fuzz_log"

# scripts/bootstrap.sh against fake sysfs/procfs trees it builds (two NUMA nodes, three NIC
# drivers, IOMMU or none): the files written, the dry run, the undo. Takes seconds.
bootstrap_log=$(mktemp)
/usr/bin/python3 tests/bootstrap/test_bootstrap.py 2>&1 | tee "$bootstrap_log"
bootstrap_passed=$(awk '/^bootstrap:/ {print $2}' "$bootstrap_log")
bootstrap_failed=$(awk '/^bootstrap:/ {print $4}' "$bootstrap_log")
rm -f "$bootstrap_log"

# The Debian package round trip (tests/deb/test_deb.sh): build from the dev profile, contents,
# dpkg -i, the installed ferrovs on the installed config, systemd-analyze verify, dpkg --purge.
# About 10 s once the debug binaries are built.
deb_log=$(mktemp)
bash tests/deb/test_deb.sh 2>&1 | tee "$deb_log"
deb_passed=$(awk '/^deb: [0-9]+ passed/ {print $2}' "$deb_log")
deb_failed=$(awk '/^deb: [0-9]+ passed/ {print $4}' "$deb_log")
rm -f "$deb_log"

e2e_log=$(mktemp)
bash tests/e2e/run.sh 2>&1 | tee "$e2e_log"
e2e_passed=$(awk '/^e2e:/ {print $2}' "$e2e_log")
e2e_failed=$(awk '/^e2e:/ {print $4}' "$e2e_log")
rm -f "$e2e_log"

leftovers=$(ip netns list | grep -c . || true)
[ "$leftovers" = 0 ] || { echo "test.sh: $leftovers network namespace(s) left behind:"; ip netns list; }

passed=$((cargo_passed + gates_passed + fuzz_passed + ${bootstrap_passed:-0} + ${deb_passed:-0} + ${e2e_passed:-0}))
failed=$((cargo_failed + gates_failed + fuzz_failed + ${bootstrap_failed:-1} + ${deb_failed:-1} + ${e2e_failed:-1}))
echo "wall time: $(( $(date +%s) - start )) s (after setup)"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
