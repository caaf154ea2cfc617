#!/usr/bin/env bash
# Runs every ferrovs test on a Debian 12 machine as root (another account re-runs it through
# sudo where sudo is installed): installs what is missing, builds, then unit and property
# tests, the DPDK integration tests (EAL with pcap vdevs), a bounded fuzz run of the parsers,
# scripts/bootstrap.sh on fake sysfs trees, and the end-to-end tests on namespaces. Prints one
# closing line: "N passed, M failed".
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

# The parsers' fuzz target for a bounded time where rustup's nightly toolchain and cargo-fuzz
# are installed (cargo fuzz needs nightly's sanitizer flags); skipped, and said so, elsewhere.
fuzz_passed=0 fuzz_failed=0
if cargo +nightly fuzz --version >/dev/null 2>&1; then
  if (cd dataplane/fuzz && timeout 900 cargo +nightly fuzz run parse_frame -- \
        -max_total_time="${FVS_FUZZ_SECONDS:-30}" -rss_limit_mb=2048 2>&1 | tail -5); then
    fuzz_passed=1; echo "fuzz: parse_frame ran ${FVS_FUZZ_SECONDS:-30} s without a crash"
  else
    fuzz_failed=1; echo "fuzz: parse_frame FAILED (see dataplane/fuzz/artifacts)"
  fi
else
  echo "fuzz: skipped (needs rustup's nightly toolchain and cargo-fuzz)"
fi

# scripts/bootstrap.sh against fake sysfs/procfs trees it builds (two NUMA nodes, three NIC
# drivers, IOMMU or none): the files written, the dry run, the undo. Takes seconds.
bootstrap_log=$(mktemp)
/usr/bin/python3 tests/bootstrap/test_bootstrap.py 2>&1 | tee "$bootstrap_log"
bootstrap_passed=$(awk '/^bootstrap:/ {print $2}' "$bootstrap_log")
bootstrap_failed=$(awk '/^bootstrap:/ {print $4}' "$bootstrap_log")
rm -f "$bootstrap_log"

e2e_log=$(mktemp)
bash tests/e2e/run.sh 2>&1 | tee "$e2e_log"
e2e_passed=$(awk '/^e2e:/ {print $2}' "$e2e_log")
e2e_failed=$(awk '/^e2e:/ {print $4}' "$e2e_log")
rm -f "$e2e_log"

leftovers=$(ip netns list | grep -c . || true)
[ "$leftovers" = 0 ] || { echo "test.sh: $leftovers network namespace(s) left behind:"; ip netns list; }

passed=$((cargo_passed + fuzz_passed + ${bootstrap_passed:-0} + ${e2e_passed:-0}))
failed=$((cargo_failed + fuzz_failed + ${bootstrap_failed:-1} + ${e2e_failed:-1}))
echo "wall time: $(( $(date +%s) - start )) s (after setup)"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
